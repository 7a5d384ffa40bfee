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


def test_a_template_analysed_by_workers_gives_the_cache_of_one_process(pipe, tmp_path, monkeypatch):
    from saswap.pipelines.video import precompute_template
    from saswap.pipelines.workers import AnalysisWorkers

    calls = {"detect": 0, "analyse": 0}
    for name in calls:
        real = getattr(AnalysisWorkers, name)

        def counted(self, *args, _real=real, _name=name, **kwargs):
            calls[_name] += 1
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(AnalysisWorkers, name, counted)

    clip = data_path("videos", "liveportrait__d8.mp4")
    caches, detected = [], []
    for workers in (0, 2):
        before = pipe.target_analyzer.calls
        opened, hit = precompute_template(pipe, clip, tmp_path / f"w{workers}", progress=False, end=0.6, workers=workers)
        assert not hit
        detected.append(pipe.target_analyzer.calls - before)
        caches.append(list(opened.frames()))
    assert calls["detect"] == detected[1] == detected[0] > 0  # every detection went to the workers, and is counted
    assert calls["analyse"] == len(caches[1]) - opened.header["repeats"]
    one, many = caches
    assert len(one) == len(many) > 10
    assert [f.shot_cut for f in one] == [f.shot_cut for f in many]
    for a, b in zip(one, many):
        assert (a.index, a.pts, a.repeat_of, len(a.faces)) == (b.index, b.pts, b.repeat_of, len(b.faces))
        for fa, fb in zip(a.faces, b.faces):
            assert np.array_equal(fa.face.landmarks, fb.face.landmarks) and fa.face.track_id == fb.face.track_id
            assert np.array_equal(fa.transform, fb.transform)
            assert sorted(fa.data) == sorted(fb.data)
            for key in fa.data:  # masks exactly; the 3D fit's linear algebra up to rounding (one BLAS thread there)
                assert np.allclose(fa.data[key], fb.data[key], rtol=0, atol=1e-9), key


def test_an_analyzer_that_cannot_be_made_again_stays_in_this_process(pipe, caplog):
    from saswap import SaSwapPipeline
    from saswap.errors import SaSwapError
    from saswap.pipelines.video import _analysis_workers

    assert pipe.target_analyzer.analyzer_spec()[0] == "mediapipe"
    own = SaSwapPipeline(pipe.engine, lambda image: pipe.analyzer(image), pipe.compositor)  # a caller's own analyzer
    assert own.target_analyzer.analyzer_spec() is None
    with caplog.at_level(logging.INFO, logger="saswap.pipelines.video"):
        assert _analysis_workers(own, None, 1000) == (0, None)
    assert "analysing here" in caplog.text
    with pytest.raises(SaSwapError, match="cannot run in worker processes"):
        _analysis_workers(own, 2)
    assert _analysis_workers(pipe, None, 100) == (0, None)  # a short video: not worth starting them


def test_default_analysis_workers_follow_the_cores_and_the_length(monkeypatch):
    from saswap.pipelines import video

    for cores, expected in ((1, 2), (2, 2), (4, 3), (16, 8)):
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
