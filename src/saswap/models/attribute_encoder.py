"""``AttributeEncoder``: a U-Net giving the target's features at every scale (pose, expression,
lighting, background), from coarse to fine, for the fusion generator."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from saswap.models.hub import SaSwapModelMixin
from saswap.models.layers import activation

__all__ = ["AttributeEncoder"]


def _down(cin: int, cout: int, act: str) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), activation(act))


def _up(cin: int, cout: int, act: str) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), activation(act))


class AttributeEncoder(nn.Module, SaSwapModelMixin):
    """U-Net attribute encoder (FaceShifter's multi-level attributes).

    Args:
        in_channels: image channels.
        block_out_channels: encoder channels per downsampling step; the decoder mirrors them.
        act_fn: activation name.

    Returns (forward):
        list of attribute maps from the bottleneck (1/2^n resolution) to full resolution; entry k
        has ``attr_channels[k]`` channels.

    Example:
        >>> enc = AttributeEncoder(block_out_channels=(8, 16, 32))
        >>> [tuple(a.shape) for a in enc(torch.rand(1, 3, 32, 32))]
        [(1, 32, 4, 4), (1, 32, 8, 8), (1, 16, 16, 16), (1, 16, 32, 32)]
    """

    def __init__(
        self,
        in_channels: int = 3,
        block_out_channels: Sequence[int] = (32, 64, 128, 256, 512, 1024, 1024),
        act_fn: str = "leaky_relu",
    ) -> None:
        super().__init__()
        chans = list(block_out_channels)
        self.downs = nn.ModuleList()
        cin = in_channels
        for c in chans:
            self.downs.append(_down(cin, c, act_fn))
            cin = c
        self.ups = nn.ModuleList()
        self.attr_channels = [chans[-1]]
        cin = chans[-1]
        for skip in reversed(chans[:-1]):
            self.ups.append(_up(cin, skip, act_fn))
            cin = skip * 2
            self.attr_channels.append(cin)
        self.attr_channels.append(cin)  # the full-resolution map (upsampled last level)
        self.scale = 2 ** len(chans)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.ndim != 4 or x.shape[-1] % self.scale or x.shape[-2] % self.scale:
            raise ValueError(f"expected (B, C, H, W) with H and W multiples of {self.scale}, got {tuple(x.shape)}")
        skips = []
        for down in self.downs:
            x = down(x)
            skips.append(x)
        attrs = [x]
        for up, skip in zip(self.ups, reversed(skips[:-1])):
            x = torch.cat([up(x), skip], dim=1)
            attrs.append(x)
        attrs.append(nn.functional.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))
        return attrs
