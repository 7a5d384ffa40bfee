"""Alignment transforms and their inverses."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import data_path

from saswap.face.alignment import (
    ARCFACE_TEMPLATE_112,
    arcface_transform,
    ffhq_transform,
    invert_affine,
    transform_points,
    umeyama_similarity,
    warp_back,
    warp_face,
)


def test_umeyama_recovers_a_similarity():
    rng = np.random.default_rng(1)
    src = rng.normal(size=(10, 2)) * 50
    angle, scale, t = 0.7, 1.8, np.array([12.0, -3.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = src @ (scale * rot).T + t
    M = umeyama_similarity(src, dst)
    assert np.allclose(M[:, :2], scale * rot) and np.allclose(M[:, 2], t)
    with pytest.raises(ValueError, match="same shape"):
        umeyama_similarity(src, dst[:3])


def test_umeyama_recovers_a_3d_similarity_and_keeps_handedness():
    rng = np.random.default_rng(2)
    src = rng.normal(size=(12, 3)) * 40
    a, b = 0.4, -0.9  # yaw then pitch
    yaw = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    pitch = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    rot, scale, t = pitch @ yaw, 0.6, np.array([5.0, 7.0, -2.0])
    M = umeyama_similarity(src, src @ (scale * rot).T + t)
    assert M.shape == (3, 4) and np.allclose(M[:, :3], scale * rot) and np.allclose(M[:, 3], t)
    # a mirrored copy is fitted by a proper rotation (det +1), never by a reflection
    mirrored = src * np.array([-1.0, 1.0, 1.0])
    assert np.linalg.det(umeyama_similarity(src, mirrored)[:, :3]) > 0


def test_point_round_trip():
    kps = np.array([[300, 200], [380, 210], [340, 260], [305, 300], [372, 305.0]])
    for M in (arcface_transform(kps), ffhq_transform(kps, 256)):
        back = transform_points(invert_affine(M), transform_points(M, kps))
        assert np.abs(back - kps).max() < 1e-9


def test_arcface_alignment_lands_on_template():
    rng = np.random.default_rng(2)
    kps = ARCFACE_TEMPLATE_112 * 3.1 + [200, 90] + rng.normal(scale=0.1, size=(5, 2))
    aligned = transform_points(arcface_transform(kps), kps)
    assert np.abs(aligned - ARCFACE_TEMPLATE_112).max() < 0.5


def test_image_round_trip_on_a_real_face(analyzer):
    from saswap.io import load_image

    img = load_image(data_path("images", "face_recognition__obama.jpg"))
    face = analyzer(img)[0]
    M = ffhq_transform(face.keypoints, 256)
    crop = warp_face(img, M, 256)
    assert crop.shape == (256, 256, 3)
    # The crop's eyes are (nearly) level, centred horizontally, just above the middle.
    eyes = transform_points(M, face.keypoints[:2])
    assert abs(eyes[0, 1] - eyes[1, 1]) < 3.0 and abs(eyes.mean(0)[0] - 127.5) < 8 and 100 < eyes.mean(0)[1] < 128
    back = warp_back(crop, M, img.shape[:2])
    mask = warp_back(np.ones((256, 256), np.float32), M, img.shape[:2]) > 0.999
    inner = mask & (np.abs(np.arange(img.shape[0])[:, None] - face.keypoints[2, 1]) < 60)
    err = np.abs(back[inner].astype(float) - img[inner].astype(float)).mean()
    assert err < 6.0, f"round-trip error {err:.1f} grey levels"
    # ArcFace crop: the five keypoints land on the template.
    Ma = arcface_transform(face.keypoints)
    assert np.abs(transform_points(Ma, face.keypoints) - ARCFACE_TEMPLATE_112).max() < 6


def test_invert_affine_rejects_bad_shape():
    with pytest.raises(ValueError, match="2x3"):
        invert_affine(np.eye(3))
