"""Video swapping with the template cache: the same data flow as images, streamed frame by frame.

``precompute_template`` analyses a template video once (faces tracked through it, smoothed in both
directions, each face's alignment and target-only masks) into a template cache file
(:mod:`saswap.pipelines.cache`). ``swap_video`` reads that analysis back frame by frame beside the
decoded frames, lets the engine make the face and the compositor compose it, and encodes the result
(resolution, frame rate, timestamps, rotation and audio of the template kept). Memory does not grow with
the video's length: frames, analyses and output are streamed.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, closing, nullcontext
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from saswap.errors import NoFaceError, SaSwapError
from saswap.face.types import Face
from saswap.interrupts import check as check_interrupt
from saswap.pipelines.analysis import FrameAnalysis, RepeatDetector, TargetFace, smooth_tracks, track_runs
from saswap.pipelines.cache import (
    CacheError,
    CacheWriter,
    TemplateCache,
    cache_path,
    default_cache_dir,
    file_sha256,
    writer_lock,
)
from saswap.pipelines.overlap import InOrder, Prefetch, ordered_map

__all__ = [
    "SaSwapVideoOutput", "precompute_template", "swap_video", "default_workers", "ToneStabiliser", "SkinStabiliser",
    "SMOOTHING", "cache_settings",
    "ProgressCallback", "smooth_track_motion", "template_people", "describe_people",
]  # fmt: skip

logger = logging.getLogger(__name__)

#: One-Euro settings of the offline (two-way) smoothing of each track's landmarks; ``rigid``: the head's motion and the
#: points in the face's frame are smoothed apart (:class:`~saswap.face.temporal.FaceSmoother`; stop 37, measured in
#: ``benchmarks/RESULTS.md``).
SMOOTHING = {"min_cutoff": 3.0, "beta": 5.0, "rigid": True}
#: Tracker settings of the template analysis.
TRACKING = {"iou_threshold": 0.3, "max_missed": 10, "cut_threshold": 0.5}
#: :class:`~saswap.pipelines.analysis.RepeatDetector` settings of the template analysis (None: every frame is
#: analysed and swapped on its own). A repeated frame is written with the face made for the picture's first
#: showing (as that frame was written: its fade weight and tone correction too).
REPEATS: dict[str, Any] | None = {"block": 8, "noise": 8.0, "ratio": 0.25, "history": 24, "min_history": 8}
#: Cuts the tracker's threshold misses: a frame whose picture changes by more than ``floor`` (the tracker's
#: decorrelation) and by more than ``ratio`` times the median change of the shot's last ``history`` distinct frames
#: (at least ``min_history`` of them) is a cut when every face found where a face of the frame before was is someone
#: else, by the identity embedder (:func:`_identity_cut`): a talking head after another of alike framing and light
#: decorrelates by 0.2-0.5 only. None: the tracker's threshold alone.
CUT_CHECK: dict[str, Any] | None = {"floor": 0.1, "ratio": 5.0, "history": 12, "min_history": 3}


@dataclass
class SaSwapVideoOutput:
    """Result of :meth:`SaSwapPipeline.swap_video`.

    Attributes:
        path: the written video.
        frames: frames written.
        frames_swapped: frames in which at least one face was swapped.
        faces_swapped: face swaps over all frames.
        tracks: the track ids that were swapped.
        cache_path: the template cache used (None when it lived in a temporary folder).
        cache_hit: whether the template's analysis came from an existing cache.
        frames_repeated: frames that repeat the picture of the frame before them (frame-rate conversion), written
            with that frame's face instead of being made again.
        shots: shots in the frames written (shot cuts + 1).
        shots_swapped: shots in which a face was swapped (a shot without the chosen person stays as it is).
        track_sources: with several sources, each chosen track's source (its position in the list of sources);
            empty with one source.
        timings: seconds per stage: "analyze_source", "precompute" (building the cache; 0 on a hit),
            "decode", "analysis" (reading the cache), "engine", "compose" (compose and paste-back),
            "encode", "total" (wall time). "engine" and "compose" add up the worker threads' time, so with
            several workers the stages can sum to more than "total".
        fps: frames written per second of "total".
    """

    path: Path
    frames: int
    frames_swapped: int
    faces_swapped: int
    tracks: list[int]
    cache_path: Path | None
    cache_hit: bool
    frames_repeated: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    shots: int = 1
    shots_swapped: int = 0
    track_sources: dict[int, int] = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return self.frames / max(self.timings.get("total", 0.0), 1e-9)


#: Revision of the template analysis (bumped whenever its code changes what a cache holds, so older
#: caches of the same SaSwap version are rebuilt, not used).
ANALYSIS_REVISION = 14


def _settings(pipe) -> dict[str, Any]:
    return {
        **pipe.target_analyzer.config(),
        "smoothing": SMOOTHING,
        "tracking": TRACKING,
        "repeats": REPEATS,
        "cut_check": CUT_CHECK,
        "mask_window": MASK_WINDOW,
        "track_signal_seconds": (
            dict(seconds) if isinstance(seconds := pipe.engine.track_signal_seconds, Mapping) else seconds
        ),
        "revision": ANALYSIS_REVISION,
    }


def cache_settings(
    pipe, crop_size: int | str | None = None, start: float | None = None, end: float | None = None
) -> dict[str, Any]:
    """The analysis settings a template cache made by :func:`precompute_template` with these arguments is keyed by
    (with the video's content hash; :func:`~saswap.pipelines.cache.cache_path`).

    Raises:
        SaSwapError: a crop size the engine cannot work on.
    """
    sized = pipe.at_crop_size(pipe.crop_size_for([], crop_size))
    settings = _settings(sized)
    if crop_size == "auto" and sized.engine.resizable:  # one cache whatever size the faces turn out to need
        settings["engine"] = {**settings["engine"], "crop_size": "auto"}
    if start is not None or end is not None:
        settings["span"] = [start, end]
    return settings


def smooth_track_signals(
    engine, frames: list[list[Face]], fps: float, cuts: list[bool]
) -> list[dict[int, dict[str, float | np.ndarray]]]:
    """The engine's :meth:`~saswap.engines.base.SwapEngine.track_signals` of every face, smoothed along its track
    in both directions (a Gaussian of ``engine.track_signal_seconds``), within a shot and a run where the track is
    seen without a gap.

    Returns:
        per frame, track id -> {name: smoothed value}.

    Example:
        >>> class E:
        ...     track_signal_seconds = 0.1
        ...     def track_signals(self, face): return {"x": float(face.score)}
        >>> def face(score): return Face(np.zeros(4, np.float32), score, np.zeros((5, 2)), np.zeros((478, 3)),
        ...                              np.zeros((68, 2)), np.zeros(3), track_id=1)
        >>> out = smooth_track_signals(E(), [[face(0.0)], [face(1.0)], [face(0.0)]], 10.0, [False] * 3)
        >>> [round(f[1]["x"], 2) for f in out]
        [0.24, 0.4, 0.24]
    """
    from scipy.ndimage import gaussian_filter1d

    from saswap.engines.base import TRACK_SIGNAL_SECONDS

    out: list[dict[int, dict[str, float | np.ndarray]]] = [{} for _ in frames]
    seconds = engine.track_signal_seconds
    for (tid, _), members in track_runs(frames, cuts).items():
        signals = [engine.track_signals(frames[t][j]) for t, j in members]
        for name in signals[0]:
            per = seconds.get(name, TRACK_SIGNAL_SECONDS) if isinstance(seconds, Mapping) else seconds
            sigma = max(float(per) * fps, 0.0)
            values = np.array([v[name] for v in signals], np.float64)  # (frames,) or (frames, K)
            if sigma > 0 and len(values) > 1:
                values = gaussian_filter1d(values, sigma, axis=0, mode="nearest", truncate=3.0)
            for (t, _), v in zip(members, values):
                out[t].setdefault(tid, {})[name] = float(v) if np.ndim(v) == 0 else v
    return out


def smooth_track_motion(
    records: Iterator[FrameAnalysis],
    engine,
    source,
    shape_strength: float,
    fps: float,
    tracks: set[int] | None = None,
) -> Iterator[FrameAnalysis]:
    """A template's frame analyses in order, each face given the engine's :meth:`~saswap.engines.base.SwapEngine.
    track_motion` for ``source`` (several sources: a dict of each track's own), smoothed along its track in both
    directions (a Gaussian of the engine's ``motion_seconds``, truncated at 3 sigma, edges held as
    :func:`smooth_track_signals` holds them), within a shot and a run of distinct pictures where the track is seen; in
    the face's ``data["motion"]``.

    The motion depends on the source, so no cache can hold it: it is computed here, as the frames are read, which
    needs the frames up to 3 sigma ahead (at the geometric engine's 0.13 s and 30 fps, 12 frames' analyses of 0.3 MB
    each, whatever the video's length). An engine whose ``motion_seconds`` is 0 gets the records as they are. A frame that
    repeats an earlier picture is passed on as it is (its face is its picture's). ``tracks``: the tracks to swap
    (None: every face).

    Example:
        >>> from saswap.pipelines.analysis import TargetFace
        >>> class E:
        ...     motion_seconds = 0.1
        ...     def track_motion(self, face, source, strength, data): return np.array([face.score])
        >>> def frame(i, score): return FrameAnalysis(i, i, i / 10, [TargetFace(Face(np.zeros(4, np.float32), score,
        ...     np.zeros((5, 2)), np.zeros((478, 3)), np.zeros((68, 2)), np.zeros(3), track_id=1), np.eye(2, 3))])
        >>> out = smooth_track_motion(iter([frame(0, 0.0), frame(1, 1.0), frame(2, 0.0)]), E(), None, 1.0, 10.0)
        >>> [round(float(f.faces[0].data["motion"][0]), 2) for f in out]
        [0.24, 0.4, 0.24]
    """
    sigma = max(float(getattr(engine, "motion_seconds", 0.0)), 0.0) * float(fps)
    radius = int(3.0 * sigma + 0.5)
    if radius < 1:
        yield from records
        return
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    seen: dict[int, tuple[bool, dict[int, np.ndarray]]] = {}  # distinct picture -> (a cut before it, track -> motion)
    queue: deque = deque()  # (record, its distinct picture's number, or None for a repeat)

    def smoothed(p: int, tid: int) -> np.ndarray:
        lo = hi = p
        while lo > p - radius and not seen[lo][0] and tid in seen.get(lo - 1, (True, {}))[1]:
            lo -= 1
        while hi < p + radius and hi + 1 in seen and not seen[hi + 1][0] and tid in seen[hi + 1][1]:
            hi += 1
        values = np.stack([seen[i][1][tid] for i in np.clip(p + offsets, lo, hi)])
        return np.tensordot(kernel, values, axes=1)

    def emit(record: FrameAnalysis, p: int | None) -> FrameAnalysis:
        if p is not None:
            for tf in record.faces:
                if tf.face.track_id in seen[p][1]:
                    tf.data = {**tf.data, "motion": smoothed(p, tf.face.track_id)}
            for old in [k for k in seen if k < p - radius]:
                del seen[old]
        return record

    n = 0
    for record in records:
        if record.repeat_of is None:
            motions = {}
            for tf in record.faces:
                if tracks is None or tf.face.track_id in tracks:
                    own = source[tf.face.track_id] if isinstance(source, dict) else source
                    m = engine.track_motion(tf.crop_face, own, shape_strength, tf.data)
                    if m is not None:
                        motions[tf.face.track_id] = np.asarray(m, np.float64)
            seen[n] = (bool(record.shot_cut), motions)
            queue.append((record, n))
            n += 1
        else:
            queue.append((record, None))
        while queue and (queue[0][1] is None or queue[0][1] + radius < n):
            yield emit(*queue.popleft())
    while queue:
        yield emit(*queue.popleft())


#: A progress callback: called as ``callback(stage, done, total)`` after each frame of each stage ("analysing
#: template", "caching template", "swapping <name>"); ``total`` is None when the frame count is unknown. An
#: exception it raises stops the job (outputs are written atomically, so nothing is left).
ProgressCallback = Callable[[str, int, "int | None"], None]


class _CallbackBar:
    """A tqdm stand-in that reports each update to a :data:`ProgressCallback`."""

    def __init__(self, total: int | None, desc: str, callback: ProgressCallback) -> None:
        self.total, self.desc, self.callback, self.n = total, desc, callback, 0

    def __enter__(self) -> _CallbackBar:
        self.callback(self.desc, 0, self.total)
        return self

    def __exit__(self, *exc) -> None:
        return None

    def update(self, n: int = 1) -> None:
        self.n += n
        self.callback(self.desc, self.n, self.total)


def _progress(total: int | None, desc: str, enabled: bool | ProgressCallback):
    if callable(enabled):
        return _CallbackBar(total, desc, enabled)
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="frame", disable=not enabled, dynamic_ncols=True, leave=False)


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-", delete=True)
        probe.close()
        return True
    except OSError:
        return False


def _cache_folder_named(folder: Path, cache_dir: str | os.PathLike | None) -> str:
    """The cache folder as a message names it: where it came from when no ``cache_dir`` was given and
    ``$SASWAP_CACHE`` set it."""
    return f"{folder} (from $SASWAP_CACHE)" if cache_dir is None and os.environ.get("SASWAP_CACHE") else str(folder)


def _unwritable_why(folder: Path) -> str:
    """Why a cache folder :func:`_writable` refused cannot be used."""
    for up in (folder, *folder.parents):
        if up.is_file():
            what = "is a file" if up == folder else f"{up} is a file"
            return f"the template cache folder cannot be created ({what}, not a folder)"
    return "the template cache folder cannot be created or written"


#: Every how many seconds of a template a frame's faces are read turned four ways, to find a video whose content is
#: turned without its rotation metadata (:func:`~saswap.face.analyzer.content_turn`).
TURN_SURVEY_SECONDS = 0.5


def _detect_and_track(
    pipe, template: Path, info, start, end, threads, remote, progress, expected, turn: int, survey: bool
) -> tuple[list[list[Face]], list[bool], list[int], list[np.ndarray]]:
    """A template's first pass: faces detected (the picture read turned by ``turn`` quarter turns) and tracked through
    the video. Returns each frame's faces, whether a shot cut precedes it, the frame whose picture it repeats (or its
    own index), and with ``survey`` every :data:`TURN_SURVEY_SECONDS` a frame's upright scores
    (:meth:`~saswap.pipelines.analysis.TargetAnalyzer.upright_scores`)."""
    from saswap.face.temporal import FaceTracker
    from saswap.videoio import VideoReader

    tracker = FaceTracker(fps=info.fps, smooth=False, **TRACKING)
    repeats = RepeatDetector(**REPEATS) if REPEATS is not None else None
    frames_faces: list[list[Face]] = []
    cuts: list[bool] = []
    anchors: list[int] = []  # anchors[i]: the frame i repeats, or i
    upright: list[np.ndarray] = []
    analyser = pipe.target_analyzer
    detect = remote.detect if remote is not None else analyser.detect
    scores = remote.upright_scores if remote is not None else analyser.upright_scores
    every = max(1, round(info.fps * TURN_SURVEY_SECONDS)) if survey else 0
    recent: deque = deque(maxlen=MESH_BACKTRACK)  # the shot's last distinct frames: (position, picture)
    known: set[int] = set()  # the tracks seen so far

    def mesher():
        """The face mesh of this process's analyzer (loaded on first use: with worker processes, only when a face
        is lost), or None when its backend has none."""
        backend = getattr(analyser.analyzer, "backend", None)
        return backend if hasattr(backend, "mesh") and hasattr(backend, "roi_from_mesh") else None

    def scanned(reader):
        """(frame, whether it repeats the one before, whether a shot cut precedes it), in order on this thread."""
        for frame in reader:
            if repeats is not None and repeats(frame.image):  # never the first frame
                yield frame, True, False, None
            else:
                cut = tracker.is_shot_cut(frame.image) and frame.index > 0
                yield frame, False, cut, tracker.last_change

    def detected(item):
        frame, repeat, *_ = item
        if repeat:
            return None, None
        return detect(frame.image, turn), (scores(frame.image) if every and frame.index % every == 0 else None)

    changes: deque = deque(maxlen=CUT_CHECK["history"] if CUT_CHECK else 1)  # the shot's recent picture changes
    previous: np.ndarray | None = None  # the last distinct picture
    followed = _FollowCheck(lambda: pipe.identity_embedder(required=False))

    with (
        VideoReader(template, start=start, end=end) as reader,
        _progress(expected, "analysing template" if not turn else "analysing template, turned", progress) as bar,
        closing(ordered_map(detected, scanned(reader), threads)) as results,  # closed before the reader
    ):
        for (frame, repeat, cut, change), (found, reading) in results:
            check_interrupt()
            if repeat:
                anchors.append(anchors[-1])  # the same picture: the same faces, not detected again
                frames_faces.append(frames_faces[-1])
                cuts.append(False)
                bar.update(1)
                continue
            if reading is not None:
                upright.append(np.asarray(reading, np.float32))
            if remote is not None:
                analyser.calls += 1
            if not cut and _suspect_cut(change, changes) and found and frames_faces and frames_faces[-1]:
                if (embedder := pipe.identity_embedder(required=False)) is not None:
                    cut = _identity_cut(embedder, (previous, frames_faces[-1]), (frame.image, found), tracker)
                    if cut:
                        logger.info("%s: a new shot at frame %d (someone else there)", template, frame.index)
            if cut:
                changes.clear()
            elif change is not None:
                changes.append(change)
            previous = frame.image
            detected_here = len(found)
            if cut:
                tracker.tracks = []
                recent.clear()
            elif MESH_TRACKING:
                found = _refound(tracker, found, frame.image, mesher, followed, turn)
            faces = tracker.update(found)
            followed.anchor(frame.image, faces[:detected_here], tracker)
            faces = sorted(faces, key=lambda f: -f.area)
            if MESH_TRACKING:
                for face in faces:  # a face first found here: was it there, unseen, in the frames before?
                    if face.track_id not in known:
                        _backtrack(face, recent, frames_faces, mesher, tracker.iou_threshold, followed, turn)
                known.update(f.track_id for f in faces)
                recent.append((len(frames_faces), frame.image))
            frames_faces.append(faces)
            cuts.append(cut)
            anchors.append(len(anchors))
            bar.update(1)
    if followed.rejected:
        logger.info("%s: %d face(s) the face mesh followed were no longer their track's person; left out",
                    template, followed.rejected)  # fmt: skip
    return frames_faces, cuts, anchors, upright


def precompute_template(
    pipe,
    template: str | os.PathLike,
    cache_dir: str | os.PathLike | None = None,
    *,
    progress: bool | ProgressCallback = True,
    force: bool = False,
    start: float | None = None,
    end: float | None = None,
    workers: int | None = None,
    crop_size: int | str | None = None,
    whole_if_cached: bool = False,
) -> tuple[TemplateCache, bool]:
    """Analyse a template video once into its cache (or find the valid cache already there).

    Two passes over the video: faces are detected and tracked (shot cuts end tracks; a face the detector misses while
    its track lives is looked for again by the face mesh where the track says it is, :func:`_refound`, and a face first
    found mid-shot is followed back into the frames before, :func:`_backtrack`), each track is
    smoothed in both directions, then every face's alignment and target-only data (the engine's 3DMM fit,
    the compositor's occlusion and person masks) is computed from the smoothed landmarks and streamed to
    the cache file. A video whose picture is turned without rotation metadata (its faces upright only turned by 90,
    180 or 270 degrees, :func:`~saswap.face.analyzer.content_turn` over a frame every :data:`TURN_SURVEY_SECONDS`) is
    detected again with the picture read turned so. A frame that repeats the picture before it
    (:class:`~saswap.pipelines.analysis.RepeatDetector`; frame-rate conversion) is neither detected nor analysed: its
    record is that picture's, marked ``repeat_of``.

    Args:
        pipe: a :class:`~saswap.pipelines.image.SaSwapPipeline` (its engine, compositor and analyzer).
        template: the template video.
        cache_dir: the cache folder (default: :func:`~saswap.pipelines.cache.default_cache_dir`); one that
            cannot be written is an error here (a swap falls back to a temporary cache instead).
        progress: show progress bars, or a :data:`ProgressCallback` to call instead.
        force: rebuild even when a valid cache exists.
        start, end: analyse only this span (seconds; part of the cache's key). A persistent cache is best
            made for the whole template, which every trimmed swap can then use.
        whole_if_cached: with a span, the whole template's cache when one is there already (a swap's choice: a
            trimmed swap analyses only its span, but reuses the whole template's analysis where it exists).
        workers: worker processes that detect and describe the faces (:class:`~saswap.pipelines.workers.AnalysisWorkers`;
            tracking, smoothing and writing stay here, in frame order, so the analysis is the same up to floating-point
            rounding); 0 analyses in this process; None: :func:`default_analysis_workers`.
        crop_size: the engine's crop the faces are described for (part of the cache's key): None its own, a number
            that size, ``"auto"`` sized to the template's faces once they are found (:func:`template_crop_size`); the
            size made is the header's ``crop_size``.

    Returns:
        (the opened cache, whether it already existed).
    """
    from saswap.videoio import VideoReader, probe_video

    template = Path(template)
    check_workers(workers=workers)
    info = probe_video(template)
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if not _writable(folder):
        raise SaSwapError(f"{_cache_folder_named(folder, cache_dir)}: {_unwritable_why(folder)}")
    video_hash = file_sha256(template)
    pipe = pipe.at_crop_size(pipe.crop_size_for([], crop_size))  # a size asked for (checked); "auto": the engine's own
    auto = crop_size == "auto" and pipe.engine.resizable
    settings = cache_settings(pipe, crop_size, start, end)
    path = cache_path(folder, video_hash, settings)
    if whole_if_cached and "span" in settings:
        whole = cache_settings(pipe, crop_size)
        if cache_path(folder, video_hash, whole).exists():
            settings, path, start, end = whole, cache_path(folder, video_hash, whole), None, None
    if path.exists() and not path.is_file():  # a folder in its place: the cache could be neither read nor replaced
        raise SaSwapError(f"{path}: the template cache's place holds a folder, not a file; remove it")
    with writer_lock(path), ExitStack() as stack:
        if path.exists() and not force:
            try:
                return TemplateCache.open(path, video_hash, settings), True
            except CacheError as err:
                logger.warning("%s; rebuilding the template cache", err)
        expected = _expected_frames(info, start, end)
        threads, remote = _analysis_workers(pipe, workers, expected)
        if remote is not None:
            stack.enter_context(remote)  # one set of workers for every pass
        frames_faces, cuts, anchors, upright = _detect_and_track(
            pipe, template, info, start, end, threads, remote, progress, expected, turn=0, survey=True
        )
        from saswap.face.analyzer import content_turn

        turn = content_turn(np.stack(upright)) if upright else 0
        if turn:
            way = {1: "90 degrees counter-clockwise", 2: "180 degrees", 3: "90 degrees clockwise"}[turn]
            logger.warning(
                "%s: its faces stand upright only with the picture turned %s, and the file has no rotation that says "
                "so; the faces are read turned that way", template, way,
            )  # fmt: skip
            frames_faces, cuts, anchors, _ = _detect_and_track(
                pipe, template, info, start, end, threads, remote, progress, expected, turn=turn, survey=False
            )
        if not frames_faces:
            raise SaSwapError(f"{template}: no frames could be decoded")
        # Tracks are smoothed over the distinct pictures alone, so that a repeated frame is not a step in time (its
        # face is its anchor's); the One-Euro filter's time constants stay in seconds at their mean rate.
        unique = [i for i, a in enumerate(anchors) if a == i]
        rate = info.fps * len(unique) / len(anchors)
        smoothed_u = smooth_tracks([frames_faces[i] for i in unique], rate, [cuts[i] for i in unique], **SMOOTHING)
        signals_u = smooth_track_signals(pipe.engine, smoothed_u, rate, [cuts[i] for i in unique])
        position = {i: k for k, i in enumerate(unique)}
        smoothed = [smoothed_u[position[a]] for a in anchors]
        signals = [signals_u[position[a]] for a in anchors]
        size = template_crop_size(pipe, smoothed) if auto else pipe.engine.crop_size
        header = {
            "video": {"sha256": video_hash, "name": template.name, **info.to_dict()},
            "settings": settings,
            "span": [start, end],
            "cuts": [i for i, c in enumerate(cuts) if c],
            "repeats": len(anchors) - len(unique),
            "content_turn": turn,
            "crop_size": size,
            "frame_tracks": [[f.track_id for f in faces] for faces in smoothed],
            "tracks": _track_table(smoothed, cuts),
        }
        writer = CacheWriter(path, header)
        if remote is not None:
            describe = partial(remote.analyse, crop_size=size)
        else:
            describe = pipe.at_crop_size(size).target_analyzer
        identities = _TrackIdentities(pipe, header["tracks"])

        def described(frame):
            i = frame.index
            if i >= len(smoothed) or anchors[i] != i:
                return None
            return describe(frame.image, smoothed[i], index=i, pts=frame.pts, time=frame.time)

        try:
            with (
                VideoReader(template, start=start, end=end) as reader,
                _progress(len(smoothed), "caching template", progress) as bar,
                closing(ordered_map(described, reader, threads)) as results,
            ):
                # Frames are written MASK_WINDOW distinct frames late, once their neighbours on both sides are known;
                # a repeated frame is its anchor's analysis (steadied the same way), written right after it.
                window: list[FrameAnalysis] = []
                followers: list[list] = []  # per frame of ``window``: the (index, pts, time) of the frames repeating it
                centre = 0  # position in ``window`` of the next frame to write

                def emit(k: int) -> None:
                    steady = _steady_masks(window, k, MASK_WINDOW)
                    writer.add(steady)
                    for index, pts, time_ in followers[k]:
                        writer.add(
                            replace(steady, index=index, pts=pts, time=time_, shot_cut=False, repeat_of=steady.index)
                        )

                for frame, analysis in results:
                    check_interrupt()
                    i = frame.index
                    if i >= len(smoothed):
                        break
                    if anchors[i] != i:
                        followers[-1].append((i, frame.pts, frame.time))
                        bar.update(1)
                        continue
                    analysis.shot_cut = cuts[i]
                    identities.read(i, frame.image, analysis.faces)
                    for tf in analysis.faces:
                        for name, value in signals[i].get(tf.face.track_id, {}).items():
                            tf.data[name] = np.asarray(value, np.float32).reshape(-1)
                    window.append(analysis)
                    followers.append([])
                    if len(window) - 1 - centre >= max(MASK_WINDOW, 1):  # the centre's repeats are known too
                        emit(centre)
                        centre += 1
                        if centre > MASK_WINDOW:
                            window.pop(0)
                            followers.pop(0)
                            centre -= 1
                    bar.update(1)
                while centre < len(window):  # the last frames: fewer neighbours after them
                    emit(centre)
                    centre += 1
            identities.file(writer.header)
            writer.close()
        except BaseException:
            writer.abort()
            raise
    return TemplateCache.open(path, video_hash, settings), False


def template_crop_size(pipe, frames: list[list[Face]]) -> int:
    """The crop ``crop_size="auto"`` chooses for a template whose faces, frame by frame, are ``frames``: sized as for a
    photo (:func:`~saswap.pipelines.image.auto_crop_size`) to the largest face's median size over the frames that
    show one; the engine's own crop for a template without faces or an engine of one crop size."""
    from saswap.face.alignment import transform_scale
    from saswap.pipelines.image import auto_crop_size

    own = pipe.engine.crop_size
    scales = [min(transform_scale(pipe.engine.alignment(f)) for f in faces) for faces in frames if faces]
    if not scales or not pipe.engine.resizable:
        return own
    return auto_crop_size(own, float(np.median(scales)))


#: Occlusion masks are averaged over this many frames on each side (two-way, in the aligned crop).
MASK_WINDOW = 2

#: Whether a face the detector misses in a frame, while its track is alive, is looked for again by the face mesh in
#: the region its last face gives (:func:`_refound`).
MESH_TRACKING = True


def _suspect_cut(change: float | None, changes: deque) -> bool:
    """Whether a picture change may be a cut that the tracker's threshold missed (:data:`CUT_CHECK`)."""
    if CUT_CHECK is None or change is None or len(changes) < CUT_CHECK["min_history"]:
        return False
    return change > CUT_CHECK["floor"] and change > CUT_CHECK["ratio"] * max(float(np.median(changes)), 1e-4)


def _identity_cut(
    embedder, before: tuple[np.ndarray, list[Face]], after: tuple[np.ndarray, list[Face]], tracker
) -> bool:
    """Whether a frame starts a new shot that its picture's change alone did not tell: every face found where a face of
    the frame before was (box overlap at least the tracker's) is someone else, by ``embedder`` (cosine under its
    same-person threshold); the tracker would have carried that track on to another person. ``before``, ``after``:
    (picture, faces) of the two frames. No face where one was: no cut."""
    from saswap.face.geometry import box_iou
    from saswap.face.identity import cosine_similarity

    (image_b, faces_b), (image_a, faces_a) = before, after
    overlap = box_iou(
        np.stack([f.box for f in faces_a]).astype(np.float64), np.stack([f.box for f in faces_b]).astype(np.float64)
    )
    threshold = float(getattr(embedder, "same_person_cosine", 0.5))
    compared = False
    for i, j in enumerate(overlap.argmax(axis=1)):
        if overlap[i, j] < tracker.iou_threshold:
            continue
        if cosine_similarity(embedder(image_a, faces_a[i]), embedder(image_b, faces_b[j])) >= threshold:
            return False  # the same person carries on
        compared = True
    return compared


def _mesh_face(
    backend,
    image: np.ndarray,
    roi,
    near: np.ndarray,
    others: list[np.ndarray],
    score: float,
    overlap: float,
    turn: int = 0,
) -> Face | None:
    """The face the face mesh finds in ``roi`` of ``image`` (its face-presence gate deciding), when its box overlaps
    ``near`` (box overlap at least ``overlap``) and none of the boxes ``others`` (faces found there already: at most
    0.4); else None. What :func:`_refound` and :func:`_backtrack` both ask. ``turn``: the video's content turn
    (:func:`~saswap.face.analyzer.content_turn`)."""
    from saswap.face.geometry import box_iou

    mesh = backend.mesh(image, roi)
    if mesh is None:
        return None
    face = backend.face_from_mesh(mesh, score, turn)
    box = np.asarray(face.box, np.float64)[None]
    if box_iou(box, np.asarray(near, np.float64)[None])[0, 0] < overlap:
        return None  # the mesh settled somewhere else
    if others and box_iou(box, np.stack(others)).max() > 0.4:
        return None  # a face found already
    return face


class _FollowCheck:
    """Whether a face the face mesh follows (:func:`_refound`, :func:`_backtrack`) is still the person its track's
    detector saw: the identity embedding of the followed face against that of the track's latest face the detector
    found, at least the embedder's same-person cosine.

    The face mesh's presence gate alone lets a followed region drift off its face: onto the hair of a head pitched far
    down (the mesh then reads a face with its eyes at the hairline, and the swap puts the new face on the top of the
    head) or onto another person's head passing in front; its presence score stays near 1 on both. An identity
    embedder sees a crop aligned by those landmarks that is no longer the person. Without an embedder every followed
    face is taken (as before). Each anchor's embedding is computed once, and only when one of its track's faces is
    followed: faces the detector finds cost nothing.

    Args:
        embedder: a callable giving the identity embedder (``embedder(image, face)`` -> vector) or None.
    """

    def __init__(self, embedder: Callable[[], Any]) -> None:
        self._embedder = embedder
        self._anchors: dict[int, tuple[np.ndarray, Face]] = {}
        self._vectors: dict[int, np.ndarray] = {}
        self.rejected = 0

    def anchor(self, image: np.ndarray, faces: list[Face], tracker) -> None:
        """Record ``faces`` (found by the detector in ``image``, with their track ids) as their tracks' anchors; tracks
        the tracker has dropped are forgotten."""
        for face in faces:
            self._anchors[face.track_id] = (image, face)
            self._vectors.pop(face.track_id, None)
        live = {t.track_id for t in tracker.tracks}
        for tid in [t for t in self._anchors if t not in live]:
            del self._anchors[tid]
            self._vectors.pop(tid, None)

    def __call__(self, track_id: int, image: np.ndarray, face: Face) -> bool:
        from saswap.face.identity import cosine_similarity

        anchor = self._anchors.get(track_id)
        embedder = self._embedder() if anchor is not None else None
        if embedder is None:
            return True
        if track_id not in self._vectors:
            self._vectors[track_id] = np.asarray(embedder(*anchor))
        threshold = float(getattr(embedder, "same_person_cosine", 0.5))
        same = cosine_similarity(np.asarray(embedder(image, face)), self._vectors[track_id])
        self.rejected += same < threshold
        return same >= threshold


def _refound(
    tracker,
    found: list[Face],
    image: np.ndarray,
    mesher: Callable[[], Any],
    check: Callable[..., bool] | None = None,
    turn: int = 0,
) -> list[Face]:
    """``found`` (the detector's faces of a frame) plus the faces of live tracks it missed there, found again by the
    face mesh alone, as MediaPipe's own face tracking does: the mesh runs on the region the track's last face gives
    (its landmarks' box x1.5, turned with its eyes), moved by the track's predicted motion, and its face-presence gate
    decides.

    A face the detector misses for a few frames (motion blur, a dark or turned face, a hand passing in front) would
    otherwise end its run of frames: the swap faded out and in around every such gap, and a face found only now and
    then was swapped now and then. A face the mesh finds must lie where the track is predicted (box overlap at least the
    tracker's threshold) and not on a face already found, and ``check(track_id, image, face)``, when given, must accept
    it (:class:`_FollowCheck`); only a track seen with the 468-point mesh is looked for. ``mesher()`` gives the backend
    with ``mesh`` and ``roi_from_mesh`` (or None: ``found`` as it is). A face upside down over an upright one is not
    taken (:func:`~saswap.face.analyzer.upside_down_over`; up as the video's content turn ``turn`` says).
    """
    from saswap.face.analyzer import upside_down_over
    from saswap.face.geometry import box_iou

    out = list(found)
    boxes = [np.asarray(f.box, np.float64) for f in found]
    backend = None
    for track in tracker.tracks:
        last = track.face
        if last.landmarks is None or len(last.landmarks) < 468:
            continue
        predicted = np.asarray(last.box + track.velocity * (track.missed + 1), np.float64)
        if boxes and box_iou(predicted[None], np.stack(boxes)).max() >= tracker.iou_threshold:
            continue  # the detector found it (or a face where it is expected)
        backend = backend or mesher()
        if backend is None:
            return out
        cx, cy, size, angle = backend.roi_from_mesh(np.asarray(last.landmarks, np.float64))
        dx, dy = (predicted[:2] + predicted[2:]) / 2 - (np.asarray(last.box[:2] + last.box[2:], np.float64)) / 2
        roi = (cx + dx, cy + dy, size, angle)
        face = _mesh_face(backend, image, roi, predicted, boxes, float(last.score), tracker.iou_threshold, turn)
        if face is None or upside_down_over(face, out, turn=turn) or (check and not check(track.track_id, image, face)):
            continue
        out.append(face)
        boxes.append(np.asarray(face.box, np.float64))
    return out


#: How many distinct frames before a face's first detection in a shot the face mesh looks for it (:func:`_backtrack`):
#: a swap's fade-in lasts 5 frames by default.
MESH_BACKTRACK = 5


def _backtrack(
    face: Face,
    recent: deque,
    frames_faces: list[list[Face]],
    mesher: Callable[[], Any],
    overlap: float,
    check: Callable[..., bool] | None = None,
    turn: int = 0,
) -> None:
    """Extend a track first found in this frame backwards, into the ``recent`` distinct frames of its shot (latest
    first), while the face mesh finds its face there: on the region of the face one frame later, its face-presence gate
    deciding, overlapping that face (box overlap at least ``overlap``, the tracker's) and no face already found there
    (at most 0.4). What it finds is added to those frames' faces (``frames_faces``, in place: a repeated frame shares
    its picture's list), and ``check(track_id, picture, face)``, when given, accepting it (:class:`_FollowCheck`).
    ``turn``: the video's content turn (:func:`~saswap.face.analyzer.content_turn`).

    The template is known before any swap, so a face the detector finds only after it came into view (out of the
    shadow, turning towards the camera, a hand moving away) is swapped from where it was, not faded in after it.
    """
    from saswap.face.analyzer import upside_down_over

    later = face
    backend = None
    for position, image in reversed(recent):
        if later.landmarks is None or len(later.landmarks) < 468:
            return
        backend = backend or mesher()
        if backend is None:
            return
        present = frames_faces[position]
        roi = backend.roi_from_mesh(np.asarray(later.landmarks, np.float64))
        others = [np.asarray(f.box, np.float64) for f in present]
        earlier = _mesh_face(backend, image, roi, later.box, others, float(face.score), overlap, turn)
        if earlier is None or upside_down_over(earlier, present, turn=turn):
            return
        if check and not check(face.track_id, image, earlier):
            return
        earlier = replace(earlier, track_id=face.track_id)
        present.append(earlier)
        present.sort(key=lambda f: -f.area)
        later = earlier


def _steady_masks(frames: list[FrameAnalysis], centre: int, reach: int) -> FrameAnalysis:
    """``frames[centre]`` with each face's occlusion masks (``occlusion``, ``occluder``) made steady: the
    majority over the same track's masks up to ``reach`` frames on either side within its shot, in the
    aligned crop (which follows the head, so an occluder on the face stays put); and its blur and texture readings
    (``blur``, ``texture``, :meth:`~saswap.compose.Compositor.analyze_target`) the means of the same frames' readings.

    Occlusion is decided pixel by pixel and frame by frame; without this the masks' edges flicker (with
    the colour rules, most of the occluded area's pixels flipped within a few frames on the talking heads),
    and the blur added to the new face (or the texture taken from it) would follow its reading's noise.
    The frames in ``frames`` are left as they are (their raw masks serve their neighbours).
    """
    record = frames[centre]
    faces = []
    for tf in record.faces:
        # the same track's face in the frames within ``reach`` of the centre, in its shot
        same = []
        for k in range(max(0, centre - reach), min(len(frames), centre + reach + 1)):
            lo, hi = min(k, centre), max(k, centre)
            if any(frames[j].shot_cut for j in range(lo + 1, hi + 1)):
                continue  # another shot
            same += [o for o in frames[k].faces if o.face.track_id == tf.face.track_id][:1]
        data = dict(tf.data)
        for key in ("occlusion", "occluder"):
            masks = [o.data[key] for o in same if key in o.data]
            if key in data and len(masks) >= 3:
                data[key] = (np.mean(masks, axis=0) >= 0.5).astype(np.uint8)
        for key in ("blur", "texture"):
            if key in data:
                values = [float(o.data[key][0]) for o in same if key in o.data and np.isfinite(o.data[key][0])]
                if values:
                    data[key] = np.array([np.mean(values)], np.float32)
        faces.append(TargetFace(tf.face, tf.transform, data))
    return replace(record, faces=faces)


def _track_table(frames: list[list], cuts: list[bool]) -> dict[str, dict[str, Any]]:
    """Per track: first and last frame, frames seen, summed face area, shot number, its largest face's frame."""
    table: dict[str, dict[str, Any]] = {}
    shot = 0
    for t, faces in enumerate(frames):
        shot += bool(cuts[t])
        for f in faces:
            entry = table.setdefault(
                str(f.track_id), {"first": t, "last": t, "frames": 0, "area": 0.0, "shot": shot, "best": t, "best_area": 0.0}
            )
            entry["last"] = t
            entry["frames"] += 1
            entry["area"] += f.area
            if f.area > entry["best_area"]:
                entry["best"], entry["best_area"] = t, f.area
    return table


class _TrackIdentities:
    """Each track's identity embedding, read at its largest face (the track table's ``best`` frame) while a template is
    cached, and filed into the cache's track table (``identity``, with the embedder's name and same-person cosine in
    the header's ``identity``): what tells a person whose track broke off within a shot (turned away or covered for
    longer than the tracker waits) from someone else (:func:`_persons`). The default embedder (OpenCV Zoo's SFace,
    installed with SaSwap), or the pipeline's own; without one, no identities (each track is a person of its own)."""

    def __init__(self, pipe, tracks: dict[str, dict[str, Any]]) -> None:
        self._pipe = pipe
        self._embedder = None
        self.wanted: dict[int, set[int]] = {}
        for k, v in tracks.items():
            self.wanted.setdefault(int(v["best"]), set()).add(int(k))
        self.found: dict[int, np.ndarray] = {}

    def _get(self):
        self._embedder = self._pipe.identity_embedder(required=False)  # the pipeline's, made once; none: tracks apart
        return self._embedder

    def read(self, index: int, image: np.ndarray, faces: list[TargetFace]) -> None:
        """Embed the faces of frame ``index`` whose tracks have their largest face there."""
        ids = self.wanted.get(index)
        if not ids:
            return
        for tf in faces:
            if tf.face.track_id in ids and (embedder := self._get()):
                self.found[tf.face.track_id] = np.asarray(embedder(image, tf.face), np.float32).reshape(-1)

    def file(self, header: dict[str, Any]) -> None:
        """Put what was read into ``header`` (before the cache is closed)."""
        if not self.found or self._embedder is None:
            return
        header["identity"] = {
            "embedder": type(self._embedder).__name__,
            "same_person_cosine": float(getattr(self._embedder, "same_person_cosine", 0.5)),
        }
        for tid, vector in self.found.items():
            header["tracks"][str(tid)]["identity"] = [round(float(x), 5) for x in vector]


def _persons(header: dict[str, Any], members: list[int]) -> list[list[int]]:
    """Tracks grouped into people: a track joins the person whose tracks it does not overlap in time and whose identity
    (the cached embedding of each track's largest face) it matches best, with every track of that person at least the
    embedder's same-person cosine. Tracks with the larger faces are placed first (their embeddings are the surer);
    tracks without an identity stay on their own. People in order of first appearance, their tracks too.

    Example:
        >>> tracks = {"1": {"first": 0, "last": 9, "identity": [1.0, 0.0]}, "2": {"first": 5, "last": 30,
        ...     "identity": [0.0, 1.0]}, "3": {"first": 15, "last": 30, "identity": [0.9, 0.1]}}
        >>> _persons({"tracks": tracks, "identity": {"same_person_cosine": 0.5}}, [1, 2, 3])
        [[1, 3], [2]]
    """
    tracks = header["tracks"]
    threshold = float(header.get("identity", {}).get("same_person_cosine", 1.0))

    def unit(tid: int) -> np.ndarray | None:
        vector = tracks[str(tid)].get("identity")
        if vector is None:
            return None
        v = np.asarray(vector, np.float64)
        return v / max(float(np.linalg.norm(v)), 1e-12)

    def span(tid: int) -> tuple[int, int]:
        return tracks[str(tid)]["first"], tracks[str(tid)]["last"]

    persons: list[list[int]] = []
    for tid in sorted(members, key=lambda t: (-tracks[str(t)].get("best_area", 0.0), span(t)[0], t)):
        mine, (first, last) = unit(tid), span(tid)
        best, best_score = None, threshold
        for person in persons if mine is not None else ():
            if not all(last < span(o)[0] or span(o)[1] < first for o in person):
                continue  # seen at the same time: someone else
            others = [unit(o) for o in person]
            if any(v is None for v in others):
                continue
            score = min(float(v @ mine) for v in others)
            if score >= best_score:
                best, best_score = person, score
        if best is None:
            persons.append([tid])
        else:
            best.append(tid)
    for person in persons:
        person.sort(key=lambda t: (span(t)[0], t))
    return sorted(persons, key=lambda person: (span(person[0])[0], person[0]))


def template_people(header: dict[str, Any]) -> list[dict[str, Any]]:
    """The people of a cached template, in the order ``face_index`` counts them (index 0, the default, first).

    With the tracks' identities in the cache, a person is the tracks :func:`_persons` groups over the whole video (a
    face lost and found again, or seen again after a cut), ranked by summed face area. Without them (no embedder) no
    one can be followed across a cut, and entry ``i`` holds the ``i``-th largest track of each shot.

    Args:
        header: a template cache's header (:attr:`~saswap.pipelines.cache.TemplateCache.header`).

    Returns:
        One dict per person: ``tracks`` (track ids), ``frames`` (frames where the face was found), ``shots`` (shot
        numbers, from 0), ``first`` and ``last`` (frame indices), ``area`` (summed face area, pixels) and ``size``
        (the face's typical side, pixels: the root of its mean area).

    Example:
        >>> tracks = {"1": {"first": 0, "last": 9, "frames": 10, "area": 1000.0, "shot": 0, "identity": [1.0, 0.0]},
        ...     "2": {"first": 10, "last": 19, "frames": 10, "area": 4000.0, "shot": 1, "identity": [0.0, 1.0]}}
        >>> [p["tracks"] for p in template_people({"tracks": tracks, "identity": {"same_person_cosine": 0.5}})]
        [[2], [1]]
    """
    tracks = header["tracks"]
    if "identity" in header:
        groups = [[int(k) for k in tracks]]
    else:
        by_shot: dict[int, list[int]] = {}
        for k, v in tracks.items():
            by_shot.setdefault(v["shot"], []).append(int(k))
        groups = list(by_shot.values())
    ranked: list[list[int]] = []
    for members in groups:
        people = sorted(
            _persons(header, members), key=lambda person: (-sum(tracks[str(t)]["area"] for t in person), person[0])
        )
        for i, person in enumerate(people):
            if i == len(ranked):
                ranked.append([])
            ranked[i].extend(person)
    out = []
    for ids in ranked:
        rows = [tracks[str(t)] for t in sorted(ids)]
        frames = sum(int(r.get("frames", r["last"] - r["first"] + 1)) for r in rows)
        area = float(sum(r["area"] for r in rows))
        out.append({
            "tracks": sorted(ids), "frames": frames, "shots": sorted({int(r["shot"]) for r in rows}),
            "first": min(r["first"] for r in rows), "last": max(r["last"] for r in rows), "area": area,
            "size": float(np.sqrt(area / max(frames, 1))),
        })  # fmt: skip
    return out


def _select_tracks(header: dict[str, Any], face_index: int | None, all_faces: bool) -> set[int]:
    """Tracks to swap: every track, or the ``face_index``-th person of :func:`template_people` (0, the default: the
    one with the largest summed face area), wherever that person is seen. With the cached identities the chosen person
    is followed across shots and no one else is swapped (an audience in a cutaway, the other side of a dialogue);
    without them, the ``face_index``-th largest track of each shot."""
    tracks = header["tracks"]
    if all_faces:
        return {int(k) for k in tracks}
    index = 0 if face_index is None else int(face_index)
    people = template_people(header)
    if not 0 <= index < len(people):
        if not tracks:
            return set()
        raise SaSwapError(
            f"face index {index} out of range: {len(people)} person(s) in the template (saswap precompute TEMPLATE "
            "lists them)"
        )
    return set(people[index]["tracks"])


def _reference_tracks(scores: dict[int, float], threshold: float) -> tuple[set[int], float]:
    """The reference person's tracks: the best-matching track, and every track the embedder takes for the same person
    (someone who leaves and comes back, or appears in another shot); and the best cosine."""
    best = max(scores.values(), default=-1.0)
    return {tid for tid, s in scores.items() if s >= threshold or s == best}, best


def _track_sources(pipe, template: Path, opened: TemplateCache, pairing) -> tuple[dict[int, int], dict[int, float]]:
    """With several sources (:func:`~saswap.pipelines.image.pair_sources`): each chosen track's source (its position
    in the list), and with references, each chosen track's cosine to its own reference.

    By face index, source ``k`` replaces the ``face_index[k]``-th person of :func:`template_people`; by reference, the
    person most like reference ``k`` (:func:`_reference_tracks`), a track that two references take for theirs going to
    the nearer. Two selectors that name one person are an error.
    """
    from saswap.pipelines.image import _name, warn_weak_reference

    header = opened.header
    owner: dict[int, int] = {}
    if pairing.by == "face_index":
        people = template_people(header)
        for k, index in enumerate(pairing.selectors):
            if not 0 <= index < len(people):
                raise SaSwapError(
                    f"{template}: face index {index} out of range: {len(people)} person(s) in the template (saswap "
                    "precompute TEMPLATE lists them)"
                )
            owner.update({tid: k for tid in people[index]["tracks"]})
        return owner, {}
    threshold = getattr(pipe.identity_embedder(), "same_person_cosine", 0.5)
    # with the tracks' identities cached, tracks of one person (seen again after a cut) are one person here too
    person = {t: i for i, p in enumerate(template_people(header)) for t in p["tracks"]} if "identity" in header else {}
    best_track: dict[int, int] = {}  # the best-matching track -> the reference that has it
    matched: dict[int, int] = {}  # the best-matching person (or track) -> the reference that has it
    own: dict[int, float] = {}
    identities = _track_identities(pipe, template, opened)  # read once for every reference
    for k, reference in enumerate(pairing.selectors):
        scores = _reference_scores(pipe, template, opened, reference, identities)
        chosen, best = _reference_tracks(scores, threshold)
        if scores:
            warn_weak_reference(str(template), best, threshold)
            top = max(scores, key=scores.get)
            who = person.get(top, -1 - top)
            if who in matched:
                first = matched[who]
                raise SaSwapError(
                    f"{template}: references {first + 1} ({_name(pairing.selectors[first], 'reference')}) and {k + 1} "
                    f"({_name(reference, 'reference')}) both match the same person best (track {top}); give a "
                    "reference of a different person for each source"
                )
            best_track[top] = matched[who] = k
        logger.info("reference %d match: tracks %s (best cosine %.3f)", k + 1, sorted(chosen), best)
        for tid in chosen:
            if tid not in owner or scores[tid] > own[tid]:
                owner[tid], own[tid] = k, scores[tid]
    for tid, k in best_track.items():  # each reference keeps its best match
        owner[tid], own[tid] = k, float("inf")
    return owner, own


def describe_people(header: dict[str, Any], fps: float, most: int = 5) -> list[str]:
    """Lines telling the people of a cached template (:func:`template_people`), as ``--face-index`` counts them."""
    people = template_people(header)
    lines = []
    for i, person in enumerate(people[:most]):
        shots = len(person["shots"])
        span = f"{person['first'] / fps:.1f}-{(person['last'] + 1) / fps:.1f} s"
        lines.append(
            f"  --face-index {i}: seen in {person['frames']} frames, {shots} shot{'s' if shots != 1 else ''} "
            f"({span}), face about {person['size']:.0f} px" + (" (the default)" if i == 0 else "")
        )
    if len(people) > most:
        lines.append(f"  ... and {len(people) - most} more")
    return lines


def _track_identities(pipe, template: Path, opened: TemplateCache) -> dict[int, np.ndarray]:
    """Each track's largest face embedded by the pipeline's identity embedder: from the identities the template cache
    holds when they come from the same embedder, else embedded from the template's frames (read once)."""
    from saswap.videoio import VideoReader

    embedder = pipe.identity_embedder()
    cached = opened.header.get("identity", {}).get("embedder")
    tracks = opened.header["tracks"]
    if cached == type(embedder).__name__ and tracks and all("identity" in v for v in tracks.values()):
        # the template cache holds each track's largest face embedded by the same embedder: no need to read the video
        return {int(k): np.asarray(v["identity"], np.float32) for k, v in tracks.items()}
    wanted: dict[int, set[int]] = {}
    for k, v in tracks.items():
        wanted.setdefault(v["best"], set()).add(int(k))
    found: dict[int, np.ndarray] = {}
    if not wanted:
        return found
    last = max(wanted)
    span_start, span_end = opened.header.get("span", [None, None])
    with VideoReader(template, start=span_start, end=span_end) as reader:
        for frame, record in zip(reader, opened.frames(0)):
            for tf in record.faces if frame.index in wanted else ():
                if tf.face.track_id in wanted[frame.index]:
                    found[tf.face.track_id] = embedder(frame.image, tf.face)
            if frame.index >= last:
                break
    return found


def _reference_scores(
    pipe, template: Path, opened: TemplateCache, reference, identities: dict[int, np.ndarray] | None = None
) -> dict[int, float]:
    """Cosine similarity of each track's largest face to the reference photo's face (``identities``: the tracks'
    :func:`_track_identities`, when already read for another reference)."""
    from saswap.face.identity import cosine_similarity

    embedder = pipe.identity_embedder()
    ref_img, ref_face = pipe.reference_face(reference)
    ref = embedder(ref_img, ref_face)
    if identities is None:
        identities = _track_identities(pipe, template, opened)
    return {tid: cosine_similarity(ref, e) for tid, e in identities.items()}


def warn_turned_frames(template: str, times: Sequence[float], swapped: int) -> None:
    """Warn (log) once for a whole video about the swapped frames whose face is turned too far to the side
    (:func:`~saswap.pipelines.image.target_turned`; ``times``: those frames' times, in order), which swap badly (less
    of the source's identity, patches on the far side): how many, and from when to when."""
    if not times:
        return
    from saswap.pipelines.image import TARGET_YAW_WARN

    logger.warning(
        "%s: in %d of %d swapped frames (%.1f-%.1f s) the face is turned more than %.0f degrees to the side (yaw); there "
        "a swap keeps less of the source's identity and its far side may show patches",
        template, len(times), swapped, min(times), max(times), TARGET_YAW_WARN,
    )  # fmt: skip


def _fade_weights(header: dict[str, Any], chosen: set[int], fade: int) -> Iterator[dict[int, float]]:
    """Per frame, the weight of each chosen track present: a swap fades in and out over ``fade`` frames
    where the face is found or lost within a shot (not at a shot cut or the video's ends)."""
    frame_tracks = header["frame_tracks"]
    n = len(frame_tracks)
    cuts = set(header["cuts"])
    present = [set(ids) & chosen for ids in frame_tracks]
    # run boundaries per track
    start: dict[int, int] = {}
    runs: dict[int, list[tuple[int, int]]] = {}
    for t in range(n + 1):
        ids = present[t] if t < n else set()
        for tid in list(start):
            if tid not in ids or t in cuts:
                runs.setdefault(tid, []).append((start.pop(tid), t - 1))
        for tid in ids:
            if tid not in start:
                start[tid] = t
    weight_at: dict[tuple[int, int], float] = {}
    for tid, spans in runs.items():
        for a, b in spans:
            soft_in = a > 0 and a not in cuts
            soft_out = b < n - 1 and (b + 1) not in cuts
            for t in range(a, b + 1):
                w = 1.0
                if soft_in and fade > 0:
                    w = min(w, (t - a + 1) / (fade + 1))
                if soft_out and fade > 0:
                    w = min(w, (b - t + 1) / (fade + 1))
                if w < 1.0:
                    weight_at[(t, tid)] = w
    for t in range(n):
        yield {tid: weight_at.get((t, tid), 1.0) for tid in present[t]}


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (a link or another spelling of it too); False when either is missing."""
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def swap_video(
    pipe,
    source,
    template: str | os.PathLike,
    output: str | os.PathLike,
    *,
    shape_strength: float = 1.0,
    face_index: int | None = None,
    all_faces: bool = False,
    reference=None,
    enhance: str | None = None,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
    start: float | None = None,
    end: float | None = None,
    codec: str | None = None,
    crf: int | None = 14,  # saswap.videoio.DEFAULT_CRF (PyAV is imported only when a video is read)
    preset: str | None = "veryfast",
    fade_frames: int = 5,
    progress: bool | ProgressCallback = True,
    tag: dict[str, Any] | None = None,
    workers: int | None = None,
    processes: bool | None = None,
    tone_reach: int = 12,
    skin_sigma: float = 0.0,
    codec_threads: bool = True,
    analysis_workers: int | None = None,
    crop_size: int | str | None = None,
) -> SaSwapVideoOutput:
    """Swap the source's face into a template video (see :meth:`SaSwapPipeline.swap_video`; ``workers``
    threads, or with ``processes`` worker processes, make frames; ``analysis_workers`` analyse a template not yet
    cached (:func:`precompute_template`'s ``workers``); ``tone_reach`` is the :class:`ToneStabiliser`'s
    (frames each side), 0 switches it off; ``skin_sigma`` is the :class:`SkinStabiliser`'s (frames), 0 switches it
    off; ``codec_threads=False`` decodes and encodes on one thread each, for a process meant to use one core;
    ``crop_size`` is the engine's crop for the whole video, :func:`precompute_template`'s). Several sources, each
    paired with a face index or a reference (:func:`~saswap.pipelines.image.pair_sources`), replace a person each:
    the tracks of each person are swapped with that person's source (threads and worker processes hold every
    prepared source; each face says which it takes)."""
    from saswap.engines.base import SourceFace
    from saswap.pipelines.image import kept_crop_size_of, pair_sources, target_turned, warn_weak_reference
    from saswap.pipelines.threads import blas_threads
    from saswap.provenance import make_tag
    from saswap.videoio import VIDEO_TAG_KEY, VideoReader, VideoWriter, open_video_writer, probe_video

    t0 = time.perf_counter()
    template, output = Path(template), Path(output)
    if not 0.0 <= shape_strength <= 1.0:
        raise SaSwapError(f"shape_strength must lie in [0, 1], got {shape_strength}")
    if isinstance(fade_frames, bool) or not isinstance(fade_frames, (int, np.integer)) or fade_frames < 0:
        raise SaSwapError(f"fade_frames must be a whole number of frames, 0 or more, got {fade_frames!r}")
    if _same_file(output, template):  # the swap reads the template while it writes, and the original would be lost
        raise SaSwapError(f"{output}: is the template video itself; give another output file")
    pairing = pair_sources(source, face_index, all_faces, reference)
    if pairing is None and sum(x is not None for x in (face_index, reference)) + bool(all_faces) > 1:
        raise SaSwapError("choose one of face_index, all_faces and reference")
    if (start is not None and start < 0) or (start is not None and end is not None and end <= start):
        raise SaSwapError(f"{template}: need 0 <= start < end, got start={start}, end={end}")
    check_workers(workers=workers, analysis_workers=analysis_workers)
    info = probe_video(template)
    pipe.crop_size_for([], crop_size)  # a size the engine cannot work on is refused before any work
    # An enhancer that cannot be loaded is reported now, not at the first face (after the template's analysis).
    # Loaded here, it is the one the frame threads use; worker processes load their own, and this one is let go.
    enhancer_loaded_here = bool(enhance) and enhance not in pipe._enhancers
    if enhance:
        pipe._get_enhancer(enhance)
    timings = {k: 0.0 for k in ("analyze_source", "precompute", "decode", "analysis", "engine", "compose", "encode")}
    sources = []
    for one in [source] if pairing is None else pairing.sources:
        sources.append(one if isinstance(one, SourceFace) else pipe.prepare_source(one)[0])
    crop_size = kept_crop_size_of(crop_size, sources)
    timings["analyze_source"] = time.perf_counter() - t0

    tp = time.perf_counter()
    temp_dir = None
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if cache and not _writable(folder):
        logger.warning("%s: %s; swapping without a persistent cache", _cache_folder_named(folder, cache_dir),
                       _unwritable_why(folder))  # fmt: skip
        cache = False
    if not cache:
        temp_dir = tempfile.TemporaryDirectory(prefix="saswap-cache-")
        folder = Path(temp_dir.name)
    try:
        # A trimmed swap uses the whole template's cache where one exists (every trimmed swap reuses it); otherwise it
        # analyses its span alone (a cache of its own), not the whole video: 2 s of a 34-s clip took 48 s, 43 of them
        # analysing frames it never swaps.
        opened, hit = precompute_template(
            pipe, template, folder, progress=progress, workers=analysis_workers, crop_size=crop_size, start=start,
            end=end, whole_if_cached=True,
        )  # fmt: skip
        timings["precompute"] = 0.0 if hit else time.perf_counter() - tp
        header = opened.header
        # the whole video in the crop its cache is made for; the source prepared for it (once), and its photo not sent
        # to the frame workers
        size = int(header.get("crop_size", pipe.engine.crop_size))
        ts = time.perf_counter()
        base, pipe = pipe, pipe.at_crop_size(size)
        sources = [replace(base.source_at(one, size), origin=None) for one in sources]
        # one source: itself (as ever); several: all of them, each face taking its track's
        prepared = sources[0] if pairing is None else sources
        timings["analyze_source"] += time.perf_counter() - ts
        if not header["tracks"]:
            raise NoFaceError(f"{template}: no face found in the video ({len(opened)} frames)")
        track_source: dict[int, int] = {}  # several sources: each chosen track's
        if pairing is not None:
            track_source, scores = _track_sources(pipe, template, opened, pairing)
            chosen = set(track_source)
        elif reference is not None:
            scores = _reference_scores(pipe, template, opened, reference)
            # The reference person: the best-matching track, and every track the embedder takes for the same
            # person (someone who leaves and comes back, or appears in another shot).
            threshold = getattr(pipe.identity_embedder(), "same_person_cosine", 0.5)
            chosen, best = _reference_tracks(scores, threshold)
            if scores:
                warn_weak_reference(str(template), best, threshold)
            logger.info("reference match: tracks %s (best cosine %.3f)", sorted(chosen), best)
        else:
            try:
                chosen = _select_tracks(header, face_index, all_faces)
            except SaSwapError as err:
                raise SaSwapError(f"{template}: {err}") from None
            scores = {}
        weights = list(_fade_weights(header, chosen, fade_frames))
        from saswap.pipelines.image import compose_provenance, engine_provenance

        own = {
            **engine_provenance(pipe.engine), "shape_strength": shape_strength, **compose_provenance(pipe.compositor),
            **({} if pairing is None else {"sources": len(sources)}),
        }  # fmt: skip
        tag = make_tag(**{**own, "media": "video", "crop_size": size, **(tag or {})})  # a caller's fields (a batch job's)
        metadata = {VIDEO_TAG_KEY: _json(tag)}
        frames = swapped_frames = swapped_faces = repeated = 0
        turned: list[float] = []  # the times of the swapped frames whose face is turned too far to swap well
        reach = max(0, int(tone_reach))
        used: set[int] = set()

        stabiliser = ToneStabiliser(tone_reach) if tone_reach > 0 else None
        skin = SkinStabiliser(skin_sigma, size=pipe.engine.crop_size) if skin_sigma > 0 else None
        held: deque = deque()  # frames made and measured, waiting for the stabiliser's lookahead

        n_workers, remote = _frame_workers(
            pipe, prepared, shape_strength, enhance, workers, processes, _expected_frames(info, start, end)
        )
        if remote is not None and enhancer_loaded_here:
            pipe._enhancers.pop(enhance, None)  # each worker process holds its own copy
        pending: deque = deque()
        frame_cut: dict = {}
        # Threads make the frames beside decoding and encoding on this thread (with ``processes``, each thread
        # hands its frame's faces to a worker process). Measured on 3 s of 720p (s32, cached, 2 cores): one
        # thread 7.0 s, two 5.8 s; on 30 s, two worker processes 0-12% faster than two threads (four runs, stop 33).
        pool = ThreadPoolExecutor(max(1, n_workers))
        make_faces = remote.make_faces if remote is not None else None
        # the workers (and the codec's threads) use the cores; the maths inside each frame runs on its own thread
        with (
            remote or nullcontext(),
            blas_threads(1),
            VideoReader(template, start=start, end=end, threads=codec_threads) as reader,
            pool,
        ):
            with open_video_writer(
                output, like=reader, codec=codec, crf=crf, preset=preset, metadata=metadata, threads=codec_threads
            ) as writer:
                # A frame waits for the stabiliser's reach once it is made; a video writer then needs its raw YUV and
                # the new picture alone (a GIF writer, or the skin stabiliser's reading, its decoded picture too): at
                # 4K, 25 MB less a frame held.
                light = skin is None and isinstance(writer, VideoWriter)
                records = None
                made_anchor = None  # the picture (the cache's index of its first showing) the last frame made shows
                last_made: list = [None, None, []]  # that frame as written: box, out, masks

                finish_s = [0.0]

                skin_held: deque = deque()  # frames shifted, waiting for the skin stabiliser's lookahead

                def finish(frame, faces, box, out, masks, cut=False, anchor=None) -> None:
                    t3 = time.perf_counter()
                    if frame is None:  # the end of the video: write what the skin stabiliser still holds
                        while skin_held:
                            release(*skin_held.popleft())
                        finish_s[0] += time.perf_counter() - t3
                        return
                    repeat = box is _REPEAT
                    if repeat:  # the picture of the frame made before it: its face, pasted again
                        box, out, masks = last_made
                    else:
                        if stabiliser is not None and box is not None:
                            for tf in faces:
                                stabiliser.apply(tf.face.track_id, frame.index, out)
                            stabiliser.forget(frame.index)
                        last_made[:] = [box, out, masks]
                    if skin is None:
                        release(frame, faces, box, out, masks, repeat)
                    else:
                        # the skin is read once the tone is settled, and smoothed once the frames after it are read
                        if repeat:
                            for tf in faces:
                                skin.repeat(tf.face.track_id, frame.index, anchor)
                        elif box is not None:
                            for tf, m in zip(faces, masks):
                                full = _full_mask(m, box, out.shape)
                                reading = skin.reading(out, frame.image, full, tf.transform, tf.face)
                                skin.record(tf.face.track_id, frame.index, cut, reading)
                        skin_held.append((frame, faces, box, out, masks, repeat))
                        while skin_held and skin_held[0][0].index + skin.reach <= frame.index:
                            release(*skin_held.popleft())
                    finish_s[0] += time.perf_counter() - t3  # (on its own thread with workers: summed at the end)

                def release(frame, faces, box, out, masks, repeat) -> None:
                    nonlocal frames, swapped_frames, swapped_faces, repeated
                    # a repeat shares its picture's frame, which that picture's own release smoothed already
                    if skin is not None and box is not None and not repeat:
                        for tf in faces:
                            skin.apply(tf.face.track_id, frame.index, out)
                        skin.forget(frame.index)
                    encode.submit(out, frame, box, masks)
                    repeated += int(repeat)
                    if box is not None:
                        swapped_frames += 1
                        swapped_faces += len(faces)
                        if any(target_turned(tf.face) for tf in faces):
                            turned.append(frame.time)
                        used.update(tf.face.track_id for tf in faces)
                    frames += 1

                def drain(limit: int, final: bool = False) -> None:
                    while len(pending) > limit:
                        frame, faces, future, anchor = pending.popleft()
                        box, out, masks, stage, readings = future.result()
                        if light:  # made: the decoded picture is no longer needed, only the frame's raw YUV
                            frame = replace(frame, image=_NO_PICTURE)
                        timings["engine"] += stage.get("swap", 0.0)
                        t3 = time.perf_counter()
                        cut = frame_cut.pop(frame.pts, False)
                        if stabiliser is not None and box is _REPEAT:
                            for tf in faces:
                                stabiliser.repeat(tf.face.track_id, frame.index, anchor)
                        elif stabiliser is not None and box is not None:
                            for tf, reading in zip(faces, readings):
                                stabiliser.record(tf.face.track_id, frame.index, cut, reading)
                        timings["compose"] += stage.get("paste", 0.0) + time.perf_counter() - t3
                        held.append((frame, faces, box, out, masks, cut, anchor))
                        bar.update(1)  # frames made; each is written once the stabiliser has seen the frames after it
                        while held and held[0][0].index + reach <= frame.index:
                            finishing.submit(*held.popleft())
                    while final and held:  # the end of the video: nothing more to wait for
                        finishing.submit(*held.popleft())

                def write(out, frame, box, masks) -> None:
                    t3 = time.perf_counter()
                    changed = None
                    if box is not None:
                        union = masks[0] > 0 if len(masks) == 1 else np.logical_or.reduce([m > 0 for m in masks])
                        changed = _full_mask(union, box, out.shape)
                    writer.write(out if box is not None else None, frame, box, changed)
                    timings["encode"] += time.perf_counter() - t3

                # With frame workers, decoding and reading the cache run ahead, and the tone stabiliser's shift and
                # encoding behind, on threads of their own (frames stay in order); with none (one core), all in turn on
                # this thread.
                overlap = remote is not None and codec_threads
                with (
                    _progress(_expected_frames(info, start, end), f"swapping {template.name}", progress) as bar,
                    Prefetch(reader, name="saswap-decode") if overlap else nullcontext(reader) as decoded,
                    InOrder(write, name="saswap-encode", thread=overlap) as encode,
                    InOrder(finish, name="saswap-tone", thread=overlap) as finishing,
                    ExitStack() as later,
                ):
                    td = time.perf_counter()
                    shot, seen, shots_swapped = 0, 0, set()  # the span's shots, and those where a face is swapped
                    for frame in decoded:
                        check_interrupt()
                        t1 = time.perf_counter()
                        timings["decode"] += t1 - td
                        if records is None:  # the cache is read ahead too (unpacking a frame's masks takes a while)
                            records = opened.frames(opened.position_of(frame.pts, frame.index))
                            if shape_strength > 0:
                                # the engine's source-dependent geometry, smoothed along each track (a few frames
                                # ahead; on the cache's thread with workers; as read when the engine smooths none)
                                distinct = 1.0 - header.get("repeats", 0) / max(len(opened), 1)
                                each = prepared if pairing is None else {t: sources[k] for t, k in track_source.items()}
                                records = smooth_track_motion(
                                    records, pipe.engine, each, shape_strength, info.fps * distinct, chosen
                                )
                            if overlap:
                                records = iter(later.enter_context(Prefetch(records, ahead=4, name="saswap-cache")))
                        analysis: FrameAnalysis | None = next(records, None)
                        if analysis is None or (
                            analysis.pts is not None and frame.pts is not None and analysis.pts != frame.pts
                        ):
                            raise CacheError(f"{opened.path}: frames of the cache and the video disagree (pts {frame.pts})")
                        w = weights[analysis.index]
                        faces: list[TargetFace] = [tf for tf in analysis.faces if tf.face.track_id in w]
                        if pairing is not None:
                            if pairing.by == "reference" and len(faces) > 1:  # each reference's best face alone
                                best: dict[int, TargetFace] = {}
                                for tf in faces:
                                    k = track_source[tf.face.track_id]
                                    if k not in best or scores[tf.face.track_id] > scores[best[k].face.track_id]:
                                        best[k] = tf
                                faces = [tf for tf in faces if best.get(track_source[tf.face.track_id]) is tf]
                        elif reference is not None and len(faces) > 1:
                            faces = [max(faces, key=lambda tf: scores.get(tf.face.track_id, -1.0))]
                        frame_cut[frame.pts] = analysis.shot_cut
                        shot += bool(analysis.shot_cut and seen)
                        seen += 1
                        if faces:
                            shots_swapped.add(shot)
                        timings["analysis"] += time.perf_counter() - t1
                        # Frames are made on worker threads (OpenCV and numpy release the GIL) and written in order;
                        # at most two frames per worker are in flight, the stabiliser holds ``reach`` more, and with
                        # worker processes about 4 more are decoded ahead and 8 wait to be shifted and encoded, so
                        # memory does not grow with the video.
                        # A frame that repeats the picture of the frame made before it (frame-rate conversion) gets the
                        # same face again, not a new one; a repeat whose picture was not made in this swap (it lies
                        # before ``start``) is made from its analysis, which is its picture's.
                        anchor = analysis.index if analysis.repeat_of is None else analysis.repeat_of
                        ws = [w[tf.face.track_id] for tf in faces]
                        repeat = analysis.repeat_of is not None and analysis.repeat_of == made_anchor
                        if repeat:
                            future = _done((_REPEAT, None, [], {}, []))
                        elif not faces:
                            future = _done((None, None, [], {}, []))
                        else:
                            make = (pipe, prepared, shape_strength, enhance, frame.image, faces, ws, stabiliser)
                            which = None if pairing is None else [track_source[tf.face.track_id] for tf in faces]
                            if n_workers == 0:
                                future = _done(_make_frame(*make, source_index=which))
                            else:
                                future = pool.submit(_make_frame, *make, make_faces, source_index=which)
                        if not repeat:
                            made_anchor = anchor
                        # the anchor as the reader and the stabiliser count frames (from ``start``; the cache counts
                        # from the template's first frame)
                        pending.append((frame, faces, future, frame.index - (analysis.index - anchor)))
                        drain(2 * n_workers)
                        td = time.perf_counter()
                    drain(0, final=True)
                    finishing.submit(None, None, None, None, None)  # the end: the skin stabiliser's last frames
                timings["compose"] += finish_s[0]
                if frames and not swapped_frames:  # nothing to swap: an error, as for a photo (no file is left)
                    span_note = "" if start is None and end is None else f" between start={start} and end={end}"
                    raise NoFaceError(f"{template}: no face found in the video{span_note} ({frames} frames)")
                warn_turned_frames(str(template), turned, swapped_frames)
                te = time.perf_counter()
            timings["encode"] += time.perf_counter() - te  # flushing the encoder and muxing on close
        if frames == 0:
            raise SaSwapError(f"{template}: no frames between start={start} and end={end}")
    finally:
        if temp_dir is not None:
            temp_dir.cleanup()
    timings["total"] = time.perf_counter() - t0
    return SaSwapVideoOutput(
        path=output,
        frames=frames,
        frames_swapped=swapped_frames,
        faces_swapped=swapped_faces,
        tracks=sorted(used),
        cache_path=None if temp_dir is not None else opened.path,
        cache_hit=hit,
        frames_repeated=repeated,
        timings=timings,
        shots=shot + 1,
        shots_swapped=len(shots_swapped),
        track_sources={t: k for t, k in sorted(track_source.items()) if t in used},
    )


#: Stands for a frame's changed box when the frame repeats the picture of the frame made before it.
_REPEAT = object()

#: A made frame's decoded picture once only its raw YUV is written (:func:`swap_video`'s ``light``).
_NO_PICTURE = np.empty((0, 0, 3), np.uint8)


def _done(value):
    from concurrent.futures import Future

    future: Future = Future()
    future.set_result(value)
    return future


def _cores() -> int:
    """The CPU cores this process may use: its CPU affinity, within the container's CPU quota (cgroup v2) if any."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return cores


def check_workers(**counts: int | None) -> None:
    """Refuse a negative count of workers (None: the default; 0: none), naming the argument."""
    for name, count in counts.items():
        if count is not None and count < 0:
            raise SaSwapError(f"{name} must be 0 or more (0: none; None: the default), got {count}")


def default_workers() -> int:
    """Frame workers of a video swap by default: 2 on up to 2 cores, else one per core but one, at most 8 (processes;
    see :func:`_frame_workers` for when 2 are processes). Measured with ``benchmarks/bench_video.py``
    (``benchmarks/RESULTS.md``): on 2 cores two threads make 20% more frames than one, and two processes 0-12% more
    than two threads on a 30-s clip (but each takes about a second to start); on 16 cores 8 and 12 processes make the
    same 60 frames a second (the swap's own process is the limit there), 2 threads 20."""
    cores = _cores()
    return 2 if cores <= 2 else min(cores - 1, 8)


#: Frames from which two workers are processes rather than threads by default: a process takes about a second to
#: start, and two made a 30-s clip 0-12% faster than two threads on the 2-core VM (four runs, stop 33).
PROCESSES_FROM_FRAMES = 300


def _frame_workers(pipe, source, shape_strength, enhance, workers, processes, frames=None):
    """How a video swap makes its frames: (worker threads, :class:`~saswap.pipelines.workers.FrameWorkers` or None).

    ``workers`` None: :func:`default_workers`. ``processes`` None chooses processes for more than 2 workers, where
    threads stop helping, and for 2 when the video has at least :data:`PROCESSES_FROM_FRAMES` ``frames``, unless the
    engine or the compositor cannot be sent to another process, or the workers do not start (threads then, with a
    note in the log); True insists (an error then). An engine on a GPU stays in this process, one copy its threads
    share, and the worker processes run the compose stage alone (``engine_here``)."""
    from saswap.pipelines.workers import FrameWorkers, picklable

    n = max(0, int(default_workers() if workers is None else workers))
    here = not getattr(pipe.engine, "on_cpu", True)  # on a GPU: the engine is not copied into the workers
    sent = (pipe.compositor,) if here else (pipe.engine, pipe.compositor)
    chosen = processes is None
    if chosen:
        long = frames is not None and frames >= PROCESSES_FROM_FRAMES
        processes = n > 2 or (n == 2 and long)
        if processes and not picklable(*sent):
            logger.info("the engine or the compositor cannot be sent to worker processes; making frames on threads")
            processes = False
    if not processes or n == 0:
        return min(n, 8), None  # 0: frames made on this thread (a process meant to use one core)
    n = min(n, 64)
    try:
        return n, FrameWorkers(n, pipe.engine, pipe.compositor, source, shape_strength, enhance, engine_here=here)
    except (SaSwapError, OSError) as err:
        if not chosen:
            raise
        logger.warning("frame worker processes did not start (%s); making frames on threads", err)
        return min(n, 8), None


def default_analysis_workers(frames: int | None = None) -> int:
    """Worker processes of a template's analysis by default: none on one core or for a video of fewer than
    :data:`PROCESSES_FROM_FRAMES` ``frames`` (a worker takes a second or two to start and load its models), else 2 on
    2 cores and one per core but one, at most 8, on more. On the 2-core VM, 6 s of 720p (180 frames) analysed in
    7.3 s here and in 5.6-5.9 s with two workers, their start included (the analysis in one process keeps only about
    1.6 cores busy)."""
    if _cores() < 2 or (frames is not None and frames < PROCESSES_FROM_FRAMES):
        return 0
    return default_workers()  # as many as make frames


def _analysis_workers(pipe, workers: int | None, frames: int | None = None):
    """How a template is analysed: (threads handing frames to workers, :class:`~saswap.pipelines.workers.AnalysisWorkers`
    or None: in this process). ``workers`` None chooses (:func:`default_analysis_workers`), falling back to this
    process, with a note in the log, when the analyzer, the engine or the compositor cannot be made again in a worker
    or the workers do not start; a number insists (an error then)."""
    from saswap.pipelines.workers import AnalysisWorkers, picklable

    chosen = workers is None
    n = default_analysis_workers(frames) if chosen else max(0, int(workers))
    if n == 0:
        return 0, None
    spec = pipe.target_analyzer.analyzer_spec()
    engine = pipe.engine.for_analysis() if hasattr(pipe.engine, "for_analysis") else pipe.engine
    if spec is None or not getattr(engine, "on_cpu", True) or not picklable(engine, pipe.compositor):
        if not chosen:
            raise SaSwapError(
                "the template's analysis cannot run in worker processes: its face analyzer, engine or compositor "
                "cannot be made again there, or the engine is on a GPU (analyse with 0 workers)"
            )
        logger.info(
            "the face analyzer, the engine or the compositor cannot be sent to worker processes (or the engine is on "
            "a GPU); analysing here"
        )
        return 0, None
    n = min(n, 64)
    try:
        return n, AnalysisWorkers(n, engine, pipe.compositor, spec)
    except (SaSwapError, OSError) as err:
        if not chosen:
            raise
        logger.warning("template analysis workers did not start (%s); analysing in this process", err)
        return 0, None


def _make_frame(
    pipe, source, shape_strength, enhance, image, faces, weights, stabiliser=None, make_faces=None, source_index=None
):
    """The engine and compose stage of one frame (on a worker thread): (the changed box, the new frame,
    the faces' masks over that box, stage seconds, the faces' :meth:`ToneStabiliser.reading`), or Nones when nothing
    changed. ``source``: the prepared source, or several (``source_index``: per face, which)."""
    out = image.copy()
    stage: dict[str, float] = {}
    boundaries: list = []
    masks = pipe.swap_frame(
        out, image, faces, source, shape_strength, enhance, stage, weights=weights, make_faces=make_faces,
        boundaries=boundaries, source_index=source_index,
    )  # fmt: skip
    box = _changed_box(masks)
    if box is None:
        return None, None, [], stage, []
    # the masks are kept for the frames after this one's (the stabilisers' reach): only their changed box, not a float
    # picture each the size of the frame (33 MB at 4K; :func:`_full_mask` makes one again); the tone stabiliser's
    # readings share them (one face: the same pixels)
    x1, y1, x2, y2 = box
    masks = [np.ascontiguousarray(m[y1:y2, x1:x2]) for m in masks]
    t = time.perf_counter()
    readings = []
    if stabiliser is not None:
        readings = [
            stabiliser.reading(out, image, m, tf.transform, pipe.engine.crop_size, b, origin=(x1, y1))
            for tf, m, b in zip(faces, masks, boundaries)
        ]
    stage["paste"] = stage.get("paste", 0.0) + time.perf_counter() - t
    return box, out, masks, stage, readings


def _full_mask(mask: np.ndarray, box: tuple[int, int, int, int], shape: tuple[int, ...]) -> np.ndarray:
    """A mask kept over its changed ``box`` alone (:func:`_make_frame`), placed in a frame of ``shape`` again.

    Example:
        >>> _full_mask(np.ones((1, 2), np.float32), (1, 2, 3, 3), (4, 4)).sum(axis=1).tolist()
        [0.0, 0.0, 2.0, 0.0]
    """
    x1, y1, x2, y2 = box
    full = np.zeros(shape[:2], mask.dtype)
    full[y1:y2, x1:x2] = mask
    return full


class _TrackWindow:
    """What the video stabilisers share: per track, a reading for each frame, the shot cuts, and the frames within
    :attr:`reach` of one within its shot and the run of frames where its track is seen."""

    def __init__(self, reach: int) -> None:
        self.reach = int(reach)
        self._readings: dict[int, dict[int, Any]] = {}  # track -> frame -> reading
        self._cuts: dict[int, set[int]] = {}  # track -> frames a shot cut precedes
        # a video swap records frames on one thread and applies and forgets them on another
        self._lock = threading.Lock()

    def record(self, track: int, index: int, cut: bool, reading) -> None:
        """File a face's reading for frame ``index`` of ``track`` (in any order; None: nothing to file)."""
        if reading is None:
            return
        with self._lock:
            self._readings.setdefault(track, {})[index] = reading
            if cut:
                self._cuts.setdefault(track, set()).add(index)

    def repeat(self, track: int, index: int, anchor: int) -> None:
        """Record frame ``index`` of ``track`` as a repeat of frame ``anchor`` (the same picture and face, shown
        again): it counts in its neighbours' smoothing as its anchor does, and is itself written as its anchor was."""
        with self._lock:
            readings = self._readings.get(track, {})
            # (a swap's anchor is the last frame it made, and only the frames made after it, none here, forget it)
            if anchor in readings:
                readings[index] = readings[anchor]

    def _near(self, track: int, index: int) -> list[int]:
        """Frame ``index`` and the recorded frames of ``track`` within :attr:`reach` of it, back to its shot's or its
        run's start and on to their end (lock held)."""
        readings, cuts = self._readings.get(track, {}), self._cuts.get(track, set())
        frames = [index]
        j = index - 1
        while j >= index - self.reach and j in readings and (j + 1) not in cuts:
            frames.append(j)
            j -= 1
        j = index + 1
        while j <= index + self.reach and j in readings and j not in cuts:
            frames.append(j)
            j += 1
        return frames

    def forget(self, before: int) -> None:
        """Drop what no frame from ``before`` on needs (frames more than :attr:`reach` earlier)."""
        limit = before - self.reach
        with self._lock:
            for track in list(self._readings):
                readings = self._readings[track]
                for index in [i for i in readings if i < limit]:
                    del readings[index]
                if track in self._cuts:
                    self._cuts[track] = {i for i in self._cuts[track] if i >= limit}
                if not readings:
                    del self._readings[track]
                    self._cuts.pop(track, None)


class ToneStabiliser(_TrackWindow):
    """Removes tone flicker of a swapped face over time, track by track, with no lag.

    The compose stage matches each frame's face to its target's skin on its own, and nearly all of what then
    flickers is its boundary membrane (:attr:`~saswap.compose.ComposedFace.boundary`): the offset that makes the
    face meet the target's skin along its outline is decided anew in every frame from which samples along the
    outline qualify and what they read (on ``video-retalking__1`` the compose stage alone flickers 3.6x the
    template's skin tone, 1.1x with the membrane off; ``benchmarks/RESULTS.md``). Per track, that offset is smoothed
    over time in the face's aligned coordinates (which follow the head): each frame takes the Gaussian-weighted mean
    over ``reach`` frames before and after it, within its shot and the run of frames where its track is seen. Only the
    membrane's own part of the face changes, so the template's light changes and its features' motion are left as
    they are. With each face's blend weight beside its offset (the reading's 4th channel, as the compose stage hands
    it over), a frame counts only where its face was: the mean is of the offsets per unit of weight, times the frame's
    own weight. A head that turns or moves within its crop has its outline elsewhere in every frame, and the frames
    around, counted as zeros beyond their own faces, took part of a frame's offset away along its outline: a band of
    the uncorrected face, edged by the neighbours' outline (a turning head in ``liveportrait__d14``).

    Where a face has no membrane reading (the membrane off, an engine that blends by itself), what is smoothed is
    the face's colour *relative to the template's*, low-passed on a coarse grid of ``grid`` cells over the aligned
    crop.

    A swap writes a frame once the ``reach`` frames after it are made (:meth:`measure` every
    frame as it is made, or :meth:`repeat` for a frame that repeats an earlier picture, and :meth:`apply`
    ``reach`` frames later); the result does not depend on how many threads made them.

    Args:
        reach: frames on each side of the temporal smoothing (its Gaussian's sigma is half of it).
        grid: side of the coarse grid over the aligned crop (for faces without a membrane reading).
        sigma: low-pass of the difference, in grid cells (the same).
    """

    def __init__(self, reach: int = 12, grid: int = 48, sigma: float = 1.0) -> None:
        if reach < 1:
            raise ValueError(f"reach must be at least 1 frame, got {reach}")
        # per track and frame: (low-pass, its weight, the face's box in the frame, the mask in it, box -> grid affine)
        super().__init__(reach)
        self.grid = int(grid)
        self.sigma = float(sigma)

    def _geometry(
        self, mask: np.ndarray, transform: np.ndarray, crop_size: int, reduction: int | None = None,
        origin: tuple[int, int] = (0, 0),
    ):  # fmt: skip
        """The mask's box (x0, y0, x1, y1), the mask within it, and the box -> grid affine; None when empty.

        ``reduction``: the grid is the crop averaged down this many times in blocks (cell ``j`` the mean of crop
        pixels ``r j`` to ``r j + r - 1``), not :attr:`grid` cells sampled over it. ``origin``: where ``mask``'s
        top-left pixel lies in the frame (a mask kept over a box of it); the mask within the box is then ``mask``
        itself, not a copy, where it fills the box."""
        import cv2

        x0, y0, bw, bh = cv2.boundingRect((mask > 0).view(np.uint8))
        if bw == 0 or bh == 0:
            return None
        m = np.ascontiguousarray(mask[y0 : y0 + bh, x0 : x0 + bw], np.float32)
        x0, y0 = x0 + int(origin[0]), y0 + int(origin[1])
        if reduction is None:
            to_grid = np.asarray(transform, np.float64) * (self.grid / float(crop_size))
        else:
            to_grid = np.asarray(transform, np.float64) / float(reduction)
            to_grid[:, 2] -= (reduction - 1) / (2.0 * reduction)  # a block's centre
        to_grid[:, 2] += to_grid[:, :2] @ np.array([x0, y0], np.float64)  # from box coordinates
        return (x0, y0, x0 + bw, y0 + bh), m, to_grid

    def measure(
        self,
        track: int,
        index: int,
        cut: bool,
        out: np.ndarray,
        template: np.ndarray,
        mask: np.ndarray,
        transform: np.ndarray,
        crop_size: int,
        boundary: np.ndarray | None = None,
    ) -> None:
        """Record one face of frame ``index``: its ``boundary`` (the compose stage's membrane offset,
        :attr:`~saswap.compose.ComposedFace.boundary`), or without one the low-pass of ``out`` minus ``template``
        inside ``mask``.

        Args:
            track: the face's track id.
            index: the frame's index.
            cut: whether a shot cut precedes the frame.
            out: the swapped frame, RGB uint8 (H, W, 3).
            template: the template frame.
            mask: where the swap changed the frame, float32 (H, W).
            transform: the face's frame -> crop similarity, shape (2, 3); ``crop_size`` its crop's side.
            boundary: the face's membrane offset on its grid (crop coordinates), with its blend weight as a 4th
                channel (:attr:`~saswap.compose.ComposedFace.boundary`; 3 channels: the offset alone, every frame
                counted everywhere), or None.
        """
        self.record(track, index, cut, self.reading(out, template, mask, transform, crop_size, boundary))

    def reading(
        self, out: np.ndarray, template: np.ndarray, mask: np.ndarray, transform: np.ndarray, crop_size: int,
        boundary: np.ndarray | None = None, origin: tuple[int, int] = (0, 0),
    ) -> tuple | None:  # fmt: skip
        """What :meth:`measure` records for one face, computed apart from the track's record (a frame worker
        thread can compute it; :meth:`record` then files it, in any order). None when the mask is empty.
        ``origin``: where ``mask``'s top-left pixel lies in the frame, for a mask kept over a box of it (the
        reading then holds that mask, not a copy, where the face's mask fills the box)."""
        import cv2

        if boundary is not None:
            reduction = max(1, int(round(crop_size / float(boundary.shape[1]))))
            geometry = self._geometry(mask, transform, crop_size, reduction, origin)
            if geometry is None:
                return None
            boundary = np.asarray(boundary, np.float32)
            # defined over the whole crop (no low-pass weight); with its face's blend weight (a 4th channel), kept
            # apart: where a frame's offset holds
            weight = np.ascontiguousarray(boundary[..., 3:4]) if boundary.shape[-1] == 4 else None
            return (np.ascontiguousarray(boundary[..., :3]), None, *geometry, weight)
        geometry = self._geometry(mask, transform, crop_size, origin=origin)
        if geometry is None:
            return None
        (x0, y0, x1, y1), m, to_grid = geometry
        m3 = cv2.merge([m, m, m])
        diff = cv2.multiply(cv2.subtract(out[y0:y1, x0:x1], template[y0:y1, x0:x1], dtype=cv2.CV_32F), m3)
        g = self.grid
        d = cv2.warpAffine(diff, to_grid, (g, g), flags=cv2.INTER_LINEAR | cv2.WARP_FILL_OUTLIERS)
        w = cv2.warpAffine(m, to_grid, (g, g), flags=cv2.INTER_LINEAR)
        num = cv2.GaussianBlur(d, (0, 0), self.sigma)
        den = cv2.GaussianBlur(w, (0, 0), self.sigma)[..., None]
        return (num / np.maximum(den, 1e-3), den, *geometry)

    def smoothed(self, track: int, index: int) -> np.ndarray | None:
        """The two-way smoothed low-pass of ``track`` at frame ``index`` (None when it was not measured)."""
        with self._lock:
            lows = self._readings.get(track, {})
            if index not in lows:
                return None
            frames = self._near(track, index)
            found = [lows[f][0] for f in frames]
            covers = [lows[f][5] if len(lows[f]) > 5 else None for f in frames]
        scale = max(self.reach / 2.0, 1e-6)
        weights = np.exp(-0.5 * ((np.array(frames, np.float64) - index) / scale) ** 2)
        # membrane offsets with their faces' blend weights count only where their faces were (the class's docstring):
        # the mean of the offsets per unit of weight, times this frame's own weight; other readings count everywhere
        weighted = all(c is not None for c in covers)
        # the weighted sums in float32, term by term in this order, into buffers made once (allocating a new array for
        # every term cost more than the arithmetic)
        total = np.multiply(found[0], float(weights[0]))
        term = np.empty_like(total)
        cover = np.multiply(covers[0], float(weights[0])) if weighted else None
        part = np.empty_like(cover) if weighted else None
        for wt, low, c in zip(weights[1:], found[1:], covers[1:]):
            total += np.multiply(low, float(wt), out=term)
            if weighted:
                cover += np.multiply(c, float(wt), out=part)
        if weighted:
            return (total * (covers[0] / np.maximum(cover, 1e-6))).astype(np.float32, copy=False)
        total /= float(weights.sum())
        return total.astype(np.float32, copy=False)

    def apply(self, track: int, index: int, out: np.ndarray) -> None:
        """Shift one face of frame ``index`` in ``out`` (in place, only where its measured mask is > 0) by its
        track's smoothed low-pass minus its own; call once the ``reach`` frames after it are measured (or the video
        has ended)."""
        import cv2

        from saswap.face.alignment import invert_affine

        smooth = self.smoothed(track, index)
        if smooth is None:
            return
        with self._lock:
            low, den, (x0, y0, x1, y1), m, to_grid = self._readings[track][index][:5]
        shift = smooth - low if den is None else (smooth - low) * (den > 0.05)
        if np.abs(shift).max() < 0.05:
            return
        back = cv2.warpAffine(
            shift.astype(np.float32), invert_affine(to_grid), (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )  # fmt: skip
        patch = out[y0:y1, x0:x1]
        # where the mask is 0 the patch stays as it is (its integer value plus 0.5, floored)
        moved = cv2.add(cv2.multiply(cv2.merge([m, m, m]), back.reshape(*m.shape, 3)), patch, dtype=cv2.CV_32F)
        patch[...] = np.clip(moved + 0.5, 0, 255).astype(np.uint8)

class SkinStabiliser(_TrackWindow):
    """Steadies the new face's skin from frame to frame, track by track, with no lag.

    A face drawn from one photo shows the photo's fine skin (pores, stubble, lines) at the target's every motion, and
    its pixels change from frame to frame more than the template's own face does (on s32 with beckham 1.2-1.4x in
    every band of scale, in the face's aligned crop; ``benchmarks/RESULTS.md``, stop 41). Per track, each frame's skin
    is replaced by the Gaussian-weighted mean (``sigma`` frames) of the same skin in the frames within ``3 sigma``
    before and after it, within its shot and the run of frames where its track is seen. Each neighbour is read in its
    own aligned crop and then shifted onto the frame's by registering the two frames' template crops (phase
    correlation): the alignment's own jitter, carried into the mean, would make the face less steady. The eyes, brows,
    lips, nostrils and mouth, which move with the expression, stay as made, and so does everything outside the swap's
    mask; only the difference from the frame's own skin is warped back into it.

    The same protocol as :class:`ToneStabiliser`: :meth:`reading` for each face of a frame, :meth:`record` it (or
    :meth:`repeat` a frame that repeats an earlier picture), :meth:`apply` once the :attr:`reach` frames after it are
    recorded (or the video has ended), :meth:`forget` what is no longer needed.

    Args:
        sigma: the Gaussian's sigma, frames.
        size: the aligned crop's side, pixels.
        feather: the skin region's feathering, eye-corner distances.
    """

    def __init__(self, sigma: float = 1.0, size: int = 384, feather: float = 0.03) -> None:
        if not sigma > 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        # per track and frame: (aligned crop uint8, the template's aligned crop, grey float32, the swap's mask in the
        # crop, the frame -> crop transform, the face's mesh in the crop); applied 3 sigma after the frame
        import cv2

        super().__init__(int(np.ceil(3.0 * float(sigma))))
        self.sigma, self.size, self.feather = float(sigma), int(size), float(feather)
        self._window = cv2.createHanningWindow((self.size, self.size), cv2.CV_32F)  # for the phase correlation

    def reading(self, out: np.ndarray, template: np.ndarray, mask: np.ndarray, transform: np.ndarray, face: Face):
        """What :meth:`record` files for one face of a swapped frame ``out`` (RGB uint8) of ``template``: both in the
        face's aligned crop (the template's grey, windowed for the phase correlation, once for all the frames that
        register onto it), the swap's ``mask`` (float32 (H, W)) there, the frame -> crop ``transform`` and the face's
        mesh in the crop; None when the mask is empty."""
        import cv2

        from saswap.face.alignment import warp_face

        if not mask.max(initial=0.0) > 0:
            return None
        M = np.asarray(transform, np.float64)
        crop = warp_face(out, M, self.size, border=cv2.BORDER_REPLICATE)
        grey = cv2.cvtColor(warp_face(template, M, self.size, border=cv2.BORDER_REPLICATE), cv2.COLOR_RGB2GRAY)
        inside = warp_face(np.ascontiguousarray(mask, np.float32), M, self.size, border=cv2.BORDER_CONSTANT)
        mesh = np.asarray(face.landmarks[:468, :2], np.float64) @ M[:, :2].T + M[:, 2]
        return crop, grey.astype(np.float32) * self._window, inside, M, mesh

    def apply(self, track: int, index: int, out: np.ndarray) -> None:
        """Replace the skin of one face of frame ``index`` in ``out`` (in place) by its track's smoothed skin; call
        once the :attr:`reach` frames after it are recorded (or the video has ended)."""
        import cv2

        from saswap.face.alignment import warp_back
        from saswap.face.masks import face_region_masks

        with self._lock:
            readings = self._readings.get(track, {})
            if index not in readings:
                return
            found = [(j, readings[j]) for j in self._near(track, index)]
        if len(found) < 2:
            return
        own = found[0][1]
        S = self.size
        total = np.zeros((S, S, 3), np.float32)
        weights = 0.0
        for j, reading in found:
            w = float(np.exp(-0.5 * ((j - index) / self.sigma) ** 2))
            crop = reading[0].astype(np.float32)
            if reading is not own:  # (a repeat of this frame's picture needs no shift)
                (dx, dy), _ = cv2.phaseCorrelate(own[1], reading[1])
                shift = np.float32([[1, 0, -dx], [0, 1, -dy]])
                crop = cv2.warpAffine(crop, shift, (S, S), borderMode=cv2.BORDER_REPLICATE)
            total += np.float32(w) * crop
            weights += w
        mean = total / np.float32(weights)
        mesh = own[4]
        eye = max(float(np.linalg.norm(mesh[263] - mesh[33])), 1.0)
        skin = (face_region_masks(mesh, (S, S))["skin"] > 0.5).astype(np.float32)
        weight = cv2.GaussianBlur(skin, (0, 0), max(1.0, self.feather * eye)) * own[2]
        diff = cv2.multiply(cv2.subtract(mean, own[0], dtype=cv2.CV_32F), cv2.merge([weight] * 3))
        # Back into the frame by the same warp over the whole frame: a warp into the face's box alone rounds the
        # sampling positions differently, and those 1-level differences moved the stability benchmark's rows by more
        # than its variants differ (RESULTS.md, stop 41).
        back = warp_back(diff, own[3], out.shape[:2])
        box = _changed_box([np.abs(back).max(axis=2) > 0.01])
        if box is None:
            return
        x0, y0, x1, y1 = box
        patch = out[y0:y1, x0:x1]
        patch[...] = np.clip(cv2.add(patch, back[y0:y1, x0:x1], dtype=cv2.CV_32F) + 0.5, 0, 255).astype(np.uint8)


def _changed_box(masks: list[np.ndarray]) -> tuple[int, int, int, int] | None:
    """Bounding box (x1, y1, x2, y2, exclusive) of the pixels any mask changed, or None."""
    if not masks:
        return None
    union = masks[0] > 0 if len(masks) == 1 else np.logical_or.reduce([m > 0 for m in masks])
    rows, cols = np.flatnonzero(union.any(axis=1)), np.flatnonzero(union.any(axis=0))
    if not len(rows):
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _expected_frames(info, start: float | None, end: float | None) -> int | None:
    if not info.frame_count:
        return None
    a = max(0.0, start or 0.0)
    b = min(info.duration, end) if end is not None else info.duration
    if info.duration <= 0:
        return info.frame_count
    return max(0, int(round((b - a) / info.duration * info.frame_count)))


def _json(tag: dict[str, Any]) -> str:
    import json

    return json.dumps(tag, sort_keys=True)

