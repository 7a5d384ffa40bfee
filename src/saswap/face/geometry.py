"""Small geometric helpers for face analysis: box overlap, non-maximum suppression, regions of
interest from landmarks and head pose from a 3D face mesh.

Convention:
    Pixel coordinates, x right, y down; boxes are x1, y1, x2, y2.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "box_containment", "box_iou", "nms", "roi_from_points", "pose_from_mesh", "wrap_degrees", "MESH_SYMMETRIC_PAIRS",
]  # fmt: skip

#: Pairs of MediaPipe mesh vertices mirrored across the face's mid-plane (image-left, image-right):
#: outer/inner eye corners, cheek contour, mouth corners, nostril wings, brow ends, jaw.
MESH_SYMMETRIC_PAIRS = ((33, 263), (133, 362), (234, 454), (61, 291), (98, 327), (70, 300), (172, 397), (127, 356))
_NASION, _CHIN = 168, 152

#: Expression-stable mesh vertices for rigid pose: forehead, brows' inner ends, nose bridge and tip,
#: eye corners, temples.
POSE_VERTICES: tuple[int, ...] = (
    10,
    151,
    9,
    8,
    168,
    6,
    197,
    195,
    5,
    4,
    1,
    33,
    133,
    263,
    362,
    107,
    336,
    109,
    338,
    67,
    297,
    127,
    356,
)

#: Mean position of ``POSE_VERTICES`` in the face's own frame (x right, y up, z to the viewer; units of
#: the outer-eye-corner distance), over the 23 near-frontal photos of the shared test data found at
#: derivation time (``tools/derive_pose_template.py``).
POSE_TEMPLATE = np.array(
    [
        [-0.0021, 0.4860, -0.0475],
        [-0.0014, 0.3113, 0.0216],
        [-0.0007, 0.1207, 0.0834],
        [-0.0004, 0.0243, 0.0847],
        [0.0003, -0.0588, 0.0935],
        [0.0014, -0.1386, 0.1562],
        [0.0026, -0.2112, 0.2240],
        [0.0036, -0.2777, 0.2972],
        [0.0047, -0.3493, 0.3728],
        [0.0058, -0.4422, 0.4141],
        [0.0058, -0.5194, 0.4014],
        [-0.4986, -0.1269, -0.1487],
        [-0.1933, -0.1404, -0.0885],
        [0.5055, -0.1268, -0.1488],
        [0.2004, -0.1406, -0.0880],
        [-0.1634, 0.1291, 0.0747],
        [0.1632, 0.1316, 0.0748],
        [-0.2162, 0.4776, -0.0654],
        [0.2116, 0.4775, -0.0649],
        [-0.3974, 0.4373, -0.1328],
        [0.3908, 0.4371, -0.1317],
        [-0.8037, -0.2492, -0.6907],
        [0.7814, -0.2513, -0.6913],
    ]
)


def _intersections(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairwise intersection areas (N, M) and the areas of ``a`` (N,) and ``b`` (M,)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    w = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    h = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(w, 0, None) * np.clip(h, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter, area_a, area_b


def wrap_degrees(angle):
    """Angles in degrees wrapped into [-180, 180) (a float or an array; an array keeps its dtype).

    Example:
        >>> float(wrap_degrees(190.0)), wrap_degrees(np.array([-181.0, 359.0, 180.0])).tolist()
        (-170.0, [179.0, -1.0, -180.0])
    """
    return (np.asarray(angle) + 180.0) % 360.0 - 180.0


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
    inter, area_a, area_b = _intersections(a, b)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def box_containment(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over the smaller box of every box in ``a`` with every box in ``b``, shape (N, M): 1 when one box
    lies inside the other.

    Example:
        >>> box_containment(np.array([[0, 0, 4, 4.]]), np.array([[1, 1, 2, 2.], [3, 0, 5, 4.]])).round(3)
        array([[1. , 0.5]])
    """
    inter, area_a, area_b = _intersections(a, b)
    return inter / np.maximum(np.minimum(area_a[:, None], area_b[None, :]), 1e-9)


def nms(
    boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.3, contain_threshold: float = 0.7
) -> np.ndarray:
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
        cont = box_containment(boxes[i : i + 1], boxes[rest])[0]
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

    The rigid rotation (3D Umeyama) that takes :data:`POSE_TEMPLATE` onto the mesh's
    expression-stable vertices; chin, mouth and jaw do not enter, so an open mouth or another
    person's jaw (after a swap) does not tilt the estimate.

    Convention:
        Face frame: x through the mirrored vertex pairs (image-left to image-right), y from the chin
        to the nasion, z = x cross y. yaw > 0 when the nose points to the image's right, pitch > 0
        when the face looks up, roll > 0 when the eye line turns clockwise in the image.

    Args:
        mesh: shape (>=468, 3): x, y, z in pixels (z: smaller is nearer).

    Returns:
        shape (3,), float32.
    """
    p = np.asarray(mesh, np.float64)[list(POSE_VERTICES), :3] * np.array(
        [1.0, -1.0, -1.0]
    )  # x right, y up, z to viewer
    q = POSE_TEMPLATE
    mu_p, mu_q = p.mean(0), q.mean(0)
    u, _, vt = np.linalg.svd((p - mu_p).T @ (q - mu_q))
    d = np.ones(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1.0
    rot = u @ np.diag(d) @ vt  # template frame -> camera frame
    forward, x_axis = rot[:, 2], rot[:, 0]
    yaw = np.degrees(np.arctan2(forward[0], forward[2]))
    pitch = np.degrees(np.arctan2(forward[1], np.hypot(forward[0], forward[2])))
    roll = np.degrees(np.arctan2(-x_axis[1], x_axis[0]))
    return np.array([yaw, pitch, roll], np.float32)
