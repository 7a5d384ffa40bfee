"""``DeformableFusion``: warp intermediate generator features by the 3D-prior flow (shape adaptation)."""

from __future__ import annotations

import torch
from torch import nn

from saswap.models.hub import SaSwapModelMixin
from saswap.ops.warp import warp_by_flow

__all__ = ["DeformableFusion"]


class DeformableFusion(nn.Module, SaSwapModelMixin):
    """Warps features of any resolution by a full-resolution flow, scaled by ``strength``.

    The flow is resized to the features' size and its vectors rescaled to their pixel units; a
    learned 3x3 refinement then blends the warped features with the unwarped ones through a gate, so
    the generator can keep texture where moving it would tear (its initial gate is 1: pure warp).

    Args:
        channels: feature channels.

    Example:
        >>> fuse = DeformableFusion(8)
        >>> feat = torch.rand(1, 8, 16, 16)
        >>> torch.allclose(fuse(feat, torch.zeros(1, 2, 64, 64)), feat, atol=1e-6)
        True
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gate = nn.Conv2d(2 * channels, 1, 3, 1, 1)
        nn.init.zeros_(self.gate.weight)
        nn.init.constant_(self.gate.bias, 8.0)  # sigmoid(8) ~ 1: start as a pure warp

    def forward(self, feat: torch.Tensor, flow: torch.Tensor, strength: float | torch.Tensor = 1.0) -> torch.Tensor:
        h, w = feat.shape[-2:]
        if flow.ndim != 4 or flow.shape[1] != 2:
            raise ValueError(f"expected a flow of shape (B, 2, H, W), got {tuple(flow.shape)}")
        sx, sy = w / flow.shape[-1], h / flow.shape[-2]
        small = nn.functional.interpolate(flow, size=(h, w), mode="bilinear", align_corners=False)
        small = small * torch.tensor([sx, sy], device=flow.device, dtype=flow.dtype).view(1, 2, 1, 1)
        warped = warp_by_flow(feat, small * strength)
        g = torch.sigmoid(self.gate(torch.cat([feat, warped], dim=1)))
        return g * warped + (1 - g) * feat
