"""The ONNX engine (inswapper_128 interface) with tiny ONNX models built here."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import data_path

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def _tiny_arcface(path):
    """(1,3,112,112) -> (1,512): global average pool, flatten, a fixed 3x512 projection."""
    w = np.random.default_rng(0).normal(size=(3, 512)).astype(np.float32)
    nodes = [
        helper.make_node("GlobalAveragePool", ["input.1"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("MatMul", ["flat", "w"], ["683"]),
    ]
    graph = helper.make_graph(
        nodes, "arcface", [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, 112, 112])],
        [helper.make_tensor_value_info("683", TensorProto.FLOAT, [1, 512])], [numpy_helper.from_array(w, "w")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))


def _tiny_swapper(path, emap):
    """target*0.5 + mean(source): the output depends on both inputs; the emap is the last initializer."""
    nodes = [
        helper.make_node("Mul", ["target", "half"], ["scaled"]),
        helper.make_node("ReduceMean", ["source"], ["mean"], axes=[1], keepdims=1),
        helper.make_node("Reshape", ["mean", "shape4"], ["mean4"]),
        helper.make_node("Add", ["scaled", "mean4"], ["output"]),
    ]
    inits = [
        numpy_helper.from_array(np.array([0.5], np.float32), "half"),
        numpy_helper.from_array(np.array([1, 1, 1, 1], np.int64), "shape4"),
        numpy_helper.from_array(emap.astype(np.float32), "emap"),
    ]
    graph = helper.make_graph(
        nodes, "swapper",
        [helper.make_tensor_value_info("target", TensorProto.FLOAT, [1, 3, 128, 128]), helper.make_tensor_value_info("source", TensorProto.FLOAT, [1, 512])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 128, 128])], inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_latent_follows_the_inswapper_recipe():
    from saswap.engines import latent_from_embedding

    rng = np.random.default_rng(1)
    e, emap = rng.normal(size=512), rng.normal(size=(512, 512))
    latent = latent_from_embedding(e, emap)
    expected = (e / np.linalg.norm(e)) @ emap
    assert np.allclose(latent[0], expected / np.linalg.norm(expected), atol=1e-5)
    assert abs(np.linalg.norm(latent) - 1) < 1e-5


def test_onnx_engine_end_to_end(tmp_path, analyzer):
    from saswap import SaSwapPipeline
    from saswap.engines import OnnxSwapEngine
    from saswap.face.identity import ArcFaceOnnxEmbedder

    _tiny_arcface(tmp_path / "arcface.onnx")
    emap = np.eye(512) * 3.0
    _tiny_swapper(tmp_path / "swapper.onnx", emap)
    embedder = ArcFaceOnnxEmbedder(tmp_path / "arcface.onnx")
    engine = OnnxSwapEngine(tmp_path / "swapper.onnx", embedder)
    assert engine.crop_size == 128 and engine.emap.shape == (512, 512)
    pipe = SaSwapPipeline(engine, analyzer)
    src = data_path("images", "sberswap__beckham.jpg")
    tgt = data_path("images", "sadtalker__happy.png")
    prepared, _ = pipe.prepare_source(src)
    assert prepared.embedding.shape == (1, 512) and abs(np.linalg.norm(prepared.embedding) - 1) < 1e-5
    # the latent is the normalised embedding (emap is a multiple of the identity)
    from saswap.io import load_image

    s_img = load_image(src)
    emb = embedder(s_img, analyzer(s_img)[0])
    assert np.allclose(prepared.embedding[0], emb, atol=1e-5)
    target = load_image(tgt)
    crop, face_c, _ = engine.align(target, analyzer(target)[0])
    made = engine.swap(crop, face_c, prepared)
    expected = np.clip(crop * 0.5 + prepared.embedding.mean() * 255, 0, 255)
    assert made.mask is None and made.detail is None  # the engine only makes the face; compose is shared
    assert np.abs(made.image.astype(float) - expected).mean() < 1  # the model's output, untouched
    out = pipe(prepared, tgt)
    m = out.masks[0]
    assert m.max() > 0.99 and (m == 0).mean() > 0.3
    inside = m > 0.99
    # The compose stage laid the generated face's detail over the target's skin tone: the face's mean
    # colour stays the target's, not the half-dark model output's.
    half_dark = np.clip(target[inside] * 0.5 + prepared.embedding.mean() * 255, 0, 255)
    assert abs(out.image[inside].mean() - target[inside].mean()) < 0.25 * abs(half_dark.mean() - target[inside].mean())
    assert np.array_equal(out.image[m == 0], target[m == 0])


def test_onnx_engine_rejects_bad_models(tmp_path):
    from saswap.engines import OnnxSwapEngine
    from saswap.errors import ModelNotFoundError

    with pytest.raises(ModelNotFoundError, match="not found"):
        OnnxSwapEngine(tmp_path / "missing.onnx", embedder=None)
    _tiny_swapper(tmp_path / "bad.onnx", np.eye(512)[:, :256])
    with pytest.raises(ModelNotFoundError, match=r"expected \(512, 512\)"):
        OnnxSwapEngine(tmp_path / "bad.onnx", embedder=None)


def test_onnx_engine_from_a_model_folder(tmp_path):
    import json

    from saswap import SaSwapPipeline

    _tiny_arcface(tmp_path / "arcface.onnx")
    _tiny_swapper(tmp_path / "swapper.onnx", np.eye(512))
    (tmp_path / "model_index.json").write_text(
        json.dumps({"engine": "onnx", "model": "swapper.onnx", "arcface": "arcface.onnx"})
    )
    pipe = SaSwapPipeline.from_pretrained(tmp_path)
    assert pipe.engine.name == "onnx" and pipe.engine.crop_size == 128


def test_onnx_engine_moves_to_a_provider_that_exists(tmp_path):
    import onnxruntime as ort

    from saswap.engines import OnnxSwapEngine
    from saswap.errors import SaSwapError

    _tiny_swapper(tmp_path / "swapper.onnx", np.eye(512))
    engine = OnnxSwapEngine(tmp_path / "swapper.onnx", embedder=None)
    assert engine.to("cpu") is engine and engine.device == "cpu" and engine.on_cpu
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(SaSwapError, match="cannot run on 'cuda:1' here"):
            engine.to("cuda:1")
        assert engine.device == "cpu"  # left where it was
    with pytest.raises(SaSwapError, match="cannot run on 'tpu'"):
        engine.to("tpu")
