"""``FusionGenerator``: fuses the source identity and the target attributes level by level (AAD),
with deformable feature fusion (the 3D-prior flow) in the middle levels.

AAD (FaceShifter's Adaptive Attentional Denormalization) normalises the activations, modulates them
once with the attributes (spatial gamma/beta from the attribute map) and once with the identity
(gamma/beta from the identity embedding), and mixes the two with a learned attention mask.
**SaSwap's change**: the mask is computed from the normalised activations *and* the attribute map
together (FaceShifter uses the activations only), so cues that live in the target — an occluder, the
hairline, the background — decide where identity may be written, which is what keeps occlusions and
the face outline the target's.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from saswap.models.deformable_fusion import DeformableFusion
from saswap.models.hub import SaSwapModelMixin

__all__ = ["FusionGenerator", "AADLayer", "AADResBlock"]


class AADLayer(nn.Module):
    """One AAD: instance norm, attribute and identity modulations, attention mask over both."""

    def __init__(self, channels: int, attr_channels: int, embed_dim: int) -> None:
        super().__init__()
        self.attr_gamma = nn.Conv2d(attr_channels, channels, 1)
        self.attr_beta = nn.Conv2d(attr_channels, channels, 1)
        self.id_gamma = nn.Linear(embed_dim, channels)
        self.id_beta = nn.Linear(embed_dim, channels)
        self.mask = nn.Conv2d(channels + attr_channels, 1, 1)

    def forward(self, h: torch.Tensor, attr: torch.Tensor, id_embed: torch.Tensor) -> torch.Tensor:
        # Instance normalisation written out (exports to ONNX for any spatial size).
        mean = h.mean(dim=(2, 3), keepdim=True)
        var = h.var(dim=(2, 3), keepdim=True, unbiased=False)
        hn = (h - mean) / torch.sqrt(var + 1e-5)
        a = self.attr_gamma(attr) * hn + self.attr_beta(attr)
        i = self.id_gamma(id_embed)[..., None, None] * hn + self.id_beta(id_embed)[..., None, None]
        m = torch.sigmoid(self.mask(torch.cat([hn, attr], dim=1)))
        return (1 - m) * a + m * i


class AADResBlock(nn.Module):
    """Two AAD-ReLU-conv units with a (learned when channels change) shortcut."""

    def __init__(self, cin: int, cout: int, attr_channels: int, embed_dim: int) -> None:
        super().__init__()
        self.aad1 = AADLayer(cin, attr_channels, embed_dim)
        self.conv1 = nn.Conv2d(cin, cin, 3, 1, 1)
        self.aad2 = AADLayer(cin, attr_channels, embed_dim)
        self.conv2 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.act = nn.ReLU()
        self.shortcut = None
        if cin != cout:
            self.aad_s = AADLayer(cin, attr_channels, embed_dim)
            self.shortcut = nn.Conv2d(cin, cout, 3, 1, 1)

    def forward(self, h: torch.Tensor, attr: torch.Tensor, id_embed: torch.Tensor) -> torch.Tensor:
        x = self.conv1(self.act(self.aad1(h, attr, id_embed)))
        x = self.conv2(self.act(self.aad2(x, attr, id_embed)))
        s = h if self.shortcut is None else self.shortcut(self.act(self.aad_s(h, attr, id_embed)))
        return x + s


class FusionGenerator(nn.Module, SaSwapModelMixin):
    """The SaSwap generator.

    Args:
        embed_dim: identity embedding size.
        attr_channels: channels of the attribute maps, coarse to fine (``AttributeEncoder.attr_channels``).
        block_out_channels: generator channels per level, same length as ``attr_channels``.
        out_channels: image channels.
        deform_levels: levels whose input features are warped by the flow.

    Example:
        >>> gen = FusionGenerator(embed_dim=16, attr_channels=(32, 32, 16, 16), block_out_channels=(32, 16, 8, 8), deform_levels=(1, 2))
        >>> attrs = [torch.rand(1, c, s, s) for c, s in zip((32, 32, 16, 16), (4, 8, 16, 32))]
        >>> gen(torch.rand(1, 16), attrs).shape
        torch.Size([1, 3, 32, 32])
    """

    def __init__(
        self,
        embed_dim: int = 512,
        attr_channels: Sequence[int] = (1024, 2048, 1024, 512, 256, 128, 64, 64),
        block_out_channels: Sequence[int] = (1024, 1024, 1024, 512, 256, 128, 64, 64),
        out_channels: int = 3,
        deform_levels: Sequence[int] = (3, 4),
    ) -> None:
        super().__init__()
        if len(attr_channels) != len(block_out_channels):
            raise ValueError("attr_channels and block_out_channels need one entry per level")
        self.deform_levels = tuple(int(i) for i in deform_levels)
        self.stem = nn.ConvTranspose2d(embed_dim, block_out_channels[0], kernel_size=4)  # 1x1 -> 4x4, resized below
        self.blocks = nn.ModuleList()
        cin = block_out_channels[0]
        for attr_c, cout in zip(attr_channels, block_out_channels):
            self.blocks.append(AADResBlock(cin, cout, attr_c, embed_dim))
            cin = cout
        self.deform = nn.ModuleDict(
            {
                str(i): DeformableFusion(block_out_channels[i - 1] if i > 0 else block_out_channels[0])
                for i in self.deform_levels
            }
        )
        self.to_rgb = nn.Conv2d(cin, out_channels, 3, 1, 1)

    def forward(
        self,
        id_embed: torch.Tensor,
        attrs: Sequence[torch.Tensor],
        flow: torch.Tensor | None = None,
        strength: float | torch.Tensor = 1.0,
    ) -> torch.Tensor:
        """Generate the swapped face.

        Args:
            id_embed: identity embeddings, shape (B, embed_dim).
            attrs: attribute maps from :class:`AttributeEncoder`, coarse to fine.
            flow: shape-adaptation flow at output resolution, (B, 2, H, W), or None.
            strength: flow strength (0 disables shape adaptation).

        Returns:
            image in [-1, 1], shape (B, out_channels, H, W).
        """
        if len(attrs) != len(self.blocks):
            raise ValueError(f"expected {len(self.blocks)} attribute maps, got {len(attrs)}")
        x = self.stem(id_embed[..., None, None])
        for i, (block, attr) in enumerate(zip(self.blocks, attrs)):
            x = nn.functional.interpolate(x, size=attr.shape[-2:], mode="bilinear", align_corners=False)
            if flow is not None and str(i) in self.deform:
                x = self.deform[str(i)](x, flow, strength)
            x = block(x, attr, id_embed)
        return torch.tanh(self.to_rgb(x))
