"""Differentiable warping of feature maps by dense flows."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["warp_by_flow", "FlowWarp", "flow_total_variation"]


def _check(feat: torch.Tensor, flow: torch.Tensor) -> None:
    if feat.ndim != 4 or flow.ndim != 4 or flow.shape[1] != 2:
        raise ValueError(
            f"expected feat (B, C, H, W) and flow (B, 2, H, W), got {tuple(feat.shape)} and {tuple(flow.shape)}"
        )
    if feat.shape[0] != flow.shape[0] or feat.shape[-2:] != flow.shape[-2:]:
        raise ValueError(f"feat {tuple(feat.shape)} and flow {tuple(flow.shape)} differ in batch or size")


def warp_by_flow(feat: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward-warp features by a dense flow: ``out(p) = feat(p + flow(p))``.

    Convention:
        flow is (dx, dy) in pixels of ``feat``; border padding; align_corners=False.

    Args:
        feat: features, shape (B, C, H, W).
        flow: flow, shape (B, 2, H, W).

    Returns:
        warped features, shape (B, C, H, W).

    Example:
        >>> warp_by_flow(torch.rand(1, 8, 4, 4), torch.zeros(1, 2, 4, 4)).shape
        torch.Size([1, 8, 4, 4])
    """
    _check(feat, flow)
    b, _, h, w = feat.shape
    ys = torch.arange(h, device=feat.device, dtype=flow.dtype)
    xs = torch.arange(w, device=feat.device, dtype=flow.dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    x = gx.unsqueeze(0) + flow[:, 0]
    y = gy.unsqueeze(0) + flow[:, 1]
    grid = torch.stack([(2 * x + 1) / w - 1, (2 * y + 1) / h - 1], dim=-1)  # align_corners=False
    return F.grid_sample(feat, grid.to(feat.dtype), mode="bilinear", padding_mode="border", align_corners=False)


class FlowWarp(nn.Module):
    """Module twin of :func:`warp_by_flow`, with a flow ``strength`` multiplier.

    Example:
        >>> FlowWarp(strength=0.5)(torch.rand(1, 3, 8, 8), torch.zeros(1, 2, 8, 8)).shape
        torch.Size([1, 3, 8, 8])
    """

    def __init__(self, strength: float = 1.0) -> None:
        super().__init__()
        self.strength = float(strength)

    def forward(self, feat: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        return warp_by_flow(feat, flow * self.strength)


def flow_total_variation(flow: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbouring flow vectors (anisotropic total variation).

    Args:
        flow: shape (B, 2, H, W).

    Returns:
        scalar tensor.

    Example:
        >>> float(flow_total_variation(torch.ones(1, 2, 4, 4)))
        0.0
    """
    if flow.ndim != 4 or flow.shape[1] != 2:
        raise ValueError(f"expected a flow of shape (B, 2, H, W), got {tuple(flow.shape)}")
    dx = (flow[..., :, 1:] - flow[..., :, :-1]).abs().mean()
    dy = (flow[..., 1:, :] - flow[..., :-1, :]).abs().mean()
    return dx + dy
