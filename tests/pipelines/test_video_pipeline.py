"""Video swapping on real clips (short segments): format kept, template cache used and checked,
pass-through exact outside the face, the reference person alone swapped, bad input refused."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import data_path, eye_band_detail, own_source_nearer, write_video

av = pytest.importorskip("av")


def _segment(src: Path, dst: Path, end: float) -> Path:
    """The first ``end`` seconds of ``src`` (video and audio, frames passed through)."""
    from saswap.videoio import VideoReader, VideoWriter

    with VideoReader(src, end=end) as reader, VideoWriter(dst, like=reader, crf=12) as writer:
        for frame in reader:
            writer.write(None, frame)
    return dst


def _frames(path: Path, limit: int | None = None) -> list[np.ndarray]:
    """The RGB frames of ``path`` (the first ``limit`` of them)."""
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in itertools.islice(c.decode(video=0), limit)]


_encode = write_video  # RGB frames written as an H.264 clip at 30 fps


@pytest.fixture(scope="module")
def pipe(analyzer, morphable_model):
    from saswap import SaSwapPipeline
    from saswap.engines import GeometricEngine

    return SaSwapPipeline(GeometricEngine(morphable_model=morphable_model), analyzer)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return _segment(data_path("videos", "liveportrait__d8.mp4"), tmp_path_factory.mktemp("clip") / "d8.mp4", 0.7)


@pytest.fixture(scope="module")
def source(pipe):
    return pipe.prepare_source(data_path("images", "sberswap__beckham.jpg"))[0]


def test_swap_video_keeps_the_format_and_tags_the_output(pipe, clip, source, tmp_path):
    from saswap.videoio import probe_video, read_video_tag

    out = tmp_path / "out.mp4"
    result = pipe.swap_video(source, clip, out, cache_dir=tmp_path / "cache", progress=False)
    a, b = probe_video(clip), probe_video(out)
    assert (b.width, b.height) == (a.width, a.height)
    assert abs(b.fps - a.fps) < 0.01
    assert len(_frames(out)) == len(_frames(clip)) == result.frames
    assert abs(b.duration - a.duration) < 1.5 / a.fps
    assert b.has_audio and b.audio_codec == a.audio_codec
    assert result.frames_swapped >= result.frames - 1 and result.tracks == [0]
    assert not result.cache_hit and result.cache_path is not None and result.cache_path.is_file()
    tag = read_video_tag(out)
    assert tag is not None and tag["synthetic"] is True and tag["media"] == "video"
    first_in, first_out = _frames(clip)[5], _frames(out)[5]
    assert np.abs(first_in.astype(int) - first_out.astype(int)).max(axis=2).mean() > 1  # the face changed
    for stage in ("decode", "analysis", "engine", "compose", "encode"):
        assert result.timings[stage] > 0, stage


def test_frames_made_on_the_main_thread_are_the_same(pipe, clip, source, tmp_path):
    """workers=0 (one core: frames decoded, made and encoded in turn) writes the frames workers=2 writes."""
    from saswap.pipelines.video import swap_video

    outs = []
    for workers, codec_threads in ((2, True), (0, False)):
        out = tmp_path / f"w{workers}.mp4"
        swap_video(pipe, source, clip, out, cache_dir=tmp_path / "cache", progress=False, crf=0, workers=workers,
                   codec_threads=codec_threads)  # fmt: skip
        outs.append(_frames(out))
    assert len(outs[0]) == len(outs[1]) > 0
    assert all(np.array_equal(a, b) for a, b in zip(*outs))


def test_cache_hit_runs_no_face_analysis(pipe, clip, source, tmp_path, morphable_model):
    from saswap import SaSwapPipeline
    from saswap.engines import GeometricEngine

    cache_dir = tmp_path / "cache"
    opened, existed = pipe.precompute(clip, cache_dir, progress=False)
    assert not existed and len(opened) == len(_frames(clip))
    calls = pipe.target_analyzer.calls
    result = pipe.swap_video(source, clip, tmp_path / "a.mp4", cache_dir=cache_dir, progress=False)
    assert result.cache_hit and pipe.target_analyzer.calls == calls
    # A new pipeline with a prepared source: the face analyzer is never even loaded.
    fresh = SaSwapPipeline(GeometricEngine(morphable_model=morphable_model))
    result = fresh.swap_video(source, clip, tmp_path / "b.mp4", cache_dir=cache_dir, progress=False)
    assert result.cache_hit and fresh.target_analyzer.calls == 0
    assert not hasattr(fresh.target_analyzer._analyzer, "backend"), "the face analyzer was loaded"
    assert np.array_equal(_frames(tmp_path / "a.mp4")[3], _frames(tmp_path / "b.mp4")[3])


def test_a_trimmed_swap_analyses_its_span_unless_the_whole_template_is_cached(pipe, clip, source, tmp_path):
    """A swap of 2 s of a 34-s clip analysed all 34 s first (a cache for the whole template). Now it analyses its span
    (and caches it); once the whole template is cached (``precompute``), a trimmed swap is a hit on that cache."""
    cache_dir, n = tmp_path / "cache", len(_frames(clip))
    calls = pipe.target_analyzer.calls
    first = pipe.swap_video(source, clip, tmp_path / "a.mp4", cache_dir=cache_dir, end=0.2, progress=False)
    assert not first.cache_hit and 0 < pipe.target_analyzer.calls - calls <= first.frames + 1 < n
    calls = pipe.target_analyzer.calls
    again = pipe.swap_video(source, clip, tmp_path / "b.mp4", cache_dir=cache_dir, end=0.2, progress=False)
    assert again.cache_hit and pipe.target_analyzer.calls == calls  # the span's own cache
    pipe.precompute(clip, cache_dir, progress=False)
    calls = pipe.target_analyzer.calls
    other = pipe.swap_video(source, clip, tmp_path / "c.mp4", cache_dir=cache_dir, start=0.3, progress=False)
    assert other.cache_hit and pipe.target_analyzer.calls == calls and other.frames < n  # the whole template's


@pytest.fixture(scope="module")
def large_face_clip(tmp_path_factory):
    """8 frames of a sharp 1536-px portrait (eyes about 210 px apart: the 384-px crop would hold it at 0.6 crop pixels
    per picture pixel), moving a few pixels a frame."""
    from saswap.io import load_image

    photo = load_image(data_path("images", "liveportrait__s2.jpg"))
    photo = cv2.resize(photo, (1536, 1536), interpolation=cv2.INTER_AREA)
    frames = [cv2.warpAffine(photo, np.float32([[1, 0, 2 * i], [0, 1, i]]), (1536, 1536), borderMode=cv2.BORDER_REFLECT)
              for i in range(8)]  # fmt: skip
    return _encode(tmp_path_factory.mktemp("large") / "portrait.mp4", frames)


@pytest.mark.slow
def test_a_large_faced_template_is_cached_and_swapped_in_a_crop_sized_to_it(pipe, large_face_clip, tmp_path, capsys):
    """``crop_size="auto"``: the template cache is made for a crop sized to the template's faces, a swap asking for it
    finds it (no face analysis), and the new face keeps the fine detail of its eyes and brows that the engine's 384-px
    crop loses; the default crop is another cache."""
    import dataclasses

    from saswap.face.alignment import transform_scale
    from saswap.pipelines.image import AUTO_CROP_BELOW
    from saswap.videoio import read_video_tag

    source = pipe.prepare_source(data_path("images", "deepface__img41.jpg"))[0]
    cache_dir = tmp_path / "cache"
    opened, existed = pipe.precompute(large_face_clip, cache_dir, progress=False, crop_size="auto")
    size = opened.header["crop_size"]
    assert not existed and 576 <= size <= 704 and size % 64 == 0  # measured: 640
    first = next(iter(opened.frames())).faces[0]
    assert transform_scale(first.transform) >= AUTO_CROP_BELOW  # the face keeps its resolution in that crop
    from saswap.cli import main

    assert main(["precompute", str(large_face_clip), "--cache-dir", str(cache_dir), "--crop-size", "auto", "-q"]) == 0
    assert f"already cached in {opened.path} (8 frames, {size}-px crop" in capsys.readouterr().out
    calls = pipe.target_analyzer.calls
    auto = pipe.swap_video(source, large_face_clip, tmp_path / "auto.mp4", cache_dir=cache_dir, crop_size="auto",
                           progress=False)  # fmt: skip
    assert auto.cache_hit and pipe.target_analyzer.calls == calls
    assert read_video_tag(auto.path)["crop_size"] == size
    fixed = pipe.swap_video(source, large_face_clip, tmp_path / "fixed.mp4", cache_dir=cache_dir, progress=False)
    assert not fixed.cache_hit and fixed.cache_path != auto.cache_path
    assert read_video_tag(fixed.path)["crop_size"] == 384

    template, made_auto, made_fixed = (_frames(p)[4] for p in (large_face_clip, auto.path, fixed.path))
    face = pipe.analyzer(template)[0]
    fine = {k: eye_band_detail(image, face) for k, image in (("t", template), ("a", made_auto), ("f", made_fixed))}
    # measured: the template 2.93, the 384-px crop 2.22, the crop sized to the face 2.57
    assert 1.08 * fine["f"] < fine["a"] < fine["t"]
    # a prepared source without its photo keeps its own size under "auto": the 384-px cache, found
    bare = pipe.swap_video(dataclasses.replace(source, origin=None), large_face_clip, tmp_path / "bare.mp4",
                           cache_dir=cache_dir, crop_size="auto", progress=False)  # fmt: skip
    assert bare.cache_hit and bare.cache_path == fixed.cache_path and read_video_tag(bare.path)["crop_size"] == 384


def test_track_signals_are_smoothed_within_runs_and_restart_at_cuts():
    from saswap.face.types import Face
    from saswap.pipelines.video import smooth_track_signals

    class Engine:
        track_signal_seconds = 0.2

        def track_signals(self, face):
            return {"opening": float(face.score)}

    def face(value, track):
        return Face(np.zeros(4, np.float32), value, np.zeros((5, 2)), np.zeros((478, 3)), np.zeros((68, 2)), np.zeros(3),
                    track_id=track)  # fmt: skip

    values = [0.0, 1.0] * 10 + [5.0] * 10  # a syllable every other frame, then a cut to another shot
    cuts = [False] * 20 + [True] + [False] * 9
    frames = [[face(v, 1), face(1.0 - v if i < 20 else 0.0, 2)] for i, v in enumerate(values)]
    out = smooth_track_signals(Engine(), frames, 30.0, cuts)
    first = np.array([out[t][1]["opening"] for t in range(20)])
    assert np.abs(np.diff(first[3:17])).max() < 0.05 and abs(first[3:17].mean() - 0.5) < 0.05  # flicker removed
    assert [out[t][1]["opening"] for t in range(20, 30)] == pytest.approx([5.0] * 10)  # nothing carried over the cut
    assert abs(out[10][2]["opening"] - 0.5) < 0.05  # each track on its own


def test_vector_track_signals_are_smoothed_by_their_own_reach():
    from scipy.ndimage import gaussian_filter1d

    from saswap.engines.base import TRACK_SIGNAL_SECONDS
    from saswap.face.types import Face
    from saswap.pipelines.video import smooth_track_signals

    class Engine:
        track_signal_seconds = {"slow": 0.3, "fast": 0.05}  # "other" is not named: the default reach

        def track_signals(self, face):
            return {"slow": float(face.score), "fast": np.array([face.score, -face.score]), "other": float(face.score)}

    rng = np.random.default_rng(0)
    noise = rng.normal(0.0, 1.0, 60)
    frames = [[Face(np.zeros(4, np.float32), v, np.zeros((5, 2)), np.zeros((478, 3)), np.zeros((68, 2)), np.zeros(3),
                    track_id=1)] for v in noise]  # fmt: skip
    out = smooth_track_signals(Engine(), frames, 30.0, [False] * 60)

    def expected(seconds):
        return gaussian_filter1d(noise, seconds * 30.0, mode="nearest", truncate=3.0)

    fast = np.array([out[t][1]["fast"] for t in range(60)])
    assert fast.shape == (60, 2)
    assert np.allclose(fast[:, 0], expected(0.05)) and np.allclose(fast[:, 1], -expected(0.05))  # along time
    assert np.allclose([out[t][1]["slow"] for t in range(60)], expected(0.3))
    assert np.allclose([out[t][1]["other"] for t in range(60)], expected(TRACK_SIGNAL_SECONDS))


def _motion_frames(values, tracks=(1,), cuts=(), repeats=()):
    """Frame analyses whose faces carry ``values[t]`` as their score (one face per track in ``tracks``, track 2's
    value negated); ``cuts``: frames a shot cut precedes; ``repeats``: frames that repeat the frame before."""
    from saswap.face.types import Face
    from saswap.pipelines.analysis import FrameAnalysis, TargetFace

    def face(v, track):
        return TargetFace(Face(np.zeros(4, np.float32), v, np.zeros((5, 2)), np.zeros((478, 3)), np.zeros((68, 2)),
                               np.zeros(3), track_id=track), np.eye(2, 3))  # fmt: skip

    return [
        FrameAnalysis(t, t, t / 30.0, [face(v if k == 1 else -v, k) for k in tracks], shot_cut=t in cuts,
                      repeat_of=t - 1 if t in repeats else None)  # fmt: skip
        for t, v in enumerate(values)
    ]


class _MotionEngine:
    """Its motion is the face's score, twice (a (2,) vector); sigma 0.1 s = 3 frames at 30 fps."""

    motion_seconds = 0.1

    def __init__(self):
        self.calls = 0

    def track_motion(self, face, source, strength, data):
        self.calls += 1
        return np.array([face.score, 2 * face.score])


def test_track_motion_is_smoothed_along_each_run_in_both_directions():
    from scipy.ndimage import gaussian_filter1d

    from saswap.pipelines.video import smooth_track_motion

    noise = np.random.default_rng(0).normal(0.0, 1.0, 60)
    engine = _MotionEngine()
    out = list(smooth_track_motion(iter(_motion_frames(noise, tracks=(1, 2))), engine, None, 1.0, 30.0))
    expected = gaussian_filter1d(noise, 3.0, mode="nearest", truncate=3.0)  # as the template's own signals
    got = np.stack([f.faces[0].data["motion"] for f in out])
    assert got.shape == (60, 2) and np.allclose(got[:, 0], expected) and np.allclose(got[:, 1], 2 * expected)
    assert np.allclose([f.faces[1].data["motion"][0] for f in out], -expected)  # each track on its own
    assert [f.index for f in out] == list(range(60)) and engine.calls == 120

    # a cut, a frame where the track is lost, and the tracks chosen
    values = np.r_[np.zeros(10), np.ones(10), np.full(10, 5.0)]
    frames = _motion_frames(values, tracks=(1, 2), cuts={10})
    frames[20].faces = frames[20].faces[1:]  # track 1 lost for a frame: its run restarts after it
    out = list(smooth_track_motion(iter(frames), _MotionEngine(), None, 1.0, 30.0, tracks={1}))
    first = [f.faces[0].data["motion"][0] for f in out[:20]]
    assert first == pytest.approx([0.0] * 10 + [1.0] * 10)  # nothing carried over the cut
    assert [f.faces[0].data["motion"][0] for f in out[21:]] == pytest.approx([5.0] * 9)  # nor over the gap
    assert "motion" not in out[20].faces[0].data  # track 2, not chosen
    assert all("motion" not in f.faces[1].data for f in out if len(f.faces) > 1)


def test_track_motion_passes_repeats_on_and_reads_a_bounded_way_ahead():
    from scipy.ndimage import gaussian_filter1d

    from saswap.pipelines.video import smooth_track_motion

    values = np.arange(40, dtype=float)
    frames = _motion_frames(values, repeats={5, 6})
    pulled = []

    def source():
        for f in frames:
            pulled.append(f.index)
            yield f

    stream = smooth_track_motion(source(), _MotionEngine(), None, 1.0, 30.0)
    first = next(stream)
    # 3 sigma ahead (9 distinct pictures: frames 1-11, two of them repeats), whatever the video's length
    assert first.index == 0 and len(pulled) == 1 + 9 + 2
    out = [first, *stream]
    assert [f.index for f in out] == list(range(40))
    assert "motion" not in out[5].faces[0].data and "motion" not in out[6].faces[0].data  # a repeat is its picture's
    # the repeats are no steps in time: frame 7 follows frame 4
    distinct = np.array([v for t, v in enumerate(values) if t not in (5, 6)])
    smoothed = [f.faces[0].data["motion"][0] for t, f in enumerate(out) if t not in (5, 6)]
    assert np.allclose(smoothed, gaussian_filter1d(distinct, 3.0, mode="nearest", truncate=3.0))


def test_a_video_swap_moves_the_face_by_its_motion_smoothed_along_the_track(pipe, clip, source, tmp_path, monkeypatch):
    from saswap.face.alignment import warp_face
    from saswap.pipelines.video import smooth_track_motion, swap_video

    engine = pipe.engine
    opened, _ = pipe.precompute(clip, tmp_path / "cache", progress=False)
    records = list(opened.frames(0))
    own = np.stack([engine.track_motion(r.faces[0].crop_face, source, 1.0, r.faces[0].data) for r in records])
    fps = opened.header["video"]["fps"] * (1.0 - opened.header["repeats"] / len(opened))  # as the swap counts them
    smoothed = np.stack([r.faces[0].data["motion"] for r in smooth_track_motion(
        iter(list(opened.frames(0))), engine, source, 1.0, fps)])  # fmt: skip
    assert own.shape == smoothed.shape and own.shape[2] == 2

    def steps(motion):  # the mean second difference along time
        return np.abs(np.diff(motion, 2, axis=0)).mean()

    assert steps(smoothed) < 0.6 * steps(own)  # the frame-to-frame shake is smoothed (read: 0.17x)
    assert np.abs(smoothed - own).max() < 0.02 * engine.crop_size  # not another motion (read: 3.2 px of 384)

    # the engine draws what it is given: its own motion given back draws the same face
    tf = records[5].faces[0]
    crop = warp_face(_frames(clip)[5], tf.transform, engine.crop_size)
    a = engine.swap(crop, tf.crop_face, source, analysis=tf.data)
    b = engine.swap(crop, tf.crop_face, source, analysis={**tf.data, "motion": own[5]})
    assert np.array_equal(a.landmarks, b.landmarks) and np.array_equal(a.detail, b.detail)
    with pytest.raises(ValueError, match="motion"):
        engine.swap(crop, tf.crop_face, source, analysis={**tf.data, "motion": own[5][:-1]})

    # a video swap hands each frame its smoothed motion (frames made on this thread, the engine watched)
    given = []
    swap = type(engine).swap
    monkeypatch.setattr(engine, "swap", lambda *a, **k: given.append(k["analysis"].get("motion")) or swap(engine, *a, **k))
    swap_video(pipe, source, clip, tmp_path / "out.mp4", cache_dir=tmp_path / "cache", progress=False, workers=0)
    assert len(given) == len(records) and all(g is not None for g in given)
    assert np.allclose(np.stack(given), smoothed)


def test_the_mouth_rule_reads_the_cached_smoothed_opening(pipe, clip, source, tmp_path):
    from saswap.engines.geometric import mouth_openness
    from saswap.face.alignment import warp_face

    opened, _ = pipe.precompute(clip, tmp_path / "cache", progress=False)
    records = list(opened.frames(0))
    stored = np.array([r.faces[0].data["mouth_opening"][0] for r in records])
    measured = np.array([mouth_openness(r.faces[0].face.landmarks) for r in records])
    assert np.abs(stored - measured).max() > 1e-4  # smoothed, not the frame's own value
    assert np.abs(np.diff(stored, 2)).mean() < np.abs(np.diff(measured, 2)).mean()
    # the engine takes the lower face's treatment from the stored opening
    tf = records[5].faces[0]
    crop, face = warp_face(_frames(clip)[5], tf.transform, pipe.engine.crop_size), tf.crop_face
    wide = dict(tf.data, mouth_opening=np.array([1.0], np.float32))  # far from the source's: the mouth rule acts
    a = pipe.engine.swap(crop, face, source, analysis=tf.data)
    b = pipe.engine.swap(crop, face, source, analysis=wide)
    lower = np.asarray(a.landmarks)[[14, 17, 18, 200], :2]
    assert np.abs(lower - np.asarray(b.landmarks)[[14, 17, 18, 200], :2]).max() > 0.5


def test_the_lower_face_follows_the_cached_smoothed_expression(pipe, clip, source, tmp_path):
    from saswap.face.alignment import warp_face
    from saswap.face.morphable import fit_morphable

    opened, _ = pipe.precompute(clip, tmp_path / "cache", progress=False)
    records = list(opened.frames(0))
    stored = np.stack([r.faces[0].data["expression"] for r in records])
    fitted = np.stack([fit_morphable(pipe.engine.model, r.faces[0].face.landmarks_68).expr for r in records])
    assert stored.shape == fitted.shape == (len(records), pipe.engine.model.num_expr)
    assert np.abs(stored - fitted).max() > 1e-3  # smoothed, not the frame's own fit
    assert np.abs(np.diff(stored, 2, axis=0)).mean() < np.abs(np.diff(fitted, 2, axis=0)).mean()
    # the engine's lower face takes the stored expression: another one moves the chin and lips
    tf = records[5].faces[0]
    crop, face = warp_face(_frames(clip)[5], tf.transform, pipe.engine.crop_size), tf.crop_face
    other = dict(tf.data, expression=(tf.data["expression"] + 2.0).astype(np.float32))
    a = pipe.engine.swap(crop, face, source, analysis=tf.data)
    b = pipe.engine.swap(crop, face, source, analysis=other)
    moved = np.abs(np.asarray(a.landmarks)[:, :2] - np.asarray(b.landmarks)[:, :2]).max(axis=1)
    assert moved[[14, 152]].max() > 2.0, moved[[14, 152]]  # the lower lip and the chin
    assert moved[[10, 151]].max() < 0.5 * moved[[14, 152]].max()  # the forehead less (through the fold limit)


def test_corrupt_cache_is_detected_and_rebuilt(pipe, clip, source, tmp_path, caplog):
    cache_dir = tmp_path / "cache"
    opened, _ = pipe.precompute(clip, cache_dir, progress=False)
    data = bytearray(opened.path.read_bytes())
    data[len(data) // 3] ^= 0xFF
    opened.path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        result = pipe.swap_video(source, clip, tmp_path / "out.mp4", cache_dir=cache_dir, progress=False)
    assert "corrupt cache file" in caplog.text and "rebuilding" in caplog.text
    assert not result.cache_hit and result.frames_swapped >= result.frames - 1
    again, existed = pipe.precompute(clip, cache_dir, progress=False)
    assert existed  # the rebuilt cache is valid


def test_lossless_output_is_exact_outside_the_face(pipe, clip, source, tmp_path):
    out = tmp_path / "lossless.mp4"
    cache_dir = tmp_path / "cache"
    pipe.swap_video(source, clip, out, cache_dir=cache_dir, crf=0, fade_frames=0, progress=False)
    opened, _ = pipe.precompute(clip, cache_dir, progress=False)
    for template, swapped, record in zip(_frames(clip), _frames(out), opened.frames()):
        diff = np.abs(template.astype(int) - swapped.astype(int)).max(axis=2)
        # the swapped region: where the same swap of this frame's cached analysis changes anything
        masks = pipe.swap_frame(template.copy(), template, record, source)
        # 4:2:0 video shares a chroma sample between 2x2 pixels and the decoder interpolates chroma: pixels
        # within 2 of a changed one may change too
        changed = np.logical_or.reduce([m > 0 for m in masks]).astype(np.uint8)
        outside = cv2.dilate(changed, np.ones((5, 5), np.uint8)) == 0
        assert outside.mean() > 0.2  # a close-up: the face and what the shape flow moves fill most of it
        assert diff[outside].max() <= 1, f"frame {record.index}: pixels outside the swapped region changed"
        assert diff[~outside].max() > 10  # the face itself did change


@pytest.mark.slow
def test_repeated_frames_get_their_first_showings_face(pipe, clip, source, tmp_path, capsys):
    """A template converted from a lower frame rate shows some pictures twice: those frames are found, not analysed
    or swapped again, and written with the same face as the frame they repeat (before, each got a face of its own:
    it moved by about 1% of the eye distance against a head that stood still)."""
    from saswap.pipelines.video import swap_video
    from saswap.videoio import VideoWriter

    frames = _frames(clip)
    shown = [k for i in range(len(frames)) for k in ([i, i] if i % 4 == 3 else [i])]  # every fourth picture twice
    template = tmp_path / "pulldown.mp4"
    h, w = frames[0].shape[:2]
    with VideoWriter(template, width=w, height=h, fps=30.0, crf=12) as writer:
        for k in shown:
            writer.write(frames[k])
    cache_dir = tmp_path / "cache"
    opened, _ = pipe.precompute(template, cache_dir, progress=False)
    records = list(opened.frames())
    expected = [i for i in range(1, len(shown)) if shown[i] == shown[i - 1]]
    found = [r.index for r in records if r.repeat_of is not None]
    # the detector needs a few frames' changes to judge against: none is called a repeat before the eighth frame
    assert found == [i for i in expected if i >= 8] and len(found) >= 2
    assert all(records[i].repeat_of == i - 1 for i in found)
    assert opened.header["repeats"] == len(found)
    from saswap.cli import main

    assert main(["precompute", str(template), "--cache-dir", str(tmp_path / "cli-cache"), "--quiet"]) == 0
    assert f"{len(shown)} frames, {len(found)} repeat the picture before them" in capsys.readouterr().out
    calls = []
    original = pipe.swap_frame

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    pipe.swap_frame = counting
    try:
        out = tmp_path / "out.mp4"
        result = swap_video(pipe, source, template, out, cache_dir=cache_dir, crf=0, progress=False)
    finally:
        del pipe.swap_frame
    assert len(calls) == len(shown) - len(found) and result.frames == len(shown) and result.frames_repeated == len(found)
    written, decoded = _frames(out), _frames(template)
    for i in found:
        # the face is the one written for the picture's first showing; the rest of the frame is the template's own
        face = np.abs(written[i].astype(int) - decoded[i].astype(int)).max(axis=2) > 10
        assert face.mean() > 0.02
        assert np.abs(written[i].astype(int) - written[i - 1].astype(int))[face].max() <= 2
    # A swap that starts on a repeat makes that frame from its cached analysis. The tone stabiliser counts frames
    # from the swap's start, the cache from the template's: each later repeat still finds its picture's reading.
    from saswap.pipelines.video import ToneStabiliser

    found_reading = []
    original_repeat = ToneStabiliser.repeat

    def recording(self, track, index, anchor):
        found_reading.append(anchor in self._readings.get(track, {}))
        return original_repeat(self, track, index, anchor)

    ToneStabiliser.repeat = recording
    try:
        start = found[0] / 30.0 + 0.001
        trimmed = swap_video(pipe, source, template, tmp_path / "t.mp4", cache_dir=cache_dir, crf=0, start=start,
                             progress=False)  # fmt: skip
    finally:
        ToneStabiliser.repeat = original_repeat
    first = _frames(tmp_path / "t.mp4")[0]
    assert trimmed.frames_swapped == trimmed.frames and trimmed.frames_repeated == len(found) - 1
    assert np.abs(first.astype(int) - decoded[found[0]].astype(int)).max(axis=2).mean() > 1
    assert len(found_reading) == len(found) - 1 and all(found_reading)


def test_repeat_detector_tells_a_repeat_from_a_slow_scene():
    from saswap.pipelines.analysis import RepeatDetector

    image = cv2.resize(cv2.imread(str(data_path("images", "sberswap__beckham.jpg")))[..., ::-1], (320, 320))
    rng = np.random.default_rng(1)

    def noisy(img):  # a codec's noise: a level or two, everywhere
        return np.clip(img + rng.normal(0, 1.0, img.shape), 0, 255).astype(np.uint8)

    def shifted(dx):
        return cv2.warpAffine(image, np.float32([[1, 0, dx], [0, 1, 0]]), (320, 320), borderMode=cv2.BORDER_REFLECT)

    # a slow pan, a quarter of a pixel per frame: every frame changes about as little, none is a repeat
    d = RepeatDetector()
    assert not any(d(noisy(shifted(0.25 * t))) for t in range(40))
    # a pan of 2 pixels per frame where every fifth picture is shown twice: those alone are repeats
    d = RepeatDetector()
    xs = [2.0 * (t - t // 5) for t in range(40)]
    calls = [d(noisy(shifted(x))) for x in xs]
    assert [t for t, c in enumerate(calls) if c] == [t for t in range(8, 40) if xs[t] == xs[t - 1]]
    # a slow drift after a repeat ends the run of repeats once it adds up (each frame is judged against the anchor)
    d = RepeatDetector(min_history=4)
    for t in range(6):
        d(noisy(shifted(3.0 * t)))
    held = [d(noisy(shifted(15.0 + 0.04 * t))) for t in range(1, 30)]
    assert held[0] and not all(held)


def test_trimming(pipe, clip, source, tmp_path):
    result = pipe.swap_video(source, clip, tmp_path / "t.mp4", cache_dir=tmp_path / "c", start=0.2, end=0.5, progress=False)
    fps = 30.0
    assert abs(result.frames - round(0.3 * fps)) <= 1
    assert len(_frames(tmp_path / "t.mp4")) == result.frames


def test_reference_person_alone_is_swapped_when_someone_else_is_there_first(pipe, tmp_path, source):
    """Left: one person all along; right: another who enters after 10 frames. With a photo of the second
    person (a later frame of their clip) as reference, only the right half changes, and nothing changes
    before they enter. The default embedder (SFace) needs no optional package."""
    left = [f for f in _frames(data_path("videos", "liveportrait__d8.mp4"), 20)]
    with av.open(str(data_path("videos", "liveportrait__d19.mp4"))) as c:
        right = [f.to_ndarray(format="rgb24") for _, f in zip(range(20), c.decode(video=0))]
    frames = []
    for t in range(20):
        frame = np.zeros((480, 960, 3), np.uint8)
        frame[:, :480] = left[t]
        if t >= 10:
            frame[:, 480:] = right[t]
        frames.append(frame)
    template = _encode(tmp_path / "two.mp4", frames)
    with av.open(str(data_path("videos", "liveportrait__d19.mp4"))) as c:
        reference = [f.to_ndarray(format="rgb24") for _, f in zip(range(120), c.decode(video=0))][-1]
    out_path = tmp_path / "swapped.mp4"
    result = pipe.swap_video(
        source, template, out_path, reference=reference, crf=0,
        cache_dir=tmp_path / "cache", progress=False,
    )  # fmt: skip
    assert len(result.tracks) == 1 and pipe._embedder.name == "sface"
    before, after = _frames(template), _frames(out_path)
    for t in range(20):
        diff = np.abs(before[t].astype(int) - after[t].astype(int)).max(axis=2)
        assert (diff[:, :470] > 3).mean() < 0.001, f"frame {t}: the other person was swapped"
        if t < 10:
            assert (diff > 3).mean() < 0.001, f"frame {t}: changed before the reference person entered"
    assert sum((np.abs(before[t].astype(int) - after[t].astype(int)).max(axis=2)[:, 480:] > 3).mean() > 0.01 for t in range(12, 20)) >= 7


@pytest.mark.parametrize("kind", ["text", "empty", "audio"])
def test_cli_refuses_bad_videos_before_loading_models(tmp_path, kind, capsys):
    from saswap.cli import main

    bad = tmp_path / "clip.mp4"
    if kind == "text":
        bad.write_text("not a video at all\n")
    elif kind == "empty":
        bad.write_bytes(b"")
    else:
        with av.open(str(bad), "w") as out:
            stream = out.add_stream("aac", rate=16000)
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate = 16000
            for _ in range(10):
                for p in stream.encode(frame):
                    out.mux(p)
            for p in stream.encode():
                out.mux(p)
    out = tmp_path / "out.mp4"
    code = main(["swap", "-s", str(data_path("images", "sberswap__beckham.jpg")), "-t", str(bad), "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and str(bad) in err and err.count("\n") == 1, err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_settings_and_outputs_that_would_lose_work_are_refused_before_a_frame_is_made(pipe, clip, source, tmp_path,
                                                                                     capsys):
    import shutil

    from saswap.cli import main
    from saswap.errors import SaSwapError

    template = tmp_path / "mine.mp4"
    shutil.copy(clip, template)
    before = template.read_bytes()
    # the swap reads the template while it writes its output: replacing it would lose the user's video
    with pytest.raises(SaSwapError, match="is the template video itself"):
        pipe.swap_video(source, template, template, progress=False, cache=False)
    (tmp_path / "link.mp4").symlink_to(template)
    with pytest.raises(SaSwapError, match="is the template video itself"):
        pipe.swap_video(source, template, tmp_path / "link.mp4", progress=False, cache=False)
    src = str(data_path("images", "sberswap__beckham.jpg"))
    assert main(["swap", "-s", src, "-t", str(template), "-o", str(template), "--overwrite"]) == 2
    assert "is the target video itself; give another output file" in capsys.readouterr().err
    assert template.read_bytes() == before
    with pytest.raises(SaSwapError, match="fade_frames must be a whole number of frames, 0 or more, got -3"):
        pipe.swap_video(source, template, tmp_path / "a.mp4", progress=False, cache=False, fade_frames=-3)
    with pytest.raises(SaSwapError, match=r"'warp' is not a libx264 preset; use one of ultrafast, superfast"):
        pipe.swap_video(source, template, tmp_path / "b.mp4", progress=False, cache=False, preset="warp")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.mp4", "mine.mp4"]


def test_an_animated_gif_is_swapped_into_a_gif_with_its_timing(tmp_path, capsys):
    """A meme template: an animated GIF is swapped as a video (chosen by content), into a GIF with the template's own
    frame durations (a variable one too) and loop count, tagged as synthetic (``saswap inspect`` reads it), or into
    an MP4."""
    from PIL import Image

    from saswap.cli import main

    frames = _frames(data_path("videos", "liveportrait__d8.mp4"), 8)
    frames = [Image.fromarray(cv2.resize(f, (240, 240), interpolation=cv2.INTER_AREA)) for f in frames]
    durations = [40, 40, 40, 100, 40, 40, 40, 60]
    frames[0].save(tmp_path / "meme.gif", save_all=True, append_images=frames[1:], duration=durations, loop=0)
    source = str(data_path("images", "sberswap__beckham.jpg"))
    assert main(["swap", "-s", source, "-t", str(tmp_path / "meme.gif"), "-o", str(tmp_path / "out.gif"), "-q",
                 "--no-cache", "--crf", "20", "--preset", "slow"]) == 0  # fmt: skip
    # a GIF has no encoder settings: said, not passed over in silence
    assert "out.gif: a GIF has no encoder settings; --crf, --preset ignored" in capsys.readouterr().err
    out = Image.open(tmp_path / "out.gif")
    assert out.n_frames == 8
    read, changed = [], []
    for k in range(8):
        out.seek(k)
        read.append(out.info["duration"])
        diff = np.abs(np.asarray(out.convert("RGB"), np.int16) - np.asarray(frames[k], np.int16)).max(axis=2)
        changed.append(float((diff[70:170, 70:170] > 25).mean()))
    assert read == durations and out.info["loop"] == 0
    assert min(changed) > 0.2, changed  # the face (the middle of the frame) is another's in every frame
    assert main(["inspect", str(tmp_path / "out.gif")]) == 0 and "SYNTHETIC" in capsys.readouterr().out
    assert main(["swap", "-s", source, "-t", str(tmp_path / "meme.gif"), "-o", str(tmp_path / "out.mp4"), "-q",
                 "--no-cache"]) == 0  # fmt: skip
    assert len(_frames(tmp_path / "out.mp4")) == 8


def _faceless_video(path: Path, frames: int) -> Path:
    """A 160x120 clip of ``frames`` flat grey frames (no face anywhere)."""
    return _encode(path, [np.full((120, 160, 3), 100 + 10 * t, np.uint8) for t in range(frames)], crf=None)


def test_a_video_without_a_face_is_an_error_and_leaves_nothing(tmp_path, capsys):
    """As for a photo: no face in any frame of the template is an error naming the file (exit 2), and no output."""
    from saswap.cli import main

    template = _faceless_video(tmp_path / "wall.mp4", 6)
    code = main(["swap", "-s", str(data_path("images", "sberswap__beckham.jpg")), "-t", str(template), "-o",
                 str(tmp_path / "out.mp4"), "-q", "--no-cache"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and f"{template}: no face found in the video (6 frames)" in err and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wall.mp4"]
    # its precompute says so too (it exited 0 with a line on standard output)
    assert main(["precompute", str(template), "--cache-dir", str(tmp_path / "cache"), "-q"]) == 2
    assert f"{template}: no face found in the video (6 frames)" in capsys.readouterr().err


def test_a_video_as_the_source_gives_its_most_frontal_closed_mouth_frame(pipe, clip, tmp_path, capsys):
    """A selfie clip as the source: its best frame is the source photo (of the sampled frames' faces, the mouth at most
    as open as their median, then the most frontal), through the API and the command line; a clip without a face is
    an error naming it."""
    from saswap.cli import main
    from saswap.engines.geometric import mouth_openness
    from saswap.videoio import VideoReader

    index, when, _ = pipe.source_frame(clip, every=2)
    with VideoReader(clip) as reader:
        faces = {f.index: pipe.analyzer(f.image)[0] for f in reader if f.index % 2 == 0}
    median = float(np.median([mouth_openness(f.landmarks) for f in faces.values()]))
    eligible = {i: abs(float(f.pose[0])) + abs(float(f.pose[1])) for i, f in faces.items()
                if mouth_openness(f.landmarks) <= median}  # fmt: skip
    assert index == min(eligible, key=eligible.get) and when == pytest.approx(index / 30, abs=0.02)
    from_video, _ = pipe.prepare_source(clip)
    from_frame, _ = pipe.prepare_source(pipe.source_frame(clip)[2])  # five frames a second by default
    assert np.array_equal(from_video.face.landmarks, from_frame.face.landmarks)
    target = data_path("images", "sberswap__beckham.jpg")
    assert main(["swap", "-s", str(clip), "-t", str(target), "-o", str(tmp_path / "out.png")]) == 0
    wall = _faceless_video(tmp_path / "wall.mp4", 4)
    capsys.readouterr()
    assert main(["swap", "-s", str(wall), "-t", str(target), "-o", str(tmp_path / "none.png")]) == 2
    assert f"{wall}: no face found in the video's sampled frames" in capsys.readouterr().err
    assert not (tmp_path / "none.png").exists()


def test_occlusion_masks_and_readings_are_made_steady_within_a_shot():
    """A pixel that the per-frame occlusion rules flip for one frame is steadied by its neighbours; a shot
    cut is not crossed; the frames passed in keep their raw masks."""
    from test_cache import _face

    from saswap.pipelines.analysis import FrameAnalysis, TargetFace
    from saswap.pipelines.video import _steady_masks

    def record(i, value, cut=False):
        occ = np.zeros((8, 8), np.uint8)
        occ[2:4, 2:4] = value
        return FrameAnalysis(i, i, i / 30, [TargetFace(_face(0.0), np.eye(2, 3), {"occlusion": occ})], cut)

    frames = [record(0, 1), record(1, 1), record(2, 0), record(3, 1), record(4, 1)]
    steady = _steady_masks(frames, 2, 2)
    assert steady.faces[0].data["occlusion"][2, 2] == 1  # the one-frame dropout is filled
    assert frames[2].faces[0].data["occlusion"][2, 2] == 0  # the raw mask is left for the neighbours
    frames = [record(0, 1), record(1, 1), record(2, 0, cut=True), record(3, 0), record(4, 0)]
    assert _steady_masks(frames, 2, 2).faces[0].data["occlusion"][2, 2] == 0  # the earlier shot does not count

    # the blur and texture readings: the mean of the same frames' readings, NaN left out
    def reading(i, blur, texture):
        data = {"blur": np.array([blur], np.float32), "texture": np.array([texture], np.float32)}
        return FrameAnalysis(i, i, i / 30, [TargetFace(_face(0.0), np.eye(2, 3), data)], False)

    frames = [reading(0, 1.0, 2.0), reading(1, 2.0, np.nan), reading(2, 3.0, 4.0), reading(3, 4.0, 6.0)]
    steady = _steady_masks(frames, 1, 1).faces[0].data
    assert float(steady["blur"][0]) == 2.0 and float(steady["texture"][0]) == 3.0
    assert np.isnan(frames[1].faces[0].data["texture"][0])  # the raw reading is left for the neighbours


def _tone_frames(offsets, light):
    """A template whose face area's light follows ``light`` and a swapped output whose face is the template's
    plus a per-frame colour offset (flicker), frame by frame; the face's mask and an identity alignment."""
    mask = np.zeros((96, 96), np.float32)
    cv2.circle(mask, (48, 48), 30, 1.0, -1)
    out, template = [], []
    for off, lit in zip(offsets, light):
        t = np.full((96, 96, 3), 100 + lit, np.uint8)
        o = t.copy()
        o[mask > 0] = np.clip(t[mask > 0].astype(int) + 20 + off, 0, 255)
        template.append(t)
        out.append(o)
    return out, template, mask


def _face_mean(image, mask):
    return float(image[mask > 0].mean())


def test_tone_stabiliser_removes_flicker_without_lag_and_keeps_the_template_light_and_cuts():
    from saswap.pipelines.video import ToneStabiliser

    rng = np.random.default_rng(0)
    n = 40
    offsets = np.round(rng.normal(0, 4, n)).astype(int)  # frame-to-frame flicker of the swapped face
    light = np.where(np.arange(n) < 20, 0, 30)  # the template's own light steps up at frame 20 (kept)
    cut_at = 30  # a new shot: the offset of the swap changes there, and must not leak across
    offsets[cut_at:] += 25
    out, template, mask = _tone_frames(offsets, light)
    before = [_face_mean(o, mask) - _face_mean(t, mask) for o, t in zip(out, template)]
    st = ToneStabiliser(reach=6, grid=16, sigma=1.0)
    eye = np.eye(2, 3)
    for i in range(n):
        st.measure(1, i, i == cut_at, out[i], template[i], mask, eye, 96)
    for i in range(n):
        st.apply(1, i, out[i])
        st.forget(i)
    after = np.array([_face_mean(o, mask) - _face_mean(t, mask) for o, t in zip(out, template)])
    inner = [i for i in range(n) if abs(i - cut_at) > 6]
    assert np.abs(np.diff(after)[inner[:-1]]).mean() < 0.35 * np.abs(np.diff(before)[inner[:-1]]).mean()
    assert abs(after[:cut_at].mean() - np.mean(before[:cut_at])) < 1.0  # no drift: the mean offset is kept
    assert after[cut_at:].mean() - after[:cut_at].mean() > 20  # the cut's step is not smoothed away
    assert abs(after[cut_at - 1] - np.mean(before[cut_at - 7 : cut_at])) < 2.5  # nor blurred across the cut
    # outside the mask nothing changes, and the template's light step is in the output
    assert all((o[mask == 0] == t[mask == 0]).all() for o, t in zip(out, template))
    assert _face_mean(out[25], mask) - _face_mean(out[15], mask) > 20


def test_tone_stabiliser_smooths_the_membrane_offset_and_leaves_the_rest_of_the_face():
    """With the compose stage's membrane offset (``boundary``, the crop averaged down twice), the stabiliser smooths
    that offset along the track and nothing else: the face's flicker goes, while what the template does under the
    new face (its light, a feature that moves) passes through untouched, and the offset's shape lands where the
    crop had it."""
    from saswap.pipelines.video import ToneStabiliser

    rng = np.random.default_rng(1)
    n, size = 30, 96
    noise = np.round(rng.normal(0, 4, n))
    light = np.where(np.arange(n) < 15, 0, 30)
    mask = np.zeros((size, size), np.float32)
    cv2.circle(mask, (48, 48), 30, 1.0, -1)
    left = (np.arange(size) < 48).astype(np.float32)[None, :].repeat(size, 0)  # the offset on the face's left half
    out, template, before = [], [], []
    st = ToneStabiliser(reach=6)
    for i in range(n):
        t = np.full((size, size, 3), 90 + light[i], np.uint8)
        cv2.circle(t, (40 + i, 60), 3, (20, 20, 20), -1)  # a feature of the template that moves
        offset = (10.0 + noise[i]) * left * mask  # what the membrane added this frame
        o = np.clip(t.astype(np.float32) + 20 * mask[..., None] + offset[..., None] + 0.5, 0, 255).astype(np.uint8)
        template.append(t)
        out.append(o)
        before.append(o.copy())
        boundary = cv2.resize(np.repeat(offset[..., None], 3, axis=2), (size // 2, size // 2), interpolation=cv2.INTER_AREA)
        boundary = boundary.astype(np.float32)
        st.measure(1, i, False, o, t, mask, np.eye(2, 3), size, boundary=boundary)
    for i in range(n):
        st.apply(1, i, out[i])
    near = [np.arange(max(0, i - 6), min(n, i + 7)) for i in range(n)]  # the reach, cut at the video's ends
    smooth = np.array([np.average(noise[k], weights=np.exp(-0.5 * ((k - i) / 3.0) ** 2)) for i, k in enumerate(near)])
    for i in range(n):
        shift = out[i].astype(int) - before[i].astype(int)
        # inside the left half the face moves by the smoothed offset minus its own; the right half and everything
        # outside the mask stay as they were (the template's light and its moving feature included)
        assert abs(np.median(shift[30:66, 24:44, 0]) - (smooth[i] - noise[i])) <= 1.0
        assert np.abs(shift[30:66, 53:72]).max() <= 1 and (shift[mask == 0] == 0).all()
    steps = np.abs(np.diff([int(out[i][48, 30, 0]) - int(template[i][48, 30, 0]) for i in range(n)]))
    assert steps.mean() < 0.4 * np.abs(np.diff(noise)).mean()


def test_tone_stabiliser_counts_each_frames_offset_only_where_its_face_was():
    """A face that moves within its crop (a head turning) has its outline somewhere else in every frame. The membrane
    offsets of the frames around one, averaged with their faces' blend weights (the reading's 4th channel), count only
    where those faces were: an offset that is the same over every face stays as it was, instead of losing part of
    itself near the outline to the zeros of frames whose faces did not reach there (a band of the uncorrected face
    with the neighbours' outline as its edge, seen on `liveportrait__d14`); an offset that flickers is still
    smoothed inside the face."""
    from saswap.pipelines.video import ToneStabiliser

    n, size, reach = 20, 96, 6
    centres = 30 + 2 * np.arange(n)  # the face moves two pixels a frame across its crop
    noise = np.round(np.random.default_rng(2).normal(0, 4, n))

    def run(level, channels):
        st = ToneStabiliser(reach=reach)
        out, before, masks = [], [], []
        for i in range(n):
            mask = np.zeros((size, size), np.float32)
            cv2.circle(mask, (int(centres[i]), 48), 24, 1.0, -1)
            mask = cv2.GaussianBlur(mask, (0, 0), 1.5)
            offset = level[i] * mask  # what the membrane added (times the blend weight)
            t = np.full((size, size, 3), 100, np.uint8)
            o = np.clip(t + offset[..., None] + 0.5, 0, 255).astype(np.uint8)
            small = (size // 2, size // 2)
            boundary = cv2.resize(np.repeat(offset[..., None], 3, axis=2), small, interpolation=cv2.INTER_AREA)
            if channels == 4:
                boundary = np.dstack([boundary, cv2.resize(mask, small, interpolation=cv2.INTER_AREA)])
            st.measure(1, i, False, o, t, mask, np.eye(2, 3), size, boundary=boundary.astype(np.float32))
            out.append(o)
            before.append(o.copy())
            masks.append(mask)
        for i in range(n):
            st.apply(1, i, out[i])
        return [o.astype(int) - b.astype(int) for o, b in zip(out, before)], masks

    shifts, masks = run(np.full(n, 30.0), 4)
    for shift, mask in zip(shifts, masks):
        assert np.abs(shift[mask > 0.5]).max() <= 1
    # without the weights the frames around count as zeros where their faces did not reach: the band
    shifts, masks = run(np.full(n, 30.0), 3)
    assert min(shift[mask > 0.5].min() for shift, mask in zip(shifts[reach:-reach], masks[reach:-reach])) <= -5
    # a flickering offset is smoothed where every face around covers the pixel
    shifts, _ = run(12.0 + noise, 4)
    near = [np.arange(max(0, i - reach), min(n, i + reach + 1)) for i in range(n)]
    smooth = np.array([np.average(noise[k], weights=np.exp(-0.5 * ((k - i) / 3.0) ** 2)) for i, k in enumerate(near)])
    for i, shift in enumerate(shifts):
        inner = shift[40:56, centres[i] - 6 : centres[i] + 7, 0]
        assert abs(np.median(inner) - (smooth[i] - noise[i])) <= 1.0


def test_a_tone_reading_of_a_mask_kept_over_its_box_is_the_full_masks_and_holds_it():
    """A made frame keeps its masks over their changed box alone (33 MB a face less at 4K): placed back they are the
    full-size masks, and the tone stabiliser's reading of one, placed by its ``origin``, equals the reading of the
    full-size mask (with and without a membrane offset) and holds the kept mask itself, not a copy."""
    from saswap.pipelines.video import ToneStabiliser, _changed_box, _full_mask

    rng = np.random.default_rng(3)
    h, w = 90, 120
    out, template = (rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(2))
    mask = np.zeros((h, w), np.float32)
    cv2.ellipse(mask, (70, 40), (25, 18), 20, 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), 3)
    box = _changed_box([mask])
    x1, y1, x2, y2 = box
    assert (x2 - x1) * (y2 - y1) < 0.5 * mask.size
    kept = np.ascontiguousarray(mask[y1:y2, x1:x2])
    assert np.array_equal(_full_mask(kept, box, mask.shape), mask)
    M = np.array([[1.2, 0.1, -30.0], [-0.1, 1.2, -10.0]])
    st = ToneStabiliser()
    for boundary in (None, rng.normal(0, 3, (48, 48, 3)).astype(np.float32)):
        full = st.reading(out, template, mask, M, 96, boundary)
        boxed = st.reading(out, template, kept, M, 96, boundary, origin=(x1, y1))
        assert full[2] == boxed[2] == box  # the mask's box in the frame
        for a, b in zip(full[:2] + full[3:], boxed[:2] + boxed[3:]):
            assert (a is None and b is None) or np.array_equal(a, b)
        assert np.shares_memory(boxed[3], kept)


def test_frames_waiting_to_be_written_hold_no_decoded_picture(pipe, clip, source, tmp_path, monkeypatch):
    """A made frame waits for the tone stabiliser's reach with its raw YUV and the new picture alone: the frames the
    video writer gets carry no decoded picture (25 MB a frame at 4K), and the changed pixels come as a full-size mask
    over the frame, the faces' kept over their box placed back."""
    from saswap import videoio
    from saswap.videoio import probe_video

    seen = []
    real = videoio.VideoWriter.write

    def spy(self, image, frame=None, box=None, mask=None):
        seen.append((frame.image.size, box, None if mask is None else (mask.shape, bool(mask.any()))))
        return real(self, image, frame, box, mask)

    monkeypatch.setattr(videoio.VideoWriter, "write", spy)
    result = pipe.swap_video(source, clip, tmp_path / "o.mp4", cache_dir=tmp_path / "cache", progress=False, end=0.5)
    assert len(seen) == result.frames > 0 and result.frames_swapped > 0
    assert all(size == 0 for size, _, _ in seen)
    info = probe_video(clip)
    made = [m for _, box, m in seen if box is not None]
    assert len(made) == result.frames_swapped and all(m == ((info.height, info.width), True) for m in made)


def test_unwritable_cache_folder_falls_back_to_no_cache(pipe, clip, source, tmp_path, caplog):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with caplog.at_level(logging.WARNING):
        result = pipe.swap_video(source, clip, tmp_path / "o.mp4", cache_dir=blocker / "cache", progress=False)
    assert "a_file is a file, not a folder); swapping without a persistent cache" in caplog.text
    assert result.cache_path is None and not result.cache_hit
    assert result.frames_swapped >= result.frames - 1 and (tmp_path / "o.mp4").is_file()
    from saswap.errors import SaSwapError

    with pytest.raises(SaSwapError, match=r"cannot be created \(.*a_file is a file, not a folder\)"):
        pipe.precompute(clip, blocker / "cache", progress=False)


def test_a_folder_where_the_cache_file_goes_is_an_error_before_any_work(pipe, clip, tmp_path):
    """It was found only when the cache, analysed whole, could not replace it: an IsADirectoryError traceback."""
    from saswap.errors import SaSwapError
    from saswap.pipelines.cache import cache_path, file_sha256
    from saswap.pipelines.video import cache_settings

    folder = tmp_path / "cache"
    place = cache_path(folder, file_sha256(clip), cache_settings(pipe, None))
    place.mkdir(parents=True)
    with pytest.raises(SaSwapError, match="the template cache's place holds a folder, not a file; remove it"):
        pipe.precompute(clip, folder, progress=False)
    assert [p.name for p in folder.iterdir() if p.name.endswith(".tmp")] == []


def test_frames_whose_face_is_turned_too_far_are_warned_about_once(pipe, clip, source, tmp_path, caplog, monkeypatch):
    import saswap.pipelines.image as image

    cache = tmp_path / "cache"
    with caplog.at_level(logging.WARNING, logger="saswap"):
        pipe.swap_video(source, clip, tmp_path / "a.mp4", cache_dir=cache, progress=False)
    assert "turned more than" not in caplog.text  # d8 faces the camera
    monkeypatch.setattr(image, "TARGET_YAW_WARN", -1.0)  # every face counts as turned
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="saswap"):
        result = pipe.swap_video(source, clip, tmp_path / "b.mp4", cache_dir=cache, progress=False)
    warned = [r.getMessage() for r in caplog.records if "turned more than" in r.getMessage()]
    n = result.frames_swapped
    assert len(warned) == 1 and f"in {n} of {n} swapped frames (0.0-" in warned[0] and str(clip) in warned[0]


def test_a_negative_count_of_workers_is_refused_before_any_work(pipe, clip, source, tmp_path):
    """``workers=-1`` was taken as "none" without a word (and ``analysis_workers=-1`` as the default)."""
    from saswap.errors import SaSwapError

    for name in ("workers", "analysis_workers"):
        with pytest.raises(SaSwapError, match=f"{name} must be 0 or more .*got -1"):
            pipe.swap_video(source, clip, tmp_path / "o.mp4", cache_dir=tmp_path / "cache", progress=False,
                            **{name: -1})  # fmt: skip
    with pytest.raises(SaSwapError, match="workers must be 0 or more"):
        pipe.precompute(clip, tmp_path / "cache", progress=False, workers=-2)
    assert not list(tmp_path.iterdir())


def _frame_worker_pids(parent: int) -> set[int]:
    """The frame worker processes ``parent`` started (Linux)."""
    pids = set()
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == parent and b"saswap.pipelines.workers" in (entry / "cmdline").read_bytes():
                pids.add(int(entry.name))
        except (OSError, IndexError, ValueError):
            pass
    return pids


def _interruptible(cmd: list[str]):
    """``cmd`` started with Python's own Ctrl-C handling, even where this runner was started with SIGINT ignored (a
    background job of a non-interactive shell)."""
    import signal
    import subprocess

    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip


def _gone(pids: set[int], seconds: float = 10.0) -> bool:
    """Whether the processes ``pids`` have all ended (waiting up to ``seconds``)."""
    import time

    deadline = time.time() + seconds
    while any(_running(pid) for pid in pids) and time.time() < deadline:
        time.sleep(0.1)
    return not any(_running(pid) for pid in pids)


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@pytest.mark.slow
def test_ctrl_c_exits_130_and_leaves_nothing(tmp_path):
    """SIGINT while the output is being written: exit code 130, one line, no output and no temporary file, and no
    frame worker process left running, with frames made on threads and in worker processes. SIGTERM (``timeout``,
    ``docker stop``) the same with exit code 143; Python's default ended the process on the spot and left the temporary
    file behind. The three swaps run side by side (most of each is the command's start)."""
    import signal
    import sys
    import time

    cases = [("threads", "SIGINT"), ("processes", "SIGINT"), ("threads", "SIGTERM")]
    started = {}
    for kind, signame in cases:
        out_dir = tmp_path / f"{kind}-{signame}"
        out_dir.mkdir()
        cmd = [
            sys.executable, "-m", "saswap", "swap", "-s", str(data_path("images", "sberswap__beckham.jpg")),
            "-t", str(data_path("videos", "liveportrait__d8.mp4")), "-o", str(out_dir / "o.mp4"), "--no-cache",
            "--start", "0", "--end", "2", "--quiet", "--workers", "2", "--worker-kind", kind,
        ]  # fmt: skip
        started[kind, signame] = (_interruptible(cmd), out_dir)
    workers = {}
    try:
        deadline = time.time() + 180
        while len(workers) < len(cases) and time.time() < deadline:
            for case, (proc, out_dir) in started.items():
                if case in workers:
                    continue
                assert proc.poll() is None, f"{case}: ended before it could be interrupted: {proc.communicate()}"
                if list(out_dir.glob(".o.mp4.*")):  # the output is being written
                    time.sleep(0.5)
                    workers[case] = _frame_worker_pids(proc.pid) if Path("/proc").is_dir() else set()
                    if Path("/proc").is_dir():
                        assert len(workers[case]) == (2 if case[0] == "processes" else 0), case
                    proc.send_signal(getattr(signal, case[1]))
            time.sleep(0.05)
        assert len(workers) == len(cases), f"no output begun in time: {sorted(set(started) - set(workers))}"
        for (kind, signame), (proc, out_dir) in started.items():
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == (130 if signame == "SIGINT" else 143), (kind, signame, err)
            assert ("interrupted" if signame == "SIGINT" else "terminated") in err, (kind, signame, err)
            assert list(out_dir.iterdir()) == [], (kind, signame)
            assert _gone(workers[kind, signame]), f"{kind}, {signame}: frame worker processes were left running"
    finally:
        for proc, _ in started.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


def test_two_builders_of_one_template_cache_analyse_it_once(pipe, clip, tmp_path):
    """Two precomputes of the same template at once: the writer lock lets one build the cache while the
    other waits, then finds the finished file (readers never see a partial one: it is renamed into place)."""
    import threading

    cache_dir = tmp_path / "cache"
    results = []
    calls = pipe.target_analyzer.calls

    def build():
        results.append(pipe.precompute(clip, cache_dir, progress=False))

    threads = [threading.Thread(target=build) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(existed for _, existed in results) == [False, True]
    assert pipe.target_analyzer.calls - calls == len(_frames(clip))  # analysed once
    assert [p.suffix for p in cache_dir.iterdir() if not p.name.endswith(".lock")] == [".stc"]


def test_fades_where_a_face_is_lost_not_at_cuts_or_ends():
    from saswap.pipelines.video import _fade_weights

    present = [[0]] * 10 + [[]] * 3 + [[0]] * 8  # lost for frames 10-12, back at 13
    header = {"frame_tracks": present, "cuts": []}
    w = list(_fade_weights(header, {0}, 3))
    assert w[0][0] == 1.0 and w[20][0] == 1.0  # no fade at the video's ends
    assert w[9][0] == 0.25 and w[8][0] == 0.5 and w[7][0] == 0.75 and w[6][0] == 1.0  # fades out
    assert w[10] == {} and w[12] == {}  # lost: nothing swapped (the frame passes through)
    assert w[13][0] == 0.25 and w[15][0] == 0.75 and w[16][0] == 1.0  # fades back in
    cut = list(_fade_weights({"frame_tracks": present, "cuts": [13]}, {0}, 3))
    assert cut[13][0] == 1.0  # a shot cut: the new shot starts swapped
    other = list(_fade_weights({"frame_tracks": [[0, 1]] * 5, "cuts": []}, {1}, 3))
    assert all(set(f) == {1} for f in other)  # only the chosen track


def test_cli_writes_webm_without_being_told_the_codec(clip, tmp_path, capsys):
    """The help lists .webm among the outputs, but the default encoder was libx264, which WebM cannot hold: now the
    codec follows the output (VP9 for .webm) unless --codec says otherwise."""
    from saswap.cli import main
    from saswap.videoio import probe_video

    out = tmp_path / "o.webm"
    args = ["swap", "-s", str(data_path("images", "sberswap__beckham.jpg")), "-t", str(clip), "-o", str(out)]
    assert main([*args, "--no-cache", "--quiet", "--end", "0.3"]) == 0, capsys.readouterr().err
    info = probe_video(out)
    assert info.codec == "vp9" and info.frame_count == len(_frames(out)) >= 8


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the worker processes in /proc")
def test_ctrl_c_while_analysis_workers_run_leaves_no_cache_and_no_worker(tmp_path):
    """SIGINT while template analysis workers run: exit code 130, no cache file, no worker left running."""
    import signal
    import sys
    import time

    cache = tmp_path / "cache"
    cmd = [
        sys.executable, "-m", "saswap", "precompute", str(data_path("videos", "facenet-pytorch__video.mp4")),
        "--cache-dir", str(cache), "--workers", "2", "--quiet",
    ]  # fmt: skip
    proc = _interruptible(cmd)
    deadline = time.time() + 120
    workers: set[int] = set()
    while time.time() < deadline and proc.poll() is None and len(workers) < 2:
        workers = _frame_worker_pids(proc.pid)
        time.sleep(0.05)
    time.sleep(1.0)  # the workers load their models and take frames
    assert proc.poll() is None and len(workers) == 2, "the analysis ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert list(cache.glob("*.stc")) == []  # nothing half-written
    assert _gone(workers), "analysis worker processes were left running"


def _skin_frames(pipe, shifts, noise_sd=6.0, seed=0):
    """A real face (``sadtalker__happy``) as a template, shown at integer ``shifts`` (the head moving while the
    alignment stays put), and as a swap whose face flickers: per-frame noise inside the face."""
    from saswap.face.masks import face_region_masks
    from saswap.io import load_image

    image = load_image(data_path("images", "sadtalker__happy.png"))
    image = cv2.resize(image, (384, 384), interpolation=cv2.INTER_CUBIC)
    face = pipe.analyzer(image)[0]
    regions = face_region_masks(face.landmarks[:468], image.shape[:2])
    mask = cv2.GaussianBlur(regions["face"].astype(np.float32), (0, 0), 2.0)
    rng = np.random.default_rng(seed)
    templates, outs = [], []
    for dx, dy in shifts:
        move = np.float32([[1, 0, dx], [0, 1, dy]])
        t = cv2.warpAffine(image, move, (384, 384), borderMode=cv2.BORDER_REPLICATE)
        m = cv2.warpAffine(mask, move, (384, 384))
        noise = cv2.GaussianBlur(rng.normal(0, noise_sd, (384, 384)).astype(np.float32), (0, 0), 1.0) * 3
        o = np.clip(t.astype(np.float32) + (noise * m)[..., None] + 0.5, 0, 255).astype(np.uint8)
        templates.append(t)
        outs.append(o)
    return face, regions, mask, templates, outs


def test_skin_stabiliser_steadies_the_skin_and_nothing_else(pipe):
    """The new face's skin flickers (noise that changes every frame): after the stabiliser it changes much less from
    frame to frame, in register with the face even while the head moves under a fixed alignment; the eyes, brows and
    lips, and everything outside the swap's mask, stay as made; a shot cut is not smoothed across."""
    from saswap.pipelines.video import SkinStabiliser

    n, cut = 16, 10
    shifts = [(i % 3, (i // 2) % 2) for i in range(n)]  # the head moves by whole pixels, the alignment does not
    face, regions, mask, templates, outs = _skin_frames(pipe, shifts)
    outs[cut:] = [np.clip(o.astype(int) + 40, 0, 255).astype(np.uint8) for o in outs[cut:]]  # a new shot, brighter
    before = [o.copy() for o in outs]
    M = pipe.engine.alignment(face)
    st = SkinStabiliser(sigma=1.0, size=pipe.engine.crop_size)
    for i in range(n):
        st.record(1, i, i == cut, st.reading(outs[i], templates[i], mask, M, face))
    for i in range(n):
        st.apply(1, i, outs[i])
        st.forget(i)
    skin = (regions["skin"] > 0.5) & (cv2.erode(mask, np.ones((9, 9), np.uint8)) > 0.99)
    skin &= cv2.erode(skin.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0  # away from the shifts' reach
    inner = [i for i in range(1, cut - 1)]

    def change(frames):  # frame-to-frame change of the skin, with each frame put back where the face is
        back = [np.roll(f.astype(np.float32), (-dy, -dx), axis=(0, 1)) for f, (dx, dy) in zip(frames, shifts)]
        return np.mean([np.abs(back[i] - back[i - 1])[skin].mean() for i in inner])

    assert change(outs) < 0.6 * change(before)
    # the face's detail stays in register: the template's own edges are as strong as before
    lap = lambda f: np.abs(cv2.Laplacian(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), cv2.CV_32F))[skin].mean()  # noqa: E731
    template_detail = np.mean([lap(t) for t in templates[:cut]])
    assert np.mean([lap(o) for o in outs[:cut]]) > 0.8 * template_detail
    # features and what lies outside the mask are as made
    features = (np.maximum.reduce([regions[k] for k in ("eyes", "brows", "lips")]) > 0.5)
    features = cv2.erode(features.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    for o, b in zip(outs, before):
        assert (o[mask == 0] == b[mask == 0]).all()
        assert np.abs(o.astype(int) - b.astype(int))[features].max() <= 2
    # the cut: the new shot keeps its brightness, not pulled towards the old one
    after_cut = [o[skin].mean() - b[skin].mean() for o, b in zip(outs[cut:cut + 2], before[cut:cut + 2])]
    assert max(abs(d) for d in after_cut) < 1.5


@pytest.mark.parametrize("mesh_tracking", [True, False])
def test_a_face_the_detector_misses_is_found_again_by_the_mesh(pipe, clip, tmp_path, monkeypatch, mesh_tracking):
    import saswap.pipelines.video as video

    whole, _ = pipe.precompute(clip, tmp_path / "whole", progress=False, workers=0)
    detect, seen = pipe.target_analyzer.detect, []

    def missing_two(image, turn=0):  # the detector loses the face in two frames of the middle (motion blur, a hand passing)
        seen.append(1)
        return [] if len(seen) in (6, 7) else detect(image, turn)

    monkeypatch.setattr(pipe.target_analyzer, "detect", missing_two)
    monkeypatch.setattr(video, "MESH_TRACKING", mesh_tracking)
    gaps, _ = pipe.precompute(clip, tmp_path / "gaps", progress=False, workers=0, force=True)
    tracks = gaps.header["frame_tracks"]
    lost = [i for i, ids in enumerate(tracks) if not ids]
    if not mesh_tracking:  # without it the face is missing there: the swap fades out and in around the gap
        assert lost and len(gaps.header["tracks"]) == 1
        return
    assert not lost and len({t for ids in tracks for t in ids}) == 1  # found in every frame, one track throughout
    for a, b in zip(whole.frames(), gaps.frames()):  # where the mesh found it again, it is where the detector had it
        fa, fb = a.faces[0].face, b.faces[0].face
        assert np.abs(fa.landmarks[:, :2] - fb.landmarks[:, :2]).mean() < 0.005 * fa.eye_distance


def test_the_chosen_person_is_followed_across_breaks_and_cuts_and_no_one_else_is_swapped():
    """Tracks that do not overlap in time and match by identity are one person, within a shot (a face lost for longer
    than the tracker waits) and across cuts: the default swaps the person with the largest summed area wherever they
    are seen, and no one in a shot without them; without identities, the largest track of each shot."""
    from saswap.errors import SaSwapError
    from saswap.pipelines.video import _persons, _select_tracks

    e1, e2, e3 = [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]
    tracks = {
        "1": {"first": 0, "last": 29, "area": 1000.0, "shot": 0, "identity": e1},  # one person, covered at 30-44
        "2": {"first": 45, "last": 90, "area": 1500.0, "shot": 0, "identity": [0.95, 0.05, 0.0]},
        "3": {"first": 0, "last": 90, "area": 2000.0, "shot": 0, "identity": e2},  # someone else, all along
        "4": {"first": 91, "last": 140, "area": 300.0, "shot": 1, "identity": [0.9, 0.0, 0.1]},  # 1, after a cut
        "5": {"first": 91, "last": 140, "area": 900.0, "shot": 1, "identity": e3},  # beside them, larger: a third
        "6": {"first": 141, "last": 200, "area": 5000.0, "shot": 2, "identity": [0.0, 0.1, 0.9]},  # a cutaway to 5
    }
    header = {"tracks": tracks, "identity": {"same_person_cosine": 0.47}}
    assert _persons(header, [int(k) for k in tracks]) == [[1, 2, 4], [3], [5, 6]]
    assert _select_tracks(header, None, False) == {5, 6}  # 5900 against 2800 and 2000
    assert _select_tracks(header, 1, False) == {1, 2, 4}
    assert _select_tracks(header, 2, False) == {3}
    for index in (3, -1):
        with pytest.raises(SaSwapError, match=f"face index {index} out of range: 3 person"):
            _select_tracks(header, index, False)
    assert _select_tracks(header, None, True) == {1, 2, 3, 4, 5, 6}
    # without identities, no one is followed across a cut: the largest track of each shot
    assert _select_tracks({"tracks": tracks}, None, False) == {3, 5, 6}
    # at the same time: two people, whatever their embeddings say
    overlapping = {**tracks, "2": {**tracks["2"], "first": 20}}
    assert _persons({**header, "tracks": overlapping}, [1, 2, 3]) == [[1], [3], [2]]
    # a track joins the person it matches best, not the first it matches
    near = {
        "1": {"first": 0, "last": 9, "area": 1.0, "shot": 0, "identity": [1.0, 0.0]},
        "2": {"first": 0, "last": 9, "area": 1.0, "shot": 0, "identity": [0.6, 0.8]},
        "3": {"first": 20, "last": 29, "area": 1.0, "shot": 1, "identity": [0.7, 0.71]},
    }
    assert _persons({"tracks": near, "identity": {"same_person_cosine": 0.5}}, [1, 2, 3]) == [[1], [2, 3]]


@pytest.mark.slow
def test_a_face_covered_for_longer_than_the_tracker_waits_is_swapped_before_and_after(pipe, source, tmp_path, monkeypatch):
    """A real face covered by a flat patch for 14 frames comes back as a second track; the cached identities make the
    two one person, so the swap changes the face before and after the cover (not only the longer run)."""
    import saswap.pipelines.video as video

    frames = _frames(data_path("videos", "liveportrait__d8.mp4"), 36)
    for frame in frames[10:24]:
        frame[60:420, 90:390] = 128  # something flat in front of the whole face
    template = _encode(tmp_path / "covered.mp4", frames)

    def changed(path) -> list[bool]:
        shown = _frames(path)
        return [
            np.abs(a.astype(int) - b.astype(int)).max(axis=2)[150:350, 150:330].mean() > 8
            for a, b in zip(_frames(template), shown)
        ]

    pipe.swap_video(source, template, tmp_path / "both.mp4", cache_dir=tmp_path / "cache", progress=False)
    both = changed(tmp_path / "both.mp4")
    assert all(both[2:8]) and all(both[28:34]), both
    monkeypatch.setattr(video._TrackIdentities, "file", lambda self, header: None)  # no identities in the cache
    pipe.swap_video(source, template, tmp_path / "one.mp4", cache_dir=tmp_path / "plain", progress=False)
    one = changed(tmp_path / "one.mp4")
    assert not any(one[2:8]) and all(one[28:34]), one  # the longer run alone (12 frames, not 10)


def _cutaway(tmp_path: Path, other: str) -> Path:
    """Shots of one person (d8), a cut to 12 frames of ``other`` (resized to 480x480), a cut back."""
    a = _frames(data_path("videos", "liveportrait__d8.mp4"), 52)
    b = _frames(data_path("videos", other), 12)
    b = [cv2.resize(f, (480, 480), interpolation=cv2.INTER_AREA) for f in b]
    return _encode(tmp_path / "cutaway.mp4", a[:12] + b + a[40:52])


@pytest.mark.slow
@pytest.mark.parametrize("other", ["liveportrait__d10.mp4", "liveportrait__d5.mp4"])
def test_a_cutaway_to_someone_else_is_not_swapped_and_the_person_is_swapped_after_it(
    pipe, source, tmp_path, monkeypatch, capsys, other
):
    """Shots of one person, a cut to another person, a cut back: the default swaps the first person in both of their
    shots (one person across the cut, by the cached identities) and leaves the cutaway as it is. d10 is another scene
    (the picture decorrelates by 0.76: a cut by the tracker's threshold); d5 is a talking head of alike framing and
    light (0.19): found as a cut because someone else is where the face was. Without identities (no embedder) the
    largest face of every shot is swapped, the cutaway's too; without the identity check the d5 cut is missed and the
    track carries on to the other person."""
    import saswap.pipelines.video as video

    template = _cutaway(tmp_path, other)
    res = pipe.swap_video(source, template, tmp_path / "out.mp4", cache_dir=tmp_path / "cache", progress=False)
    opened, _ = pipe.precompute(template, tmp_path / "cache", progress=False)
    assert opened.header["cuts"] == [12, 24]
    shown, made = _frames(template), _frames(tmp_path / "out.mp4")
    changed = [np.abs(t.astype(int) - o.astype(int)).max(axis=2).mean() > 2 for t, o in zip(shown, made)]
    assert all(changed[:12]) and all(changed[24:]), changed
    assert not any(changed[12:24]), changed
    assert (res.frames_swapped, res.shots, res.shots_swapped) == (24, 3, 2)
    people = video.template_people(opened.header)
    assert [(p["frames"], p["shots"]) for p in people] == [(24, [0, 2]), (12, [1])]
    import re

    from saswap.errors import SaSwapError

    with pytest.raises(SaSwapError, match=re.escape(f"{template}: face index 2 out of range: 2 person(s)")):
        pipe.swap_video(source, template, tmp_path / "x.mp4", face_index=2, cache_dir=tmp_path / "cache",
                        progress=False)  # fmt: skip
    assert not (tmp_path / "x.mp4").exists()
    if other == "liveportrait__d10.mp4":  # the command line tells them, as --face-index counts them
        from saswap.cli import main

        assert main(["precompute", str(template), "--cache-dir", str(tmp_path / "cache"), "--quiet"]) == 0
        out = capsys.readouterr().out
        assert ": already cached in " in out  # the swap's cache, read again
        assert "(3 shots):\n  --face-index 0: seen in 24 frames, 2 shots (0.0-1.2 s)" in out
        assert "  --face-index 1: seen in 12 frames, 1 shot (0.4-0.8 s)" in out
    if other == "liveportrait__d5.mp4":
        monkeypatch.setattr(video, "CUT_CHECK", None)
        missed, _ = pipe.precompute(template, tmp_path / "unchecked", progress=False)
        assert missed.header["cuts"] == [] and len(missed.header["tracks"]) == 1
    else:  # without identities the cutaway is swapped too (the d10 case shows it for both)
        monkeypatch.setattr(video._TrackIdentities, "file", lambda self, header: None)  # no identities in the cache
        res = pipe.swap_video(source, template, tmp_path / "plain.mp4", cache_dir=tmp_path / "plain", progress=False)
        assert (res.frames_swapped, res.shots_swapped) == (36, 3)


def test_a_face_found_late_is_followed_back_to_where_it_was(pipe, clip, tmp_path, monkeypatch):
    """The detector misses the face in the first three frames: the mesh finds it there, going back from the frame where
    it was first found (the swap then starts with the video, not faded in at frame 3)."""
    import saswap.pipelines.video as video

    whole, _ = pipe.precompute(clip, tmp_path / "whole", progress=False, workers=0)
    detect, seen = pipe.target_analyzer.detect, []

    def late(image, turn=0):
        seen.append(1)
        return [] if len(seen) <= 3 else detect(image, turn)

    monkeypatch.setattr(pipe.target_analyzer, "detect", late)
    back, _ = pipe.precompute(clip, tmp_path / "back", progress=False, workers=0, force=True)
    assert all(back.header["frame_tracks"][:5]), back.header["frame_tracks"][:5]
    for a, b in list(zip(whole.frames(), back.frames()))[:3]:
        fa, fb = a.faces[0].face, b.faces[0].face
        assert np.abs(fa.landmarks[:, :2] - fb.landmarks[:, :2]).mean() < 0.005 * fa.eye_distance
    seen.clear()
    monkeypatch.setattr(video, "MESH_BACKTRACK", 0)
    plain, _ = pipe.precompute(clip, tmp_path / "plain", progress=False, workers=0, force=True)
    assert plain.header["frame_tracks"][:3] == [[], [], []]


def test_reference_scores_from_the_cached_identities_equal_those_read_from_the_frames(pipe, clip, tmp_path, caplog):
    """A reference swap reads each track's identity from the template cache (filed by the same embedder); read from
    the template's frames instead (another embedder's cache), the scores are the same. A reference nobody in the
    template matches is swapped with a warning (the same as a photo's)."""
    import copy
    import logging

    from saswap.pipelines.video import _reference_scores

    opened, _ = pipe.precompute(clip, tmp_path / "cache", progress=False, workers=0)
    assert opened.header["identity"]["embedder"] == "SFaceEmbedder"
    assert all(len(v["identity"]) == 128 for v in opened.header["tracks"].values())
    reference = data_path("images", "sberswap__beckham.jpg")
    cached = _reference_scores(pipe, clip, opened, reference)
    other = copy.copy(opened)
    other.header = {**opened.header, "identity": {**opened.header["identity"], "embedder": "AnotherEmbedder"}}
    read = _reference_scores(pipe, clip, other, reference)
    assert cached.keys() == read.keys() and cached
    assert max(abs(cached[k] - read[k]) for k in cached) < 1e-4
    with caplog.at_level(logging.WARNING, logger="saswap"):
        pipe.swap_video(reference, clip, tmp_path / "o.mp4", cache_dir=tmp_path / "cache", reference=reference,
                        progress=False)  # fmt: skip
    assert f"no face of {clip} matches the reference closely" in caplog.text


def test_a_followed_face_that_becomes_someone_else_is_dropped(pipe, tmp_path, monkeypatch):
    """The detector misses the face while someone else stands where it was (three frames of d5 cut into d8 at the same
    framing, as a passer-by would): the face mesh, following the track, finds the other face there, and the identity
    check drops it (the track is empty there and goes on after it). Without the check the track carries the other
    person's face."""
    import saswap.pipelines.video as video

    a = _frames(data_path("videos", "liveportrait__d8.mp4"), 14)
    b = _frames(data_path("videos", "liveportrait__d5.mp4"), 3)
    b = [cv2.resize(f, a[0].shape[1::-1], interpolation=cv2.INTER_AREA) for f in b]
    template = _encode(tmp_path / "passer.mp4", a[:8] + b + a[8:14])
    detect, seen = pipe.target_analyzer.detect, []

    def blind(image, turn=0):  # the detector misses the face in the other person's frames
        seen.append(1)
        return [] if 8 < len(seen) <= 11 else detect(image, turn)

    monkeypatch.setattr(pipe.target_analyzer, "detect", blind)
    checked, _ = pipe.precompute(template, tmp_path / "checked", progress=False, workers=0)
    tracks = checked.header["frame_tracks"]
    assert tracks[8:11] == [[], [], []], tracks
    assert all(tracks[:8]) and all(tracks[11:]) and len(checked.header["tracks"]) == 1, tracks
    seen.clear()
    monkeypatch.setattr(video._FollowCheck, "__call__", lambda self, *args: True)
    unchecked, _ = pipe.precompute(template, tmp_path / "unchecked", progress=False, workers=0)
    assert all(unchecked.header["frame_tracks"][8:11]), unchecked.header["frame_tracks"]


def test_the_follow_check_compares_with_the_tracks_latest_detected_face():
    """A followed face is kept when it is the person of its track's latest detected face (the embedder's same-person
    cosine), whatever else: no anchor, no embedder, or a track the tracker has dropped."""
    from types import SimpleNamespace

    from saswap.face.types import Face
    from saswap.pipelines.video import _FollowCheck

    def face(track, vector):
        return Face(np.zeros(4, np.float32), 0.9, np.zeros((5, 2)), np.zeros((478, 3)), np.zeros((68, 2)),
                    np.zeros(3), track_id=track, embedding=np.asarray(vector, np.float64))  # fmt: skip

    class Embedder:
        same_person_cosine = 0.5
        calls = 0

        def __call__(self, image, f):
            Embedder.calls += 1
            return f.embedding

    image = np.zeros((8, 8, 3), np.uint8)
    tracker = SimpleNamespace(tracks=[SimpleNamespace(track_id=1), SimpleNamespace(track_id=2)])
    check = _FollowCheck(lambda: Embedder())
    check.anchor(image, [face(1, [1.0, 0.0])], tracker)
    assert Embedder.calls == 0  # nothing is embedded until a face is followed
    assert check(1, image, face(1, [0.9, 0.3]))  # cosine 0.95
    assert not check(1, image, face(1, [0.3, 0.9]))  # cosine 0.32: someone else, or not a face
    assert check(2, image, face(2, [0.0, 1.0]))  # no face of track 2 was detected: nothing to compare with
    assert Embedder.calls == 3 and check.rejected == 1  # the anchor embedded once
    check.anchor(image, [], SimpleNamespace(tracks=[SimpleNamespace(track_id=2)]))  # track 1 dropped
    assert check(1, image, face(1, [0.0, 1.0]))
    assert _FollowCheck(lambda: None)(1, image, face(1, [0.0, 1.0]))  # no embedder: every followed face is kept


@pytest.mark.slow
def test_a_video_turned_without_its_rotation_metadata_is_swapped_upright(pipe, clip, source, tmp_path, caplog):
    """A clip whose picture is upside down and whose file says nothing of it (no rotation metadata): the template
    analysis finds its content turned by 180 degrees, warns, and reads its faces that way, so the cached faces are the
    upright clip's turned over, and the swap is the upright clip's swap turned over (within the encoder's rounding). Read
    as it was, BlazeFace took the upside-down face for an upright one and an upright new face was pasted over it."""
    from saswap.face.analyzer import _rotate_points

    frames = _frames(clip)
    upright = _encode(tmp_path / "upright.mp4", frames)
    turned = _encode(tmp_path / "turned.mp4", [np.rot90(f, 2) for f in frames])
    cache = tmp_path / "cache"
    with caplog.at_level(logging.WARNING):
        t, _ = pipe.precompute(turned, cache, progress=False)
    assert "turned 180 degrees" in caplog.text
    u, _ = pipe.precompute(upright, cache, progress=False)
    assert t.header["content_turn"] == 2 and u.header["content_turn"] == 0
    h, w = frames[0].shape[:2]
    for a, b in zip(t.frames(), u.frames(), strict=True):
        fa, fb = a.faces[0].face, b.faces[0].face
        back = _rotate_points(fa.landmarks[:, :2], 2, (h, w))
        assert np.abs(back - fb.landmarks[:, :2]).mean() < 0.03 * fb.eye_distance
    pipe.swap_video(source, upright, tmp_path / "u.mp4", cache_dir=cache, progress=False, crf=8)
    pipe.swap_video(source, turned, tmp_path / "t.mp4", cache_dir=cache, progress=False, crf=8)
    outs = [np.stack(_frames(tmp_path / n)).astype(np.int16) for n in ("u.mp4", "t.mp4")]
    gap = np.abs(outs[0] - outs[1][:, ::-1, ::-1]).mean()
    swapped = np.abs(outs[0] - np.stack(frames).astype(np.int16)).mean()
    assert gap < 0.25 * swapped, (gap, swapped)


# -- one source per person (couple templates) ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def couple_clip(tmp_path_factory):
    """Five frames of a two-person picture (Obama left, Biden right and larger), drifting a pixel a frame."""
    two = cv2.resize(cv2.imread(str(data_path("images", "face_recognition__two_people.jpg")))[:, :, ::-1], (640, 376))
    frames = [np.roll(two, t, axis=1) for t in range(5)]
    return _encode(tmp_path_factory.mktemp("couple") / "couple.mp4", frames), two


def test_each_person_of_a_couple_video_gets_their_own_source(pipe, couple_clip, tmp_path, dlib_models, morphable_model):
    """Two sources paired with two references: each person's track is swapped with its own source, the same frames on
    threads and in worker processes (which hold both sources); face indices naming the same people give the same
    frames from the cache, and a new pipeline with prepared sources loads no face analysis."""
    from saswap import SaSwapPipeline
    from saswap.engines import GeometricEngine
    from saswap.face.identity import DlibEmbedder
    from saswap.io import load_image
    from saswap.videoio import read_video_tag

    clip, two = couple_clip
    judge = DlibEmbedder()
    photos = [load_image(data_path("images", name)) for name in ("sberswap__beckham.jpg", "deepface__img41.jpg")]
    identities = [judge.raw(photo, pipe.analyzer(photo)[0]) for photo in photos]
    sources = [pipe.prepare_source(photo)[0] for photo in photos]
    references = [data_path("images", "face_recognition__obama2.jpg"), two[:, 320:]]
    cache = tmp_path / "cache"
    outs = {}
    for processes in (False, True):
        outs[processes] = tmp_path / f"p{processes}.mp4"
        result = pipe.swap_video(
            sources, clip, outs[processes], reference=references, crf=0, cache_dir=cache, progress=False, workers=2,
            processes=processes,
        )  # fmt: skip
        assert result.frames_swapped == 5 and result.faces_swapped == 10
        assert sorted(result.track_sources.values()) == [0, 1]
    frames = _frames(outs[False])
    assert all(np.array_equal(a, b) for a, b in zip(frames, _frames(outs[True])))
    assert read_video_tag(outs[True])["sources"] == 2
    faces = sorted(pipe.analyzer(frames[2]), key=lambda f: f.box[0])  # Obama's place (source 0), then Biden's
    assert all(own_source_nearer(judge, frames[2], faces, identities))
    fresh = SaSwapPipeline(GeometricEngine(morphable_model=morphable_model))
    by_index = fresh.swap_video(sources, clip, tmp_path / "i.mp4", face_index=[1, 0], crf=0, cache_dir=cache,
                                progress=False)  # fmt: skip
    assert by_index.cache_hit and not hasattr(fresh.target_analyzer._analyzer, "backend")
    assert all(np.array_equal(a, b) for a, b in zip(frames, _frames(tmp_path / "i.mp4")))


def test_couple_video_selectors_that_name_one_person_are_refused(pipe, couple_clip, tmp_path, source):
    from saswap.errors import SaSwapError

    clip, _ = couple_clip
    obama = data_path("images", "face_recognition__obama.jpg")
    obama2 = data_path("images", "face_recognition__obama2.jpg")
    kwargs = {"cache_dir": tmp_path / "cache", "progress": False}
    for selector, message in [
        ({"reference": [obama, obama2]}, r"references 1 \(.*obama.jpg\) and 2 \(.*obama2.jpg\) both match the same"),
        ({"face_index": [0, 0]}, "face index 0 is given twice"),
        ({"face_index": [0, 2]}, "face index 2 out of range: 2 person"),
        ({"all_faces": True}, "all_faces swaps one source into every face"),
    ]:  # fmt: skip
        with pytest.raises(SaSwapError, match=message):
            pipe.swap_video([source, source], clip, tmp_path / "o.mp4", **selector, **kwargs)
    assert not (tmp_path / "o.mp4").exists()


def test_cli_swaps_a_couple_video_with_a_source_and_a_reference_each(couple_clip, tmp_path, capsys):
    from PIL import Image

    from saswap.cli import main
    from saswap.videoio import read_video_tag

    clip, two = couple_clip
    biden = tmp_path / "biden.png"
    Image.fromarray(np.ascontiguousarray(two[:, 320:])).save(biden)
    a, b = (str(data_path("images", name)) for name in ("sberswap__beckham.jpg", "deepface__img41.jpg"))
    out = tmp_path / "out.mp4"
    assert main(["swap", "-s", a, "-s", b, "--reference", str(data_path("images", "face_recognition__obama2.jpg")),
                 "--reference", str(biden), "-t", str(clip), "-o", str(out), "--cache-dir", str(tmp_path / "cache"),
                 "--quiet"]) == 0  # fmt: skip
    assert "5 frames, face swapped in 5" in capsys.readouterr().out
    assert read_video_tag(out)["sources"] == 2


def test_couple_references_read_the_tracks_identities_once(monkeypatch):
    """Several references score the same tracks: their identities are read once (from the frames, where the cache
    holds none of the embedder's), not once per reference; each reference takes its own person."""
    import types

    import saswap.pipelines.video as video
    from saswap.pipelines.image import SourcePairing

    reads = []
    tracks = {1: np.array([1.0, 0.0], np.float32), 2: np.array([0.0, 1.0], np.float32)}

    def identities(pipe, template, opened):
        reads.append(template)
        return tracks

    class Embedder:
        same_person_cosine = 0.5

        def __call__(self, image, face):
            return np.asarray(face, np.float32)

    pipe = types.SimpleNamespace(identity_embedder=Embedder, reference_face=lambda ref: (None, ref))
    opened = types.SimpleNamespace(header={"tracks": {"1": {}, "2": {}}})
    monkeypatch.setattr(video, "_track_identities", identities)
    pairing = SourcePairing(["a", "b"], "reference", [[0.1, 0.9], [0.9, 0.1]])
    owner, scores = video._track_sources(pipe, Path("clip.mp4"), opened, pairing)
    assert reads == [Path("clip.mp4")] and owner == {2: 0, 1: 1}
