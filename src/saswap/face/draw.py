"""Drawing analysed faces on an image (for ``saswap analyze --output`` and notebooks)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from saswap.face.types import Face

__all__ = ["draw_faces"]

_KEYPOINT_COLOURS = ((255, 64, 64), (64, 255, 64), (64, 128, 255), (255, 255, 0), (255, 0, 255))


def draw_faces(image: np.ndarray, faces: Sequence[Face], *, dense: bool = True) -> np.ndarray:
    """Return a copy of ``image`` with boxes, scores, pose, 68-point (and dense) landmarks drawn.

    Args:
        image: RGB uint8, shape (H, W, 3).
        faces: faces found in that image.
        dense: also draw every dense landmark as a faint dot.

    Returns:
        annotated RGB uint8 image, shape (H, W, 3).

    Example:
        >>> draw_faces(np.zeros((8, 8, 3), np.uint8), []).shape
        (8, 8, 3)
    """
    out = np.ascontiguousarray(image.copy())
    scale = max(1.0, max(image.shape[:2]) / 800.0)
    thick = max(1, int(round(scale)))
    for face in faces:
        x1, y1, x2, y2 = (int(round(v)) for v in face.box)
        cv2.rectangle(out, (x1, y1), (x2, y2), (0, 255, 0), thick, cv2.LINE_AA)
        if dense:
            for x, y in face.landmarks[:, :2]:
                cv2.circle(out, (int(round(x)), int(round(y))), thick, (200, 200, 200), -1, cv2.LINE_AA)
        for x, y in face.landmarks_68:
            cv2.circle(out, (int(round(x)), int(round(y))), thick + 1, (0, 200, 255), -1, cv2.LINE_AA)
        for (x, y), colour in zip(face.keypoints, _KEYPOINT_COLOURS):
            cv2.circle(out, (int(round(x)), int(round(y))), 2 * thick + 1, colour, -1, cv2.LINE_AA)
    # labels last, each on a dark plate at a place where it covers no other label (nor, if it can, a face)
    font, size = cv2.FONT_HERSHEY_SIMPLEX, 0.45 * scale
    placed: list[tuple[int, int, int, int]] = []
    boxes = [tuple(int(round(v)) for v in f.box) for f in faces]
    h, w = out.shape[:2]
    for i, face in enumerate(faces):
        yaw, pitch, roll = face.pose
        lines = [f"#{i} {face.score:.2f}", f"y{yaw:+.0f} p{pitch:+.0f} r{roll:+.0f}"]
        sizes = [cv2.getTextSize(t, font, size, thick) for t in lines]
        lw = max(s[0][0] for s in sizes) + 4 * thick
        lh = sum(s[0][1] + s[1] for s in sizes) + 4 * thick
        rect = _label_place(boxes[i], lw, lh, placed, boxes, w, h)
        placed.append(rect)
        lx, ly, rx, ry = rect
        plate = out[ly:ry, lx:rx]
        plate[:] = (plate * 0.35).astype(np.uint8)
        y = ly + 2 * thick
        for text, ((_, th), base) in zip(lines, sizes):
            y += th
            cv2.putText(out, text, (lx + 2 * thick, y), font, size, (0, 255, 0), thick, cv2.LINE_AA)
            y += base
    return out


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> int:
    return max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))


def _label_place(box, lw, lh, placed, boxes, w, h) -> tuple[int, int, int, int]:
    """A (x1, y1, x2, y2) for a ``lw`` x ``lh`` label near ``box``: above it, below it, then further away,
    the first spot that overlaps no placed label and the least of the faces' boxes."""
    x1, y1, x2, y2 = box
    spots = []
    for dy in range(0, 4 * lh + 1, max(1, lh // 2)):
        spots += [(x1, y1 - lh - 2 - dy), (x1, y2 + 2 + dy)]
    best, best_cost = None, None
    for sx, sy in spots:
        sx, sy = min(max(0, sx), max(0, w - lw)), min(max(0, sy), max(0, h - lh))
        rect = (sx, sy, min(w, sx + lw), min(h, sy + lh))
        cost = 1000 * sum(_overlap(rect, r) for r in placed) + sum(_overlap(rect, b) for b in boxes)
        if best_cost is None or cost < best_cost:
            best, best_cost = rect, cost
        if cost == 0:
            break
    return best
