"""Dense flows for shape adaptation: the forward warp and its safeguards."""

from __future__ import annotations

import cv2
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
    gentle = keypoint_flow(pts, rng.normal(scale=0.5, size=(12, 2)), (64, 64), support=12)
    assert _jacobian_det(gentle).min() > 0.35
    assert limit_flow_folds(gentle) is gentle
    folding = np.zeros((32, 32, 2), np.float32)
    folding[:, 16:, 0] = -20.0  # the right half jumps over the left: a fold
    assert _jacobian_det(folding).min() < 0
    limited = limit_flow_folds(folding, min_area=0.3)
    assert _jacobian_det(limited).min() >= 0.3 - 1e-4
    assert np.abs(limited).max() > 0  # scaled, not discarded


def test_limit_flow_folds_weakens_the_flow_only_near_a_fold():
    """A face's shape flow that folds at one spot keeps its full motion elsewhere, however deep the fold; a global
    scale made the whole face's shape follow every small fold that came and went between video frames (down to 44%
    of its motion on one talking head)."""
    size = 256
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    # a broad smooth motion everywhere plus a sharp pinch on the left (a jaw point moving past a cheek point)
    broad = np.stack([3.0 * np.sin(yy / 40.0), 2.0 * np.cos(xx / 50.0)], axis=-1)
    pinch = np.zeros_like(broad)
    pinch[..., 0] = -14.0 * np.exp(-((xx - 40.0) ** 2 + (yy - 128.0) ** 2) / (2 * 6.0**2)) * np.sign(xx - 40.0)
    assert _jacobian_det((broad + pinch).astype(np.float32)).min() < 0  # the full pinch does fold
    far = xx > 180  # away from the pinch the broad motion is kept, as the pinch grows
    for k in np.linspace(0.0, 1.0, 11):
        out = limit_flow_folds((broad + k * pinch).astype(np.float32), reach=64)
        assert _jacobian_det(out).min() >= 0.25 - 1e-4
        assert np.abs(out[far] - broad[far]).max() < 0.1 * np.abs(broad[far]).max()  # a global scale: ~0.95


def test_the_flow_moves_each_keypoint_by_its_own_motion_across_the_crop():
    """The dense flow, sampled at the keypoints, is their motion, off the crop's middle as at it: a rotation of about
    5 degrees of 60 points spread over a 384-px crop. (The coarse grid was once spread corner to corner while the
    upsampling read it pixel-centred: the flow came out stretched about the middle, 0.12 px off at the median keypoint
    and 0.54 px at the worst.)"""
    rng = np.random.default_rng(0)
    pts = rng.uniform(60, 324, size=(60, 2))
    centre = np.array([192.0, 192.0])
    motion = 0.08 * np.stack([-(pts[:, 1] - centre[1]), pts[:, 0] - centre[0]], axis=1)
    flow = keypoint_flow(pts, motion, (384, 384), support=60)
    xs, ys = pts[:, 0].astype(np.float32)[None], pts[:, 1].astype(np.float32)[None]
    at = np.stack([cv2.remap(flow[..., k], xs, ys, cv2.INTER_LINEAR)[0] for k in range(2)], axis=1)
    err = np.linalg.norm(at - motion, axis=1)
    assert np.median(err) < 0.03 and err.max() < 0.3, (np.median(err), err.max())
