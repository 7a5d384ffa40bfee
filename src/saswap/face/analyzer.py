"""Face analysis: detection, dense landmarks, keypoints and head pose behind one interface."""

from __future__ import annotations

import logging
import math
from typing import Literal

import numpy as np

from saswap.errors import SaSwapError
from saswap.face.geometry import box_containment, box_iou, nms, pose_from_mesh, roi_from_points, wrap_degrees
from saswap.face.landmarks import mesh_to_68, mesh_to_keypoints5
from saswap.face.types import Face
from saswap.io import ImageInput, load_image

__all__ = ["FaceAnalyzer", "MediaPipeBackend", "content_turn", "one_way_up", "turned_pose", "upside_down_over"]

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


def turned_pose(mesh: np.ndarray, turn: int = 0) -> np.ndarray:
    """:func:`~saswap.face.geometry.pose_from_mesh` of a face in a picture whose content ``np.rot90(picture, turn)``
    shows upright: yaw and pitch as read there, the roll in the picture itself (``turn`` 0: the same)."""
    k = turn % 4
    if not k:
        return pose_from_mesh(mesh)
    pts = np.asarray(mesh, np.float64).copy()
    for _ in range(k):  # np.rot90 once: (x, y) -> (y, -x) up to a shift, which the pose does not see
        pts[:, 0], pts[:, 1] = pts[:, 1].copy(), -pts[:, 0]
    yaw, pitch, roll = pose_from_mesh(pts)
    return np.array([yaw, pitch, wrap_degrees(roll + 90.0 * k)], np.float32)


def _roll_from(face: Face, turn: int) -> float:
    """The face's head roll from the picture's up once the picture is turned by ``turn`` quarter turns
    (counter-clockwise, as ``np.rot90``): each turns its faces' eye lines by 90 degrees."""
    return float(wrap_degrees(float(face.pose[2]) - 90.0 * (turn % 4)))


def upside_down_over(face: Face, others: list[Face], overlap: float = 0.25, turn: int = 0) -> bool:
    """Whether ``face`` is upside down (head roll beyond 90 degrees) over an upright face of ``others``: one head cannot
    show two faces with opposite up directions. BlazeFace takes the crown of a head pitched far down for a face upside
    down (its eyes read at the hairline, its mouth in the hair), and the face mesh, turned as the detector's eyes say,
    finds one there too, beside the upright face below it. Overlap: the boxes' intersection over the smaller box.
    ``turn``: the quarter turns (as ``np.rot90``) that make the picture's content upright (:func:`content_turn`); up
    and down are read there."""
    if abs(_roll_from(face, turn)) <= 90.0:
        return False
    upright = [o.box for o in others if o is not face and abs(_roll_from(o, turn)) <= 90.0]
    return bool(upright) and bool((box_containment(face.box, np.stack(upright)) >= overlap).any())


def one_way_up(faces: list[Face], turn: int = 0) -> list[Face]:
    """``faces`` without those upside down over an upright one (:func:`upside_down_over`, up as the picture turned by
    ``turn`` quarter turns shows it); a picture whose faces are all upside down (a photo held the wrong way) keeps
    them."""
    return [f for f in faces if not upside_down_over(f, faces, turn=turn)]


#: How far the best turned reading must lead the picture as it is (:func:`content_turn`'s ``margin``).
TURN_MARGIN = 0.1


def content_turn(scores: np.ndarray, margin: float = TURN_MARGIN, share: float = 0.6) -> int:
    """The quarter turns (counter-clockwise, as ``np.rot90``) that make a video's content upright, from many frames'
    :meth:`MediaPipeBackend.upright_scores` (shape (frames, 4)); 0 unless the evidence is clear.

    A video turned without its rotation metadata (a phone clip re-encoded by a tool that drops it, a camera held upside
    down) shows its faces on their side or upside down, and BlazeFace reads an upside-down face as an upright one with
    its eyes where the mouth is. The turn whose faces the detector reads upright most confidently over the frames
    (the largest summed score) is taken when it is not 0, wins in at least ``share`` of the frames that show a face,
    and beats the picture as it is by at least ``margin`` in the median of those frames. Measured on the shared clips
    and photos each turned four ways (``benchmarks/RESULTS.md``, stop 45): the right turn wins on every clip; upright
    content never gives a turn.

    Example:
        >>> content_turn(np.array([[0.70, 0.0, 0.95, 0.0], [0.72, 0.0, 0.93, 0.0], [0.0, 0.0, 0.0, 0.0]]))
        2
        >>> content_turn(np.array([[0.93, 0.0, 0.71, 0.0]]))
        0
    """
    scores = np.asarray(scores, np.float64).reshape(-1, 4)
    seen = scores[scores.max(axis=1) > 0]
    if not len(seen):
        return 0
    k = int(seen.sum(axis=0).argmax())
    if k == 0:
        return 0
    wins = float(np.mean(seen.argmax(axis=1) == k))
    lead = float(np.median(seen[:, k] - seen[:, 0]))
    return k if wins >= share and lead >= margin else 0


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
        fine_tiling_side: from this shorter side (pixels) on, tiling runs a 3x3 grid besides the 2x2 one; from
            twice it, where no face is found otherwise, finer grids (5x5, 8x8) are tried in turn.
        rotations: also search the image rotated by 90, 270 and 180 degrees when nothing is found.
        refine: run the mesh a second time on the region its own landmarks give, when that region
            differs clearly from the detector's (profiles, tilted heads).
        edge_faces: also look for faces the picture's edge cuts (a selfie's own face, someone entering the
            frame), which BlazeFace can miss when the edge cuts it (most of all a large, near face): it
            reads the picture, made small, with a mirrored border around it, where a cut face is whole
            again. Only faces that cross the edge and have their centre inside the picture are taken from
            it, and only where the plain pass found nothing; the face mesh then reads them in the picture
            itself, as every detection (no mesh, no face). It costs a detector pass (about 12 ms on this
            project's 2-core CPU); ``"alone"`` runs it only on pictures where no face is found otherwise (a
            video's frames: there the face mesh follows a face found once to the edge and back). A call's
            ``edges`` can narrow it for one picture, never widen it: with ``False`` here no pass runs at all.
            The search over other quarter turns, when nothing is found, does without it.
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
        edge_faces: bool | Literal["alone"] = True,
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
        if edge_faces not in (True, False, "alone"):
            raise ValueError(f"edge_faces must be True, False or 'alone', got {edge_faces!r}")
        self.edge_faces = edge_faces
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

    #: Finer tile grids for a large picture where no face is found otherwise (:meth:`_detect_fine`), tried in turn.
    FINE_GRIDS = (5, 8)

    def _detect_fine(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Candidates on finer tiles (:data:`FINE_GRIDS`, the first grid that finds any), after NMS, for a picture whose
        shorter side is at least twice ``fine_tiling_side``: there a face under about 4% of that side (a person a few
        metres away in a 12-megapixel photo) is too small for the detector on the whole picture and on 3x3 tiles. A grid
        whose tiles would be shorter than half ``fine_tiling_side`` is not run."""
        short = min(image.shape[:2])
        none = np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0, 6, 2), np.float32)
        if self.tiling == "never" or short < 2 * self.fine_tiling_side:
            return none
        for grid in self.FINE_GRIDS:
            if 1.3 * short / grid < self.fine_tiling_side / 2:
                break
            boxes, scores, kps = self._detect_tiles(image, grid)
            keep = nms(boxes, scores)
            if len(keep):
                return boxes[keep], scores[keep], kps[keep]
        return none

    def detect(self, image: np.ndarray, first=None, edges: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Candidate boxes (N, 4), scores (N,) and BlazeFace keypoints (N, 6, 2), after NMS. ``first``: the
        detector's own pass over the whole of ``image`` when it has run already (:meth:`picture_turn`).
        ``edges``: add the candidates of :meth:`_detect_edges` that the plain pass did not find."""
        boxes, scores, kps = self._detector(image) if first is None else first
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
        boxes, scores, kps = boxes[keep], scores[keep], kps[keep]
        if edges:
            eb, es, ek = self._detect_edges(image)
            if len(eb) and len(boxes):  # only faces the plain pass did not find: its boxes stay as they were
                new = box_iou(eb, boxes).max(axis=1) <= 0.3
                eb, es, ek = eb[new], es[new], ek[new]
            boxes, scores, kps = np.concatenate([boxes, eb]), np.concatenate([scores, es]), np.concatenate([kps, ek])
        return boxes, scores, kps

    _EDGE_ORDER = (False, "alone", True)

    def _edge_mode(self, edges) -> bool | str:
        """The edge search for one picture: a call's ``edges`` (None: none asked) narrows ``edge_faces``."""
        if edges is None:
            return self.edge_faces
        if edges not in self._EDGE_ORDER:
            raise ValueError(f"edges must be True, False or 'alone', got {edges!r}")
        return min(self.edge_faces, edges, key=self._EDGE_ORDER.index)

    def _detect_edges(self, image: np.ndarray, side: int = 256, border: float = 0.3):
        """Faces the picture's edge cuts (``edge_faces``): both detector models on the picture made at most
        ``side`` pixels long, with a mirrored border of ``border`` times that around it. Candidates whose box
        crosses the picture's edge and whose centre lies inside it, in the picture's pixels, after NMS."""
        import cv2

        h, w = image.shape[:2]
        if min(h, w) < 64:
            return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0, 6, 2), np.float32)
        scale = min(1.0, side / max(h, w))
        small = image if scale == 1.0 else cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        pad = max(1, int(round(border * max(small.shape[:2]))))
        framed = cv2.copyMakeBorder(small, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
        boxes, scores, kps = self._detector(framed)
        if not len(boxes):
            return boxes, scores, kps
        boxes, kps = (boxes - pad) / scale, (kps - pad) / scale
        cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
        crosses = (boxes[:, 0] < 0) | (boxes[:, 1] < 0) | (boxes[:, 2] > w) | (boxes[:, 3] > h)
        inside = (cx >= 0) & (cx < w) & (cy >= 0) & (cy < h)
        ok = crosses & inside
        boxes, scores, kps = boxes[ok], scores[ok], kps[ok]
        keep = nms(boxes, scores)
        return boxes[keep].astype(np.float32), scores[keep], kps[keep].astype(np.float32)

    def upright_scores(self, image: np.ndarray, enough: float | None = None, first=None) -> np.ndarray:
        """How clearly the picture shows an upright face when turned by ``k`` quarter turns (``np.rot90(image, k)``,
        counter-clockwise), for ``k`` = 0..3: the best detector score among the faces it reads upright there (eye line
        within 45 degrees of level, the subject's right eye on the image's left), 0 where none.

        BlazeFace reads a face turned upside down as an upright one too (its eyes where the mouth is), less
        confidently than the same face turned back: over many frames, the turn with the clearest faces is the one
        that makes the video's content upright (:func:`content_turn`). One pass of the detector per turn, no tiles.
        ``enough``: when the picture as it is scores above this, the other turns are not read (left 0): with ``1 -
        margin`` no turn could then lead it by :func:`content_turn`'s margin (scores are at most 1). ``first``: the
        detector's pass over the picture as it is, when it has run already.
        """
        out = np.zeros(4, np.float32)
        for k in range(4):
            if k == 0 and first is not None:
                _, scores, kps = first
            else:
                _, scores, kps = self._detector(np.ascontiguousarray(np.rot90(image, k)))
            for score, kp in zip(scores, kps):
                if abs(_roi_angle(kp[0], kp[1])) <= math.radians(45):
                    out[k] = max(out[k], float(score))
            if k == 0 and enough is not None and out[0] > enough:
                break
        return out

    def picture_turn(self, image: np.ndarray, first=None) -> int:
        """The quarter turns (as ``np.rot90``) that make one picture's content upright, 0 unless the evidence is clear:
        :func:`content_turn` of its :meth:`upright_scores`.

        For a photo turned without its EXIF orientation (a screenshot, a tool that drops the tag, a scan): BlazeFace
        reads an upside-down face as an upright one with its eyes where the mouth is. Costs no more than the picture's
        own detector pass (``first``, reused by :meth:`__call__`) when the picture as it is shows a face clearly enough
        that no turn could win (score above ``1 - TURN_MARGIN``), three passes more otherwise. A head rolled beyond 45
        degrees may read best a quarter turn round; its landmarks stay in the picture either way (measured in
        ``benchmarks/RESULTS.md``, stop 46).
        """
        turn = content_turn(self.upright_scores(image, enough=1.0 - TURN_MARGIN, first=first)[None])
        if turn:
            logger.info("faces read with the picture turned %d degrees counter-clockwise (upright that way)", 90 * turn)
        return turn

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

    def face_from_mesh(self, mesh: np.ndarray, score: float, turn: int = 0) -> Face:
        """The face a mesh describes. ``turn``: the quarter turns that make the picture's content upright; yaw and
        pitch are read there (a head on its side turning to its left is yaw, not pitch), the roll in the picture."""
        pts = mesh[:, :2]
        box = np.array([*pts.min(0), *pts.max(0)], np.float32)
        return Face(
            box=box,
            score=float(score),
            keypoints=mesh_to_keypoints5(mesh),
            landmarks=mesh.astype(np.float32),
            landmarks_68=mesh_to_68(mesh),
            pose=turned_pose(mesh, turn),
        )

    def _faces_from_candidates(self, image: np.ndarray, boxes, scores, kps, turn: int = 0) -> list[Face]:
        faces: list[Face] = []
        for box, score, kp in zip(boxes, scores, kps):
            w, h = box[2] - box[0], box[3] - box[1]
            roi = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2, max(w, h) * 1.5, _roi_angle(kp[0], kp[1]))
            mesh = self.mesh(image, roi)
            if mesh is None:
                continue
            face = self.face_from_mesh(mesh, score, turn)
            if faces and box_iou(face.box[None], np.stack([f.box for f in faces])).max() > 0.4:
                continue  # the same face found twice (two detectors, tiles, rotations)
            faces.append(face)
        return faces

    def _detect_turned(self, image: np.ndarray, k: int, find=None):
        """``find`` (a callable of a picture alone; :meth:`detect` by default) on ``np.rot90(image, k)``, its boxes
        and keypoints read back in ``image``."""
        find = self.detect if find is None else find
        if k % 4 == 0:
            return find(image)
        h, w = image.shape[:2]
        boxes, scores, kps = find(np.ascontiguousarray(np.rot90(image, k)))
        if len(boxes):
            corners = _rotate_points(np.stack([boxes[:, [0, 1]], boxes[:, [2, 3]]], axis=1), k, (h, w))
            boxes = np.concatenate([corners.min(1), corners.max(1)], axis=1)
            kps = _rotate_points(kps, k, (h, w))
        return boxes, scores, kps

    def __call__(self, image: np.ndarray, turn: int | str = 0, edges=None) -> list[Face]:
        """The faces of ``image``. ``turn``: the quarter turns (counter-clockwise, as ``np.rot90``) that make its
        content upright (:func:`content_turn`): the detector reads the picture turned so; the landmarks stay in
        ``image``. ``"auto"``: read from the picture itself (:meth:`picture_turn`; its pass over the picture as it
        is serves the detection too). ``edges``: ``edge_faces`` for this picture, within the backend's own."""
        first = None
        if turn == "auto":
            first = self._detector(image)
            turn = self.picture_turn(image, first)
        elif isinstance(turn, str):
            raise ValueError(f"turn must be a number of quarter turns or 'auto', got {turn!r}")
        turn %= 4
        edges = self._edge_mode(edges)
        first = first if turn == 0 else None  # the pass over the picture as it is serves only its own turn
        found = self._detect_turned(image, turn, lambda picture: self.detect(picture, first, edges is True))
        faces = one_way_up(self._faces_from_candidates(image, *found, turn), turn)
        if not faces and edges == "alone":  # nothing the face mesh accepts: now the faces the edge cuts
            found = self._detect_turned(image, turn, find=self._detect_edges)
            faces = one_way_up(self._faces_from_candidates(image, *found, turn), turn)
        if not faces:  # nothing found on a large picture: a small face, on finer tiles
            found = self._detect_turned(image, turn, find=self._detect_fine)
            faces = one_way_up(self._faces_from_candidates(image, *found, turn), turn)
        if faces or not self.rotations:
            return faces
        for k in (1, 3, 2):
            boxes, scores, kps = self._detect_turned(image, turn + k)
            if not len(boxes):
                continue
            faces = one_way_up(self._faces_from_candidates(image, boxes, scores, kps, turn), turn)
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

    def __call__(
        self, image: ImageInput, max_faces: int | None = None, turn: int | str = 0, edges=None
    ) -> list[Face]:
        """Analyse an image (path, PIL image or RGB array); faces sorted by box area, largest first. ``turn``: the
        quarter turns (as ``np.rot90``) that make the picture's content upright (:func:`content_turn`; the MediaPipe
        backend only), read from :meth:`upright_scores` over a video's frames; ``"auto"``: read from this picture
        alone (:meth:`picture_turn`; a photo turned without its orientation metadata). ``edges``: the MediaPipe
        backend's ``edge_faces`` for this picture, within its own (other backends ignore it)."""
        img = load_image(image)
        turnable = hasattr(self.backend, "picture_turn")
        if isinstance(turn, str):
            if turn != "auto":
                raise ValueError(f"turn must be a number of quarter turns or 'auto', got {turn!r}")
            turn = turn if turnable else 0  # a backend that cannot turn reads the picture as it is
        elif turn % 4 and not turnable:
            raise SaSwapError(f"the {self.backend_name} face analysis backend cannot read a picture turned by {turn}")
        found = self.backend(img, turn=turn, edges=edges) if turnable else self.backend(img)
        faces = sorted(found, key=lambda f: -f.area)
        return faces if max_faces is None else faces[:max_faces]

    analyze = __call__

    def upright_scores(self, image: ImageInput) -> np.ndarray | None:
        """:meth:`MediaPipeBackend.upright_scores` of the picture, or None for a backend without it."""
        scorer = getattr(self.backend, "upright_scores", None)
        return None if scorer is None else scorer(load_image(image))

    def picture_turn(self, image: ImageInput) -> int:
        """:meth:`MediaPipeBackend.picture_turn` of one picture (0 for a backend that cannot turn): what
        ``turn="auto"`` reads."""
        finder = getattr(self.backend, "picture_turn", None)
        return 0 if finder is None else int(finder(load_image(image)))

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> FaceAnalyzer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
