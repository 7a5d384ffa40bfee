"""``FlowEstimator``: sparse keypoint motion (from the 3D prior) to a dense flow field.

The network predicts, at each pixel, soft weights over the keypoints plus a "static" background
slot; the flow is the weighted sum of the keypoints' motions (the background moves by zero). The
flow is therefore linear in the motion: it is exactly zero when the motion is zero (source ==
target, or shape strength 0), and it never exceeds the largest keypoint motion.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from saswap.models.hub import SaSwapModelMixin
from saswap.models.layers import activation

__all__ = ["FlowEstimator", "keypoint_heatmaps"]


def keypoint_heatmaps(keypoints: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    """Gaussian heatmaps of keypoints.

    Args:
        keypoints: (x, y) in [-1, 1] (align_corners=False), shape (B, K, 2).
        size: side of the square heatmaps.
        sigma: standard deviation in normalised units.

    Returns:
        shape (B, K, size, size), peak 1.

    Example:
        >>> keypoint_heatmaps(torch.zeros(1, 3, 2), 8, 0.1).shape
        torch.Size([1, 3, 8, 8])
    """
    coords = (torch.arange(size, device=keypoints.device, dtype=keypoints.dtype) * 2 + 1) / size - 1
    gy, gx = torch.meshgrid(coords, coords, indexing="ij")
    dx = gx[None, None] - keypoints[..., 0, None, None]
    dy = gy[None, None] - keypoints[..., 1, None, None]
    return torch.exp(-(dx**2 + dy**2) / (2 * sigma**2))


class FlowEstimator(nn.Module, SaSwapModelMixin):
    """Dense flow from sparse keypoint motion.

    Args:
        num_keypoints: K (68 for the 3DMM's landmarks).
        image_size: side of the output flow (the generator's resolution).
        feature_size: side at which the network runs (flow is upsampled from it).
        block_out_channels: channels of the hourglass' encoder levels.
        sigma: keypoint heatmap width, normalised units.
        act_fn: activation name.

    Example:
        >>> est = FlowEstimator(num_keypoints=5, image_size=32, feature_size=16, block_out_channels=(8, 16))
        >>> kp = torch.rand(2, 5, 2) * 2 - 1
        >>> est(kp, torch.zeros(2, 5, 2)).abs().max().item()
        0.0
    """

    def __init__(
        self,
        num_keypoints: int = 68,
        image_size: int = 256,
        feature_size: int = 64,
        block_out_channels: Sequence[int] = (64, 128, 256),
        sigma: float = 0.05,
        act_fn: str = "leaky_relu",
    ) -> None:
        super().__init__()
        if image_size % feature_size:
            raise ValueError(f"image_size {image_size} must be a multiple of feature_size {feature_size}")
        self.num_keypoints, self.image_size, self.feature_size, self.sigma = (
            num_keypoints,
            image_size,
            feature_size,
            sigma,
        )
        cin = 3 * num_keypoints
        self.encoder = nn.ModuleList()
        for c in block_out_channels:
            self.encoder.append(
                nn.Sequential(nn.Conv2d(cin, c, 3, 1, 1), nn.BatchNorm2d(c), activation(act_fn), nn.AvgPool2d(2))
            )
            cin = c
        self.decoder = nn.ModuleList()
        skips = [3 * num_keypoints, *block_out_channels[:-1]]
        for skip, c in zip(reversed(skips), reversed(block_out_channels)):
            self.decoder.append(
                nn.Sequential(
                    nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                    nn.Conv2d(cin, c, 3, 1, 1),
                    nn.BatchNorm2d(c),
                    activation(act_fn),
                )
            )
            cin = c + skip
        self.weights = nn.Conv2d(cin, num_keypoints + 1, 7, 1, 3)

    def forward(self, keypoints: torch.Tensor, motion: torch.Tensor) -> torch.Tensor:
        """Dense flow.

        Args:
            keypoints: target keypoints in [-1, 1], shape (B, K, 2).
            motion: their motion in pixels of the output, shape (B, K, 2).

        Returns:
            flow (dx, dy) in pixels, shape (B, 2, image_size, image_size).
        """
        if keypoints.shape != motion.shape or keypoints.ndim != 3 or keypoints.shape[1:] != (self.num_keypoints, 2):
            raise ValueError(
                f"expected keypoints and motion of shape (B, {self.num_keypoints}, 2), got {tuple(keypoints.shape)} and {tuple(motion.shape)}"
            )
        heat = keypoint_heatmaps(keypoints, self.feature_size, self.sigma)
        scale = motion.abs().amax(dim=(1, 2), keepdim=True).clamp(min=1.0)  # inputs of unit range
        mx = heat * (motion[..., 0] / scale[..., 0])[..., None, None]
        my = heat * (motion[..., 1] / scale[..., 0])[..., None, None]
        x = torch.cat([heat, mx, my], dim=1)
        skips = [x]
        for enc in self.encoder:
            x = enc(x)
            skips.append(x)
        skips.pop()
        for dec in self.decoder:
            x = torch.cat([dec(x), skips.pop()], dim=1)
        w = torch.softmax(self.weights(x), dim=1)[:, : self.num_keypoints]  # drop the static slot
        flow = torch.einsum("bkhw,bkc->bchw", w, motion)
        return nn.functional.interpolate(
            flow, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False
        )
