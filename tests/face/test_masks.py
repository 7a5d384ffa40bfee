"""Occluder and glasses masks: synthetic faces, and real photos for hair over a face."""

from __future__ import annotations

import cv2
import numpy as np
from conftest import data_path

from saswap.face.alignment import ffhq_transform, transform_face, warp_face
from saswap.face.masks import bare_skin_mask, face_region_masks, glasses_mask, skin_occlusion_mask
from saswap.io import load_image


def _regions(size: int = 200) -> dict[str, np.ndarray]:
    z = lambda: np.zeros((size, size), np.float32)  # noqa: E731
    eyes, brows, skin = z(), z(), z()
    cv2.ellipse(eyes, (70, 100), (14, 7), 0, 0, 360, 1, -1)
    cv2.ellipse(eyes, (130, 100), (14, 7), 0, 0, 360, 1, -1)
    cv2.rectangle(brows, (52, 76), (88, 80), 1, -1)
    cv2.rectangle(brows, (112, 76), (148, 80), 1, -1)
    cv2.rectangle(skin, (20, 20), (180, 180), 1, -1)
    skin *= (1 - eyes) * (1 - brows)
    return {"eyes": eyes, "brows": brows, "skin": skin}


def test_glasses_mask_keeps_frames_and_ignores_a_brows_lower_edge():
    regions = _regions()
    rng = np.random.default_rng(0)
    face = np.clip(rng.normal(180, 3, (200, 200)), 0, 255).astype(np.uint8)
    brow_edge = face.copy()
    cv2.line(brow_edge, (50, 83), (90, 83), 60, 2)  # a thick brow reaching below its outline
    image = cv2.cvtColor(brow_edge, cv2.COLOR_GRAY2RGB)
    assert glasses_mask(image, regions, eye_distance=100).sum() == 0
    framed = brow_edge.copy()
    cv2.ellipse(framed, (130, 100), (24, 16), 0, 0, 360, 40, 2)  # a rim around the other eye
    found = glasses_mask(cv2.cvtColor(framed, cv2.COLOR_GRAY2RGB), regions, eye_distance=100) > 0
    rim = np.zeros((200, 200), np.uint8)
    cv2.ellipse(rim, (130, 100), (24, 16), 0, 0, 360, 1, 2)
    assert (found & (rim > 0)).sum() > 0.5 * rim.sum()  # most of the rim
    assert not found[:, :100].any()  # still not the brow's edge
    # ... and not the skin beside it (kept as the target's, it outlined the frames in light skin)
    assert (found & (rim == 0)).sum() < 0.1 * rim.sum()


def test_glasses_mask_on_a_real_face_holds_frames_not_skin(analyzer):
    from saswap.face.colour import masked_blur

    image = load_image(data_path("images", "liveportrait__d8.jpg"))  # thin metal frames
    face = analyzer(image)[0]
    M = ffhq_transform(face.keypoints, 384)
    crop, face = warp_face(image, M, 384), transform_face(face, M)
    regions = face_region_masks(face.landmarks, crop.shape[:2])
    found = glasses_mask(crop, regions, face.eye_distance) > 0.5
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float32)
    local, _ = masked_blur(grey, ((regions["skin"] > 0.5) & ~found).astype(np.float32), 0.1 * face.eye_distance)
    skin_like = np.abs(grey - local) < 0.08 * local
    assert found.sum() > 1000
    assert (found & skin_like).sum() < 0.05 * found.sum()  # was 27% (the dilation's ring, skin strips)


def test_bare_skin_mask_leaves_out_a_beard_but_keeps_shaded_skin():
    rng = np.random.default_rng(1)
    image = np.clip(rng.normal(0, 2, (120, 120, 3)) + np.array([190, 150, 130]), 0, 255).astype(np.uint8)
    image[80:110, 30:90] = (40, 30, 25)  # a black beard on the chin
    image[20:60, 90:110] = (135, 105, 92)  # a shadowed cheek: 70% of the skin's brightness
    skin = np.zeros((120, 120), np.float32)
    skin[10:115, 10:115] = 1
    reference = np.zeros_like(skin)
    reference[20:50, 20:80] = 1
    bare = bare_skin_mask(image, {"skin": skin, "reference": reference})
    assert bare[80:110, 30:90].max() == 0  # the beard is out
    assert bare[20:60, 90:110].min() == 1  # shading stays in
    assert bare[15:75, 15:85].min() == 1


def _aligned(analyzer, name):
    image = load_image(data_path("images", name))
    face = analyzer(image)[0]
    M = ffhq_transform(face.keypoints, 384)  # the engines' crop
    crop = warp_face(image, M, 384)
    return crop, face_region_masks(transform_face(face, M).landmarks, crop.shape[:2])


def test_hair_over_the_face_is_an_occluder_but_a_deep_shadow_is_not(analyzer):
    # Long dark hair falls over both sides of this face, inside the mesh's outline.
    crop, regions = _aligned(analyzer, "sadtalker__happy.png")
    face = regions["face"] > 0.5
    occluded = (skin_occlusion_mask(crop, regions) > 0.5) & face
    assert occluded.sum() > 0.05 * face.sum()
    w = crop.shape[1]
    assert occluded[:, : w // 3].sum() > 0 and occluded[:, 2 * w // 3 :].sum() > 0  # both sides
    below_brows = int(np.nonzero(regions["brows"] > 0.5)[0].max())
    assert occluded[below_brows:, w // 3 : 2 * w // 3].sum() < 0.01 * face.sum()  # not eyes, nose, mouth
    # Hair beside a profile's ear, found in part by its strands, is kept whole (no islands of hair).
    crop, regions = _aligned(analyzer, "insightface__left_face.jpeg")
    face = regions["face"] > 0.5
    assert ((skin_occlusion_mask(crop, regions) > 0.5) & face).sum() > 0.05 * face.sum()
    # A cheek in deep shadow, as dark as hair but with the skin's own fine texture, stays skin.
    crop, regions = _aligned(analyzer, "face_recognition__alex-lacamoire.png")
    face = regions["face"] > 0.5
    assert ((skin_occlusion_mask(crop, regions) > 0.5) & face).sum() < 0.01 * face.sum()


def test_a_pink_mask_panel_is_an_occluder_but_pink_lit_skin_is_not(analyzer):
    # The real face mask's pink side panel has nearly the skin's hue in chromaticity, turned towards blue
    # (found here independently, in CIELAB: a* > 4, b* < 2, below the nose).
    def pink_share(name):
        crop, regions = _aligned(analyzer, name)
        lab = cv2.cvtColor(crop, cv2.COLOR_RGB2LAB).astype(np.float32) - np.array([0, 128, 128], np.float32)
        face = regions["face"] > 0.5
        lower = np.arange(crop.shape[0])[:, None] >= np.nonzero(regions["nostrils"] > 0.5)[0].mean()
        pink = (lab[..., 1] > 4) & (lab[..., 2] < 2) & lower & face
        occluded = (skin_occlusion_mask(crop, regions) > 0.5) & face
        return pink.sum(), float(occluded[pink].mean()), float(occluded.sum() / face.sum())

    count, covered, _ = pink_share("insightface__mask.png")
    assert count > 1000 and covered > 0.6
    # A face in warm, pinkish light (lips, chin) keeps its skin.
    count, _, share = pink_share("simswap__zhoujielun.jpg")
    assert count > 1000 and share < 0.03


def test_skin_in_strong_warm_light_is_not_an_occluder(analyzer):
    # insightface's t1.jpg (six faces, strong warm light): the densest colour between the brows is the
    # highlights, paler than the diffuse skin; measured from them, a quarter of the faces' skin (half
    # of one face) was taken for occluders and kept as grey patches in `saswap demo`.
    from saswap.samples import sample_path

    image = load_image(sample_path("t1"))
    shares = []
    for face in analyzer(image):
        M = ffhq_transform(face.keypoints, 384)
        crop = warp_face(image, M, 384)
        regions = face_region_masks(transform_face(face, M).landmarks, crop.shape[:2])
        inside = regions["face"] > 0.5
        shares.append(float((skin_occlusion_mask(crop, regions) > 0.5)[inside].mean()))
    assert len(shares) == 6
    assert max(shares) < 0.2 and np.mean(shares) < 0.08, shares


def test_colour_features_agree_across_input_layouts():
    # The uint8 path works channel by channel with OpenCV; views, copies and float input agree.
    from saswap.face.masks import _colour_features

    image = (np.random.default_rng(0).random((60, 80, 3)) * 255).astype(np.uint8)
    view = image[::2, 5:70]
    assert np.array_equal(_colour_features(view), _colour_features(view.copy()))
    feats = _colour_features(image)
    assert feats.dtype == np.float32 and feats.shape == (60, 80, 3)
    assert np.allclose(feats, _colour_features(image.astype(np.float32)), atol=1e-5)
    assert np.allclose(feats[..., 2], image.mean(axis=-1), atol=1e-4)


def test_dilation_within_the_mask_box_equals_a_whole_image_dilation():
    from saswap.face.masks import _dilate_within_box

    rng = np.random.default_rng(0)
    for _ in range(50):  # blobs anywhere, at the image's edges too, and empty masks
        m = np.zeros((97, 83), np.float32)
        for _ in range(rng.integers(0, 4)):
            x, y = rng.integers(0, 83), rng.integers(0, 97)
            m[y : y + rng.integers(1, 9), x : x + rng.integers(1, 9)] = 1
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * int(rng.integers(1, 8)) + 1,) * 2)
        assert np.array_equal(_dilate_within_box(m, k), cv2.dilate(m, k))
