"""The compose stage on real photos: what the compositor's own settings change."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import data_path


@pytest.mark.slow
def test_hair_kept_over_the_face_meets_it_with_a_soft_edge(analyzer):
    """``sadtalker__happy`` has strands of hair over her face, which the parser keeps: with ``hair_edge`` the new
    face fades into them (the output moves towards the target's own pixels along them), and nothing else moves."""
    from saswap import SaSwapPipeline
    from saswap.compose import Compositor
    from saswap.io import load_image

    target = load_image(data_path("images", "sadtalker__happy.png"))
    source = load_image(data_path("images", "sberswap__beckham.jpg"))
    sharp = SaSwapPipeline.from_pretrained("saswap-geometric", compositor=Compositor(hair_edge=0.0), analyzer=analyzer)
    soft = SaSwapPipeline(sharp.engine, compositor=Compositor(hair_edge=0.03), analyzer=analyzer)
    assert Compositor().hair_edge == 0.03 and Compositor().config()["hair_edge"] == 0.03
    prepared, _ = sharp.prepare_source(source)
    a, b = sharp(prepared, target).image.astype(int), soft(prepared, target).image.astype(int)
    t = target.astype(int)
    moved = np.abs(a - b).max(-1) > 8
    face = sharp.analyzer(target)[0]
    x0, y0, x1, y1 = face.box.astype(int)
    assert 100 < moved.sum() < 0.15 * (x1 - x0) * (y1 - y0)  # a band along the strands, not the face
    # where it moved, the soft output lies towards the target: closer to it than the sharp output is
    assert np.median((np.abs(b - t).sum(-1) - np.abs(a - t).sum(-1))[moved]) < 0
