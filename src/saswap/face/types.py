"""The :class:`Face` record returned by face analysis."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Face"]


@dataclass
class Face:
    """One analysed face.

    Convention:
        Pixel coordinates of the analysed image, x to the right, y down. ``keypoints`` follow the
        ArcFace/insightface order: the subject's right eye (image-left in an upright face), left eye,
        nose tip, right mouth corner, left mouth corner. ``pose`` is (yaw, pitch, roll) in degrees: yaw > 0 when the face
        turns towards the image's right (its nose points right), pitch > 0 when it looks up, roll > 0
        when the head tilts clockwise in the image (its eye line turns clockwise). Pitch is measured
        from the face's own vertical axis (chin to nasion), so a neutral upright face is near 0.

    Attributes:
        box: x1, y1, x2, y2, shape (4,), float32.
        score: detection confidence in [0, 1].
        keypoints: five keypoints, shape (5, 2), float32.
        landmarks: dense landmarks, shape (N, 3): x, y in pixels and relative depth z (smaller is
            nearer) in the same scale as x. N = 478 for the MediaPipe backend (face mesh with irises).
        landmarks_68: the 68-point iBUG-style subset, shape (68, 2).
        pose: yaw, pitch, roll in degrees, shape (3,).
        track_id: id given by a :class:`~saswap.face.temporal.FaceTracker`, else -1.
        embedding: identity embedding when the backend computes one, else None.
    """

    box: np.ndarray
    score: float
    keypoints: np.ndarray
    landmarks: np.ndarray
    landmarks_68: np.ndarray
    pose: np.ndarray
    track_id: int = -1
    embedding: np.ndarray | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        """One line (the dataclass's own printed every landmark, about 80 lines a face)."""
        box = ", ".join(f"{v:.0f}" for v in np.asarray(self.box, np.float64))
        yaw, pitch, roll = (float(v) for v in self.pose)
        extra = f", track_id={self.track_id}" if self.track_id >= 0 else ""
        extra += f", embedding={len(self.embedding)}-D" if self.embedding is not None else ""
        return (
            f"Face(box=[{box}], score={float(self.score):.2f}, pose=(yaw {yaw:.0f}, pitch {pitch:.0f}, roll "
            f"{roll:.0f}), {len(self.landmarks)} landmarks{extra})"
        )

    @property
    def area(self) -> float:
        x1, y1, x2, y2 = self.box
        return float(max(x2 - x1, 0.0) * max(y2 - y1, 0.0))

    @property
    def eye_distance(self) -> float:
        """Distance between the outer eye corners of the 68-point set, in pixels."""
        return float(np.linalg.norm(self.landmarks_68[36] - self.landmarks_68[45]))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (lists of floats rounded to 0.01 px / 0.01 degree)."""

        def r(a: np.ndarray) -> list:
            return np.round(np.asarray(a, np.float64), 2).tolist()

        out: dict[str, Any] = {
            "box": r(self.box),
            "score": round(float(self.score), 4),
            "keypoints": r(self.keypoints),
            "landmarks": r(self.landmarks[:, :2]),
            "landmarks_68": r(self.landmarks_68),
            "pose": dict(zip(("yaw", "pitch", "roll"), r(self.pose))),
        }
        if self.track_id >= 0:
            out["track_id"] = self.track_id
        return out
