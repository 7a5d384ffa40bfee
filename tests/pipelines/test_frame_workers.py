"""Frame workers in separate processes (for machines with many cores): the same frames as threads, errors raised
in the caller with the worker's traceback, a dead worker reported, an engine that cannot be sent left on threads."""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import numpy as np
import pytest
from conftest import data_path

from saswap.engines import GeometricEngine
from saswap.io import load_image

av = pytest.importorskip("av")


@pytest.fixture(scope="module")
def pipe(analyzer, morphable_model):
    from saswap import SaSwapPipeline
    from saswap.engines import GeometricEngine

    return SaSwapPipeline(GeometricEngine(morphable_model=morphable_model), analyzer)


@pytest.fixture(scope="module")
def source(pipe):
    return pipe.prepare_source(data_path("images", "sberswap__beckham.jpg"))[0]


@pytest.fixture(scope="module")
def target(pipe):
    """A target frame and its analysis."""
    image = load_image(data_path("images", "facenet-pytorch__shea_whigham_1.jpg"))
    return image, pipe.target_analyzer(image)


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def test_frames_made_in_worker_processes_are_those_made_on_threads(pipe, source, tmp_path, monkeypatch):
    from saswap.pipelines.video import swap_video
    from saswap.pipelines.workers import FrameWorkers
    from saswap.videoio import VideoReader, VideoWriter

    calls = []
    real = FrameWorkers.make_faces

    def counted(self, jobs):
        calls.append(len(jobs))
        return real(self, jobs)

    monkeypatch.setattr(FrameWorkers, "make_faces", counted)

    clip = tmp_path / "d8.mp4"
    with VideoReader(data_path("videos", "liveportrait__d8.mp4"), end=0.5) as reader, VideoWriter(clip, like=reader) as w:
        for frame in reader:
            w.write(None, frame)
    outs, results = [], []
    for processes in (False, True):
        out = tmp_path / f"p{processes}.mp4"
        results.append(
            swap_video(pipe, source, clip, out, cache_dir=tmp_path / "cache", progress=False, crf=0, workers=2,
                       processes=processes)  # fmt: skip
        )
        outs.append(_frames(out))
        # threads make no call on worker processes; with processes every swapped frame's faces go to them
        assert len(calls) == (results[-1].frames_swapped if processes else 0)
    assert len(outs[0]) == len(outs[1]) == results[1].frames > 0
    assert results[1].frames_swapped == results[0].frames_swapped > 0
    assert all(np.array_equal(a, b) for a, b in zip(*outs))
    assert results[1].timings["engine"] > 0 and results[1].timings["compose"] > 0  # the workers' stage times


def test_a_worker_error_is_raised_in_the_caller_and_the_worker_goes_on(pipe, source, target):
    from saswap.pipelines.workers import FrameWorkers

    image, analysis = target
    tf = analysis.faces[0]
    out = image.copy()
    with FrameWorkers(1, pipe.engine, pipe.compositor, source) as workers:
        bad = [(np.zeros((7, 7, 3), np.uint8), tf.crop_face, tf.data, tf.transform, image.shape[:2], 1.0)]  # too small
        with pytest.raises(ValueError, match=r"expects an aligned RGB uint8 crop of shape \(384, 384, 3\)") as err:
            workers.make_faces(bad)
        assert "engine.swap(" in str(err.value.__cause__)  # the worker's traceback comes along
        masks = pipe.swap_frame(out, image, analysis, source, make_faces=workers.make_faces)
    local = image.copy()
    assert np.array_equal(masks[0], pipe.swap_frame(local, image, analysis, source)[0])
    assert np.array_equal(out, local) and not np.array_equal(out, image)


def test_a_dead_worker_is_reported_and_closing_ends_them_all(pipe, source, target):
    from saswap.errors import SaSwapError
    from saswap.pipelines.workers import FrameWorkers

    image, analysis = target
    workers = FrameWorkers(2, pipe.engine, pipe.compositor, source)
    procs = list(workers._procs)
    assert all(p.poll() is None for p in procs)
    procs[0].kill()
    procs[0].wait()
    with pytest.raises(SaSwapError, match="exited"):
        for _ in range(2):  # one of the two calls meets the dead worker
            pipe.swap_frame(image.copy(), image, analysis, source, make_faces=workers.make_faces)
    workers.close()
    assert all(p.poll() is not None for p in procs)


def test_an_engine_that_cannot_be_sent_makes_its_frames_on_threads(pipe, source, caplog):
    from saswap import SaSwapPipeline
    from saswap.pipelines.video import _frame_workers

    engine = copy.copy(pipe.engine)
    engine.hook = lambda: None  # not picklable
    other = SaSwapPipeline(engine, pipe.analyzer, pipe.compositor)
    with caplog.at_level(logging.INFO, logger="saswap.pipelines.video"):
        assert _frame_workers(other, source, 1.0, None, 4, None) == (4, None)
    assert "cannot be sent to worker processes" in caplog.text
    assert _frame_workers(pipe, source, 1.0, None, 2, None) == (2, None)  # two: threads, by choice


class _OnGpu(GeometricEngine):
    on_cpu = False


class _Picklable(GeometricEngine):
    pass


def test_an_engine_on_a_gpu_stays_here_and_the_workers_compose(pipe, source, target, caplog):
    """An engine on a GPU is not copied into worker processes (it need not even pickle): it makes the faces on the
    calling threads, and the workers run the compose stage alone; the frames are the same."""
    from saswap import SaSwapPipeline
    from saswap.pipelines.video import _frame_workers

    engine = _OnGpu.__new__(_OnGpu)
    engine.__dict__.update(pipe.engine.__dict__)
    engine.hook = lambda: None  # does not pickle: never sent
    other = SaSwapPipeline(engine, pipe.analyzer, pipe.compositor)
    image, analysis = target
    with caplog.at_level(logging.INFO, logger="saswap.pipelines.video"):
        n, workers = _frame_workers(other, source, 1.0, None, 3, None)
    assert "cannot be sent" not in caplog.text
    assert n == 3 and workers is not None and workers._engine_here
    with workers:
        out = image.copy()
        masks = other.swap_frame(out, image, analysis, source, make_faces=workers.make_faces)
    local = image.copy()
    assert np.array_equal(masks[0], pipe.swap_frame(local, image, analysis, source)[0])
    assert np.array_equal(out, local) and not np.array_equal(out, image)
    # threads when asked for, and none for a process meant to use one core: no worker process is started
    assert _frame_workers(other, source, 1.0, None, 4, False) == (4, None)
    assert _frame_workers(other, source, 1.0, None, 0, None) == (0, None)


def test_an_engine_class_from_the_main_module_is_not_sent_to_workers(pipe, source, monkeypatch, caplog):
    """A script's or a notebook's own engine class pickles by reference to ``__main__``, which a worker does not have."""
    import sys

    from saswap import SaSwapPipeline
    from saswap.errors import SaSwapError
    from saswap.pipelines.video import _frame_workers
    from saswap.pipelines.workers import FrameWorkers, picklable

    engine = _Picklable.__new__(_Picklable)
    engine.__dict__.update(pipe.engine.__dict__)
    assert picklable(engine)
    monkeypatch.setattr(_Picklable, "__module__", "__main__")
    monkeypatch.setattr(sys.modules["__main__"], "_Picklable", _Picklable, raising=False)
    assert not picklable(engine)
    other = SaSwapPipeline(engine, pipe.analyzer, pipe.compositor)
    with caplog.at_level(logging.INFO, logger="saswap.pipelines.video"):
        assert _frame_workers(other, source, 1.0, None, 4, None) == (4, None)
    assert "cannot be sent to worker processes" in caplog.text
    with pytest.raises(SaSwapError, match="main module"):
        FrameWorkers(1, engine, pipe.compositor, source)


def test_default_workers_follow_the_cores(monkeypatch):
    from saswap.pipelines import video

    for cores, expected in ((1, 2), (2, 2), (4, 3), (16, 8), (64, 8)):
        monkeypatch.setattr(video, "_cores", lambda cores=cores: cores)
        assert video.default_workers() == expected


def test_a_call_broken_off_retires_its_worker(pipe, source, target, monkeypatch):
    """A reply that cannot be read leaves the worker out of step (its next reply would answer this job): it is never
    asked again."""
    import pickle

    from saswap.errors import SaSwapError
    from saswap.pipelines import workers as module
    from saswap.pipelines.workers import FrameWorkers

    image, analysis = target
    tf = analysis.faces[0]
    job = [(np.zeros((384, 384, 3), np.uint8), tf.crop_face, tf.data, tf.transform, image.shape[:2], 1.0)]
    with FrameWorkers(1, pipe.engine, pipe.compositor, source) as workers:
        proc = workers._procs[0]

        def garbled(stream):
            raise pickle.UnpicklingError("garbled")

        monkeypatch.setattr(module, "_recv", garbled)
        with pytest.raises(pickle.UnpicklingError):
            workers.make_faces(job)
        monkeypatch.undo()
        with pytest.raises(SaSwapError, match="stopped in the middle"):
            workers.make_faces(job)
        assert proc.wait(timeout=10) != 0  # killed


def test_two_workers_are_processes_on_a_long_video_only(pipe, source):
    from saswap.pipelines.video import PROCESSES_FROM_FRAMES, _frame_workers

    assert _frame_workers(pipe, source, 1.0, None, 2, None, PROCESSES_FROM_FRAMES - 1) == (2, None)
    assert _frame_workers(pipe, source, 1.0, None, 2, None, None) == (2, None)  # length unknown
    assert _frame_workers(pipe, source, 1.0, None, 2, False, 10**6) == (2, None)
    n, workers = _frame_workers(pipe, source, 1.0, None, 2, None, PROCESSES_FROM_FRAMES)
    try:
        assert n == 2 and workers is not None and len(workers._procs) == 2
    finally:
        workers.close()


@pytest.mark.slow
def test_grain_finer_than_the_crop_comes_the_same_from_worker_processes(pipe, analyzer, tmp_path):
    """A face larger in its frame than the engine's crop gets grain finer than a crop pixel at the paste-back
    (``Compositor(fine_detail=True)``; a smooth face in a sharp video otherwise). A talking head enlarged 2.5x, with a
    camera's grain on every frame: made in worker processes, the frames are those made on threads, and the new face's
    finest skin texture comes near the template's (under half of it without the grain)."""
    import cv2

    from saswap import SaSwapPipeline
    from saswap.compose import Compositor
    from saswap.eval.swap_metrics import skin_grain
    from saswap.pipelines.video import swap_video

    rng = np.random.default_rng(0)
    clip = tmp_path / "big.mp4"
    with av.open(str(data_path("videos", "liveportrait__d8.mp4"))) as inp, av.open(str(clip), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width = stream.height = 1200
        stream.pix_fmt, stream.options = "yuv420p", {"crf": "12"}
        for i, frame in enumerate(inp.decode(video=0)):
            if i == 8:
                break
            big = cv2.resize(frame.to_ndarray(format="rgb24"), (1200, 1200), interpolation=cv2.INTER_CUBIC)
            big = np.clip(big + rng.normal(0, 2.5, big.shape), 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(big, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    smooth = pipe.prepare_source(data_path("images", "deepface__img2.jpg"))[0]
    plain = SaSwapPipeline(pipe.engine, analyzer, compositor=Compositor(fine_detail=False))
    outs = []
    for which, processes in ((pipe, False), (pipe, True), (plain, False)):
        out = tmp_path / f"p{processes}{which is plain}.mp4"
        swap_video(which, smooth, clip, out, cache_dir=tmp_path / "cache", progress=False, crf=0, workers=2,
                   processes=processes)  # fmt: skip
        outs.append(_frames(out))
    assert all(np.array_equal(a, b) for a, b in zip(outs[0], outs[1]))
    template = _frames(clip)
    face = analyzer(template[4])[0]
    wanted = skin_grain(template[4], face)
    assert 0.7 * wanted < skin_grain(outs[0][4], face) < 1.4 * wanted
    assert skin_grain(outs[2][4], face) < 0.5 * wanted
