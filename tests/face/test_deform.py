"""Dense flows for shape adaptation: the forward warp and its safeguards."""

from __future__ import annotations

import numpy as np

from saswap.face.deform import _jacobian_det, keypoint_flow, limit_flow_folds, warp_by_flow


def _stretch_flow(size: int, gain: float) -> np.ndarray:
    """Rows below the middle move down by ``gain`` pixels per pixel (a stretch steeper than 1)."""
    y = np.arange(size, dtype=np.float32)
    dy = np.clip(y - size / 2, 0, 8) * gain  # 0 above the middle, ramps over 8 rows, then constant
    flow = np.zeros((size, size, 2), np.float32)
    flow[..., 1] = dy[:, None]
    return flow


def test_warp_by_flow_moves_content_where_the_flow_says_even_for_steep_stretches():
    size, gain = 64, 1.6  # the flow changes by 1.6 px per px: a fixed-point inverse would not converge
    flow = _stretch_flow(size, gain)
    rows = np.repeat(np.arange(size, dtype=np.float32)[:, None], size, axis=1)  # each pixel holds its row
    out = warp_by_flow(rows, flow)[:60, size // 2]
    # Analytic inverse of y -> y + flow(y): identity above the middle, the ramp, then a constant shift.
    q = np.arange(60, dtype=np.float32)
    mid, end = size / 2, size / 2 + 8 * (1 + gain)
    expected = np.where(q < mid, q, np.where(q < end, (q + gain * mid) / (1 + gain), q - 8 * gain))
    assert np.abs(out - expected).max() < 0.35
    # One to one: the source row increases monotonically down the output (nothing shown twice).
    assert (np.diff(out) > 0).all()


def test_limit_flow_folds_keeps_the_warp_one_to_one_and_leaves_gentle_flows_alone():
    rng = np.random.default_rng(0)
    pts = rng.uniform(20, 44, size=(12, 2))
    gentle = keypoint_flow(pts, rng.normal(scale=1.0, size=(12, 2)), (64, 64), support=12)
    assert limit_flow_folds(gentle) is gentle
    folding = np.zeros((32, 32, 2), np.float32)
    folding[:, 16:, 0] = -20.0  # the right half jumps over the left: a fold
    assert _jacobian_det(folding).min() < 0
    limited = limit_flow_folds(folding, min_area=0.3)
    assert _jacobian_det(limited).min() >= 0.3 - 1e-4
    assert np.abs(limited).max() > 0  # scaled, not discarded
