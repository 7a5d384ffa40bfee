"""Face analysis: detection, dense landmarks, keypoints and head pose behind one interface."""

from __future__ import annotations

import logging
import math
from typing import Literal

import numpy as np

from saswap.errors import SaSwapError
from saswap.face.geometry import box_iou, nms, pose_from_mesh, roi_from_points
from saswap.face.landmarks import mesh_to_68, mesh_to_keypoints5
from saswap.face.types import Face
from saswap.io import ImageInput, load_image

__all__ = ["FaceAnalyzer", "MediaPipeBackend", "one_way_up", "upside_down_over"]

logger = logging.getLogger(__name__)

Tiling = Literal["auto", "always", "never"]


def _roi_angle(right_eye: np.ndarray, left_eye: np.ndarray) -> float:
    """MediaPipe's ROI rotation that makes the eye line (subject's right to left eye) horizontal."""
    dx, dy = float(left_eye[0] - right_eye[0]), float(left_eye[1] - right_eye[1])
    angle = -math.atan2(-dy, dx)
    return float((angle + math.pi) % (2 * math.pi) - math.pi)


def _rotate_points(points: np.ndarray, k: int, shape: tuple[int, int]) -> np.ndarray:
    """Map points of ``np.rot90(image, k)`` back to ``image`` (of shape ``shape`` = (H, W))."""
    h, w = shape
    x, y = points[..., 0], points[..., 1]
    k %= 4
    if k == 0:
        ox, oy = x, y
    elif k == 1:  # rot90 ccw: rotated (x, y) <- original (w - 1 - y, x)
        ox, oy = w - 1 - y, x
    elif k == 2:
        ox, oy = w - 1 - x, h - 1 - y
    else:
        ox, oy = y, h - 1 - x
    return np.stack([ox, oy], axis=-1)


def upside_down_over(face: Face, others: list[Face], overlap: float = 0.25) -> bool:
    """Whether ``face`` is upside down (head roll beyond 90 degrees) over an upright face of ``others``: one head cannot
    show two faces with opposite up directions. BlazeFace takes the crown of a head pitched far down for a face upside
    down (its eyes read at the hairline, its mouth in the hair), and the face mesh, turned as the detector's eyes say,
    finds one there too, beside the upright face below it. Overlap: the boxes' intersection over the smaller box."""
    if abs(float(face.pose[2])) <= 90.0:
        return False
    b = np.asarray(face.box, np.float64)
    for other in others:
        if other is face or abs(float(other.pose[2])) > 90.0:
            continue
        o = np.asarray(other.box, np.float64)
        w = min(o[2], b[2]) - max(o[0], b[0])
        h = min(o[3], b[3]) - max(o[1], b[1])
        smaller = min((o[2] - o[0]) * (o[3] - o[1]), (b[2] - b[0]) * (b[3] - b[1]))
        if w > 0 and h > 0 and w * h >= overlap * max(smaller, 1e-9):
            return True
    return False


def one_way_up(faces: list[Face]) -> list[Face]:
    """``faces`` without those upside down over an upright one (:func:`upside_down_over`); a picture whose faces are
    all upside down (a photo held the wrong way) keeps them."""
    return [f for f in faces if not upside_down_over(f, faces)]


class MediaPipeBackend:
    """BlazeFace detection (full + short range, optional tiling and rotation search) and the 478-point
    face mesh on each detection, which also verifies it (no mesh, no face).

    Args:
        min_score: detector confidence threshold. 0.6: on the 67 shared test photos no real face
            scores below 0.65, while BlazeFace's false positives (e.g. a coffee cup) reach 0.53.
        tiling: "auto" runs a second pass on overlapping tiles unless the first pass finds exactly one
            face that is not small (group photos have small faces the full-image pass misses);
            "always" / "never" force it.
        small_face: a face whose box side is below this fraction of the image's shorter side counts
            as small for ``tiling="auto"``.
        fine_tiling_side: from this shorter side (pixels) on, tiling runs a 3x3 grid besides the 2x2 one.
        rotations: also search the image rotated by 90, 270 and 180 degrees when nothing is found.
        refine: run the mesh a second time on the region its own landmarks give, when that region
            differs clearly from the detector's (profiles, tilted heads).
    """

    name = "mediapipe"

    def __init__(
        self,
        min_score: float = 0.6,
        tiling: Tiling = "auto",
        small_face: float = 0.15,
        fine_tiling_side: int = 900,
        rotations: bool = True,
        refine: bool = True,
    ) -> None:
        from saswap.face._mediapipe import BlazeFaceDetector, MeshGraph

        if tiling not in ("auto", "always", "never"):
            raise ValueError(f"tiling must be 'auto', 'always' or 'never', got {tiling!r}")
        self.min_score = float(min_score)
        self.tiling = tiling
        self.small_face = float(small_face)
        self.fine_tiling_side = int(fine_tiling_side)
        self.rotations = bool(rotations)
        self.refine = bool(refine)
        self._detector = BlazeFaceDetector(min_score=min_score)
        self._mesh = MeshGraph()

    # -- detection ---------------------------------------------------------------------------
    def _detect_tiles(self, image: np.ndarray, grid: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        h, w = image.shape[:2]
        th, tw = min(h, int(h / grid * 1.3)), min(w, int(w / grid * 1.3))
        outs = []
        for iy in range(grid):
            for ix in range(grid):
                y0 = int(round((h - th) * iy / max(grid - 1, 1)))
                x0 = int(round((w - tw) * ix / max(grid - 1, 1)))
                tile = np.ascontiguousarray(image[y0 : y0 + th, x0 : x0 + tw])
                outs.append(self._detector(tile, x0, y0))
        return tuple(np.concatenate(parts) for parts in zip(*outs))  # type: ignore[return-value]

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Candidate boxes (N, 4), scores (N,) and BlazeFace keypoints (N, 6, 2), after NMS."""
        boxes, scores, kps = self._detector(image)
        keep = nms(boxes, scores)
        boxes, scores, kps = boxes[keep], scores[keep], kps[keep]
        short = min(image.shape[:2])
        sides = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) if len(boxes) else np.zeros(0)
        crowded = len(boxes) != 1 or bool((sides < self.small_face * short).any())
        tile = self.tiling == "always" or (self.tiling == "auto" and crowded)
        if tile and short >= 128:
            # 2x2 tiles, and 3x3 on large photos, where a face of ~7% of the short side (a child looking down
            # beside two adults in a 2000-px photo) is still too small for the full-range model on 2x2 tiles
            for grid in (2, 3) if short >= self.fine_tiling_side else (2,):
                tb, ts, tk = self._detect_tiles(image, grid)
                boxes, scores, kps = np.concatenate([boxes, tb]), np.concatenate([scores, ts]), np.concatenate([kps, tk])
        keep = nms(boxes, scores)
        return boxes[keep], scores[keep], kps[keep]

    # -- landmarks ---------------------------------------------------------------------------
    def mesh(self, image: np.ndarray, roi: tuple[float, float, float, float]) -> np.ndarray | None:
        """478-point mesh in the square region ``roi`` = (cx, cy, size, angle), or None if no face."""
        mesh = self._mesh(image, roi)
        if mesh is None or not self.refine:
            return mesh
        new = self.roi_from_mesh(mesh)
        moved = math.hypot(new[0] - roi[0], new[1] - roi[1]) / roi[2]
        ratio = new[2] / roi[2]
        turned = abs((new[3] - roi[3] + math.pi) % (2 * math.pi) - math.pi)
        if moved > 0.06 or not 0.87 < ratio < 1.15 or turned > math.radians(8):
            again = self._mesh(image, new)
            if again is not None:
                mesh = again
        return mesh

    @staticmethod
    def roi_from_mesh(mesh: np.ndarray) -> tuple[float, float, float, float]:
        """The region MediaPipe's face tracking would use next: landmark box x1.5, eye-line rotation."""
        return roi_from_points(mesh[:, :2], _roi_angle(mesh[33], mesh[263]), 1.5)

    def face_from_mesh(self, mesh: np.ndarray, score: float) -> Face:
        pts = mesh[:, :2]
        box = np.array([*pts.min(0), *pts.max(0)], np.float32)
        return Face(
            box=box,
            score=float(score),
            keypoints=mesh_to_keypoints5(mesh),
            landmarks=mesh.astype(np.float32),
            landmarks_68=mesh_to_68(mesh),
            pose=pose_from_mesh(mesh),
        )

    def _faces_from_candidates(self, image: np.ndarray, boxes, scores, kps) -> list[Face]:
        faces: list[Face] = []
        for box, score, kp in zip(boxes, scores, kps):
            w, h = box[2] - box[0], box[3] - box[1]
            roi = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2, max(w, h) * 1.5, _roi_angle(kp[0], kp[1]))
            mesh = self.mesh(image, roi)
            if mesh is None:
                continue
            face = self.face_from_mesh(mesh, score)
            if faces and box_iou(face.box[None], np.stack([f.box for f in faces])).max() > 0.4:
                continue  # the same face found twice (two detectors, tiles, rotations)
            faces.append(face)
        return faces

    def __call__(self, image: np.ndarray) -> list[Face]:
        faces = one_way_up(self._faces_from_candidates(image, *self.detect(image)))
        if faces or not self.rotations:
            return faces
        h, w = image.shape[:2]
        for k in (1, 3, 2):
            rotated = np.ascontiguousarray(np.rot90(image, k))
            boxes, scores, kps = self.detect(rotated)
            if not len(boxes):
                continue
            corners = np.stack([boxes[:, [0, 1]], boxes[:, [2, 3]]], axis=1)
            corners = _rotate_points(corners, k, (h, w))
            boxes = np.concatenate([corners.min(1), corners.max(1)], axis=1)
            kps = _rotate_points(kps, k, (h, w))
            faces = one_way_up(self._faces_from_candidates(image, boxes, scores, kps))
            if faces:
                return faces
        return faces

    def close(self) -> None:
        self._detector.close()
        self._mesh.close()


class FaceAnalyzer:
    """Find and describe every face in an image.

    Each face has a box, a score, five keypoints, dense landmarks (478 for MediaPipe; 106 for an
    insightface pack), the 68-point iBUG-style subset and head pose. Faces are sorted largest first.

    Args:
        backend: "mediapipe" (default; models ship inside the mediapipe wheel, works offline) or
            "insightface" (needs a local model pack such as buffalo_l; non-commercial licence).
        **backend_kwargs: passed to the backend (e.g. ``tiling``, ``min_score``; ``root``, ``pack``).

    Example:
        >>> analyzer = FaceAnalyzer()  # doctest: +SKIP
        >>> faces = analyzer("photo.jpg")  # doctest: +SKIP
        >>> faces[0].pose  # doctest: +SKIP
    """

    def __init__(self, backend: str = "mediapipe", **backend_kwargs) -> None:
        if backend == "mediapipe":
            self.backend = MediaPipeBackend(**backend_kwargs)
        elif backend == "insightface":
            from saswap.face.insightface_backend import InsightFaceBackend

            self.backend = InsightFaceBackend(**backend_kwargs)
        else:
            raise SaSwapError(f"unknown face analysis backend {backend!r}; choose 'mediapipe' or 'insightface'")
        self.backend_name = backend

    def __call__(self, image: ImageInput, max_faces: int | None = None) -> list[Face]:
        """Analyse an image (path, PIL image or RGB array); faces sorted by box area, largest first."""
        img = load_image(image)
        faces = sorted(self.backend(img), key=lambda f: -f.area)
        return faces if max_faces is None else faces[:max_faces]

    analyze = __call__

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> FaceAnalyzer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
