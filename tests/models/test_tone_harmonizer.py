"""ToneHarmonizer and its colour grid: shapes, identity at initialisation, clear errors, gradients, save -> load
round trip, strict loading, size and speed."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from saswap.models import ToneHarmonizer
from saswap.models.tone_harmonizer import ColourGridTransform, apply_colour_grid, identity_colour_grid, luma

TINY = dict(grid_size=4, luma_bins=2, block_out_channels=(4, 8), work_size=16)


def _perturb_weights(model: torch.nn.Module, seed: int = 0) -> None:
    """Give the zero-initialised head random weights, so that the model changes colours."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.head.weight.copy_(torch.randn(model.head.weight.shape, generator=g) * 0.05)
        model.head.bias.copy_(torch.randn(model.head.bias.shape, generator=g) * 0.05)


def ms_per_crop(model: ToneHarmonizer, size: int = 256, repeats: int = 15) -> float:
    """Fastest of ``repeats`` harmonisations of one (1, 3, size, size) crop, in milliseconds (one thread, so a
    busy machine's other jobs disturb it least), after 3 warm-up runs."""
    model.eval()
    x, m = torch.rand(1, 3, size, size), torch.rand(1, 1, size, size)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            for _ in range(3):
                model.harmonize(x, m)
            times = []
            for _ in range(repeats):
                t = time.perf_counter()
                model.harmonize(x, m)
                times.append((time.perf_counter() - t) * 1000)
    finally:
        torch.set_num_threads(threads)
    return float(np.min(times))


def test_shapes_and_identity_at_initialisation():
    torch.manual_seed(0)
    model = ToneHarmonizer(**TINY).eval()
    x, m = torch.rand(2, 3, 48, 32), torch.rand(2, 1, 48, 32)
    grid = model(x, m)
    assert grid.shape == (2, 12, 2, 4, 4)
    assert torch.equal(grid, identity_colour_grid(2, 2, 4))
    assert torch.equal(model.harmonize(x, m), x)
    model.train()  # batch statistics do not matter either: the head is zero
    assert torch.equal(model.harmonize(x, m), x)


def test_the_transform_changes_only_the_masked_region_and_keeps_texture():
    torch.manual_seed(0)
    model = ToneHarmonizer(**TINY).eval()
    _perturb_weights(model)
    x = torch.rand(1, 3, 32, 32)
    m = torch.zeros(1, 1, 32, 32)
    m[..., 8:24, 8:24] = 1
    with torch.no_grad():
        y = model.harmonize(x, m)
    assert torch.equal(y[..., :8, :], x[..., :8, :]) and torch.equal(y[..., :, 24:], x[..., :, 24:])
    assert (y - x)[..., 8:24, 8:24].abs().mean() > 1e-3
    # a global gain of 0.5 through the grid halves every pixel: detail is kept, not repainted
    g = identity_colour_grid(1, 2, 4)
    g[:, [0, 5, 10]] = 0.5
    assert torch.allclose(apply_colour_grid(x, g), x * 0.5, atol=1e-6)
    # an offset only in the brighter brightness bin moves bright pixels and leaves dark ones
    g = identity_colour_grid(1, 2, 4)
    g[:, 3, 1] = 0.1  # red offset, brightness bin 1 of 2
    dark, bright = torch.full((1, 3, 4, 4), 0.1), torch.full((1, 3, 4, 4), 0.9)
    assert torch.equal(apply_colour_grid(dark, g), dark)
    assert torch.allclose(apply_colour_grid(bright, g)[:, 0], torch.full((1, 4, 4), 1.0))


def test_module_matches_function_and_gradcheck():
    x = torch.rand(1, 3, 6, 5, dtype=torch.float64) * 0.6 + 0.2
    g = identity_colour_grid(1, 2, 3, dtype=torch.float64) + torch.randn(1, 12, 2, 3, 3, dtype=torch.float64) * 0.02
    m = torch.rand(1, 1, 6, 5, dtype=torch.float64)
    assert torch.equal(ColourGridTransform()(x, g, m), apply_colour_grid(x, g, m))
    g.requires_grad_(True)
    m.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda g, m: apply_colour_grid(x, g, m), (g, m))


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = ToneHarmonizer(**TINY)
    _perturb_weights(model)
    x, m = torch.rand(2, 3, 32, 32), torch.rand(2, 1, 32, 32)
    model.harmonize(x, m).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_clear_errors():
    model = ToneHarmonizer(**TINY)
    x, m = torch.rand(1, 3, 32, 32), torch.rand(1, 1, 32, 32)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.rand(1, 4, 32, 32), m)
    with pytest.raises(ValueError, match="mask of shape"):
        model(x, torch.rand(1, 1, 16, 32))
    with pytest.raises(ValueError, match="mask of shape"):
        model(x, torch.rand(1, 3, 32, 32))
    with pytest.raises(TypeError, match="float"):
        model(torch.zeros(1, 3, 32, 32, dtype=torch.uint8), m)
    with pytest.raises(TypeError, match="mask dtype"):
        model(x, m > 0.5)
    with pytest.raises(ValueError, match="colour grid of shape"):
        apply_colour_grid(x, torch.ones(1, 9, 2, 4, 4))
    with pytest.raises(TypeError, match="grid dtype"):
        apply_colour_grid(x, identity_colour_grid(1, 2, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="multiple of grid_size"):
        ToneHarmonizer(grid_size=8, block_out_channels=(8, 16, 32), work_size=32)
    with pytest.raises(ValueError, match="at least one"):
        ToneHarmonizer(block_out_channels=())
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        luma(torch.rand(3, 8, 8))


def test_round_trip_and_strict_loading(tmp_path):
    torch.manual_seed(0)
    model = ToneHarmonizer(**TINY).eval()
    _perturb_weights(model)
    x, m = torch.rand(1, 3, 32, 32), torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        a = model.harmonize(x, m)
    model.save_pretrained(tmp_path / "h")
    loaded = ToneHarmonizer.from_pretrained(tmp_path / "h").eval()
    assert (loaded.grid_size, loaded.luma_bins, loaded.work_size) == (4, 2, 16)
    with torch.no_grad():
        assert torch.equal(loaded.harmonize(x, m), a)
        assert not torch.equal(a, x)
    weights = load_file(tmp_path / "h" / "model.safetensors")
    weights.pop("head.bias")
    save_file(weights, tmp_path / "h" / "model.safetensors")
    with pytest.raises(RuntimeError, match="Missing key"):
        ToneHarmonizer.from_pretrained(tmp_path / "h")


def test_default_size_and_speed():
    model = ToneHarmonizer()
    n = sum(p.numel() for p in model.parameters())
    assert 100_000 < n < 1_000_000, n
    # the target is ~10 ms per 256-px crop on a CPU core; the bound leaves room for a busy machine
    assert ms_per_crop(model) < 40.0
