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
    for i, face in enumerate(faces):
        x1, y1, x2, y2 = (int(round(v)) for v in face.box)
        cv2.rectangle(out, (x1, y1), (x2, y2), (0, 255, 0), thick, cv2.LINE_AA)
        if dense:
            for x, y in face.landmarks[:, :2]:
                cv2.circle(out, (int(round(x)), int(round(y))), thick, (200, 200, 200), -1, cv2.LINE_AA)
        for x, y in face.landmarks_68:
            cv2.circle(out, (int(round(x)), int(round(y))), thick + 1, (0, 200, 255), -1, cv2.LINE_AA)
        for (x, y), colour in zip(face.keypoints, _KEYPOINT_COLOURS):
            cv2.circle(out, (int(round(x)), int(round(y))), 2 * thick + 1, colour, -1, cv2.LINE_AA)
        yaw, pitch, roll = face.pose
        label = f"#{i} {face.score:.2f} y{yaw:+.0f} p{pitch:+.0f} r{roll:+.0f}"
        cv2.putText(
            out, label, (x1, max(12, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.45 * scale, (0, 255, 0), thick, cv2.LINE_AA
        )
    return out
