"""The tone harmoniser at run time: loading, the grid applied in another framing, the compositor's use of it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from saswap.compose.harmonizer import ToneHarmonization, harmonize_method, tone_harmonizer_path
from saswap.errors import ModelNotFoundError
from saswap.face.alignment import ffhq_transform, transform_points, warp_face
from saswap.models import ToneHarmonizer
from saswap.models.tone_harmonizer import apply_colour_grid, identity_colour_grid

#: five keypoints of a face in a 256-px FFHQ-aligned crop (eyes, nose, mouth corners)
_KPS = np.array([[96.0, 118.0], [160.0, 118.0], [128.0, 152.0], [101.0, 186.0], [155.0, 186.0]])


def _small(folder, head_bias: float | None = None) -> ToneHarmonizer:
    model = ToneHarmonizer(grid_size=4, luma_bins=2, block_out_channels=(8, 16), work_size=32, image_size=64)
    if head_bias is not None:  # every colour matrix's diagonal shifted: the face's colours scaled by 1 + head_bias
        with torch.no_grad():
            bias = model.head.bias.view(12, model.luma_bins)  # head channel = 12 entries x brightness bins
            bias[[0, 5, 10]] = head_bias
    model.save_pretrained(folder)
    return model


def _crop(size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A textured crop of ``size`` px in FFHQ framing, its keypoints and an elliptic face mask."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size] / size
    image = np.stack([150 + 60 * x, 110 + 40 * y, 90 + 30 * x * y], -1) + rng.normal(0, 6, (size, size, 3))
    kps = _KPS * size / 256
    mask = (((x - 0.5) / 0.28) ** 2 + ((y - 0.58) / 0.36) ** 2 < 1).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8), kps, mask


def test_names_paths_and_errors(tmp_path):
    assert harmonize_method(True) == harmonize_method("harmonizer") == "saswap-tone-harmonizer"
    assert harmonize_method(None) == harmonize_method("off") == "off"
    assert harmonize_method(str(tmp_path)) == str(tmp_path)
    with pytest.raises(ModelNotFoundError, match="no tone harmoniser there"):
        tone_harmonizer_path(tmp_path)
    with pytest.raises(ModelNotFoundError, match="no weights ship yet.*saswap train-harmonizer"):
        tone_harmonizer_path()  # none measured better yet: the message says how to train one
    from saswap import SaSwapPipeline

    with pytest.raises(ModelNotFoundError, match="tone harmoniser.*not a swap engine"):
        SaSwapPipeline.from_pretrained("saswap-tone-harmonizer")
    from saswap.compose import Compositor

    with pytest.raises(ModelNotFoundError, match="no tone harmoniser there"):
        Compositor(harmonize=str(tmp_path)).config()


def test_untrained_harmoniser_changes_nothing(tmp_path):
    _small(tmp_path)
    crop, kps, mask = _crop(96)
    out = ToneHarmonization(tmp_path)(crop, mask, kps)
    assert np.array_equal(out, crop)


def test_transform_stays_inside_the_mask(tmp_path):
    _small(tmp_path, head_bias=-0.3)  # the face 30% darker
    crop, kps, mask = _crop(120)
    out = ToneHarmonization(tmp_path)(crop, mask, kps)
    inside, outside = mask == 1, mask == 0
    assert np.array_equal(out[outside], crop[outside])
    ratio = out[inside].astype(float).mean() / crop[inside].astype(float).mean()
    assert 0.65 < ratio < 0.75


@pytest.mark.parametrize("size", [64, 150])
def test_grid_follows_the_face_in_another_framing(tmp_path, size):
    """A grid predicted on the harmoniser's FFHQ plane lands on the same parts of the face in a crop of another
    size, shifted and rotated: compared with applying it directly on that plane, resampled into the crop."""
    model = _small(tmp_path)
    rng = torch.Generator().manual_seed(0)
    grid = identity_colour_grid(1, 2, 4) + 0.15 * torch.randn(1, 12, 2, 4, 4, generator=rng)
    model.forward = lambda image, mask: grid  # a fixed, strongly varying grid
    harm = ToneHarmonization(tmp_path)
    harm._model = model
    plane, kps64, _ = _crop(64, seed=1)
    plane = np.full_like(plane, 128)  # a flat grey plane: the result shows the grid itself
    direct = apply_colour_grid(torch.from_numpy(plane).permute(2, 0, 1)[None].float() / 255, grid)
    direct = (direct[0].permute(1, 2, 0).numpy() * 255).round()
    # the crop: the plane rotated by 20 degrees, scaled to ``size`` and shifted
    angle, scale = np.deg2rad(20), size / 64 * 0.8
    A = np.array([[scale * np.cos(angle), -scale * np.sin(angle), 0.1 * size], [scale * np.sin(angle), scale * np.cos(angle), 0.15 * size]])
    crop = warp_face(plane, A, size, border=2)
    kps = transform_points(A, kps64)
    assert np.allclose(ffhq_transform(kps, 64) @ np.vstack([A, [0, 0, 1]]), ffhq_transform(kps64, 64), atol=1e-6)
    out = harm(crop, np.ones((size, size), np.float32), kps)
    expected = warp_face(direct.astype(np.uint8), A, size, border=2)
    inside = warp_face(np.ones((64, 64), np.uint8), A, size, border=0) > 0
    inside = cv2_erode(inside, 3)
    err = np.abs(out.astype(int) - expected.astype(int))[inside]
    assert np.median(err) <= 1 and np.percentile(err, 99) <= 4
    # the check can fail: the grid applied as if it spanned the crop itself lands elsewhere
    wrong = apply_colour_grid(torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255, grid)
    wrong = (wrong[0].permute(1, 2, 0).numpy() * 255).round().astype(int)
    assert np.median(np.abs(wrong - expected.astype(int))[inside]) > 2


def cv2_erode(mask: np.ndarray, r: int) -> np.ndarray:
    import cv2

    return cv2.erode(mask.astype(np.uint8), np.ones((2 * r + 1, 2 * r + 1), np.uint8)) > 0


def test_compositor_names_the_weights(tmp_path):
    from saswap.compose import Compositor

    _small(tmp_path)
    compositor = Compositor(harmonize=str(tmp_path))
    assert compositor.config()["harmonize"].startswith("harmonizer:")
    assert Compositor().config()["harmonize"] == "off"


@pytest.mark.slow
def test_a_swap_with_a_harmoniser_changes_only_the_new_face(tmp_path, analyzer):
    """Through the pipeline: the harmoniser's transform (here: the face 30% darker) applies where the compose stage
    put the new face, and every pixel the swap leaves alone stays the target's."""
    from conftest import data_path

    from saswap import SaSwapPipeline
    from saswap.compose import Compositor
    from saswap.io import load_image

    _small(tmp_path, head_bias=-0.3)
    target = load_image(data_path("images", "face_recognition__obama.jpg"))
    source = load_image(data_path("images", "sberswap__beckham.jpg"))
    plain = SaSwapPipeline.from_pretrained("saswap-geometric", analyzer=analyzer)
    harmonised = SaSwapPipeline(plain.engine, compositor=Compositor(harmonize=str(tmp_path)), analyzer=analyzer)
    prepared, _ = plain.prepare_source(source)
    a, b = plain(prepared, target), harmonised(prepared, target)
    mask = b.masks[0]
    untouched = mask == 0
    assert untouched.mean() > 0.5 and np.array_equal(b.image[untouched], target[untouched])
    darker = np.abs(a.image.astype(int) - b.image.astype(int)).max(-1) > 3
    assert darker.sum() > 20000 and (mask[darker] > 0).all()  # the new face, inside what the swap changed
    lit = darker & (a.image.min(-1) > 40)
    ratio = np.median(b.image[lit].astype(float) / a.image[lit].astype(float))
    assert 0.65 < ratio < 0.78, ratio
