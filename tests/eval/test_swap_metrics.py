"""Swap measurements that do not need a swap: the jaw-shape and expression distances, the summary."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pytest
from conftest import data_path

from saswap.eval.swap_metrics import jaw_distance, jaw_distance_3d
from saswap.face.landmarks import IBUG68_FROM_MESH, mesh_to_68
from saswap.io import load_image


def _with_mesh(face, mesh):
    return dataclasses.replace(face, landmarks=mesh.astype(np.float32), landmarks_68=mesh_to_68(mesh))


def _turned(face, degrees: float):
    """The same face turned about its vertical axis, scaled by 1.3 and shifted: its mesh, centre and the new face."""
    mesh = face.landmarks[:468].astype(np.float64)
    centre = mesh.mean(0)
    a = np.deg2rad(degrees)
    yaw = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    return mesh, centre, _with_mesh(face, (mesh - centre) @ yaw.T * 1.3 + centre + [40.0, -10.0, 0.0])


def test_jaw_distance_3d_ignores_head_turns_but_sees_a_wider_jaw(analyzer):
    face = analyzer(load_image(data_path("images", "deepface__img41.jpg")))[0]
    mesh, centre, turned = _turned(face, 20.0)
    # The same face turned by 20 degrees: in 2D its jaw moves against the inner face, in 3D it does not.
    assert jaw_distance(turned, face) > 0.05
    assert jaw_distance_3d(turned, face) < 1e-6
    # The same face with its jaw contour pushed out sideways by 8% of the eye distance: both see it.
    wider = mesh.copy()
    jaw = list(IBUG68_FROM_MESH[:17])
    wider[jaw, 0] += np.sign(wider[jaw, 0] - centre[0]) * 0.08 * face.eye_distance
    wider = _with_mesh(face, wider)
    assert jaw_distance_3d(wider, face) > 0.04
    assert jaw_distance(wider, face) > 0.04


def test_benchmark_summary_reports_margins_per_target():
    from saswap.eval.swap_benchmark import BenchmarkResult, SwapBenchmark

    def pair(target, d_source, d_target, retrieved, mottling=1.0, expression=0.02):
        return {
            "target": target, "target_yaw": 0.0, "found": True, "d_source": d_source, "d_target": d_target,
            "closer_to_source": d_source < d_target, "retrieved": retrieved, "pose_error": [0.0, 0.0, 0.0],
            "boundary_step": 0.0, "boundary_step_target": 0.0, "upper_step": 2.0 * expression,
            "upper_step_target": 0.02, "skin_tone_de": 0.0, "seam": 1.0,
            "seam_target": 1.0, "outside_diff": 0.0, "mottling": 2.0 * mottling, "mottling_target": 2.0,
            "expression_error": expression, "expression_gap": 0.1, "brows_error": 0.03, "brows_gap": 0.1,
        }  # fmt: skip

    pairs = [pair("a", 0.4, 0.6, True, 0.9), pair("a", 0.5, 0.45, False, 1.5, 0.05), pair("b", 0.3, 0.7, True, 1.2)]
    summary = SwapBenchmark.summarise(BenchmarkResult(pairs=pairs))
    assert summary["closer_to_source"] == 2 / 3
    assert abs(summary["dlib_margin_mean"] - (0.2 - 0.05 + 0.4) / 3) < 1e-9
    a = summary["per_target"]["a"]
    assert (a["closer_to_source"], a["retrieval"]) == (0.5, 0.5) and abs(a["dlib_margin_mean"] - 0.075) < 1e-9
    upper = (summary["upper_step_excess_max"], summary["upper_step_excess_median"])
    assert np.allclose(upper, (0.08, 0.02), rtol=0, atol=1e-9), upper
    assert list(summary["per_target"]) == ["a", "b"]
    assert (summary["mottling_ratio_median"], summary["mottling_ratio_max"]) == (1.2, 1.5)
    assert summary["expression_error_median"] == 0.02 and abs(summary["expression_carried_median"] - 0.2) < 1e-9
    assert abs(summary["brows_carried_median"] - 0.3) < 1e-9


def test_expression_distance_ignores_pose_and_size_but_sees_a_smile(analyzer, morphable_model):
    from saswap.eval.swap_metrics import expression_distance

    face = analyzer(load_image(data_path("images", "deepface__img41.jpg")))[0]
    mesh, _, turned = _turned(face, 15.0)
    assert expression_distance(face, face, morphable_model) == 0.0
    assert expression_distance(turned, face, morphable_model) < 0.015
    # the mouth's corners drawn out and up by 15% of the eye distance (a smile), nothing else moved
    smile = mesh.copy()
    for corner, side in ((48, -1.0), (54, 1.0), (60, -1.0), (64, 1.0)):  # outer and inner corners
        smile[IBUG68_FROM_MESH[corner], :2] += np.array([side * 0.15, -0.1]) * face.eye_distance
    assert expression_distance(_with_mesh(face, smile), face, morphable_model) > 0.04


def test_the_held_out_pairs_are_other_files_and_other_people():
    """``bench_swap.py --pairs heldout`` measures files that are not in the benchmark's pairs, nor other photos of the
    benchmark's people that the shared data holds, and every file exists."""
    from saswap.eval.swap_benchmark import HELDOUT_SOURCES, HELDOUT_TARGETS, SOURCES, TARGETS

    bench = set(SOURCES) | set(TARGETS)
    held = set(HELDOUT_SOURCES) | set(HELDOUT_TARGETS)
    assert len(held) == len(HELDOUT_SOURCES) + len(HELDOUT_TARGETS) == 17
    assert not held & bench
    # other photos of benchmark people (the data's manifest names them)
    same_people = {"face_recognition__obama2.jpg", "face_recognition__obama_partial_face.jpg", "sadtalker__sad.png",
                   "sadtalker__happy1.png", "face_recognition__obama_and_biden.jpg", "face_recognition__two_people.jpg"}  # fmt: skip
    assert not held & same_people
    for name in held:
        assert data_path("images", name).exists(), name


@pytest.mark.slow
def test_upper_border_step_reads_the_forehead_and_temples_only(analyzer):
    """Issue 13's "colour step at the upper face border": the skin band inside the face's outline darkened below the
    eyes moves the whole border's step and not the upper one's; darkened above the eyes it moves the upper one's."""
    from saswap.eval.swap_metrics import _ring, boundary_colour_step, upper_face_side
    from saswap.face.masks import face_region_masks

    image = load_image(data_path("images", "deepface__img41.jpg"))
    face = analyzer(image)[0]
    regions = face_region_masks(face.landmarks, image.shape[:2])
    band, _ = _ring(regions["face"], 2 * max(2, round(0.08 * face.eye_distance)), 1)
    above = upper_face_side(face, image.shape[:2])
    assert 0.2 < above[regions["face"] > 0.5].mean() < 0.6  # the forehead side of the face, not all of it

    def darkened(where):
        out = image.copy()
        out[where] = (out[where] * 0.6).astype(np.uint8)
        return out

    whole, upper = boundary_colour_step(image, face), boundary_colour_step(image, face, upper=True)
    low = darkened(band & ~above)
    assert abs(boundary_colour_step(low, face) - whole) > 3.0
    # (the readings at the offsets half a pixel above and below take in a few of its pixels along the eye line)
    assert boundary_colour_step(low, face, upper=True) == pytest.approx(upper, abs=0.1)
    assert abs(boundary_colour_step(darkened(band & above), face, upper=True) - upper) > 3.0


def test_border_step_does_not_jump_when_the_face_moves_by_a_fraction_of_a_pixel(analyzer):
    """The benchmark reads the border step with the face found anew in each output, which lies up to half a pixel from
    where it was found before: at a sharp hairline one reading moved by 2-3 ΔE with such a move, the mean of readings
    around the face (the default's offsets) by a third of that."""
    from saswap.eval.swap_metrics import STEP_OFFSETS, boundary_colour_step

    image = load_image(data_path("images", "sadtalker__happy.png"))  # dark hair over a light forehead
    face = analyzer(image)[0]

    def readings(offsets):
        out = []
        for dx in (0.0, 0.25, 0.5):
            for dy in (0.0, 0.25, 0.5):
                moved = dataclasses.replace(
                    face, landmarks=face.landmarks + [dx, dy, 0.0], keypoints=face.keypoints + [dx, dy]
                )
                out.append(boundary_colour_step(image, moved, offsets=offsets))
        return np.array(out)

    once, averaged = readings(((0.0, 0.0),)), readings(STEP_OFFSETS)
    assert np.ptp(once) > 1.5  # one reading's sensitivity, which the average is for
    assert np.ptp(averaged) < 0.5 * np.ptp(once)
    assert abs(np.median(averaged) - np.median(once)) < 1.0  # the same step, read steadily


def test_chroma_mottling_sees_patches_of_another_hue_not_a_cast_or_noise(analyzer):
    """The benchmark's blotchiness: purple and orange patches a fifth of an eye distance wide on the cheeks and
    forehead raise it; the same colours spread over the whole image (a cast) or pixel noise hardly move it."""
    import cv2

    from saswap.eval.swap_metrics import chroma_mottling

    image = load_image(data_path("images", "sadtalker__happy.png"))
    face = analyzer(image)[0]
    base = chroma_mottling(image, face)
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    eye = face.eye_distance
    yy, xx = np.mgrid[: image.shape[0], : image.shape[1]].astype(np.float32)
    mesh = face.landmarks[:468]
    patches = np.zeros(image.shape[:2] + (2,), np.float32)
    for k, vertex in enumerate([50, 280, 101, 330, 108, 337, 151, 205, 425]):  # cheeks, forehead
        x, y = mesh[vertex, :2]
        blob = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * (0.1 * eye) ** 2))
        patches += blob[..., None] * (np.array([12.0, -15.0]) if k % 2 else np.array([10.0, 16.0]))  # purple, orange

    def with_ab(offset):
        out = lab.copy()
        out[..., 1:] += offset
        return cv2.cvtColor(np.clip(out + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)

    blotchy = chroma_mottling(with_ab(patches), face)
    cast = chroma_mottling(with_ab(np.array([8.0, -10.0], np.float32)), face)
    noise = np.random.default_rng(0).normal(0, 3, image.shape).astype(np.float32)
    noisy = chroma_mottling(np.clip(image + noise + 0.5, 0, 255).astype(np.uint8), face)
    assert blotchy > 1.5 * base, (base, blotchy)
    assert abs(cast - base) < 0.1 * base, (base, cast)
    assert abs(noisy - base) < 0.15 * base, (base, noisy)


def test_video_stability_reports_the_share_of_the_expression_carried_over(analyzer):
    from saswap.eval.video_stability import measure_video_stability

    target = load_image(data_path("images", "liveportrait__d8.jpg"))  # a pout
    source = load_image(data_path("images", "sberswap__beckham.jpg"))  # a smirk
    s_face = analyzer(source)[0]
    # an output that is the template itself carried nothing over; one that is the source, all of it
    kept = measure_video_stability([target] * 3, [target] * 3, analyzer, source=(source, s_face))
    carried = measure_video_stability([target] * 3, [source] * 3, analyzer, source=(source, s_face))
    assert kept.expression_carried == 0.0
    assert abs(carried.expression_carried - 1.0) < 1e-6
    assert carried.to_dict()["expression_carried"] == 1.0


def _picture_key(image: np.ndarray) -> tuple:
    return image.shape, hashlib.sha1(np.ascontiguousarray(image)).hexdigest()


class _ReadOnce:
    """The face analyzer, reading each distinct picture once: the measures below read the same template frames over
    and over (against itself, against a frozen face, a flickering one...)."""

    def __init__(self, analyzer):
        self.analyzer, self.read = analyzer, {}

    def __call__(self, image: np.ndarray):
        key = _picture_key(image)
        if key not in self.read:
            self.read[key] = self.analyzer(image)
        return self.read[key]


def _track_once(reader):
    """``reader`` (:class:`~saswap.eval.video_stability.DlibLandmarks`) with its ``track`` reading each distinct list
    of frames once."""
    read, track = {}, reader.track

    def once(frames):
        key = tuple(_picture_key(f) for f in frames)
        if key not in read:
            read[key] = track(frames)
        return read[key]

    reader.track = once
    return reader


def _talking_track(analyzer, frames: int = 15):
    """The first frames of a talking head and its face in each (the mouth opens and closes)."""
    import av

    with av.open(str(data_path("videos", "video-retalking__1.mp4"))) as c:
        images = [f.to_ndarray(format="rgb24") for _, f in zip(range(frames), c.decode(video=0))]
    return images, [analyzer(im)[0] for im in images]


def test_video_stability_reports_lip_sync_and_jitter_by_part(analyzer):
    from saswap.eval.video_stability import JITTER_PARTS, measure_video_stability

    analyzer = _ReadOnce(analyzer)
    images, _ = _talking_track(analyzer)
    same = measure_video_stability(images, images, analyzer)
    frozen = measure_video_stability(images, [images[0]] * len(images), analyzer)  # a face that does not move
    assert abs(same.mouth_sync - 1.0) < 1e-9 and frozen.mouth_sync == 0.0
    assert set(same.jitter_parts) == set(JITTER_PARTS)
    assert all(abs(v - 1.0) < 1e-9 for v in same.jitter_parts.values())
    assert all(v == 0.0 for v in frozen.jitter_parts.values())
    assert frozen.to_dict()["mouth_sync"] == 0.0 and frozen.to_dict()["jitter_parts"]["mouth"] == 0.0
    # tone read in the template's face region: the same as the output's own reading when the output is the
    # template; for a still output, its own region stands still (no change) while the template's moves over it
    assert (
        abs(same.tone_ratio_template_region - same.tone_ratio) < 1e-9
        and same.to_dict()["tone_ratio_template_region"] == 1.0
    )
    assert frozen.tone_change_output == 0.0 and frozen.tone_change_output_template_region > 0.0
    # a face whose brightness flickers from frame to frame reads so in both
    flicker = [
        np.clip(im.astype(np.int16) + (6 if i % 2 else 0), 0, 255).astype(np.uint8) for i, im in enumerate(images)
    ]
    flickering = measure_video_stability(images, flicker, analyzer)
    ratios = (flickering.tone_ratio, flickering.tone_ratio_template_region)
    assert min(ratios) > 2.0, ratios
    # skin texture: the template's own over itself, and a grainier output's above it
    assert abs(same.texture_ratio - 1.0) < 1e-9 and same.to_dict()["texture_ratio"] == 1.0
    rng = np.random.default_rng(0)
    grain = [np.clip(im + rng.normal(0, 4, im.shape[:2])[..., None], 0, 255).astype(np.uint8) for im in images]
    assert measure_video_stability(images, grain, analyzer).texture_ratio > 1.5


def test_mouth_sync_follows_the_opening_and_part_jitter_finds_the_noisy_part(analyzer):
    import dataclasses

    from saswap.eval.video_stability import _mouth_opening, mouth_sync, part_jitter

    _, track = _talking_track(analyzer)
    # the inner lips' gap: closed in frame 1, open in frame 6 of this clip
    assert _mouth_opening(track[1]) < 0.01 < 0.1 < _mouth_opening(track[6])
    # a template whose mouth stands still has no lip sync to follow
    assert np.isnan(mouth_sync([track[1]] * 10, track[:10]))
    # the mouth opening played backwards: the output talks, but not in time with the template
    backwards = mouth_sync(track, track[::-1])
    assert backwards < 0.5, backwards
    # noise on the output's mouth points alone: only the mouth reads less steadily than the template
    rng = np.random.default_rng(0)
    noisy = []
    for f in track:
        lm = f.landmarks_68.copy()
        lm[48:68] += rng.normal(0, 0.05 * f.eye_distance, (20, 2))
        noisy.append(dataclasses.replace(f, landmarks_68=lm))
    parts = part_jitter(track, noisy)
    assert parts["mouth"] > 2.0, parts
    assert all(abs(parts[k] - 1.0) < 1e-9 for k in ("jaw", "brows", "nose", "eyes")), parts
    # an output without a face in most frames has no lip sync to report
    assert np.isnan(mouth_sync(track, [None] * (len(track) - 3) + track[-3:]))


@pytest.mark.slow
def test_an_independent_detector_reads_the_jitter_of_a_shaken_video(analyzer, dlib_models):
    """dlib's 68 points as a second reading of the jitter: the template against itself reads 1 by both detectors;
    the same frames of a steady head, each shifted by a random half pixel, read less steadily by both; the figures
    reach the benchmark's row."""
    import av
    import cv2

    from saswap.eval.video_stability import DlibLandmarks, measure_video_stability

    with av.open(str(data_path("videos", "liveportrait__d5.mp4"))) as c:  # a steady head
        images = [f.to_ndarray(format="rgb24") for _, f in zip(range(30), c.decode(video=0))]
    rng = np.random.default_rng(0)
    shaken = [
        cv2.warpAffine(im, np.float32([[1, 0, dx], [0, 1, dy]]), im.shape[1::-1], borderMode=cv2.BORDER_REFLECT101)
        for im, (dx, dy) in zip(images, rng.normal(0, 0.5, (len(images), 2)))
    ]
    analyzer = _ReadOnce(analyzer)
    reader = _track_once(DlibLandmarks())
    points = reader.track(images)
    assert all(p is not None and p.shape == (68, 2) for p in points)
    same = measure_video_stability(images, images, analyzer, landmarks68=reader)
    moved = measure_video_stability(images, shaken, analyzer, landmarks68=reader)
    assert abs(same.jitter_ratio_dlib - 1.0) < 1e-9 and same.to_dict()["jitter_ratio_dlib"] == 1.0
    assert moved.jitter_ratio_dlib > 1.2 and moved.jitter_ratio > 1.2, (moved.jitter_ratio_dlib, moved.jitter_ratio)
    assert set(moved.to_dict()["jitter_parts_dlib"]) == {"jaw", "brows", "nose", "eyes", "mouth"}
    # without the reader nothing of it is reported
    assert "jitter_ratio_dlib" not in measure_video_stability(images, images, analyzer).to_dict()


def test_skin_grain_sees_the_finest_skin_texture_not_the_features(analyzer):
    """The benchmark's reading of a face's finest skin texture: a face enlarged from a coarser grid reads much lower
    than the photo, fine noise over its skin reads higher, and the same noise over its eyes and lips alone (which the
    reading leaves out) hardly moves it."""
    import cv2

    from saswap.eval.swap_metrics import skin_grain
    from saswap.face.masks import face_region_masks

    image = load_image(data_path("images", "liveportrait__s2.jpg"))  # a large, grainy black-and-white face
    face = analyzer(image)[0]
    base = skin_grain(image, face)
    h, w = image.shape[:2]
    soft = cv2.resize(cv2.resize(image, (w // 3, h // 3), interpolation=cv2.INTER_AREA), (w, h))
    noise = np.random.default_rng(0).normal(0, 6, image.shape).astype(np.float32)
    noisy = np.clip(image + noise + 0.5, 0, 255).astype(np.uint8)
    regions = face_region_masks(face.landmarks[:468], image.shape[:2])
    features = np.maximum.reduce([regions[k] for k in ("eyes", "brows", "lips")]) > 0.5
    featured = np.where(features[..., None], noisy, image)
    assert base > 2.0
    assert skin_grain(soft, face) < 0.4 * base
    assert skin_grain(noisy, face) > 1.3 * base
    assert abs(skin_grain(featured, face) - base) < 0.02 * base


def test_glasses_frames_changed_sees_frames_painted_over_not_a_darker_eye_socket(analyzer):
    """The benchmark's measure of a target's real glasses kept: d8's metal rims painted over with the skin around
    them read as changed; the same face with darker eye sockets (what the eye band's darkness took for kept frames)
    and the frames left alone reads unchanged; a picture without lines has nothing to measure."""
    import cv2

    from saswap.eval.swap_benchmark import BenchmarkResult, SwapBenchmark
    from saswap.eval.swap_metrics import glasses_frames_changed
    from saswap.face.masks import face_region_masks, glasses_mask

    image = load_image(data_path("images", "liveportrait__d8.jpg"))
    face = analyzer(image)[0]
    frames = glasses_mask(image, face_region_masks(face.landmarks, image.shape[:2]), face.eye_distance) > 0.5
    assert frames.sum() > 500
    assert glasses_frames_changed(image, image, face) == 0.0
    painted = cv2.inpaint(image, cv2.dilate(frames.astype(np.uint8), np.ones((5, 5), np.uint8)), 5, cv2.INPAINT_TELEA)
    assert glasses_frames_changed(painted, image, face) > 0.45  # light rims differ from skin by under 20 in places
    sockets = image.copy()
    eyes = (face_region_masks(face.landmarks, image.shape[:2])["eyes"] > 0.5).astype(np.uint8)
    eyes = cv2.dilate(eyes, np.ones((15, 15), np.uint8)) > 0
    sockets[eyes & ~frames] = (sockets[eyes & ~frames] * 0.6).astype(np.uint8)
    assert glasses_frames_changed(sockets, image, face) < 0.1
    flat = np.full_like(image, 128)  # no lines at all: nothing to measure
    assert glasses_frames_changed(flat, flat, face) is None
    record = {"kind": "target", "source": "s", "target": "t", "before": 0.1, "after": 0.1}
    glasses = [{**record, "frames_changed": v} for v in (0.2, 0.55)]
    assert SwapBenchmark.summarise(BenchmarkResult(glasses=glasses))["glasses_frames_changed_max"] == 0.55
