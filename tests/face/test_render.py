"""Piecewise-affine texture mapping (:mod:`saswap.face.render`)."""

from __future__ import annotations

import numpy as np


def test_a_slivers_pixels_sample_within_its_source_triangle():
    """A triangle squeezed to a fraction of a pixel in the target (a fold of the moved mesh) still gets the pixels the
    rasteriser gives it; its affine map carried those tens of pixels away in the source (a speck of a nostril's colour
    in a cheek). With the source corners, every pixel samples within a pixel of its triangle's source box; triangles of
    ordinary size map exactly as before."""
    from saswap.face.render import rasterize_triangles, texture_map, triangle_affines

    rng = np.random.default_rng(0)
    # the second triangle is a sliver, a third of a pixel wide
    dst = np.array([[[2.0, 2.0], [30.0, 3.0], [4.0, 28.0]], [[30.3, 3.0], [30.6, 30.0], [30.45, 16.0]]])
    src = np.array([[[5.0, 5.0], [40.0, 6.0], [6.0, 38.0]], [[40.0, 6.0], [70.0, 40.0], [55.0, 20.0]]])
    src = src + rng.normal(0, 0.1, src.shape)
    ids = rasterize_triangles(dst.reshape(-1, 2), np.arange(6).reshape(2, 3), (40, 40))
    affines = triangle_affines(dst, src)
    free_x, free_y, cover = texture_map(ids, affines)
    mx, my, cover2 = texture_map(ids, affines, src)
    assert np.array_equal(cover, cover2) and (ids == 1).sum() > 0
    lo, hi = src.min(1) - 1.0, src.max(1) + 1.0
    for t in (0, 1):
        sel = ids == t
        assert (mx[sel] >= lo[t, 0] - 1e-4).all() and (mx[sel] <= hi[t, 0] + 1e-4).all()
        assert (my[sel] >= lo[t, 1] - 1e-4).all() and (my[sel] <= hi[t, 1] + 1e-4).all()
    sliver = ids == 1
    assert np.abs(free_x[sliver] - mx[sliver]).max() > 5.0  # the unbounded map strays that far
    inner = (ids == 0) & (np.abs(free_x - mx) + np.abs(free_y - my) > 0)
    assert inner.sum() <= 0.05 * (ids == 0).sum()  # an ordinary triangle: only its rim's half pixels are bounded
