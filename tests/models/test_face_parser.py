"""FaceParser: shapes, gradients, clear errors, save -> load round trip, strict loading."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from saswap.models import FACE_PARSER_CLASSES, FaceParser
from saswap.models.face_parser import SWAPPABLE_CLASSES

TINY = dict(block_out_channels=(4, 8, 16))


def test_classes_and_default_size():
    assert FACE_PARSER_CLASSES[0] == "background" and len(set(FACE_PARSER_CLASSES)) == 9
    for name in ("skin", "eyes", "brows", "lips", "mouth", "glasses", "hair", "occluder"):
        assert name in FACE_PARSER_CLASSES
    assert set(SWAPPABLE_CLASSES) <= set(FACE_PARSER_CLASSES) and "occluder" not in SWAPPABLE_CLASSES
    n = sum(p.numel() for p in FaceParser().parameters())
    assert 0.5e6 < n < 1.25e6  # float32 safetensors under 5 MB


def test_shapes_gradients_and_masks():
    torch.manual_seed(0)
    model = FaceParser(**TINY)
    x = torch.rand(2, 3, 64, 32, requires_grad=True)
    out = model(x)
    assert out.shape == (2, 9, 64, 32)
    out.square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    assert model.parse(x.detach()).shape == (2, 64, 32)
    m = model.swappable_mask(x.detach())
    assert m.shape == (2, 64, 32) and 0 <= float(m.min()) and float(m.max()) <= 1


def test_clear_errors():
    model = FaceParser(**TINY)
    with pytest.raises(ValueError, match="multiples of 8"):
        model(torch.rand(1, 3, 30, 32))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.rand(1, 1, 32, 32))
    with pytest.raises(TypeError, match="float"):
        model(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="at least 2"):
        FaceParser(block_out_channels=(8,))


def test_round_trip_and_strict_loading(tmp_path):
    torch.manual_seed(0)
    model = FaceParser(num_classes=4, **TINY).eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        a = model(x)
    model.save_pretrained(tmp_path / "p")
    loaded = FaceParser.from_pretrained(tmp_path / "p").eval()
    assert loaded.num_classes == 4 and loaded.classes == ("class_0", "class_1", "class_2", "class_3")
    with torch.no_grad():
        assert torch.equal(loaded(x), a)
    weights = load_file(tmp_path / "p" / "model.safetensors")
    weights.pop("head.bias")
    save_file(weights, tmp_path / "p" / "model.safetensors")
    with pytest.raises(RuntimeError, match="Missing key"):
        FaceParser.from_pretrained(tmp_path / "p")
