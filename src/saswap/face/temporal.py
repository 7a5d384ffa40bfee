"""Temporal stability for video: One-Euro smoothing of landmarks and pose, and a face tracker.

Lag of the One-Euro filter: a first-order low-pass with cut-off ``fc`` delays a slow signal by
about ``1 / (2 pi fc)`` seconds. The cut-off rises with speed (``fc = min_cutoff + beta * |speed|``),
so slow drifts (where jitter shows) are smoothed hard and fast motion follows closely. With the
defaults (``min_cutoff=3.0`` Hz, ``beta=5.0`` per face size per second) the measured mean lag on a 30
fps talking head (``liveportrait__d8.mp4``) is 0.75 frame while frame-to-frame jitter (the landmarks'
second difference) falls by 59%; ``min_cutoff=1.0`` removes 70-80% of the jitter at a lag of 1.5-2.6
frames (``tests/face/test_temporal.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
from scipy.optimize import linear_sum_assignment

from saswap.face.geometry import POSE_VERTICES, box_iou, wrap_degrees
from saswap.face.types import Face

_STABLE = np.array(POSE_VERTICES)  # the mesh's expression-stable vertices (``FaceSmoother(rigid=True)``)

__all__ = ["OneEuroFilter", "FaceSmoother", "FaceTracker", "thumbnail_change", "FLAT_SPREAD"]


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """The One-Euro filter (Casiez et al., CHI 2012) on arrays of any shape, element-wise.

    Args:
        min_cutoff: cut-off frequency at rest, Hz. Lower: less jitter, more lag.
        beta: how fast the cut-off rises with speed (per unit of the signal per second).
        d_cutoff: cut-off for the speed estimate, Hz.

    Example:
        >>> f = OneEuroFilter(min_cutoff=1.0, beta=0.0)
        >>> out = [float(f(np.array([v]), 1 / 30)[0]) for v in (0.0, 1.0, 1.0)]
        >>> 0.0 < out[1] < out[2] < 1.0
        True
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0) -> None:
        if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise ValueError(f"need min_cutoff > 0, d_cutoff > 0, beta >= 0; got {min_cutoff}, {d_cutoff}, {beta}")
        self.min_cutoff, self.beta, self.d_cutoff = float(min_cutoff), float(beta), float(d_cutoff)
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None

    def reset(self) -> None:
        self._x = self._dx = None

    def __call__(self, x: np.ndarray, dt: float, scale: float = 1.0) -> np.ndarray:
        """Filter one sample; ``dt`` seconds since the last one; speeds are divided by ``scale``."""
        x = np.asarray(x, np.float64)
        if self._x is None or self._x.shape != x.shape:
            self._x, self._dx = x.copy(), np.zeros_like(x)
            return x.copy()
        if dt <= 0:
            raise ValueError(f"dt must be positive, got {dt}")
        dx = (x - self._x) / dt
        self._dx = self._dx + _alpha(self.d_cutoff, dt) * (dx - self._dx)
        cutoff = self.min_cutoff + self.beta * np.abs(self._dx) / scale
        self._x = self._x + _alpha(cutoff, dt) * (x - self._x)
        return self._x.copy()


class FaceSmoother:
    """Smooths one face's landmarks, keypoints, box and pose over the frames of a video.

    Landmark speeds are measured in face sizes (outer-eye-corner distances) per second, so one set
    of parameters suits small and large faces alike. The mesh's depth (its z, in the same units as x and
    y) is filtered alike: a 3D alignment to the mesh (the geometric engine's shape motion) turns raw depth
    noise into rotation noise, which a lever arm as long as the face amplifies at the jaw. Pose angles use
    their own filter (degrees).

    With ``rigid``, a face mesh's points are smoothed in two parts. The head's motion in the image (a similarity:
    position, size and roll) is fitted to the expression-stable vertices (:data:`~saswap.face.geometry.POSE_VERTICES`)
    in every frame and smoothed on its own; every point is smoothed in the face's own frame, where the head's motion
    no longer counts as its speed. Without this, a turning or nodding head raised the One-Euro cut-off of every point
    (``beta``) and let the detector's noise through while it moved; a mouth that opens still raises its own points'
    cut-off, so speech is followed as before.

    Args:
        fps: frame rate of the video.
        min_cutoff: One-Euro cut-off at rest, Hz.
        beta: One-Euro speed coefficient, per face size per second.
        rigid: smooth the head's motion and the points in the face's frame apart (needs the 468-point mesh; a face
            without it is smoothed as a whole).
    """

    def __init__(self, fps: float = 30.0, min_cutoff: float = 3.0, beta: float = 5.0, rigid: bool = False) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.dt = 1.0 / fps
        self.rigid = bool(rigid)
        self._points = OneEuroFilter(min_cutoff, beta)
        self._head = OneEuroFilter(min_cutoff, beta)  # ``rigid``: two anchor points that carry the head's similarity
        self._depth = OneEuroFilter(min_cutoff, beta)
        self._pose = OneEuroFilter(min_cutoff, beta / 50.0)  # pose speeds in degrees per second
        self._reference: tuple[np.ndarray, float] | None = None  # ``rigid``: the first face's stable vertices, size
        self._was_rigid = False  # whether the last face was smoothed in two parts
        self._angles: np.ndarray | None = None  # the last smoothed pose, before wrapping into (-180, 180]

    def reset(self) -> None:
        self._points.reset()
        self._head.reset()
        self._depth.reset()
        self._pose.reset()
        self._reference = None
        self._was_rigid = False
        self._angles = None

    def _pose_smoothed(self, pose: np.ndarray) -> np.ndarray:
        """The pose smoothed as angles: a roll that crosses +-180 degrees (a face upside down in a turned video) is
        followed across it instead of swinging through 0."""
        pose = np.asarray(pose, np.float64)
        if self._angles is not None:
            pose = self._angles + wrap_degrees(pose - self._angles)  # the nearer way round
        self._angles = self._pose(pose, self.dt)
        return wrap_degrees(self._angles)

    def _smooth_rigid(self, packed: np.ndarray, mesh: np.ndarray, scale: float) -> np.ndarray:
        """``packed`` smoothed as the head's similarity (fitted to ``mesh``'s stable vertices) applied to the points
        smoothed in the face's frame (the frame of the first face this smoother saw)."""
        from saswap.face.alignment import invert_affine, transform_points, umeyama_similarity

        mesh = np.asarray(mesh, np.float64)
        stable = mesh[_STABLE]
        if self._reference is None:
            eyes = float(np.linalg.norm(mesh[263] - mesh[33]))  # the outer eye corners: the face's size there
            self._reference = (stable.copy(), max(eyes, 1.0))
        reference, size = self._reference
        to_frame = umeyama_similarity(reference, stable)
        local = self._points(transform_points(invert_affine(to_frame), packed), self.dt, scale=size)
        # the head's similarity, smoothed through two anchor points a face size apart about the face's centre
        anchors = reference.mean(0) + np.array([[-0.5 * size, 0.0], [0.5 * size, 0.0]])
        moved = self._head(transform_points(to_frame, anchors), self.dt, scale=scale)
        return transform_points(umeyama_similarity(anchors, moved), local)

    def __call__(self, face: Face) -> Face:
        n, m = len(face.landmarks), len(face.landmarks_68)
        packed = np.concatenate(
            [face.landmarks[:, :2], face.landmarks_68, face.keypoints, face.box.reshape(2, 2)], axis=0
        )
        scale = max(face.eye_distance, 1.0)
        # a face without the mesh, or a degenerate one (its stable vertices on one point), is smoothed as a whole; the
        # point filter's state is in the face's frame or in the image, so a change between the two restarts it
        rigid = self.rigid and n >= 468 and float(np.ptp(face.landmarks[_STABLE, :2], axis=0).max()) > 1e-3
        if rigid != self._was_rigid:
            self._points.reset()
            self._head.reset()
            self._reference = None
            self._was_rigid = rigid
        if rigid:
            smooth = self._smooth_rigid(packed, face.landmarks[:468, :2], scale)
        else:
            smooth = self._points(packed, self.dt, scale=scale)
        landmarks = face.landmarks.copy()
        landmarks[:, :2] = smooth[:n]
        if landmarks.shape[1] > 2:
            landmarks[:, 2:] = self._depth(face.landmarks[:, 2:], self.dt, scale=scale)
        return replace(
            face,
            landmarks=landmarks.astype(np.float32),
            landmarks_68=smooth[n : n + m].astype(np.float32),
            keypoints=smooth[n + m : n + m + 5].astype(np.float32),
            box=smooth[n + m + 5 :].reshape(4).astype(np.float32),
            pose=self._pose_smoothed(face.pose).astype(np.float32),
        )


@dataclass
class _Track:
    track_id: int
    face: Face
    smoother: FaceSmoother | None
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4))
    missed: int = 0
    hits: int = 1


#: The least spread of a thumbnail's grey levels (standard deviation, 0-255) that shows a picture. Below it a frame
#: is blank (black, a plain title card, the darkest steps of a fade): its thumbnail normalised to unit spread was its
#: codec's noise blown up, and every blank frame decorrelated from the one before it as from another scene.
FLAT_SPREAD = 2.0


def thumbnail_change(previous: np.ndarray, current: np.ndarray) -> float:
    """How much a frame's grey thumbnail changed from the one before: 1 - their normalised correlation (0-2).

    Two blank thumbnails (grey levels spread less than :data:`FLAT_SPREAD`) have no picture to correlate and are
    compared by their mean: a jump of 32 levels reads 0.5, a black frame after a white one 2. A blank thumbnail beside
    a picture reads 1, as two uncorrelated pictures do.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> black = lambda: rng.normal(16.0, 0.3, (18, 32))  # a black frame's codec noise
        >>> picture = rng.uniform(0, 255, (18, 32))
        >>> round(thumbnail_change(black(), black()), 2), thumbnail_change(black(), picture)
        (0.0, 1.0)
        >>> round(thumbnail_change(picture, picture * 0.5 + 20), 6)  # the same picture, dimmed
        0.0
    """
    a = np.asarray(previous, np.float64)
    b = np.asarray(current, np.float64)
    flat_a, flat_b = a.std() < FLAT_SPREAD, b.std() < FLAT_SPREAD
    if flat_a and flat_b:
        return float(min(2.0, abs(a.mean() - b.mean()) / 64.0))
    if flat_a or flat_b:
        return 1.0
    a = (a - a.mean()) / a.std()
    b = (b - b.mean()) / b.std()
    return 1.0 - float((a * b).mean())


class FaceTracker:
    """Keeps one id per person across the frames of a video.

    Faces of a new frame are matched to existing tracks by the overlap of their boxes with each
    track's box moved by its recent velocity (Hungarian assignment on 1 - IoU). A track survives
    ``max_missed`` frames without a match; an unmatched face starts a new track with a new id.
    When the frame itself is passed, a shot cut (consecutive frames' thumbnails decorrelate)
    ends every track, so a person of the next shot who stands where another stood gets
    a new id. Optionally each track smooths its faces (:class:`FaceSmoother`).

    Args:
        iou_threshold: the smallest predicted-box IoU that counts as the same person.
        cut_threshold: decorrelation (1 - normalised correlation, 0-2) of consecutive frames'
            32x18 grey thumbnails above which a shot cut is declared (within a shot it stays
            below 0.45 even with camera motion; cuts between scenes score 0.7-1, but a talking
            head cut to another of alike framing and light only 0.2-0.5: the template analysis
            tells those by identity, :data:`saswap.pipelines.video.CUT_CHECK`).
        max_missed: frames a track may go unseen before it is dropped.
        fps: frame rate, for the smoother.
        smooth: smooth each track's landmarks and pose.
        **smoother_kwargs: passed to :class:`FaceSmoother`.
    """

    def __init__(
        self,
        iou_threshold: float = 0.3,
        max_missed: int = 10,
        fps: float = 30.0,
        smooth: bool = True,
        cut_threshold: float = 0.5,
        **smoother_kwargs,
    ) -> None:
        self.iou_threshold = float(iou_threshold)
        self.cut_threshold = float(cut_threshold)
        self._last_thumb: np.ndarray | None = None
        self.last_change: float | None = None  # the last frame's decorrelation from the one before (None: the first)
        self.max_missed = int(max_missed)
        self.fps = float(fps)
        self.smooth = bool(smooth)
        self.smoother_kwargs = smoother_kwargs
        self.tracks: list[_Track] = []
        self._next_id = 0

    def reset(self) -> None:
        self.tracks = []
        self._next_id = 0
        self._last_thumb = None
        self.last_change = None

    def is_shot_cut(self, image: np.ndarray) -> bool:
        """Whether ``image`` starts a new shot (its thumbnail decorrelates from the previous frame's,
        :func:`thumbnail_change`; a run of blank frames is one stretch, cut from the pictures on either side).

        Call once per frame, in order; :meth:`update` calls it when given the frame. The decorrelation is kept in
        :attr:`last_change` (for a caller's own, finer test: two shots of alike framing and light, a talking head
        after another, decorrelate by 0.2-0.5 only).
        """
        import cv2

        grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
        thumb = cv2.resize(grey, (32, 18), interpolation=cv2.INTER_AREA).astype(np.float64)
        self.last_change = None if self._last_thumb is None else thumbnail_change(self._last_thumb, thumb)
        self._last_thumb = thumb
        return self.last_change is not None and self.last_change > self.cut_threshold

    def update(self, faces: list[Face], image: np.ndarray | None = None) -> list[Face]:
        """Assign ``track_id`` to the faces of the next frame (and smooth them); same order as given.

        Args:
            faces: the faces found in the frame.
            image: the frame (RGB), to detect shot cuts; optional.
        """
        if image is not None and self.is_shot_cut(image):
            self.tracks = []
        out: list[Face | None] = [None] * len(faces)
        matched_tracks: set[int] = set()
        if self.tracks and faces:
            predicted = np.stack([t.face.box + t.velocity * (t.missed + 1) for t in self.tracks])
            boxes = np.stack([f.box for f in faces])
            iou = box_iou(predicted, boxes)
            rows, cols = linear_sum_assignment(1.0 - iou)
            for r, c in zip(rows, cols):
                if iou[r, c] < self.iou_threshold:
                    continue
                track = self.tracks[r]
                face = faces[c]
                if track.smoother is not None:
                    face = track.smoother(face)
                track.velocity = 0.5 * track.velocity + 0.5 * (face.box - track.face.box) / (track.missed + 1)
                track.face, track.missed = face, 0
                track.hits += 1
                out[c] = replace(face, track_id=track.track_id)
                matched_tracks.add(r)
        for i, track in enumerate(self.tracks):
            if i not in matched_tracks:
                track.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        for c, face in enumerate(faces):
            if out[c] is not None:
                continue
            smoother = FaceSmoother(self.fps, **self.smoother_kwargs) if self.smooth else None
            if smoother is not None:
                face = smoother(face)
            track = _Track(self._next_id, face, smoother)
            self._next_id += 1
            self.tracks.append(track)
            out[c] = replace(face, track_id=track.track_id)
        return [f for f in out if f is not None]
