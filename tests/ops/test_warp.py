"""Flow warping: zero flow is the identity, integer shifts move content, gradcheck, module == function."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck

from saswap.ops import FlowWarp, flow_total_variation, warp_by_flow


def test_zero_flow_is_identity_and_shift_moves_content():
    feat = torch.rand(2, 3, 8, 8)
    assert torch.allclose(warp_by_flow(feat, torch.zeros(2, 2, 8, 8)), feat, atol=1e-6)
    flow = torch.zeros(2, 2, 8, 8)
    flow[:, 0] = 1.0  # out(p) = feat(p + (1, 0))
    out = warp_by_flow(feat, flow)
    assert torch.allclose(out[..., :-1], feat[..., 1:], atol=1e-5)


def test_gradcheck_and_module():
    feat = torch.rand(1, 2, 5, 5, dtype=torch.float64, requires_grad=True)
    flow = (torch.rand(1, 2, 5, 5, dtype=torch.float64) * 0.6 + 0.2).requires_grad_()
    assert gradcheck(warp_by_flow, (feat, flow))
    assert torch.equal(FlowWarp(0.5)(feat, flow), warp_by_flow(feat, flow * 0.5))
    assert gradcheck(flow_total_variation, (flow,))


def test_bad_shapes():
    with pytest.raises(ValueError, match=r"\(B, 2, H, W\)"):
        warp_by_flow(torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4))
    with pytest.raises(ValueError, match="differ"):
        warp_by_flow(torch.rand(1, 3, 4, 4), torch.rand(1, 2, 5, 5))
