"""Piecewise-affine texture mapping between two meshes with the same triangles.

Convention:
    Points are (N, 2) pixels; triangles (F, 3) vertex indices; ``depth`` smaller is nearer.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["rasterize_triangles", "triangle_affines", "texture_map"]


def rasterize_triangles(
    points: np.ndarray,
    triangles: np.ndarray,
    shape: tuple[int, int],
    depth: np.ndarray | None = None,
    subset: np.ndarray | None = None,
) -> np.ndarray:
    """Index of the visible triangle at each pixel (-1 where none), painter's order by depth.

    ``subset`` (bool, shape (F,)) draws only those triangles (e.g. the camera-facing ones).

    Example:
        >>> ids = rasterize_triangles(np.array([[0, 0], [9, 0], [0, 9.]]), np.array([[0, 1, 2]]), (10, 10))
        >>> int(ids[1, 1]), int(ids[9, 9])
        (0, -1)
    """
    h, w = shape
    ids = np.full((h, w), -1, np.int32)
    pts = np.round(np.asarray(points, np.float64) * 16).astype(np.int32)
    order = np.arange(len(triangles))
    if depth is not None:
        order = np.argsort(-np.asarray(depth, np.float64)[triangles].mean(axis=1), kind="stable")  # far first
    if subset is not None:
        order = order[np.asarray(subset, bool)[order]]
    polys = pts[np.asarray(triangles)[order]]  # gathered at once, not triangle by triangle
    fill = cv2.fillConvexPoly
    for t, poly in zip(order.tolist(), polys):
        fill(ids, poly, t, lineType=cv2.LINE_8, shift=4)
    return ids


def triangle_affines(dst: np.ndarray, src: np.ndarray) -> np.ndarray:
    """Per-triangle affine maps taking each ``dst`` triangle onto its ``src`` triangle.

    Args:
        dst: triangle corners, shape (F, 3, 2).
        src: triangle corners, shape (F, 3, 2).

    Returns:
        shape (F, 2, 3); degenerate triangles get a least-squares map (no division by zero).

    Example:
        >>> tri = np.array([[[0, 0], [1, 0], [0, 1.]]])
        >>> triangle_affines(tri, tri * 2 + 1).round(6)
        array([[[2., 0., 1.],
                [0., 2., 1.]]])
    """
    d = np.asarray(dst, np.float64)
    s = np.asarray(src, np.float64)
    a = np.concatenate([d, np.ones((*d.shape[:2], 1))], axis=2)  # (F, 3, 3)
    det = np.linalg.det(a)
    good = np.abs(det) > 1e-6
    out = np.zeros((len(d), 2, 3))
    out[good] = np.linalg.solve(a[good], s[good]).transpose(0, 2, 1)
    for i in np.flatnonzero(~good):
        m, *_ = np.linalg.lstsq(a[i], s[i], rcond=None)
        out[i] = m.T
    return out


def texture_map(
    ids: np.ndarray, affines: np.ndarray, src: np.ndarray | None = None, margin: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sampling maps for ``cv2.remap``: for each pixel covered by triangle t, ``affines[t] @ [x, y, 1]``.

    A pixel the rasteriser gives to a triangle lies up to half a pixel outside it, and a sliver's affine map (a
    triangle squeezed to a fraction of a pixel) carries that half pixel tens of pixels away in the source: one
    pixel of a nostril's or an eye's colour in the cheek (seen as a dark speck, several pixels wide once a crop
    is enlarged into a large face). With ``src``, each pixel's source position is kept within ``margin`` pixels
    of its triangle's box in the source.

    Args:
        ids: triangle index per pixel (-1 where none), (H, W) (:func:`rasterize_triangles`).
        affines: per-triangle maps, (F, 2, 3) (:func:`triangle_affines`).
        src: the triangles' source corners, (F, 3, 2), or None (no bound).
        margin: how far beyond a triangle's source box a position may lie, pixels.

    Returns:
        map_x, map_y (H, W) float32 (-1 outside), and the coverage mask (H, W) bool.

    Example:
        >>> tri = np.array([[[0, 0], [4, 0], [0, 0.1]]])  # a sliver, mapped onto a normal triangle
        >>> src = np.array([[[0, 0], [4, 0], [0, 4.0]]])
        >>> ids = np.zeros((3, 5), np.int32)  # the rasteriser gave it pixels two rows below it
        >>> mx, my, _ = texture_map(ids, triangle_affines(tri, src), src)
        >>> float(my.max()), float(texture_map(ids, triangle_affines(tri, src))[1].max())
        (5.0, 80.0)
    """
    h, w = ids.shape
    cover = ids >= 0
    ys, xs = np.nonzero(cover)
    t = ids[ys, xs]
    m = affines[t]  # (N, 2, 3)
    sx = m[:, 0, 0] * xs + m[:, 0, 1] * ys + m[:, 0, 2]
    sy = m[:, 1, 0] * xs + m[:, 1, 1] * ys + m[:, 1, 2]
    if src is not None:
        src = np.asarray(src, np.float64)
        lo, hi = src.min(axis=1) - margin, src.max(axis=1) + margin  # (F, 2)
        sx = np.clip(sx, lo[t, 0], hi[t, 0])
        sy = np.clip(sy, lo[t, 1], hi[t, 1])
    map_x = np.full((h, w), -1, np.float32)
    map_y = np.full((h, w), -1, np.float32)
    map_x[ys, xs] = sx
    map_y[ys, xs] = sy
    return map_x, map_y, cover
