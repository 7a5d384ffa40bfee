"""Dense deformation from sparse keypoint motion (shape adaptation), and image warping by a flow.

Convention:
    A flow is (H, W, 2) float32, (dx, dy) in pixels: the content at ``p`` moves to ``p + flow(p)``.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.interpolate import RBFInterpolator

__all__ = ["keypoint_flow", "warp_by_flow", "sample_flow"]


def keypoint_flow(
    points: np.ndarray, motion: np.ndarray, shape: tuple[int, int], support: float, grid: int = 48
) -> np.ndarray:
    """Smooth dense flow that moves ``points`` by ``motion`` and vanishes far from them.

    A thin-plate spline interpolates the keypoint motion; a ring of fixed anchors at ``support``
    pixels beyond the keypoints' hull pins the flow to zero there, so the deformation stays local to
    the face and the rest of the image is untouched. Solved on a coarse grid and upsampled.

    Args:
        points: keypoints, shape (K, 2), pixels.
        motion: their displacement, shape (K, 2), pixels.
        shape: (H, W) of the flow.
        support: distance beyond the keypoints where the flow reaches zero, pixels.
        grid: resolution of the coarse solve.

    Returns:
        flow (H, W, 2), float32.

    Example:
        >>> pts = np.array([[20, 20], [40, 20], [30, 40.]])
        >>> f = keypoint_flow(pts, np.array([[2, 0], [2, 0], [2, 0.]]), (64, 64), support=15)
        >>> bool(abs(f[20, 20, 0] - 2) < 0.1 and abs(f[0, 63]).max() < 1e-3)
        True
    """
    pts = np.asarray(points, np.float64)
    mot = np.asarray(motion, np.float64)
    h, w = shape
    if not np.abs(mot).max(initial=0.0) > 1e-6:
        return np.zeros((h, w, 2), np.float32)
    centre = pts.mean(0)
    radius = np.linalg.norm(pts - centre, axis=1).max() + support
    angles = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    ring = centre + radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    anchors = np.concatenate([pts, ring])
    values = np.concatenate([mot, np.zeros_like(ring)])
    rbf = RBFInterpolator(anchors, values, kernel="thin_plate_spline", smoothing=1e-3 * len(anchors))
    gy, gx = np.meshgrid(np.linspace(0, h - 1, grid), np.linspace(0, w - 1, grid), indexing="ij")
    coarse = rbf(np.stack([gx.ravel(), gy.ravel()], axis=1)).reshape(grid, grid, 2)
    dist = np.linalg.norm(np.stack([gx, gy], -1) - centre, axis=2)
    coarse *= np.clip((radius - dist) / max(support * 0.5, 1.0), 0.0, 1.0)[..., None]  # exactly zero outside the ring
    return cv2.resize(coarse.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)


def sample_flow(flow: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Flow values at (sub-pixel) points, shape (N, 2)."""
    pts = np.asarray(points, np.float32).reshape(-1, 1, 2)
    mx = pts[..., 0].astype(np.float32)
    my = pts[..., 1].astype(np.float32)
    out = cv2.remap(flow, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out.reshape(-1, 2)


def warp_by_flow(image: np.ndarray, flow: np.ndarray, iterations: int = 3) -> np.ndarray:
    """Move image content along a forward flow (content at ``p`` lands at ``p + flow(p)``).

    The backward map ``q -> q - flow(p)`` with ``p + flow(p) = q`` is found by a few fixed-point
    iterations, exact for smooth flows like those of :func:`keypoint_flow`.

    Returns:
        warped image, same shape and dtype.
    """
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    back = np.zeros_like(flow)
    for _ in range(iterations):
        back = cv2.remap(
            flow, gx - back[..., 0], gy - back[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
        )
    return cv2.remap(image, gx - back[..., 0], gy - back[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
