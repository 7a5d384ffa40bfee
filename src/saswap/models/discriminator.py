"""``MultiScaleDiscriminator``: PatchGAN discriminators at several image scales (hinge GAN)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from saswap.models.hub import SaSwapModelMixin

__all__ = ["MultiScaleDiscriminator", "PatchDiscriminator"]


class PatchDiscriminator(nn.Module):
    """A PatchGAN: strided 4x4 convolutions with spectral norm, one logit per patch."""

    def __init__(self, in_channels: int, block_out_channels: Sequence[int]) -> None:
        super().__init__()
        sn = nn.utils.spectral_norm
        layers: list[nn.Module] = []
        cin = in_channels
        for i, c in enumerate(block_out_channels):
            layers += [sn(nn.Conv2d(cin, c, 4, 2 if i < len(block_out_channels) - 1 else 1, 1)), nn.LeakyReLU(0.2)]
            cin = c
        layers.append(sn(nn.Conv2d(cin, 1, 4, 1, 1)))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MultiScaleDiscriminator(nn.Module, SaSwapModelMixin):
    """PatchGANs on the image and its 2x, 4x, ... downsampled versions.

    Args:
        in_channels: image channels.
        num_scales: number of scales.
        block_out_channels: channels of each PatchGAN's layers.

    Example:
        >>> d = MultiScaleDiscriminator(num_scales=2, block_out_channels=(8, 16))
        >>> [tuple(o.shape) for o in d(torch.rand(1, 3, 32, 32))]
        [(1, 1, 14, 14), (1, 1, 6, 6)]
    """

    def __init__(
        self, in_channels: int = 3, num_scales: int = 3, block_out_channels: Sequence[int] = (64, 128, 256, 512)
    ) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(
            PatchDiscriminator(in_channels, block_out_channels) for _ in range(num_scales)
        )
        self.down = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Logit maps, one per scale, finest first."""
        outs = []
        for i, d in enumerate(self.discriminators):
            if i:
                x = self.down(x)
            outs.append(d(x))
        return outs
