"""Small geometric helpers for face analysis: box overlap, non-maximum suppression, regions of
interest from landmarks and head pose from a 3D face mesh.

Convention:
    Pixel coordinates, x right, y down; boxes are x1, y1, x2, y2.
"""

from __future__ import annotations

import numpy as np

__all__ = ["box_iou", "nms", "roi_from_points", "pose_from_mesh", "MESH_SYMMETRIC_PAIRS"]

#: Pairs of MediaPipe mesh vertices mirrored across the face's mid-plane (image-left, image-right):
#: outer/inner eye corners, cheek contour, mouth corners, nostril wings, brow ends, jaw.
MESH_SYMMETRIC_PAIRS = ((33, 263), (133, 362), (234, 454), (61, 291), (98, 327), (70, 300), (172, 397), (127, 356))
_NASION, _CHIN = 168, 152


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box in ``a`` with every box in ``b``.

    Args:
        a: boxes, shape (N, 4).
        b: boxes, shape (M, 4).

    Returns:
        IoU, shape (N, M).

    Example:
        >>> box_iou(np.array([[0, 0, 2, 2.]]), np.array([[1, 0, 3, 2.]])).round(3)
        array([[0.333]])
    """
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def _overlap_min(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(np.minimum(area_a[:, None], area_b[None, :]), 1e-9)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.3, contain_threshold: float = 0.7) -> np.ndarray:
    """Greedy non-maximum suppression.

    A box is dropped when its IoU with a kept, higher-scoring box exceeds ``iou_threshold`` or when
    it lies mostly inside it (intersection over the smaller box above ``contain_threshold``), which
    removes the partial-face boxes that tiled detection produces.

    Args:
        boxes: shape (N, 4).
        scores: shape (N,).

    Returns:
        indices of the kept boxes, highest score first, shape (K,).

    Example:
        >>> nms(np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30.]]), np.array([0.9, 0.8, 0.7]))
        array([0, 2])
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        if not rest.size:
            break
        iou = box_iou(boxes[i : i + 1], boxes[rest])[0]
        cont = _overlap_min(boxes[i : i + 1], boxes[rest])[0]
        order = rest[(iou <= iou_threshold) & (cont <= contain_threshold)]
    return np.asarray(keep, dtype=np.int64)


def roi_from_points(points: np.ndarray, angle: float, scale: float = 1.5) -> tuple[float, float, float, float]:
    """Square region of interest around points, in the frame rotated by ``angle``.

    Args:
        points: shape (N, 2), pixels.
        angle: rotation of the region in radians (MediaPipe convention: the angle that makes the
            eye line horizontal, ``-atan2(dy, dx)`` of the eye vector with y down).
        scale: enlargement of the tight box's longer side.

    Returns:
        (cx, cy, size, angle).

    Example:
        >>> roi_from_points(np.array([[0, 0], [10, 0], [0, 10], [10, 10.]]), 0.0, 1.0)
        (5.0, 5.0, 10.0, 0.0)
    """
    pts = np.asarray(points, np.float64)
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s], [s, c]])  # image -> ROI-aligned frame (undo the region's rotation)
    local = pts @ rot.T
    lo, hi = local.min(0), local.max(0)
    centre = np.linalg.solve(rot, (lo + hi) / 2.0)
    size = float((hi - lo).max() * scale)
    return float(centre[0]), float(centre[1]), size, float(angle)


def pose_from_mesh(mesh: np.ndarray) -> np.ndarray:
    """Head pose (yaw, pitch, roll) in degrees from a MediaPipe face mesh with depth.

    Convention:
        The face frame: X through the mirrored vertex pairs (image-left to image-right), Y from the
        chin to the nasion, Z = X x Y. yaw > 0 when the nose points to the image's right, pitch > 0
        when the face looks up, roll > 0 when the eye line turns clockwise in the image.

    Args:
        mesh: shape (>=468, 3): x, y, z in pixels (z: smaller is nearer).

    Returns:
        shape (3,), float32.
    """
    p = np.asarray(mesh, np.float64)[:, :3] * np.array([1.0, -1.0, -1.0])  # x right, y up, z to viewer
    left = p[[i for i, _ in MESH_SYMMETRIC_PAIRS]]
    right = p[[j for _, j in MESH_SYMMETRIC_PAIRS]]
    x_axis = (right - left).sum(0)
    x_axis /= np.linalg.norm(x_axis) + 1e-12
    y_axis = p[_NASION] - p[_CHIN]
    y_axis -= x_axis * (y_axis @ x_axis)
    y_axis /= np.linalg.norm(y_axis) + 1e-12
    forward = np.cross(x_axis, y_axis)
    yaw = np.degrees(np.arctan2(forward[0], forward[2]))
    pitch = np.degrees(np.arctan2(forward[1], np.hypot(forward[0], forward[2])))
    roll = np.degrees(np.arctan2(-x_axis[1], x_axis[0]))
    return np.array([yaw, pitch, roll], np.float32)
