"""A template analysed by worker processes: the same cache as in one process, the face analysis counted, an analyzer
that cannot be made again in a worker kept in the calling process."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from conftest import data_path

pytest.importorskip("av")


@pytest.fixture(scope="module")
def pipe(analyzer, morphable_model):
    from saswap import SaSwapPipeline
    from saswap.engines import GeometricEngine

    return SaSwapPipeline(GeometricEngine(morphable_model=morphable_model), analyzer)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """12 frames of one talking head, its last frame shown twice more (a repeat), then a cut to another person."""
    import cv2

    from saswap.videoio import VideoReader, VideoWriter

    path = tmp_path_factory.mktemp("clip") / "cut.mp4"
    with VideoReader(data_path("videos", "liveportrait__d8.mp4"), end=0.4) as d8:
        first = [frame.image for frame in d8][:12]
    with VideoReader(data_path("videos", "video-retalking__1.mp4"), end=0.3) as other:
        second = [cv2.resize(frame.image, (480, 480), interpolation=cv2.INTER_AREA) for frame in other]
    with VideoWriter(path, width=480, height=480, fps=30, crf=0) as writer:
        for image in first + [first[-1]] * 2 + second:
            writer.write(image)
    return path, len(first) + 2 + len(second)


def test_a_template_analysed_by_workers_gives_the_cache_of_one_process(pipe, clip, tmp_path, monkeypatch):
    clip, frames = clip
    from saswap.pipelines.video import precompute_template
    from saswap.pipelines.workers import AnalysisWorkers

    started = []
    real_init = AnalysisWorkers.__init__

    def recorded(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        started.extend(self._procs)

    monkeypatch.setattr(AnalysisWorkers, "__init__", recorded)
    calls = {"detect": 0, "analyse": 0}
    for name in calls:
        real = getattr(AnalysisWorkers, name)

        def counted(self, *args, _real=real, _name=name, **kwargs):
            calls[_name] += 1
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(AnalysisWorkers, name, counted)

    caches, detected = [], []
    for workers in (0, 2):
        before = pipe.target_analyzer.calls
        opened, hit = precompute_template(pipe, clip, tmp_path / f"w{workers}", progress=False, workers=workers)
        assert not hit
        detected.append(pipe.target_analyzer.calls - before)
        caches.append(list(opened.frames()))
    assert len(started) == 2 and all(proc.poll() is not None for proc in started)  # started, and gone afterwards
    assert calls["detect"] == detected[1] == detected[0] > 0  # every detection went to the workers, and is counted
    assert opened.header["repeats"] >= 1  # the frame shown again was found (and not analysed again)
    assert calls["analyse"] == len(caches[1]) - opened.header["repeats"]
    one, many = caches
    assert len(one) == len(many) == frames
    assert [f.shot_cut for f in one] == [f.shot_cut for f in many] and sum(f.shot_cut for f in one) == 1
    assert [f.repeat_of for f in one] == [f.repeat_of for f in many]
    assert len({f.faces[0].face.track_id for f in many}) == 2  # a new track after the cut
    for a, b in zip(one, many):
        assert (a.index, a.pts, a.repeat_of, len(a.faces)) == (b.index, b.pts, b.repeat_of, len(b.faces))
        for fa, fb in zip(a.faces, b.faces):
            assert np.array_equal(fa.face.landmarks, fb.face.landmarks) and fa.face.track_id == fb.face.track_id
            assert np.array_equal(fa.transform, fb.transform)
            assert sorted(fa.data) == sorted(fb.data)
            for key in fa.data:  # masks and the blur reading exactly; the 3D fit's linear algebra up to rounding
                if key.startswith("fit_") or key == "expression":  # (one BLAS thread in a worker)
                    assert np.allclose(fa.data[key], fb.data[key], rtol=0, atol=1e-9), key
                else:
                    assert np.array_equal(fa.data[key], fb.data[key]), key


def test_a_worker_describes_faces_for_the_crop_size_it_is_asked_for(pipe, clip):
    """``crop_size="auto"`` decides a template's crop once its faces are found: a worker made with the engine's own
    crop describes them for another size as this process does."""
    from saswap.pipelines.workers import AnalysisWorkers
    from saswap.videoio import VideoReader

    clip, _ = clip
    with VideoReader(clip, end=0.05) as reader:
        image = next(iter(reader)).image
    faces = pipe.analyzer(image)
    here = pipe.at_crop_size(512).target_analyzer(image, faces).faces[0]
    with AnalysisWorkers(1, pipe.engine, pipe.compositor, pipe.target_analyzer.analyzer_spec()) as workers:
        own, there = (workers.analyse(image, faces, crop_size=size).faces[0] for size in (None, 512))
    assert np.allclose(there.transform, here.transform)
    # the same face in a crop 4/3 the size (up to the pixel centres' shift)
    assert np.allclose(own.transform * 512 / 384, here.transform, rtol=0, atol=0.25)
    assert there.data["occlusion"].shape == here.data["occlusion"].shape == (512, 512)
    assert np.array_equal(there.data["occlusion"], here.data["occlusion"])


def test_an_analyzer_that_cannot_be_made_again_stays_in_this_process(pipe, caplog):
    from saswap import SaSwapPipeline
    from saswap.errors import SaSwapError
    from saswap.pipelines.video import _analysis_workers

    assert pipe.target_analyzer.analyzer_spec()[0] == "mediapipe"
    own = SaSwapPipeline(pipe.engine, lambda image: pipe.analyzer(image), pipe.compositor)  # a caller's own analyzer
    assert own.target_analyzer.analyzer_spec() is None

    class Plain:  # a caller's own analyzer object that reads the picture alone (no turn)
        backend = None

        def __call__(self, image):
            return pipe.analyzer(image)

    mine = SaSwapPipeline(pipe.engine, Plain(), pipe.compositor)
    _, face = mine.prepare_source(data_path("images", "sberswap__beckham.jpg"))  # photos are read as they are
    assert face.eye_distance > 20
    with pytest.raises(SaSwapError, match="cannot read a picture turned by 2"):
        mine.target_analyzer.faces(np.zeros((64, 64, 3), np.uint8), 2)
    with caplog.at_level(logging.INFO, logger="saswap.pipelines.video"):
        assert _analysis_workers(own, None, 1000) == (0, None)
    assert "analysing here" in caplog.text
    with pytest.raises(SaSwapError, match="cannot run in worker processes"):
        _analysis_workers(own, 2)
    assert _analysis_workers(pipe, None, 100) == (0, None)  # a short video: not worth starting them


def test_workers_that_do_not_start_fall_back_to_this_process_when_chosen(pipe, monkeypatch, caplog):
    from saswap.errors import SaSwapError
    from saswap.pipelines import video
    from saswap.pipelines.workers import AnalysisWorkers

    monkeypatch.setattr(video, "_cores", lambda: 4)
    with pytest.raises(SaSwapError, match="could not start: unknown face analysis backend"):
        AnalysisWorkers(1, pipe.engine, pipe.compositor, ("no-such-backend", {}))
    monkeypatch.setattr(type(pipe.target_analyzer), "analyzer_spec", lambda self: ("no-such-backend", {}))
    with caplog.at_level(logging.WARNING, logger="saswap.pipelines.video"):
        assert video._analysis_workers(pipe, None, 1000) == (0, None)
    assert "did not start" in caplog.text
    with pytest.raises(SaSwapError, match="could not start"):
        video._analysis_workers(pipe, 2)


def test_default_analysis_workers_follow_the_cores_and_the_length(monkeypatch):
    from saswap.pipelines import video

    for cores, expected in ((1, 0), (2, 2), (4, 3), (16, 8)):
        monkeypatch.setattr(video, "_cores", lambda cores=cores: cores)
        assert video.default_analysis_workers(1000) == expected
        assert video.default_analysis_workers(video.PROCESSES_FROM_FRAMES - 1) == 0


def test_ordered_map_keeps_order_and_raises_where_the_result_is_due():
    import threading
    import time

    from saswap.pipelines.overlap import ordered_map

    seen = []

    def slow_first(x):
        time.sleep(0.05 if x == 0 else 0.0)
        seen.append(threading.current_thread().name)
        if x == 5:
            raise ValueError("five")
        return x * 10

    got = []
    with pytest.raises(ValueError, match="five"):
        for item, result in ordered_map(slow_first, range(8), threads=3):
            got.append((item, result))
    assert got == [(i, i * 10) for i in range(5)]
    assert any(name.startswith("saswap-map") for name in seen)
    inline = list(ordered_map(lambda x: -x, range(3), threads=0))
    assert inline == [(0, 0), (1, -1), (2, -2)]
