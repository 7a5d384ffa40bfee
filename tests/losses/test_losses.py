"""Losses: smoke, bad shapes, gradcheck in float64 on tiny inputs, module == function."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck

from saswap import losses as L

torch.manual_seed(0)


def _d(*shape):
    return torch.rand(*shape, dtype=torch.float64, requires_grad=True)


def test_identity_loss():
    a, b = _d(2, 5), _d(2, 5)
    assert gradcheck(L.identity_loss, (a, b))
    assert torch.equal(L.IdentityLoss()(a, b), L.identity_loss(a, b))
    assert float(L.identity_loss(a, -a)) == pytest.approx(2.0)
    with pytest.raises(ValueError, match=r"\(B, D\)"):
        L.identity_loss(a, b[:1])


def test_attribute_loss():
    o = [_d(1, 2, 2, 2), _d(1, 1, 4, 4)]
    t = [torch.rand(1, 2, 2, 2, dtype=torch.float64), torch.rand(1, 1, 4, 4, dtype=torch.float64)]
    assert gradcheck(lambda a, b: L.attribute_loss([a, b], t), tuple(o))
    assert torch.equal(L.AttributeLoss()(o, t), L.attribute_loss(o, t))
    with pytest.raises(ValueError, match="shapes differ"):
        L.attribute_loss(o, [t[0], t[0]])


def test_reconstruction_keypoint_flow_losses():
    out, tgt = _d(2, 3, 4, 4), torch.rand(2, 3, 4, 4, dtype=torch.float64)
    same = torch.tensor([1.0, 0.0], dtype=torch.float64)
    assert gradcheck(lambda o: L.reconstruction_loss(o, tgt, same), (out,))
    assert float(L.reconstruction_loss(out, tgt, torch.zeros(2, dtype=torch.float64))) == 0.0  # no same-identity pair
    assert torch.equal(L.ReconstructionLoss()(out, tgt, same), L.reconstruction_loss(out, tgt, same))
    kp, fused = _d(2, 5, 3), torch.rand(2, 5, 3, dtype=torch.float64)
    assert gradcheck(lambda k: L.keypoint_loss(k, fused), (kp + 0.5,))
    assert torch.equal(L.KeypointLoss()(kp, fused), L.keypoint_loss(kp, fused))
    flow = _d(2, 2, 4, 4)
    assert gradcheck(lambda f: L.flow_identity_loss(f + 0.1, same), (flow,))
    assert float(L.flow_identity_loss(torch.zeros(2, 2, 4, 4), same)) == 0.0
    with pytest.raises(ValueError, match="same-identity flag"):
        L.reconstruction_loss(out, tgt, torch.ones(3))


def test_gan_losses():
    real, fake = [_d(1, 1, 3, 3), _d(1, 1, 2, 2)], [_d(1, 1, 3, 3), _d(1, 1, 2, 2)]
    assert gradcheck(
        lambda a, b, c, d: L.hinge_d_loss([a, b], [c, d]), (*[r * 0.5 for r in real], *[f * 0.5 for f in fake])
    )
    assert gradcheck(lambda a, b: L.hinge_g_loss([a, b]), tuple(fake))
    assert torch.equal(L.HingeDLoss()(real, fake), L.hinge_d_loss(real, fake))
    assert torch.equal(L.HingeGLoss()(fake), L.hinge_g_loss(fake))
    with pytest.raises(ValueError):
        L.hinge_d_loss(real, fake[:1])


def test_flow_tv():
    flow = _d(1, 2, 4, 4)
    assert gradcheck(L.flow_total_variation, (flow,))
    assert float(L.flow_total_variation(torch.zeros(1, 2, 4, 4))) == 0.0
    assert torch.equal(L.FlowTVLoss()(flow), L.flow_total_variation(flow))
    with pytest.raises(ValueError, match=r"\(B, 2, H, W\)"):
        L.flow_total_variation(torch.zeros(1, 3, 4, 4))


def test_contextual_loss_function():
    x, y = _d(1, 4, 3, 3), torch.rand(1, 4, 3, 3, dtype=torch.float64)
    assert gradcheck(lambda a: L.contextual_loss(a, y), (x,), eps=1e-6, atol=1e-4)
    same = L.contextual_loss(y, y)
    shuffled = L.contextual_loss(y.flatten(2)[..., torch.randperm(9)].view(1, 4, 3, 3), y)
    assert float(same) < 0.05 and float(shuffled) == pytest.approx(float(same), abs=1e-6)  # position-free
    assert float(L.contextual_loss(torch.rand(1, 4, 3, 3, dtype=torch.float64), y)) > float(same)
    with pytest.raises(ValueError, match="equal B and C"):
        L.contextual_loss(x, torch.rand(1, 5, 3, 3))


def test_contextual_loss_module_random_vgg():
    loss = L.ContextualLoss(pretrained=False, max_positions=64)  # random weights: mechanics only
    img = torch.rand(1, 3, 64, 64) * 2 - 1
    assert float(loss(img, img)) < float(loss(torch.rand(1, 3, 64, 64) * 2 - 1, img))
    assert not any(p.requires_grad for p in loss.vgg.parameters())


def test_contextual_loss_pretrained_offline_is_a_clear_error(monkeypatch, tmp_path):
    from saswap.errors import ModelNotFoundError

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty cache
    import torch.hub

    def no_download(*args, **kwargs):
        raise OSError("offline")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    needs = r"needs torchvision's ImageNet VGG19 weights vgg19-dcbb9e9d.pth, not in .*--model.contextual_loss null"
    with pytest.raises(ModelNotFoundError, match=needs):
        L.ContextualLoss(pretrained=True)
