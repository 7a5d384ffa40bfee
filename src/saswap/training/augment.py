"""Training augmentations that run on the batch's device (kornia): random occluders pasted on the
target (shapes, and face-mask photos from insightface's wheel), small affine jitter that imitates
frame-to-frame motion, and colour jitter."""

from __future__ import annotations

import kornia.augmentation as K
import numpy as np
import torch
from torch import nn

__all__ = ["OccluderPaste", "FaceAugment"]


class OccluderPaste(nn.Module):
    """Paste random occluders on images in [-1, 1]: filled ellipses and bars of random colour (hair,
    glasses-like bars, objects), drawn hands in three skin tones, a microphone and, when available,
    face-mask photos from insightface's wheel.

    Args:
        p: probability that an image gets an occluder.
        mask_images: RGBA uint8 occluder images to choose from as well (e.g.
            :func:`saswap.eval.occluders.face_mask_occluder`); the default loads insightface's masks.
    """

    def __init__(self, p: float = 0.3, mask_images: list[np.ndarray] | None = None) -> None:
        super().__init__()
        self.p = float(p)
        if mask_images is None:
            try:
                from saswap.eval.occluders import face_mask_occluder, hand_occluder, microphone_occluder

                mask_images = [face_mask_occluder(c) for c in ("white", "blue", "black")]
                mask_images += [hand_occluder(tone=t) for t in ((205, 150, 120), (120, 80, 60), (235, 190, 165))]
                mask_images.append(microphone_occluder())
            except Exception:  # noqa: BLE001 - insightface's images are optional here
                mask_images = []
        self._masks = [torch.from_numpy(np.ascontiguousarray(m)).permute(2, 0, 1).float() / 255.0 for m in mask_images]

    def _shape(self, size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
        r = torch.rand(6, generator=generator)
        cx, cy = r[0] * 1.2 - 0.6, r[1] * 0.8 + 0.1  # mostly the lower half: chin, mouth, hands
        ax, ay = 0.15 + r[2] * 0.35, 0.08 + r[3] * 0.3
        if r[4] < 0.5:
            alpha = (((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2 < 1).float()
        else:
            alpha = ((xx - cx).abs() < ax) & ((yy - cy).abs() < ay * 0.4)
            alpha = alpha.float()
        colour = torch.rand(3, 1, 1, generator=generator) * 2 - 1
        return colour.expand(3, size, size), alpha

    def forward(
        self, images: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (occluded images, occluder masks (B, 1, H, W))."""
        b, _, h, w = images.shape
        gen = generator or torch.Generator().manual_seed(int(torch.randint(0, 2**31, (1,))))
        out = images.clone()
        masks = torch.zeros(b, 1, h, w, device=images.device, dtype=images.dtype)
        for i in range(b):
            if torch.rand(1, generator=gen) >= self.p:
                continue
            if self._masks and torch.rand(1, generator=gen) < 0.4:
                m = self._masks[int(torch.randint(len(self._masks), (1,), generator=gen))]
                ow = int(w * (0.6 + 0.3 * torch.rand(1, generator=gen)))
                oh = max(2, int(ow * m.shape[1] / m.shape[2]))
                m = nn.functional.interpolate(m[None], size=(oh, ow), mode="bilinear", align_corners=False)[0]
                y0, x0 = int(h * 0.55), (w - ow) // 2
                y1, x1 = min(h, y0 + oh), x0 + ow
                rgb, alpha = m[:3, : y1 - y0] * 2 - 1, m[3:, : y1 - y0]
                region = out[i, :, y0:y1, x0:x1]
                out[i, :, y0:y1, x0:x1] = region * (1 - alpha.to(region)) + rgb.to(region) * alpha.to(region)
                masks[i, :, y0:y1, x0:x1] = alpha.to(region)
            else:
                colour, alpha = self._shape(h, gen)
                alpha = alpha.to(images)[None]
                out[i] = out[i] * (1 - alpha) + colour.to(images) * alpha
                masks[i] = alpha
        return out, masks


class FaceAugment(nn.Module):
    """Photometric and small geometric jitter for target faces (images in [-1, 1]).

    Args:
        jitter: maximum translation as a share of the image, and rotation in degrees / 100, of the
            affine jitter (frame-to-frame motion).
        colour: strength of brightness/contrast/saturation/hue jitter.
        p: probability of each transform.
    """

    def __init__(self, jitter: float = 0.02, colour: float = 0.1, p: float = 0.5) -> None:
        super().__init__()
        self.affine = K.RandomAffine(
            degrees=jitter * 100,
            translate=(jitter, jitter),
            scale=(1 - jitter, 1 + jitter),
            p=p,
            padding_mode="reflection",
        )
        self.colour = K.ColorJitter(colour, colour, colour, colour / 4, p=p)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (images + 1) / 2
        x = self.colour(self.affine(x))
        return x.clamp(0, 1) * 2 - 1
