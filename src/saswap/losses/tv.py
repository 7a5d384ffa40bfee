"""Flow smoothness: total variation (function in :mod:`saswap.ops.warp`, module here)."""

from __future__ import annotations

import torch
from torch import nn

from saswap.ops.warp import flow_total_variation

__all__ = ["flow_total_variation", "FlowTVLoss"]


class FlowTVLoss(nn.Module):
    """Module twin of :func:`~saswap.ops.warp.flow_total_variation`."""

    def forward(self, flow: torch.Tensor) -> torch.Tensor:
        return flow_total_variation(flow)
