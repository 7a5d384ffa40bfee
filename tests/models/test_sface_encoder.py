"""SFaceEncoder: the torch port equals onnxruntime on SFace's ONNX file (real aligned crops and random
inputs), rejects bad shapes and weights, round-trips through save/from_pretrained."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import data_path

from saswap.io import load_image
from saswap.models import SFaceEncoder

ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def encoder() -> SFaceEncoder:
    return SFaceEncoder().eval()


@pytest.fixture(scope="module")
def session():
    from saswap.face.sface import sface_onnx_bytes

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(sface_onnx_bytes(), options, providers=["CPUExecutionProvider"])


def _onnx(session, x: torch.Tensor) -> np.ndarray:
    """The ONNX model on x in [-1, 1]: it takes pixels in [0, 255], one face per run."""
    pixels = ((x.numpy() + 1) * 127.5).astype(np.float32)
    return np.concatenate([session.run(None, {"data": p[None]})[0] for p in pixels])


def test_equals_onnxruntime_on_real_crops_and_random_inputs(encoder, session, analyzer):
    from saswap.face.alignment import arcface_transform, warp_face

    crops = []
    for name in ("face_recognition__obama.jpg", "sadtalker__happy.png", "insightface__t1.jpg"):
        image = load_image(data_path("images", name))
        crops.append(warp_face(image, arcface_transform(analyzer(image)[0].keypoints, 112), 112))
    real = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 127.5 - 1
    noise = torch.rand(2, 3, 112, 112, generator=torch.Generator().manual_seed(0)) * 2 - 1
    x = torch.cat([real, noise])
    with torch.no_grad():
        ours = encoder(x).numpy()
    theirs = _onnx(session, x)
    assert ours.shape == (5, 128)
    assert np.abs(ours - theirs).max() < 1e-4
    assert np.abs(theirs).max() > 0.1  # a real signal, not two sets of zeros


def test_frozen_gradients_reach_the_input(encoder):
    x = (torch.rand(1, 3, 112, 112) * 2 - 1).requires_grad_(True)
    encoder.embed(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    encoder.zero_grad(set_to_none=True)


def test_bad_inputs_and_weights_are_clear_errors(encoder):
    with pytest.raises(ValueError, match=r"\(B, 3, 112, 112\)"):
        encoder(torch.zeros(1, 3, 64, 64))
    from saswap.face.sface import sface_weights

    weights = sface_weights()
    blank = SFaceEncoder(pretrained=False)
    bad = dict(weights)
    del bad["conv_7_conv2d_weight"]
    with pytest.raises(ValueError, match="conv_7_conv2d_weight.*missing"):
        blank.load_sface_weights(bad)
    bad = {**weights, "pre_fc1_bias": np.zeros(64, np.float32)}
    with pytest.raises(ValueError, match="pre_fc1_bias.*shape"):
        blank.load_sface_weights(bad)


def test_save_load_round_trip_and_strict_loading(encoder, tmp_path):
    encoder.save_pretrained(tmp_path / "sface")
    loaded = SFaceEncoder.from_pretrained(tmp_path / "sface").eval()
    x = torch.rand(1, 3, 112, 112) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded(x), encoder(x))
    from saswap.models import IdentityEncoder

    IdentityEncoder(layers=(1, 1, 1, 1), block_out_channels=(4, 8, 8, 16), embed_dim=8, input_size=32).save_pretrained(
        tmp_path / "other"
    )
    with pytest.raises(RuntimeError, match="Missing key|Unexpected key|size mismatch|Error"):
        SFaceEncoder.from_pretrained(tmp_path / "other")
