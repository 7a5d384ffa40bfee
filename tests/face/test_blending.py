"""The boundary membrane and the multi-band blend."""

from __future__ import annotations

import cv2
import numpy as np

from saswap.face.blending import blend_offset, membrane_correction, pyramid_blend


def _disk_ring(size: int, radius: int, width: int = 3) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[:size, :size]
    r = np.hypot(yy - size / 2, xx - size / 2)
    inside = (r <= radius).astype(np.float32)
    ring = ((r <= radius) & (r > radius - width)).astype(np.float32)
    return inside, ring


def test_membrane_meets_the_background_on_the_boundary_and_keeps_the_foreground_detail():
    size = 96
    inside, ring = _disk_ring(size, 36)
    rng = np.random.default_rng(0)
    detail = rng.normal(0, 10, (size, size, 1)).astype(np.float32)
    # Background with a lighting gradient; foreground a flat, brighter tone with its own detail.
    x = np.linspace(-1, 1, size, dtype=np.float32)[None, :, None]
    background = np.repeat(110 + 30 * x, size, axis=0) * np.ones((1, 1, 3), np.float32)
    foreground = 170 + detail * np.ones((1, 1, 3), np.float32)
    offset = membrane_correction(foreground, background, ring, scale=36)
    corrected = foreground + offset
    on_ring = ring > 0.5
    # On the boundary the corrected foreground matches the background up to its own detail ...
    assert np.abs((corrected - background)[on_ring].mean()) < 2.0
    left, right = on_ring & (x[..., 0] < -0.5), on_ring & (x[..., 0] > 0.5)
    assert abs((corrected - background)[left].mean()) < 3 and abs((corrected - background)[right].mean()) < 3
    # ... the offset itself is smooth (no detail of its own), so the foreground's detail survives.
    assert np.abs(np.diff(offset[..., 0], axis=1))[inside[:, 1:] > 0].max() < 3.0
    assert np.corrcoef((corrected - cv2.GaussianBlur(corrected, (0, 0), 4))[inside > 0, 0],
                       (detail[..., 0] - cv2.GaussianBlur(detail[..., 0], (0, 0), 4))[inside > 0])[0, 1] > 0.95  # fmt: skip


def test_membrane_ignores_stray_boundary_samples_and_is_zero_without_samples():
    size = 64
    _, ring = _disk_ring(size, 24)
    foreground = np.full((size, size, 3), 150.0, np.float32)
    background = np.full((size, size, 3), 160.0, np.float32)
    # A dark hair strand across part of the boundary must not pull the offset down.
    background[:, 30:34] = 40.0
    offset = membrane_correction(foreground, background, ring, scale=24)
    assert abs(float(np.median(offset[size // 2, size // 2])) - 10.0) < 1.5
    assert offset[8, 32].min() > 0  # near the strand too
    assert not membrane_correction(foreground, background, np.zeros((size, size), np.float32), 24).any()


def test_membrane_far_from_every_sample_takes_their_median():
    # Samples along one side (an outline, +30..+50) and a small hole (+25): both are met exactly, and far
    # from every sample the offset tends to the samples' median (40) instead of extrapolating the
    # nearest group (the hole) across the region.
    fg = np.zeros((128, 128, 3), np.float32)
    bg = np.zeros_like(fg)
    ring = np.zeros((128, 128), np.float32)
    ring[2, :] = 1
    bg[2, :] = np.linspace(30, 50, 128)[:, None]
    ring[50:62, 60:62] = 1
    bg[50:62, 60:62] = 25
    robust = membrane_correction(fg, bg, ring, scale=64)
    local = membrane_correction(fg, bg, ring, scale=64, median_far=False)
    for off in (robust, local):
        assert abs(off[2, 64, 0] - 40) < 1 and abs(off[56, 61, 0] - 25) < 1
    assert abs(robust[110, 64, 0] - 40) < 3
    assert abs(local[110, 64, 0] - 40) > abs(robust[110, 64, 0] - 40) + 2


def _two_pyramid_blend(fg: np.ndarray, bg: np.ndarray, m: np.ndarray, levels: int) -> np.ndarray:
    """Burt and Adelson's blend as written in the textbook: Laplacian pyramids of both images mixed band by band."""
    gf, gb, gm = [fg.astype(np.float32)], [bg.astype(np.float32)], [m.astype(np.float32)]
    for _ in range(levels):
        gf.append(cv2.pyrDown(gf[-1]))
        gb.append(cv2.pyrDown(gb[-1]))
        gm.append(cv2.pyrDown(gm[-1]))
    out = gf[-1] * gm[-1][..., None] + gb[-1] * (1 - gm[-1][..., None])
    for lvl in range(levels - 1, -1, -1):
        size = (gf[lvl].shape[1], gf[lvl].shape[0])
        lf = gf[lvl] - cv2.pyrUp(gf[lvl + 1], dstsize=size)
        lb = gb[lvl] - cv2.pyrUp(gb[lvl + 1], dstsize=size)
        out = cv2.pyrUp(out, dstsize=size) + lf * gm[lvl][..., None] + lb * (1 - gm[lvl][..., None])
    return out


def test_pyramid_blend_equals_the_two_pyramid_blend_on_an_odd_sized_image():
    # the blend is built on the difference of the two images alone (one pyramid instead of two): the same
    # result up to rounding, also where the image's sides are odd at some level
    rng = np.random.default_rng(3)
    fg = rng.integers(0, 256, (101, 77, 3), dtype=np.uint8)
    bg = cv2.GaussianBlur(rng.integers(0, 256, (101, 77, 3), dtype=np.uint8), (0, 0), 3)
    m = np.zeros((101, 77), np.float32)
    cv2.circle(m, (40, 50), 30, 1.0, -1)
    m = cv2.GaussianBlur(m, (0, 0), 2)
    reference = np.clip(_two_pyramid_blend(fg, bg, m, 4) + 0.5, 0, 255).astype(np.uint8)
    out, support = pyramid_blend(fg, bg, m, levels=4)
    assert np.abs(out.astype(int) - reference).max() <= 1
    assert (np.abs(out.astype(int) - reference) > 0).mean() < 0.01
    offset = blend_offset(fg, bg, m, levels=4)
    assert np.abs(bg + offset - _two_pyramid_blend(fg, bg, m, 4)).max() < 1e-2
    assert ((out != bg).any(axis=2) <= (support > 0)).all()
