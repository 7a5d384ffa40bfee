"""The target-analysis step: everything that depends on a target frame alone, in one typed value.

Data flows one way: decode -> analyse the target frame (or read that analysis from the template cache)
-> the engine makes the face -> compose -> encode. :class:`TargetAnalyzer` is the analysis step: faces
(tracked and smoothed in a video), each face's alignment transform, the engine's target-only data (e.g.
its 3DMM fit) and the compositor's (occlusion and person masks). Its output, one
:class:`FrameAnalysis` per frame, is what a template cache stores; engines and the compositor read it and
never recompute any of it. A still image is a one-frame video.
"""

from __future__ import annotations

import copy
import io
import json
import zlib
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from saswap.errors import SaSwapError
from saswap.face.alignment import transform_face, warp_face
from saswap.face.types import Face

__all__ = ["TargetFace", "FrameAnalysis", "TargetAnalyzer", "RepeatDetector", "smooth_tracks", "track_runs"]

_FACE_ARRAYS = ("box", "keypoints", "landmarks", "landmarks_68", "pose")


@dataclass
class TargetFace:
    """One target face of a frame, analysed.

    Attributes:
        face: the face in frame coordinates (smoothed over time in a video).
        transform: the frame -> crop similarity of the engine's alignment, shape (2, 3).
        data: target-only arrays in crop coordinates: the engine's (:meth:`SwapEngine.analyze_target`) and
            the compositor's (:meth:`Compositor.analyze_target`, e.g. ``occlusion`` and ``person``).
    """

    face: Face
    transform: np.ndarray
    data: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def crop_face(self) -> Face:
        """The face in crop coordinates."""
        return transform_face(self.face, self.transform)


@dataclass
class FrameAnalysis:
    """Everything the swap needs from one target frame (the value a template cache stores per frame).

    Attributes:
        index: frame index in the video (0 for an image).
        pts: presentation timestamp in the stream's time base (None for an image).
        time: seconds from the start of the video.
        faces: the analysed faces, largest first.
        shot_cut: whether a shot cut precedes this frame (smoothing and fades restart there).
        repeat_of: the index of the earlier frame this one repeats (:class:`RepeatDetector`; its faces are that
            frame's), or None.
    """

    index: int
    pts: int | None
    time: float
    faces: list[TargetFace]
    shot_cut: bool = False
    repeat_of: int | None = None

    # -- serialisation ------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """A compact, self-describing record (JSON header + raw little-endian arrays, zlib-compressed).

        Example:
            >>> f = Face(np.zeros(4, np.float32), 0.9, np.zeros((5, 2), np.float32), np.zeros((478, 3), np.float32),
            ...          np.zeros((68, 2), np.float32), np.zeros(3, np.float32), track_id=2)
            >>> a = FrameAnalysis(7, 7000, 0.23, [TargetFace(f, np.eye(2, 3), {"occlusion": np.ones((4, 4), np.uint8)})])
            >>> b = FrameAnalysis.from_bytes(a.to_bytes())
            >>> b.index, b.pts, b.faces[0].face.track_id, int(b.faces[0].data["occlusion"].sum())
            (7, 7000, 2, 16)
        """
        arrays: dict[str, np.ndarray] = {}
        faces = []
        for i, tf in enumerate(self.faces):
            f = tf.face
            for name in _FACE_ARRAYS:
                arrays[f"{i}/face/{name}"] = np.asarray(getattr(f, name))
            arrays[f"{i}/transform"] = np.asarray(tf.transform, np.float64)
            for key, value in tf.data.items():
                arrays[f"{i}/data/{key}"] = np.asarray(value)
            faces.append({"score": float(f.score), "track_id": int(f.track_id), "data": sorted(tf.data)})
        meta = {
            "index": self.index, "pts": self.pts, "time": self.time, "shot_cut": self.shot_cut,
            "repeat_of": self.repeat_of, "faces": faces,
        }  # fmt: skip
        return zlib.compress(pack_arrays(meta, arrays), 1)

    @classmethod
    def from_bytes(cls, data: bytes) -> FrameAnalysis:
        meta, arrays = unpack_arrays(zlib.decompress(data))
        faces = []
        for i, fm in enumerate(meta["faces"]):
            face = Face(
                **{name: arrays[f"{i}/face/{name}"] for name in _FACE_ARRAYS},
                score=fm["score"],
                track_id=fm["track_id"],
            )
            data = {key: arrays[f"{i}/data/{key}"] for key in fm["data"]}
            faces.append(TargetFace(face, arrays[f"{i}/transform"], data))
        return cls(meta["index"], meta["pts"], meta["time"], faces, meta["shot_cut"], meta.get("repeat_of"))


def pack_arrays(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> bytes:
    """``meta`` (JSON) and named arrays in one buffer: u32 header length, JSON header, raw data.

    Example:
        >>> m, a = unpack_arrays(pack_arrays({"x": 1}, {"a": np.arange(3, dtype=np.int16)}))
        >>> m["x"], a["a"].tolist()
        (1, [0, 1, 2])
    """
    table = []
    offset = 0
    blobs = []
    for name, arr in arrays.items():
        arr = np.ascontiguousarray(arr)
        dtype = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
        raw = arr.astype(dtype, copy=False).tobytes()
        table.append([name, dtype.str, list(arr.shape), offset, len(raw)])
        blobs.append(raw)
        offset += len(raw)
    header = json.dumps({"meta": meta, "arrays": table}, separators=(",", ":")).encode()
    buf = io.BytesIO()
    buf.write(len(header).to_bytes(4, "little"))
    buf.write(header)
    for raw in blobs:
        buf.write(raw)
    return buf.getvalue()


def unpack_arrays(data: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Inverse of :func:`pack_arrays` (arrays are copies, writeable)."""
    n = int.from_bytes(data[:4], "little")
    header = json.loads(data[4 : 4 + n])
    base = 4 + n
    arrays = {}
    for name, dtype, shape, offset, nbytes in header["arrays"]:
        arrays[name] = (
            np.frombuffer(data, dtype=np.dtype(dtype), count=int(np.prod(shape)), offset=base + offset)
            .reshape(shape)
            .copy()
        )
    return header["meta"], arrays


class TargetAnalyzer:
    """The analysis step: faces of a target frame and everything the engine and compositor need from them.

    Args:
        engine: the swap engine (its alignment and :meth:`analyze_target`).
        compositor: the compose stage (its :meth:`analyze_target`).
        analyzer: a :class:`~saswap.face.FaceAnalyzer`, or a callable returning one (loaded on first use,
            so a swap from a template cache never loads face-analysis models).
    """

    def __init__(self, engine, compositor, analyzer) -> None:
        self.engine = engine
        self.compositor = compositor
        self._held = [analyzer]  # one cell shared with the copies at other crop sizes (resized): loaded once
        self.calls = 0  # frames analysed by the face analyzer (tests count them)

    @property
    def _analyzer(self):
        return self._held[0]

    @_analyzer.setter
    def _analyzer(self, value) -> None:
        self._held[0] = value

    @property
    def analyzer(self):
        if callable(self._analyzer) and not hasattr(self._analyzer, "backend"):
            self._analyzer = self._analyzer()
        return self._analyzer

    def resized(self, crop_size: int) -> TargetAnalyzer:
        """This analysis describing faces for the engine's ``crop_size``-px crop
        (:meth:`~saswap.engines.base.SwapEngine.resized`); itself at its own size. The face analyzer is shared: loaded
        once, by whichever of them first needs it."""
        if int(crop_size) == self.engine.crop_size:
            return self
        sized = copy.copy(self)  # shares the face analyzer's cell
        sized.engine, sized.calls = self.engine.resized(crop_size), 0
        return sized

    def config(self) -> dict[str, Any]:
        """JSON-able settings that change the analysis (part of a template cache's key). Reading them never
        loads the face analyzer: a lazily created default analyzer reports the default settings."""
        import inspect

        from saswap.face.analyzer import MediaPipeBackend

        keys = ("min_score", "tiling", "small_face", "rotations", "refine", "edge_faces")
        loaded = hasattr(self._analyzer, "backend")
        if loaded and getattr(self._analyzer, "backend_name", "mediapipe") != "mediapipe":
            backend, options = self._analyzer.backend_name, {}
        elif loaded:
            backend, options = "mediapipe", {k: getattr(self._analyzer.backend, k) for k in keys}
        else:
            params = inspect.signature(MediaPipeBackend.__init__).parameters
            backend, options = "mediapipe", {k: params[k].default for k in keys}
        return {
            "analyzer": backend,
            "analyzer_options": options,
            "engine": self.engine.config(),
            "compositor": {
                k: v
                for k, v in self.compositor.config().items()
                if k in ("occlusion", "occlusion_threshold", "silhouette", "blur_match", "texture_match")
            },
        }

    def analyzer_spec(self) -> tuple[str, dict[str, Any]] | None:
        """How to make this face analyzer again in another process: ``(backend, keyword arguments)`` for
        :class:`~saswap.face.FaceAnalyzer`, or None when it cannot be (another backend, or a caller's own analyzer).
        Reading it never loads the analyzer."""
        from saswap.face.analyzer import FaceAnalyzer, MediaPipeBackend

        if self._analyzer is FaceAnalyzer:  # the default, not loaded yet
            return "mediapipe", {}
        backend = getattr(self._analyzer, "backend", None)
        if type(self._analyzer) is not FaceAnalyzer or type(backend) is not MediaPipeBackend:
            return None
        keys = ("min_score", "tiling", "small_face", "fine_tiling_side", "rotations", "refine", "edge_faces")
        return "mediapipe", {k: getattr(backend, k) for k in keys}

    def faces(self, image: np.ndarray, turn: int | str = 0, edges=None) -> list[Face]:
        """Faces of a picture, largest first. ``turn``: the quarter turns (as ``np.rot90``) that make its content
        upright (a video's, :func:`~saswap.face.analyzer.content_turn`), or ``"auto"``: the picture's own (a photo's,
        :meth:`~saswap.face.analyzer.FaceAnalyzer.picture_turn`). A caller's own analyzer (a callable of the picture
        alone) reads a picture as it is, and cannot read a turned video. ``edges``: the MediaPipe backend's
        ``edge_faces`` for this picture, within its own."""
        if hasattr(self.analyzer, "picture_turn"):  # a FaceAnalyzer
            return self.analyzer(image, turn=turn, edges=edges)
        if turn not in (0, "auto"):
            raise SaSwapError(f"a caller's own face analyzer cannot read a picture turned by {turn}")
        return self.analyzer(image)

    def detect(self, image: np.ndarray, turn: int = 0) -> list[Face]:
        """Faces of a template's frame, largest first (:meth:`faces`; counted in :attr:`calls`). Faces the frame's
        edge cuts are looked for only in frames where no face is found otherwise (``edges="alone"``): the
        template analysis follows a face it has found to the edge and back with the face mesh, and the search would
        add a detector pass to every frame."""
        self.calls += 1
        return self.faces(image, turn, edges="alone")

    def upright_scores(self, image: np.ndarray) -> np.ndarray | None:
        """How clearly the frame shows upright faces turned each of four ways
        (:meth:`~saswap.face.analyzer.MediaPipeBackend.upright_scores`), or None for an analyzer without it."""
        scorer = getattr(self.analyzer, "upright_scores", None)
        return None if scorer is None else scorer(image)

    def describe(self, image: np.ndarray, face: Face) -> TargetFace:
        """Alignment and target-only data for one face of a frame."""
        M = self.engine.alignment(face)
        crop = warp_face(image, M, self.engine.crop_size)
        face_c = transform_face(face, M)
        data = dict(self.engine.analyze_target(crop, face_c))
        data.update(self.compositor.analyze_target(crop, face_c))
        return TargetFace(face, M, data)

    def __call__(
        self, image: np.ndarray, faces: list[Face] | None = None, index: int = 0, pts: int | None = None, time: float = 0.0
    ) -> FrameAnalysis:
        """Analyse one frame (``faces`` given: describe those instead of detecting)."""
        if faces is None:
            faces = self.detect(image)
        return FrameAnalysis(index, pts, time, [self.describe(image, f) for f in faces])


class RepeatDetector:
    """Finds the frames of a video that repeat an earlier one (frame-rate conversion: 24 or 25 fps shown at 30
    shows every fourth or fifth picture twice).

    A repeated frame differs from the frame it repeats by the codec's noise alone, and a swap should make the
    same face for both: swapped one by one, the two copies get slightly different faces (the smoothing moves on
    through time while the picture does not), and the face flickers at the conversion's cadence while the rest
    of the picture holds still. Call once per frame, in order; a frame is a repeat of the *anchor*, the last
    frame that was not a repeat (so slow changes add up and end a run of repeats; they never drift unseen).

    A frame repeats its anchor when, in every block of ``block`` pixels of their luma, the two differ by at most
    ``noise`` levels on average, and that largest block change is at most ``ratio`` times the median change
    between consecutive frames over the last ``history`` frames. The second test is what tells a repeat from a
    slow scene: in a slow scene every frame changes about as little, so none stands out as unchanged. No frame is
    a repeat before ``min_history`` changes are known (the second test needs them). The first test bounds what a
    repeat may hide: 8 levels in an 8-pixel block is about a fifth of a pixel of motion at a sharp edge.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> frames = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(12)]
        >>> frames.insert(10, frames[9].copy())  # one frame shown twice
        >>> d = RepeatDetector(min_history=4)
        >>> [i for i, f in enumerate(frames) if d(f)]
        [10]
    """

    def __init__(
        self, block: int = 8, noise: float = 8.0, ratio: float = 0.25, history: int = 24, min_history: int = 8
    ) -> None:
        if block < 1 or noise < 0 or not 0 <= ratio <= 1 or history < 1 or not 1 <= min_history <= history:
            raise ValueError(f"bad repeat detector settings: {block=}, {noise=}, {ratio=}, {history=}, {min_history=}")
        self.block, self.noise, self.ratio, self.min_history = int(block), float(noise), float(ratio), int(min_history)
        self._changes: deque[float] = deque(maxlen=int(history))
        self._previous: np.ndarray | None = None
        self._anchor: np.ndarray | None = None

    def change(self, a: np.ndarray, b: np.ndarray) -> float:
        """The largest mean absolute difference of two luma images over blocks of ``block`` pixels."""
        import cv2

        h, w = a.shape[:2]
        size = (max(1, w // self.block), max(1, h // self.block))
        small = cv2.resize(cv2.absdiff(a, b), size, interpolation=cv2.INTER_AREA)
        return float(small.max())

    def __call__(self, image: np.ndarray) -> bool:
        """Whether ``image`` (RGB uint8, the next frame) repeats the anchor."""
        import cv2

        luma = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
        if self._previous is None or self._previous.shape != luma.shape:
            self._previous = self._anchor = luma
            self._changes.clear()
            return False
        to_anchor = self.change(luma, self._anchor)
        repeat = (
            len(self._changes) >= self.min_history
            and to_anchor <= self.noise
            and to_anchor <= self.ratio * float(np.median(self._changes))
        )
        self._changes.append(to_anchor if self._anchor is self._previous else self.change(luma, self._previous))
        self._previous = luma
        if not repeat:
            self._anchor = luma
        return bool(repeat)


def track_runs(frames: list[list[Face]], cuts: list[bool]) -> dict[tuple[int, int], list[tuple[int, int]]]:
    """The runs of every track: stretches of consecutive frames where it is seen, with no shot cut inside.

    Returns:
        (track id, run number) -> [(frame, position of the face in that frame), ...].

    Example:
        >>> f = Face(np.zeros(4, np.float32), 1.0, np.zeros((5, 2)), np.zeros((478, 3)), np.zeros((68, 2)),
        ...          np.zeros(3), track_id=3)
        >>> track_runs([[f], [f], [], [f], [f]], [False, False, False, False, True])
        {(3, 0): [(0, 0), (1, 0)], (3, 1): [(3, 0)], (3, 2): [(4, 0)]}
    """
    runs: dict[tuple[int, int], list[tuple[int, int]]] = {}
    last_seen: dict[int, int] = {}
    run_no: dict[int, int] = {}
    for t, faces in enumerate(frames):
        for j, f in enumerate(faces):
            tid = f.track_id
            if tid not in last_seen or last_seen[tid] != t - 1 or cuts[t]:
                run_no[tid] = run_no.get(tid, -1) + 1
            last_seen[tid] = t
            runs.setdefault((tid, run_no[tid]), []).append((t, j))
    return runs


def smooth_tracks(frames: list[list[Face]], fps: float, cuts: list[bool], **smoother_kwargs) -> list[list[Face]]:
    """Zero-lag smoothing of every track: a One-Euro pass forward, then one backward over its result.

    The whole template is known before any swap, so each track's landmarks, keypoints, box and pose are
    filtered in both directions (the forward pass's lag is undone by the backward pass), which no live
    tracker can do. Smoothing restarts at shot cuts and where a track was lost for a frame or more.

    Args:
        frames: per frame, its faces with ``track_id`` set (from :class:`~saswap.face.temporal.FaceTracker`
            with ``smooth=False``).
        fps: frame rate.
        cuts: per frame, whether a shot cut precedes it.
        **smoother_kwargs: for :class:`~saswap.face.temporal.FaceSmoother`.

    Returns:
        the same structure with smoothed faces.
    """
    from saswap.face.temporal import FaceSmoother

    out = [list(faces) for faces in frames]
    for members in track_runs(frames, cuts).values():
        forward = FaceSmoother(fps, **smoother_kwargs)
        fwd = [forward(frames[t][j]) for t, j in members]
        backward = FaceSmoother(fps, **smoother_kwargs)
        both = [backward(f) for f in reversed(fwd)][::-1]
        for (t, j), f in zip(members, both):
            out[t][j] = replace(f, track_id=frames[t][j].track_id, score=frames[t][j].score)
    return out
