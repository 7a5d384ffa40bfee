"""Colour transfer between faces: the shading detail's colour scale."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from saswap.face.colour import shading_detail


def _skin_under_two_lights(size: int = 192) -> tuple[np.ndarray, np.ndarray, tuple[slice, slice], tuple[int, int]]:
    """A skin-coloured disc lit warm from the left and cool from the right (a patch of another hue), with red lips
    (outside the skin mask) and a small brown mole (inside it)."""
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    warm, cool = np.array([205, 150, 120], np.float32), np.array([165, 150, 175], np.float32)
    t = np.clip((xx - size * 0.35) / (size * 0.3), 0, 1)[..., None]
    image = warm * (1 - t) + cool * t
    # shading: a darker band below the "brows", the face's own shape, in lightness only
    image *= (1.0 - 0.25 * np.exp(-(((yy - size * 0.4) / (size * 0.05)) ** 2)))[..., None]
    lips = (slice(int(size * 0.7), int(size * 0.78)), slice(int(size * 0.4), int(size * 0.6)))
    image[lips] = (170, 60, 70)
    mole = (int(size * 0.55), int(size * 0.3))
    cv2.circle(image, mole[::-1], 3, (120, 80, 60), -1)
    skin = (np.hypot(xx - size / 2, yy - size / 2) < size * 0.45).astype(np.float32)
    skin[lips] = 0
    return np.clip(image + 0.5, 0, 255).astype(np.uint8), skin, lips, mole


def test_the_details_hue_follows_the_skin_nearby_and_its_lightness_the_shading():
    image, skin, lips, mole = _skin_under_two_lights()
    size = image.shape[0]
    sigma = size * 0.3  # the relighting's scale: larger than the two lights' patches
    plain = shading_detail(image, skin, sigma)
    near = shading_detail(image, skin, sigma, chroma_sigma=size * 0.03)

    def hue(d, x):  # blue over red of the detail at mid height
        return float(
            np.median(
                d[size // 2 - 5 : size // 2 + 5, x - 3 : x + 3, 2] / d[size // 2 - 5 : size // 2 + 5, x - 3 : x + 3, 0]
            )
        )

    left, right = int(size * 0.2), int(size * 0.8)
    # without it the two lights' colours stay in the detail (on another face: a blue and an orange half)
    assert hue(plain, right) / hue(plain, left) > 1.6
    # with it the skin's detail has one hue across the face
    assert 0.9 < hue(near, right) / hue(near, left) < 1.1
    # the lips keep their red against the skin next to them, the mole its brown
    assert np.median(near[lips][..., 0] / near[lips][..., 2]) > 1.8
    assert near[mole][0] > near[mole][2] * 1.15
    # lightness: the shading band and the mole are as dark as before (the face's shape is kept)
    luma = np.array([0.2126, 0.7152, 0.0722], np.float32)
    band = (slice(int(size * 0.39), int(size * 0.41)), slice(int(size * 0.25), int(size * 0.75)))
    assert np.allclose(np.median(near[band] @ luma), np.median(plain[band] @ luma), rtol=0.08)
    assert np.median(near[band] @ luma) < 0.85
    assert abs(float(near[mole] @ luma) / float(plain[mole] @ luma) - 1) < 0.1
    # a larger chroma scale (or none) is the plain detail
    assert np.array_equal(shading_detail(image, skin, sigma, chroma_sigma=sigma * 2), plain)


def test_a_highlight_on_a_bright_target_keeps_the_skins_hue_instead_of_turning_white():
    from saswap.compose import Compositor
    from saswap.face.colour import apply_detail

    size = 64
    target = np.zeros((size, size, 3), np.uint8)
    target[...] = (235, 180, 140)  # bright, warm skin: its red is near the top of the range
    skin = np.ones((size, size), np.float32)
    detail = np.ones((size, size, 3), np.float32)
    detail[24:40, 24:40] = 1.8  # a source's highlight (a shiny forehead), grey: it only brightens
    clipped = apply_detail(detail, target, skin, sigma=8.0)
    rolled = apply_detail(detail, target, skin, sigma=8.0, highlight_knee=0.8)

    def ab(rgb):  # CIELAB a*, b* of one pixel
        lab = cv2.cvtColor(np.asarray(rgb, np.uint8).reshape(1, 1, 3), cv2.COLOR_RGB2LAB).astype(np.float32)[0, 0]
        return lab[1] - 128.0, lab[2] - 128.0

    def hue(rgb):  # degrees
        a, b = ab(rgb)
        return float(np.degrees(np.arctan2(b, a)))

    def chroma(rgb):
        return float(np.hypot(*ab(rgb)))

    skin_px, hi_clipped, hi_rolled = target[0, 0], clipped[32, 32], rolled[32, 32]
    # clipped channel by channel, the red saturates while green and blue go on rising: the highlight turns yellow
    assert hi_clipped[0] == 255 and abs(hue(hi_clipped) - hue(skin_px)) > 10.0
    assert abs(hue(hi_rolled) - hue(skin_px)) < 3.0 and chroma(hi_rolled) > 0.8 * chroma(skin_px)
    assert hi_rolled.astype(int).sum() > skin_px.astype(int).sum() + 20  # still a highlight
    # below the knee nothing changes
    assert np.array_equal(rolled[:8, :8], clipped[:8, :8])
    with pytest.raises(ValueError, match="highlight_knee"):
        Compositor(highlight_knee=1.0)
