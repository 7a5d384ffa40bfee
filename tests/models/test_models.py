"""Building blocks: tiny configs, output shapes, determinism, save -> load round trip, strict loading."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from saswap.models import (
    AttributeEncoder,
    DeformableFusion,
    FlowEstimator,
    FusionGenerator,
    IdentityEncoder,
    MultiScaleDiscriminator,
)
from saswap.models.identity_encoder import ARCFACE_LAYERS

TINY = {
    "identity": (IdentityEncoder, dict(layers=(1, 1, 1, 1), block_out_channels=(4, 8, 8, 16), embed_dim=16, input_size=32), lambda: (torch.rand(2, 3, 32, 32) * 2 - 1,)),
    "attribute": (AttributeEncoder, dict(block_out_channels=(8, 16, 16)), lambda: (torch.rand(2, 3, 32, 32),)),
    "flow": (FlowEstimator, dict(num_keypoints=5, image_size=32, feature_size=16, block_out_channels=(8, 16)), lambda: (torch.rand(2, 5, 2) * 2 - 1, torch.randn(2, 5, 2))),
    "deformable_fusion": (DeformableFusion, dict(channels=4), lambda: (torch.rand(2, 4, 8, 8), torch.randn(2, 2, 32, 32))),
    "discriminator": (MultiScaleDiscriminator, dict(num_scales=2, block_out_channels=(8, 16)), lambda: (torch.rand(2, 3, 32, 32),)),
}  # fmt: skip


def _first(out):
    return out[0] if isinstance(out, (list, tuple)) else out


@pytest.mark.parametrize("name", list(TINY))
def test_tiny_model_round_trip(name, tmp_path):
    cls, config, inputs = TINY[name]
    torch.manual_seed(0)
    model = cls(**config).eval()
    x = inputs()
    with torch.no_grad():
        a, b = _first(model(*x)), _first(model(*x))
    assert torch.equal(a, b)  # deterministic in eval mode
    model.save_pretrained(tmp_path / name)
    assert json.loads((tmp_path / name / "config.json").read_text())  # the typed __init__ is the config
    loaded = cls.from_pretrained(tmp_path / name).eval()
    with torch.no_grad():
        assert torch.equal(_first(loaded(*x)), a)


def test_strict_loading_rejects_mismatched_weights(tmp_path):
    cls, config, _ = TINY["identity"]
    cls(**config).save_pretrained(tmp_path / "m")
    weights = load_file(tmp_path / "m" / "model.safetensors")
    weights["unexpected.weight"] = torch.zeros(1)
    save_file(weights, tmp_path / "m" / "model.safetensors")
    with pytest.raises(RuntimeError, match="Unexpected key"):
        cls.from_pretrained(tmp_path / "m")


def test_identity_encoder_matches_arcface_torch_layout():
    """The r50 layout of insightface's arcface_torch iresnet50 (names, shapes, parameter count)."""
    sd = IdentityEncoder(layers=ARCFACE_LAYERS["r50"]).state_dict()
    assert len(sd) == 475
    expected = {
        "conv1.weight": (64, 3, 3, 3), "prelu.weight": (64,), "layer1.0.downsample.0.weight": (64, 64, 1, 1),
        "layer3.13.conv2.weight": (256, 256, 3, 3), "layer4.0.downsample.1.running_var": (512,),
        "bn2.weight": (512,), "fc.weight": (512, 512 * 7 * 7), "features.running_mean": (512,),
    }  # fmt: skip
    for key, shape in expected.items():
        assert tuple(sd[key].shape) == shape, key
    n = sum(v.numel() for k, v in sd.items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
    assert abs(n / 1e6 - 43.59) < 0.01
    with pytest.raises(ValueError, match="aligned faces"):
        IdentityEncoder(layers=(1, 1, 1, 1), block_out_channels=(4, 8, 8, 16), input_size=32)(torch.rand(1, 3, 64, 64))


def test_generator_with_attributes_and_flow(tmp_path):
    torch.manual_seed(0)
    enc = AttributeEncoder(block_out_channels=(8, 16, 16))
    gen = FusionGenerator(
        embed_dim=16, attr_channels=enc.attr_channels, block_out_channels=(16, 16, 8, 8), deform_levels=(1, 2)
    ).eval()
    enc.eval()
    x = torch.rand(1, 3, 32, 32)
    z = torch.randn(1, 16)
    with torch.no_grad():
        attrs = enc(x)
        plain = gen(z, attrs)
        zero_flow = gen(z, attrs, torch.zeros(1, 2, 32, 32))
        moved = gen(z, attrs, torch.full((1, 2, 32, 32), 3.0))
        off = gen(z, attrs, torch.full((1, 2, 32, 32), 3.0), strength=0.0)
    assert plain.shape == (1, 3, 32, 32) and plain.abs().max() <= 1
    assert torch.allclose(plain, zero_flow, atol=1e-5) and torch.allclose(plain, off, atol=1e-5)
    assert (moved - plain).abs().max() > 1e-3  # the flow moves features
    gen.save_pretrained(tmp_path / "g")
    with torch.no_grad():
        assert torch.equal(FusionGenerator.from_pretrained(tmp_path / "g").eval()(z, attrs), plain)
    with pytest.raises(ValueError, match="attribute maps"):
        gen(z, attrs[:-1])


def test_flow_estimator_is_zero_without_motion_and_bounded():
    est = FlowEstimator(num_keypoints=5, image_size=32, feature_size=16, block_out_channels=(8, 16)).eval()
    kp = torch.rand(2, 5, 2) * 2 - 1
    with torch.no_grad():
        assert est(kp, torch.zeros(2, 5, 2)).abs().max() == 0
        motion = torch.randn(2, 5, 2) * 4
        flow = est(kp, motion)
    assert flow.shape == (2, 2, 32, 32)
    assert flow.abs().max() <= motion.abs().max() + 1e-5  # a convex combination of keypoint motions
    with pytest.raises(ValueError, match=r"\(B, 5, 2\)"):
        est(kp[:, :3], motion[:, :3])


def test_deformable_fusion_scales_the_flow():
    fuse = DeformableFusion(4)
    feat = torch.rand(1, 4, 8, 8)
    flow = torch.zeros(1, 2, 32, 32)
    flow[:, 0] = 4.0  # 4 px at 32 -> 1 px at 8
    out = fuse(feat, flow)
    assert torch.allclose(out[..., :-1], feat[..., 1:], atol=1e-3)
