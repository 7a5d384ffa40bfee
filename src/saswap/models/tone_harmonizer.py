"""``ToneHarmonizer``: predicts a compact, smooth colour transform that makes a pasted face's colour and light
agree with what surrounds it (issue 13, part 2).

The network never paints pixels: it predicts a low-resolution grid of 3x4 affine colour matrices over the
crop (a bilateral grid: ``grid_size`` x ``grid_size`` cells, ``luma_bins`` brightness bins), which is sliced
per pixel by position and brightness and applied to the input's own colours, so the face's texture (and
with it identity detail) passes through unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from saswap.models.hub import SaSwapModelMixin
from saswap.models.layers import activation

__all__ = ["ColourGridTransform", "ToneHarmonizer", "apply_colour_grid", "identity_colour_grid", "luma"]

#: Rec. 709 weights of the brightness guide (on the gamma-encoded RGB values).
_LUMA_WEIGHTS = (0.2126, 0.7152, 0.0722)


def luma(image: torch.Tensor) -> torch.Tensor:
    """Brightness guide of an RGB image: Rec. 709 weights on its (gamma-encoded) values, clamped to [0, 1].

    Args:
        image: RGB in [0, 1], shape (B, 3, H, W).

    Returns:
        shape (B, 1, H, W).

    Example:
        >>> luma(torch.ones(1, 3, 2, 2)).flatten().tolist()
        [1.0, 1.0, 1.0, 1.0]
    """
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"expected an RGB image of shape (B, 3, H, W), got {tuple(image.shape)}")
    w = torch.tensor(_LUMA_WEIGHTS, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    return (image * w).sum(1, keepdim=True).clamp(0, 1)


def identity_colour_grid(
    batch: int, luma_bins: int, grid_size: int, dtype: torch.dtype = torch.float32, device: torch.device | None = None
) -> torch.Tensor:
    """The colour grid that changes nothing: every cell holds ``[I | 0]``.

    Args:
        batch: B.
        luma_bins: D, brightness bins.
        grid_size: G, cells along each side.
        dtype: float dtype.
        device: device of the grid.

    Returns:
        shape (B, 12, D, G, G); channel ``4 * row + col`` is that entry of the 3x4 matrix.

    Example:
        >>> identity_colour_grid(1, 2, 4)[0, :, 0, 0, 0].view(3, 4)
        tensor([[1., 0., 0., 0.],
                [0., 1., 0., 0.],
                [0., 0., 1., 0.]])
    """
    eye = torch.eye(3, 4, dtype=dtype, device=device).reshape(1, 12, 1, 1, 1)
    return eye.expand(batch, 12, luma_bins, grid_size, grid_size).clone()


def _check_image(image: torch.Tensor) -> None:
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"expected an RGB image of shape (B, 3, H, W), got {tuple(image.shape)}")
    if not image.is_floating_point():
        raise TypeError(f"expected a float image in [0, 1], got dtype {image.dtype}")


def _check_mask(image: torch.Tensor, mask: torch.Tensor) -> None:
    if mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[0] != image.shape[0] or mask.shape[-2:] != image.shape[-2:]:
        raise ValueError(
            f"expected a mask of shape ({image.shape[0]}, 1, {image.shape[2]}, {image.shape[3]}) for an image of "
            f"shape {tuple(image.shape)}, got {tuple(mask.shape)}"
        )
    if mask.dtype != image.dtype:
        raise TypeError(f"mask dtype {mask.dtype} differs from image dtype {image.dtype} (pass a float mask in [0, 1])")


def apply_colour_grid(
    image: torch.Tensor, grid: torch.Tensor, mask: torch.Tensor | None = None, coords: torch.Tensor | None = None
) -> torch.Tensor:
    """Apply a bilateral grid of 3x4 affine colour matrices to an image.

    Each pixel's matrix is interpolated from the grid (bilinearly over the image plane, linearly over the
    brightness bins by the pixel's :func:`luma`), then applied to its RGB: ``out = A @ [r, g, b, 1]``. The
    identity grid (:func:`identity_colour_grid`) returns the image exactly (what is interpolated is each
    matrix's difference from ``[I | 0]``).

    Convention:
        The grid spans the whole image, cell centres as in ``align_corners=False``, edge cells extended (as
        ``F.interpolate(..., mode="bilinear", align_corners=False)``); brightness bin ``k`` of ``D`` is centred
        on luma ``(k + 0.5) / D``, the edge bins extended. The transformed colours are clamped to [0, 1].

    Args:
        image: RGB in [0, 1], shape (B, 3, H, W), float.
        grid: colour matrices, shape (B, 12, D, Gh, Gw) (channel ``4 * row + col``), the image's dtype.
        mask: optional weight in [0, 1], shape (B, 1, H, W), the image's dtype: the output is then
            ``image + mask * (transformed - image)``.
        coords: optional, where each pixel lies on the plane the grid spans, shape (B, H, W, 2), (x, y)
            normalised to [-1, 1] as in ``F.grid_sample(..., align_corners=False)``: a grid predicted on one
            crop applied to another framing of it (beyond the plane, the edge cells extend). Default: the
            grid spans this image.

    Returns:
        shape (B, 3, H, W).

    Example:
        >>> x = torch.rand(2, 3, 16, 16)
        >>> torch.equal(apply_colour_grid(x, identity_colour_grid(2, 4, 8)), x)
        True
        >>> g = identity_colour_grid(1, 1, 2); g[:, [0, 5, 10]] = 0.5  # halve every channel
        >>> float(apply_colour_grid(torch.ones(1, 3, 4, 4), g).max())
        0.5
    """
    _check_image(image)
    if grid.ndim != 5 or grid.shape[1] != 12 or grid.shape[0] != image.shape[0]:
        raise ValueError(
            f"expected a colour grid of shape ({image.shape[0]}, 12, D, Gh, Gw) for an image of shape "
            f"{tuple(image.shape)}, got {tuple(grid.shape)}"
        )
    if grid.dtype != image.dtype:
        raise TypeError(f"colour grid dtype {grid.dtype} differs from image dtype {image.dtype}")
    if mask is not None:
        _check_mask(image, mask)
    b, _, h, w = image.shape
    d = grid.shape[2]
    delta = grid - torch.eye(3, 4, dtype=grid.dtype, device=grid.device).reshape(1, 12, 1, 1, 1)
    # bilinear over the image plane, the D x 12 coefficients of a pixel side by side (channels last: fast on CPU)
    delta = delta.transpose(1, 2).reshape(b, d * 12, *grid.shape[-2:]).contiguous(memory_format=torch.channels_last)
    if coords is None:
        up = F.interpolate(delta, size=(h, w), mode="bilinear", align_corners=False)
    else:
        if coords.shape != (b, h, w, 2):
            raise ValueError(f"expected coords of shape ({b}, {h}, {w}, 2), got {tuple(coords.shape)}")
        up = F.grid_sample(delta, coords.to(delta.dtype), mode="bilinear", padding_mode="border", align_corners=False)
    up = up.permute(0, 2, 3, 1).reshape(b, h, w, d, 12)
    # linear over the brightness bins (hat weights)
    pos = (luma(image)[:, 0] * d - 0.5).clamp(0, d - 1).unsqueeze(-1)
    weight = (1 - (pos - torch.arange(d, dtype=image.dtype, device=image.device)).abs()).clamp(min=0)  # (B, H, W, D)
    coeffs = up[:, :, :, 0] * weight[..., 0:1]
    for k in range(1, d):
        coeffs = torch.addcmul(coeffs, up[:, :, :, k], weight[..., k : k + 1])
    coeffs = coeffs.permute(0, 3, 1, 2).reshape(b, 3, 4, h, w)
    out = image + coeffs[:, :, 3]
    for j in range(3):
        out = torch.addcmul(out, coeffs[:, :, j], image[:, j : j + 1])
    out = out.clamp(0, 1)
    if mask is None:
        return out
    return image + mask * (out - image)


class ColourGridTransform(nn.Module):
    """Module twin of :func:`apply_colour_grid` (no parameters).

    Example:
        >>> x = torch.rand(1, 3, 8, 8)
        >>> torch.equal(ColourGridTransform()(x, identity_colour_grid(1, 2, 4)), x)
        True
    """

    def forward(self, image: torch.Tensor, grid: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return apply_colour_grid(image, grid, mask)


def _conv_bn(cin: int, cout: int, act: str, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), activation(act))


def _masked_mean(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` (B, C, H, W) weighted by ``weight`` (B, 1, H, W): shape (B, C)."""
    return (x * weight).sum((2, 3)) / weight.sum((2, 3)).clamp(min=1e-3)


class ToneHarmonizer(nn.Module, SaSwapModelMixin):
    """Learned tone and light harmonisation of a pasted face (issue 13, part 2).

    The composite crop and the mask of its pasted face are taken to ``work_size`` (area averaging); a
    convolutional encoder (per entry of ``block_out_channels``: a stride-2 and a plain 3x3 convolution)
    brings them, with a band of context just outside the mask (``ring``), to a ``grid_size`` x ``grid_size``
    feature map. A global branch summarises the colours and features inside the mask, in the band and beyond
    (masked means and spreads), which is what the face's colour must be matched to, and adds it to every cell. A 1x1 head gives, per cell, ``luma_bins`` 3x4 affine colour
    matrices as a change from the identity, its weights zero at initialisation, so an untrained model
    changes nothing. :meth:`harmonize` applies the grid (:func:`apply_colour_grid`) inside the soft mask.

    Convention:
        image: the composite crop, RGB in [0, 1], shape (B, 3, H, W), float. mask: the pasted face (the
        region to fix), in [0, 1], shape (B, 1, H, W), the image's dtype. Any H and W (the encoder sees the
        crop at ``work_size``; the grid spans the whole crop); trained on aligned crops of ``image_size``
        (:func:`saswap.face.alignment.ffhq_transform`). ``forward`` returns the colour grid, shape
        (B, 12, luma_bins, grid_size, grid_size), channel ``4 * row + col`` of each 3x4 matrix.

    Args:
        grid_size: cells along each side of the colour grid.
        luma_bins: brightness bins of the colour grid (1: one matrix per cell).
        block_out_channels: widths of the encoder's stages, each halving the resolution.
        work_size: side at which the encoder sees the crop; ``work_size / 2 ** len(block_out_channels)``
            must be a whole multiple of ``grid_size``.
        act_fn: activation name (see :func:`saswap.models.layers.activation`).
        image_size: side of the aligned crops it was trained on (recorded in its config).
        ring: width of the context band just outside the mask, a fraction of ``work_size``: the encoder sees
            it as a third channel, and its colour statistics join the global branch's. What a face's colour
            must match lies mostly there (the forehead above the face, the temples, the jaw line); the whole
            outside is mostly hair, background and clothes.

    Example:
        >>> model = ToneHarmonizer(grid_size=4, luma_bins=2, block_out_channels=(8, 16), work_size=16)
        >>> x, m = torch.rand(2, 3, 32, 32), torch.ones(2, 1, 32, 32)
        >>> model(x, m).shape
        torch.Size([2, 12, 2, 4, 4])
        >>> torch.equal(model.harmonize(x, m), x)  # identity at initialisation
        True
    """

    def __init__(
        self,
        grid_size: int = 8,
        luma_bins: int = 4,
        block_out_channels: Sequence[int] = (16, 32, 64, 96),
        work_size: int = 128,
        act_fn: str = "relu",
        image_size: int = 256,
        ring: float = 0.08,
    ) -> None:
        super().__init__()
        chans = [int(c) for c in block_out_channels]
        if not chans:
            raise ValueError("block_out_channels needs at least one entry")
        if grid_size < 1 or luma_bins < 1:
            raise ValueError(f"grid_size and luma_bins must be at least 1, got {grid_size} and {luma_bins}")
        side = work_size // 2 ** len(chans)
        if work_size % 2 ** len(chans) or side < grid_size or side % grid_size:
            raise ValueError(
                f"work_size {work_size} / 2 ** {len(chans)} (one halving per block_out_channels entry) must be a "
                f"whole multiple of grid_size {grid_size}"
            )
        self.grid_size = int(grid_size)
        self.luma_bins = int(luma_bins)
        self.work_size = int(work_size)
        self.image_size = int(image_size)
        self.ring = float(ring)
        self._ring_px = max(1, int(round(self.ring * self.work_size)))
        stages, cin = [], 5  # RGB + mask + context band
        for cout in chans:
            stages.append(nn.Sequential(_conv_bn(cin, cout, act_fn, stride=2), _conv_bn(cout, cout, act_fn)))
            cin = cout
        self.encoder = nn.Sequential(*stages)
        width = chans[-1]
        # inside / band / outside feature means (3 * width) + inside / band / outside RGB means and spreads (18)
        self.global_mlp = nn.Sequential(nn.Linear(3 * width + 18, width), activation(act_fn), nn.Linear(width, width))
        self.local = _conv_bn(width, width, act_fn)
        self.head = nn.Conv2d(width, 12 * self.luma_bins, 1)
        # the same change for every cell, straight from the global summary: a whole-face colour cast is learned
        # at once, without waiting for the local features to carry it
        self.global_head = nn.Linear(width, 12 * self.luma_bins)
        for layer in (self.head, self.global_head):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.register_buffer("identity", torch.eye(3, 4).reshape(1, 12, 1, 1, 1), persistent=False)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs) -> ToneHarmonizer:
        """Load weights: ``"saswap-tone-harmonizer"`` (to ship inside the package once trained; not yet, see
        :func:`saswap.compose.harmonizer.tone_harmonizer_path`), a ``save_pretrained`` folder, or a Hugging Face
        Hub id."""
        from saswap.compose.harmonizer import DEFAULT_TONE_HARMONIZER, tone_harmonizer_path

        if str(pretrained_model_name_or_path) == DEFAULT_TONE_HARMONIZER:
            pretrained_model_name_or_path = tone_harmonizer_path(DEFAULT_TONE_HARMONIZER)
        return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The colour grid, shape (B, 12, luma_bins, grid_size, grid_size), of a composite crop (B, 3, H, W) in
        [0, 1] and the mask of its pasted face (B, 1, H, W) in [0, 1]."""
        _check_image(image)
        _check_mask(image, mask)
        size = (self.work_size, self.work_size)
        x = F.adaptive_avg_pool2d(image, size)
        m = F.adaptive_avg_pool2d(mask, size)
        hard = (m > 0.5).to(m.dtype)
        k = self._ring_px
        band = F.max_pool2d(hard, 2 * k + 1, 1, k) - hard  # the context just outside the mask
        rest = (1 - m - band).clamp(min=0)
        feat = F.adaptive_avg_pool2d(self.encoder(torch.cat([x * 2 - 1, m * 2 - 1, band * 2 - 1], dim=1)), self.grid_size)
        mg, bg = F.adaptive_avg_pool2d(m, self.grid_size), F.adaptive_avg_pool2d(band, self.grid_size)
        colour = []
        for w in (m, band, rest):
            mean = _masked_mean(x, w)
            colour += [mean, (_masked_mean(x.square(), w) - mean.square()).clamp(min=0).add(1e-6).sqrt()]
        stats = torch.cat([_masked_mean(feat, mg), _masked_mean(feat, bg), _masked_mean(feat, (1 - mg - bg).clamp(min=0)), *colour], 1)
        summary = self.global_mlp(stats)
        feat = self.local(feat + summary[:, :, None, None])
        delta = (self.head(feat) + self.global_head(summary)[:, :, None, None]).view(
            image.shape[0], 12, self.luma_bins, self.grid_size, self.grid_size
        )
        return self.identity.to(delta.dtype) + delta

    def harmonize(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The composite with its pasted face's colour and light matched to what surrounds it.

        Args:
            image: composite crop, RGB in [0, 1], shape (B, 3, H, W), float.
            mask: the pasted face, in [0, 1], shape (B, 1, H, W), the image's dtype; the transform is applied
                in proportion to it, so pixels where it is 0 are returned unchanged.

        Returns:
            shape (B, 3, H, W), in [0, 1] where the image is.
        """
        return apply_colour_grid(image, self(image, mask), mask)
