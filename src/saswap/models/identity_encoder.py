"""``IdentityEncoder``: the ArcFace iResNet of insightface's arcface_torch, plus an ONNX adapter.

The module names and shapes follow arcface_torch's ``iresnet`` exactly (conv1, bn1, prelu,
layer1-4 of IBasicBlocks, bn2, dropout, fc, features), so its public checkpoints (r50, r100 trained
on MS1MV3 / Glint360K) load with ``load_state_dict(..., strict=True)``. Input: 112x112 RGB aligned
to the ArcFace template, scaled to [-1, 1]; output: a 512-d embedding. Frozen during SaSwap
training.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from saswap.models.hub import SaSwapModelMixin

__all__ = ["IdentityEncoder", "IBasicBlock", "ARCFACE_LAYERS"]

#: Blocks per stage of the standard depths.
ARCFACE_LAYERS: dict[str, tuple[int, int, int, int]] = {
    "r18": (2, 2, 2, 2),
    "r34": (3, 4, 6, 3),
    "r50": (3, 4, 14, 3),
    "r100": (3, 13, 30, 3),
}


class IBasicBlock(nn.Module):
    """The improved residual block of iResNet: BN-conv-BN-PReLU-conv-BN with a projection shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels, eps=1e-05)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels, eps=1e-05)
        self.prelu = nn.PReLU(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels, eps=1e-05)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels, eps=1e-05)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + identity


class IdentityEncoder(nn.Module, SaSwapModelMixin):
    """ArcFace iResNet identity encoder.

    Args:
        layers: blocks per stage, e.g. ``ARCFACE_LAYERS["r50"]`` = (3, 4, 14, 3).
        block_out_channels: channels of the four stages (arcface_torch: 64, 128, 256, 512).
        embed_dim: embedding size (512).
        input_size: side of the aligned input crop (112).
        dropout: dropout before the embedding layer (0 at inference).

    Example:
        >>> enc = IdentityEncoder(layers=(1, 1, 1, 1), block_out_channels=(4, 8, 8, 16), embed_dim=32, input_size=32)
        >>> enc(torch.rand(2, 3, 32, 32) * 2 - 1).shape
        torch.Size([2, 32])
    """

    def __init__(
        self,
        layers: Sequence[int] = ARCFACE_LAYERS["r50"],
        block_out_channels: Sequence[int] = (64, 128, 256, 512),
        embed_dim: int = 512,
        input_size: int = 112,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if len(layers) != 4 or len(block_out_channels) != 4:
            raise ValueError(f"need four stages, got layers={layers}, block_out_channels={block_out_channels}")
        if input_size % 16:
            raise ValueError(f"input_size must be a multiple of 16, got {input_size}")
        self.input_size = int(input_size)
        c0 = block_out_channels[0]
        self.conv1 = nn.Conv2d(3, c0, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c0, eps=1e-05)
        self.prelu = nn.PReLU(c0)
        stages = []
        in_ch = c0
        for n, out_ch in zip(layers, block_out_channels):
            blocks = [IBasicBlock(in_ch, out_ch, stride=2)] + [IBasicBlock(out_ch, out_ch) for _ in range(n - 1)]
            stages.append(nn.Sequential(*blocks))
            in_ch = out_ch
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.bn2 = nn.BatchNorm2d(in_ch, eps=1e-05)
        self.dropout = nn.Dropout(p=dropout, inplace=True)
        side = input_size // 16
        self.fc = nn.Linear(in_ch * side * side, embed_dim)
        self.features = nn.BatchNorm1d(embed_dim, eps=1e-05)
        nn.init.constant_(self.features.weight, 1.0)
        self.features.weight.requires_grad = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embed aligned faces.

        Args:
            x: RGB in [-1, 1], shape (B, 3, input_size, input_size).

        Returns:
            embeddings (not normalised), shape (B, embed_dim).
        """
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[-2:] != (self.input_size, self.input_size):
            raise ValueError(
                f"expected aligned faces of shape (B, 3, {self.input_size}, {self.input_size}), got {tuple(x.shape)}"
            )
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.dropout(torch.flatten(self.bn2(x), 1))
        return self.features(self.fc(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """L2-normalised embeddings, shape (B, embed_dim)."""
        return nn.functional.normalize(self(x), dim=1)
