"""Small differentiable ops."""

from saswap.ops.warp import FlowWarp, flow_total_variation, warp_by_flow

__all__ = ["FlowWarp", "flow_total_variation", "warp_by_flow"]
