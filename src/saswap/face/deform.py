"""Dense deformation from sparse keypoint motion (shape adaptation), and image warping by a flow.

Convention:
    A flow is (H, W, 2) float32, (dx, dy) in pixels: the content at ``p`` moves to ``p + flow(p)``.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.interpolate import RBFInterpolator

__all__ = ["invert_flow", "keypoint_flow", "limit_flow_folds", "warp_by_flow", "sample_flow"]


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
    # The coarse grid's samples sit where the bilinear upsampling below reads them (each coarse pixel's centre,
    # cv2.resize's convention), so the upsampled flow is the spline's own at the samples. Spread from corner to corner
    # instead, they came out stretched about the middle by grid / (grid - 1) (2% at 48): a keypoint off the middle
    # moved by the spline's motion at a point up to half a coarse cell (3.5 px of a 384-px crop) away.
    gy, gx = np.meshgrid(
        (np.arange(grid) + 0.5) * (h / grid) - 0.5, (np.arange(grid) + 0.5) * (w / grid) - 0.5, indexing="ij"
    )
    dist = np.linalg.norm(np.stack([gx, gy], -1) - centre, axis=2)
    fade = np.clip((radius - dist) / max(support * 0.5, 1.0), 0.0, 1.0)  # exactly zero outside the ring
    inside = fade > 0  # the spline is evaluated only there
    coarse = np.zeros((grid, grid, 2))
    if inside.any():
        coarse[inside] = rbf(np.stack([gx[inside], gy[inside]], axis=1)) * fade[inside][:, None]
    return cv2.resize(coarse.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)


_CENTRAL = np.array([[-0.5, 0.0, 0.5]], np.float32)


def _flow_gradients(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The flow's derivatives along x and along y, each (H, W, 2) float32: central differences inside and
    one-sided ones on the outermost rows and columns (as :func:`numpy.gradient`, in two OpenCV filters).

    Example:
        >>> f = np.random.default_rng(0).random((9, 7, 2), dtype=np.float32)
        >>> dx, dy = _flow_gradients(f)
        >>> bool(np.allclose(dx, np.gradient(f, axis=1), atol=1e-6))
        True
        >>> bool(np.allclose(dy, np.gradient(f, axis=0), atol=1e-6))
        True
    """
    f = np.ascontiguousarray(flow, np.float32)
    dx = cv2.filter2D(f, -1, _CENTRAL, borderType=cv2.BORDER_REPLICATE).reshape(f.shape)
    dy = cv2.filter2D(f, -1, _CENTRAL.T, borderType=cv2.BORDER_REPLICATE).reshape(f.shape)
    if f.shape[1] > 1:
        dx[:, 0], dx[:, -1] = f[:, 1] - f[:, 0], f[:, -1] - f[:, -2]
    if f.shape[0] > 1:
        dy[0], dy[-1] = f[1] - f[0], f[-1] - f[-2]
    return dx, dy


def _jacobian_det(flow: np.ndarray, scale: float = 1.0, gradients=None) -> np.ndarray:
    """det(I + grad(scale * flow)) per pixel: the local area change of the map p -> p + scale * flow(p)
    (``gradients``: :func:`_flow_gradients` of ``flow``, when already computed)."""
    dx, dy = _flow_gradients(flow) if gradients is None else gradients
    s = np.float32(scale)
    return (1.0 + s * dx[..., 0]) * (1.0 + s * dy[..., 1]) - (s * s) * dy[..., 0] * dx[..., 1]


def _fold_free_scale(gradients, target: float) -> np.ndarray:
    """Per pixel, the largest ``s`` in [0, 1] with det(I + s * grad(flow)) >= ``target`` for every scale up to
    ``s`` (the flow's own Jacobian there, float32 (H, W)): the first root of ``1 + b s + a s^2 = target``, where
    ``b`` and ``a`` are the trace and the determinant of the flow's gradient."""
    dx, dy = gradients
    b = dx[..., 0] + dy[..., 1]
    a = dx[..., 0] * dy[..., 1] - dy[..., 0] * dx[..., 1]
    c = 1.0 - target  # > 0: at s = 0 the determinant is 1
    s = np.ones(b.shape, np.float32)
    # pixels whose determinant falls below the target for some scale in (0, 1]: below it at 1, or a parabola
    # whose lowest point, inside (0, 1), is below it
    with np.errstate(divide="ignore", invalid="ignore"):
        dips = (a > 0) & (b < 0) & (-b < 2 * a) & (b * b > 4 * a * c)
    where = np.nonzero((1.0 + b + a < target) | dips)
    if not len(where[0]):
        return s
    b, a = b[where].astype(np.float64), a[where].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        disc = b * b - 4.0 * a * c
        root = np.sqrt(np.maximum(disc, 0.0))
        # the smaller positive root of a s^2 + b s + c (c > 0), written to stay exact as a -> 0
        first = np.where(b < 0, 2.0 * c / (-b + root), (-b - root) / (2.0 * a))
        linear = np.abs(a) < 1e-12
        first = np.where(linear, np.where(b < 0, -c / b, np.inf), first)
        hit = ((disc >= 0) | linear) & (first > 0) & (first < 1.0)
    s[where[0][hit], where[1][hit]] = first[hit]
    return s


def limit_flow_folds(flow: np.ndarray, min_area: float = 0.25, reach: float | None = None) -> np.ndarray:
    """``flow`` weakened where needed, so the warp it defines shrinks no area below ``min_area``.

    A map p -> p + flow(p) whose Jacobian determinant reaches zero folds the image over itself
    (content shown twice); keeping it above ``min_area`` keeps the warp one to one, so
    :func:`warp_by_flow` can invert it. Stretching (a determinant above 1) is not limited.

    The flow is scaled down locally, by a smooth map that is 1 away from the folds: the scale each pixel
    needs, its minimum over ``reach`` pixels around, blurred over half that. Where a face's shape flow
    folds at one spot (a jaw point moving past a cheek point) the rest keeps its full motion (scaling the
    whole flow, as before, made the whole face's shape follow every small fold that came and went between
    video frames). When that is not enough, the whole flow is scaled down further.

    Args:
        flow: forward flow (H, W, 2).
        min_area: smallest area change allowed.
        reach: radius of the local scaling in pixels (default: half the flow's larger side).

    Example:
        >>> f = np.zeros((16, 16, 2), np.float32); f[:, 8:, 0] = -12.0  # the right half jumps over the left
        >>> bool(_jacobian_det(limit_flow_folds(f)).min() >= 0.25 - 1e-6)
        True
    """
    # Aim a little above min_area (the scale map's own gradient changes the determinant too); flows that reach
    # below that aim are weakened by a scale that goes to 1 as they reach it, so the result is continuous in the flow.
    target = min_area + 0.1
    gradients = _flow_gradients(flow)  # linear in the flow
    if _jacobian_det(flow, 1.0, gradients).min(initial=1.0) >= target:
        return flow
    h, w = flow.shape[:2]
    r = max(1.0, reach if reach is not None else max(h, w) / 2.0)
    # the local minimum and its blur on a grid of cells of r / 8 pixels (the scale map is smooth)
    f = max(1, min(int(r // 8), min(h, w) // 4))
    small = (max(1, w // f), max(1, h // f))
    rs = max(1, int(round(r / f)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * rs + 1, 2 * rs + 1))
    scale = np.ones((h, w), np.float32)
    out = flow
    for _ in range(4):
        need = _fold_free_scale(gradients, target)
        if need.min() >= 1.0:  # the determinant is at least ``target`` everywhere
            return out
        low = cv2.erode(need, np.ones((f, f), np.uint8)) if f > 1 else need  # no fold lost by the resize
        low = cv2.resize(low, small, interpolation=cv2.INTER_NEAREST) if f > 1 else low
        low = cv2.GaussianBlur(cv2.erode(low, kernel, borderType=cv2.BORDER_REPLICATE), (0, 0), rs / 2.0)
        local = cv2.resize(low, (w, h), interpolation=cv2.INTER_LINEAR) if f > 1 else low
        scale *= np.minimum(local, 1.0)
        out = (flow * scale[..., None]).astype(flow.dtype)
        gradients = _flow_gradients(out)
        if _jacobian_det(out, 1.0, gradients).min() >= min_area:
            return out
    lo, hi = 0.0, 1.0  # the rest by one global scale: the determinant is continuous in it and 1 at 0
    for _ in range(12):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _jacobian_det(out, mid, gradients).min() >= min_area else (lo, mid)
    return (out * lo).astype(flow.dtype)


def sample_flow(flow: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Flow values at (sub-pixel) points, shape (N, 2)."""
    pts = np.asarray(points, np.float32).reshape(-1, 1, 2)
    mx = pts[..., 0].astype(np.float32)
    my = pts[..., 1].astype(np.float32)
    out = cv2.remap(flow, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out.reshape(-1, 2)


def _newton_inverse(flow: np.ndarray, iterations: int) -> np.ndarray:
    """Backward displacement ``p - q`` with ``p + flow(p) = q`` at every pixel ``q`` (full resolution)."""
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    # Jacobian of the flow, stacked as 4 channels so one remap samples it.
    dx, dy = _flow_gradients(flow)
    jac = np.stack([dx[..., 0], dy[..., 0], dx[..., 1], dy[..., 1]], axis=-1)
    px, py = gx.copy(), gy.copy()

    def residual(x, y):  # p + flow(p) - q
        f = cv2.remap(flow, x, y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return x + f[..., 0] - gx, y + f[..., 1] - gy

    rx, ry = residual(px, py)
    for _ in range(iterations):
        j = cv2.remap(jac, px, py, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        a, b, c, d = 1.0 + j[..., 0], j[..., 1], j[..., 2], 1.0 + j[..., 3]
        det = a * d - b * c
        det = np.where(np.abs(det) < 0.1, np.copysign(0.1, det), det)
        sx, sy = (d * rx - b * ry) / det, (a * ry - c * rx) / det
        # Newton's step, halved where it does not reduce the residual enough (the flow's gradient is
        # only piecewise smooth, so a full step can overshoot across a kink and come back).
        before = rx * rx + ry * ry
        for _ in range(3):
            cx, cy = px - sx, py - sy
            nx, ny = residual(cx, cy)
            worse = (nx * nx + ny * ny > 0.9 * before) & (before > 1e-4)
            if not worse.any():
                break
            sx, sy = np.where(worse, sx * 0.5, sx), np.where(worse, sy * 0.5, sy)
        px, py, rx, ry = cx, cy, nx, ny
    return np.stack([px - gx, py - gy], axis=-1)


def invert_flow(flow: np.ndarray, iterations: int = 5, resolution: int = 128) -> np.ndarray:
    """Backward displacement of a forward flow: ``back(q) = p - q`` where ``p + flow(p) = q``.

    Solved by Newton's method on the flow's Jacobian, which converges for strong stretches too (a
    plain fixed-point iteration does not once the flow changes by more than a pixel per pixel, and
    then shows content twice). Smooth flows are inverted on a grid of about ``resolution`` pixels
    and upsampled. The flow must not fold (see :func:`limit_flow_folds`).

    Example:
        >>> f = np.zeros((32, 32, 2), np.float32); f[..., 0] = 3.0
        >>> bool(np.allclose(invert_flow(f)[4:-4, 4:-4, 0], -3.0, atol=1e-3))  # away from the border
        True
    """
    h, w = flow.shape[:2]
    flow = flow.astype(np.float32)
    factor = max(1, int(np.ceil(max(h, w) / resolution)))
    if factor == 1:
        return _newton_inverse(flow, iterations)
    size = (max(2, round(w / factor)), max(2, round(h / factor)))
    sx, sy = size[0] / w, size[1] / h  # pixel-centre aligned scaling, as cv2.resize uses
    coarse = cv2.resize(flow, size, interpolation=cv2.INTER_AREA) * np.array([sx, sy], np.float32)
    back = _newton_inverse(coarse, iterations) / np.array([sx, sy], np.float32)
    return cv2.resize(back, (w, h), interpolation=cv2.INTER_LINEAR)


def warp_by_flow(image: np.ndarray, flow: np.ndarray, back: np.ndarray | None = None) -> np.ndarray:
    """Move image content along a forward flow (content at ``p`` lands at ``p + flow(p)``), through
    :func:`invert_flow`.

    Args:
        image: the image to warp, (H, W) or (H, W, C).
        flow: forward flow (H, W, 2).
        back: ``invert_flow(flow)`` when already computed (warping several images by one flow).

    Returns:
        warped image, same shape and dtype.
    """
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    back = invert_flow(flow) if back is None else back
    return cv2.remap(image, gx + back[..., 0], gy + back[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
