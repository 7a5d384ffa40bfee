"""Region masks from a face mesh, occlusion masks, and soft edges.

Convention:
    Masks are float32 arrays in [0, 1] of shape (H, W); points are (N, 2) pixel coordinates.
"""

from __future__ import annotations

import cv2
import numpy as np

from saswap.face.colour import masked_blur
from saswap.face.topology import region_loop

__all__ = [
    "bare_skin_mask",
    "bilateral_pieces",
    "dilate_disk",
    "polygon_mask",
    "visible_face_mask",
    "triangle_visibility",
    "face_region_masks",
    "glasses_mask",
    "feather",
    "skin_occlusion_mask",
    "FEATURE_REGIONS",
    "eye_openness",
    "closed_eye_lashes",
    "upper_lid_mask",
    "EYE_CLOSED",
    "EYE_OPEN",
    "EYE_LOOPS",
]

#: Face parts whose colour is expected to differ from skin (not occluders when they do).
FEATURE_REGIONS = ("eyes", "brows", "lips", "nostrils")
_NOSTRILS = ((79, 166, 75, 60, 20, 238, 239, 241, 125), (309, 392, 305, 290, 250, 458, 459, 461, 354))


def dilate_disk(mask: np.ndarray, radius: float) -> np.ndarray:
    """Binary dilation by a disk of ``radius`` pixels, in linear time (a distance transform), as uint8.

    Example:
        >>> m = np.zeros((9, 9), np.uint8); m[4, 4] = 1
        >>> int(dilate_disk(m, 2).sum())
        13
    """
    outside = (np.asarray(mask) <= 0.5).astype(np.uint8)
    if not outside.all():
        dist = cv2.distanceTransform(outside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        return (dist <= radius).astype(np.uint8)
    return np.zeros(outside.shape, np.uint8)


#: The 478/468-point mesh's lid margins (:func:`~saswap.face.topology.region_loop`): the face's right eye, then its left.
EYE_LOOPS = ("RIGHT_EYE", "LEFT_EYE")
_EYE_CORNERS = ((33, 133), (362, 263))
#: Eye openings (:func:`eye_openness`) below which an eye counts as closed, and above which as open: a closed eye
#: measures 0.01-0.03 in the mesh, an open one 0.15-0.3, a narrowed one (a smile, a squint) about 0.07.
EYE_CLOSED = 0.03
EYE_OPEN = 0.06


def eye_openness(mesh: np.ndarray) -> np.ndarray:
    """Each eye's opening: the area inside its lid margin over the square of its corner-to-corner width.

    Args:
        mesh: a MediaPipe mesh, shape (468+, 2+).

    Returns:
        float64 (2,): the face's right eye, then its left. About 0.15-0.3 for an open eye, below 0.03 for a closed
        one (the margin's upper and lower halves then meet).

    Example:
        >>> m = np.zeros((468, 2)); loop = list(region_loop("RIGHT_EYE"))
        >>> m[loop, 0] = np.linspace(-1, 1, len(loop))  # a margin folded flat: a closed eye
        >>> float(eye_openness(m)[0])
        0.0
    """
    pts = np.asarray(mesh, np.float64)
    if pts.ndim != 2 or pts.shape[0] < 468 or pts.shape[1] < 2:
        raise ValueError(f"expected a face mesh of shape (468+, 2+), got {pts.shape}")
    pts = pts[:, :2]
    out = np.zeros(2)
    for i, (name, (a, b)) in enumerate(zip(EYE_LOOPS, _EYE_CORNERS)):
        loop = pts[list(region_loop(name))]
        x, y = loop[:, 0], loop[:, 1]
        area = 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))
        out[i] = area / max(float(np.sum((pts[a] - pts[b]) ** 2)), 1e-12)
    return out


def closed_eye_lashes(mesh: np.ndarray, shape: tuple[int, int]) -> np.ndarray | None:
    """The lid margins and lashes (as ``face_region_masks``' "eyes_outer") of the eyes that are not open
    (:func:`eye_openness` below :data:`EYE_OPEN`), bool (H, W), or None when both eyes are open."""
    shut = [name for name, o in zip(EYE_LOOPS, eye_openness(mesh)) if o < EYE_OPEN]
    if not shut:
        return None
    pts = np.asarray(mesh, np.float64)[:, :2]
    return _lash_band(pts, np.maximum.reduce([polygon_mask(pts[list(region_loop(n))], shape) for n in shut])) > 0.5


def _lash_band(pts: np.ndarray, lids: np.ndarray) -> np.ndarray:
    """The lid polygons ``lids`` grown by the lashes' length (6% of the outer eye corners' distance)."""
    size = max(2, int(round(np.linalg.norm(pts[33] - pts[263]) * 0.06)))
    return _dilate_within_box(lids, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * size + 1,) * 2))


def upper_lid_mask(mesh: np.ndarray, eye: str, shape: tuple[int, int], reach: float = 1.0) -> np.ndarray:
    """One eye's upper lid, from its lid margin up towards (never into) its brow, with the lashes around the margin
    (:func:`closed_eye_lashes`' band), float32 (H, W) of 0 and 1.

    What a closed eye shows above its lash line is lid skin that an open eye folds away; a face mapped from an open
    eye has no texture for it (:class:`~saswap.engines.GeometricEngine` keeps the target's there).

    Args:
        mesh: a MediaPipe mesh, shape (468+, 2+), in pixels.
        eye: ``"RIGHT_EYE"`` or ``"LEFT_EYE"`` (:data:`EYE_LOOPS`; the face's own sides, with the brow of the same
            side).
        shape: (H, W).
        reach: how far up the lid goes, as a share of the way from the eye's centre to its brow (the brow's points
            brought that far towards the centre); 1 reaches the brow.

    Example:
        >>> m = np.zeros((468, 2)); m[list(region_loop("RIGHT_EYE"))] = [[10, 20], [30, 20]] * 8  # a shut eye
        >>> brow = sorted({i for e in _brow_edges("RIGHT_EYEBROW") for i in e})
        >>> m[brow] = np.stack([np.linspace(8, 32, len(brow)), np.full(len(brow), 10.0)], 1)
        >>> lid = upper_lid_mask(m, "RIGHT_EYE", (40, 40))
        >>> [bool(lid[y, 20]) for y in (5, 12, 22, 30)]  # above the brow, the lid, the lashes below the line, a cheek
        [False, True, True, False]
        >>> half = upper_lid_mask(m, "RIGHT_EYE", (40, 40), reach=0.5)  # halfway up: the brow's shading stays
        >>> [bool(half[y, 20]) for y in (12, 16)]
        [False, True]
    """
    if eye not in EYE_LOOPS:
        raise ValueError(f"eye must be one of {EYE_LOOPS}, got {eye!r}")
    if not 0.0 < reach <= 1.0:
        raise ValueError(f"reach must lie in (0, 1], got {reach}")
    pts = np.asarray(mesh, np.float64)[:, :2]
    brow = pts[sorted({i for e in _brow_edges(eye.replace("EYE", "EYEBROW")) for i in e})]
    margin = pts[list(region_loop(eye))]
    centre = margin.mean(axis=0)
    lid = _hull_mask(np.concatenate([margin, centre + reach * (brow - centre)]), shape)
    lid = lid * (1.0 - _hull_mask(brow, shape))
    return np.maximum(lid, _lash_band(pts, polygon_mask(margin, shape))).astype(np.float32)


def polygon_mask(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Filled polygon (in vertex order) as a float32 mask of ``shape`` = (H, W).

    Example:
        >>> polygon_mask(np.array([[1, 1], [6, 1], [6, 6], [1, 6.]]), (8, 8)).sum()
        36.0
    """
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(
        mask, [np.round(np.asarray(points, np.float64) * 16).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4
    )
    return mask.astype(np.float32)


def triangle_visibility(mesh: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """How squarely each triangle faces the camera: cosine of its outward normal with the view axis.

    Outward is away from a head centre placed behind the face (the mesh centroid moved back by half
    the face width). Negative values are triangles facing away.

    Args:
        mesh: shape (468+, 3), x, y, z in pixels (z: smaller is nearer).
        triangles: shape (F, 3).

    Returns:
        shape (F,), in [-1, 1].
    """
    p = np.asarray(mesh, np.float64)[:, :3]
    a, b, c = p[triangles[:, 0]], p[triangles[:, 1]], p[triangles[:, 2]]
    normal = np.cross(b - a, c - a)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-12
    width = np.ptp(p[:468, 0]) + 1e-6
    head = p[:468].mean(0) + np.array([0.0, 0.0, 0.5 * width])
    centre = (a + b + c) / 3
    flip = np.sign(((centre - head) * normal).sum(1))
    normal *= np.where(flip == 0, 1.0, flip)[:, None]
    return -normal[:, 2]


def visible_face_mask(mesh: np.ndarray, shape: tuple[int, int], min_visibility: float = 0.0) -> np.ndarray:
    """The face as the camera sees it: the union of the mesh's triangles that face the camera.

    Example:
        >>> visible_face_mask(np.zeros((468, 3)), (4, 4)).shape
        (4, 4)
    """
    from saswap.face.topology import mesh_triangles

    tris = mesh_triangles()
    front = tris[triangle_visibility(mesh, tris) > min_visibility]
    mask = np.zeros(shape, np.uint8)
    pts = np.round(np.asarray(mesh, np.float64)[:, :2] * 16).astype(np.int32)
    cv2.fillPoly(mask, list(pts[front]), 1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(np.float32)


def _hull_mask(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    hull = cv2.convexHull(np.asarray(points, np.float32))
    return polygon_mask(hull.reshape(-1, 2), shape)


def face_region_masks(mesh: np.ndarray, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """Binary masks of the face's parts from a MediaPipe mesh (468 or 478 points).

    Args:
        mesh: shape (468+, 3) with depth (the face is then the mesh's camera-facing triangles, so a
            profile's hidden side and the background beyond its outline are excluded), or (468+, 2)
            (the face is then the face-oval polygon).
        shape: (H, W).

    Returns:
        dict with "face", "eyes" (inside the lid margins), "eyes_outer"
        (lid region with lashes, dilated), "brows", "lips" (outer lip outline), "mouth"
        (inside the inner lip outline: teeth, tongue, mouth cavity), "nostrils", "skin" (face
        minus all features) and "reference" (the skin between the brows and the nose bridge).
    """
    mesh = np.asarray(mesh, np.float64)
    pts = mesh[:, :2]
    face = (
        visible_face_mask(mesh, shape)
        if mesh.shape[1] >= 3
        else polygon_mask(pts[list(region_loop("FACE_OVAL"))], shape)
    )
    eyes = np.maximum.reduce([polygon_mask(pts[list(region_loop(name))], shape) for name in EYE_LOOPS])
    eyes_outer = _lash_band(pts, eyes)
    brow_idx = (
        {i for e in _brow_edges("LEFT_EYEBROW") for i in e},
        {i for e in _brow_edges("RIGHT_EYEBROW") for i in e},
    )
    brows = np.maximum(_hull_mask(pts[sorted(brow_idx[0])], shape), _hull_mask(pts[sorted(brow_idx[1])], shape))
    lips = polygon_mask(pts[list(region_loop("LIPS"))], shape)
    mouth = polygon_mask(pts[list(region_loop("LIPS", "inner"))], shape)
    nostrils = np.maximum(_hull_mask(pts[list(_NOSTRILS[0])], shape), _hull_mask(pts[list(_NOSTRILS[1])], shape))
    skin = face * (1 - np.maximum.reduce([eyes_outer, brows, lips, nostrils]))
    # Reference skin: cheeks, nose bridge and lower forehead, i.e. the mesh triangles between the brows and
    # the nose tip (an upright-independent definition: vertices whose height along the face's axis lies there).
    axis = pts[168] - pts[152]
    axis /= np.linalg.norm(axis) + 1e-9
    height = (pts[:468] - pts[1]) @ axis  # 0 at the nose tip, positive towards the brows
    top = float(((pts[105] + pts[334]) / 2 - pts[1]) @ axis)
    band = np.flatnonzero((height > 0.45 * top) & (height < top))  # above the nose bridge's middle
    reference = _hull_mask(pts[band], shape) * skin if len(band) >= 3 else skin
    return {
        "face": face,
        "eyes": eyes,
        "eyes_outer": eyes_outer,
        "brows": brows,
        "lips": lips,
        "mouth": mouth,
        "nostrils": nostrils,
        "skin": skin,
        "reference": reference,
    }


def _dilate_within_box(mask: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``cv2.dilate(mask, kernel)``, computed only over the mask's bounding box grown by the kernel's reach
    (the eyes are a small part of the crop)."""
    x, y, w, h = cv2.boundingRect((mask > 0).view(np.uint8))
    if w == 0 or h == 0:
        return np.zeros_like(mask)
    ry, rx = kernel.shape[0] // 2, kernel.shape[1] // 2
    y0, y1 = max(0, y - ry), min(mask.shape[0], y + h + ry)
    x0, x1 = max(0, x - rx), min(mask.shape[1], x + w + rx)
    out = np.zeros_like(mask)
    out[y0:y1, x0:x1] = cv2.dilate(np.ascontiguousarray(mask[y0:y1, x0:x1]), kernel)
    return out


def _brow_edges(name: str):
    from saswap.face.topology import mesh_connections

    return getattr(mesh_connections(), f"FACEMESH_{name}")


def feather(mask: np.ndarray, radius: float, inside: bool = True) -> np.ndarray:
    """Soft edge: erode (when ``inside``) by ``radius`` then blur, so the result stays within ``mask``.

    Example:
        >>> m = np.zeros((32, 32), np.float32); m[8:24, 8:24] = 1
        >>> f = feather(m, 3)
        >>> bool(f[16, 16] > 0.99 and f[0, 0] == 0 and f.max() <= 1)
        True
    """
    r = max(1.0, float(radius))
    binary = (np.asarray(mask) > 0.5).astype(np.uint8)
    if inside:
        dist = cv2.distanceTransform(binary, cv2.DIST_L2, 5)
        m = (dist > r).astype(np.float32)
    else:
        m = binary.astype(np.float32)
    sigma = r / 2.0
    factor = int(max(1, min(4, sigma // 3)))
    if factor > 1:
        h, w = m.shape
        small = cv2.resize(m, (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_AREA)
        out = cv2.resize(cv2.GaussianBlur(small, (0, 0), sigma / factor), (w, h), interpolation=cv2.INTER_LINEAR)
    else:
        out = cv2.GaussianBlur(m, (0, 0), sigma)
    if inside:
        out *= binary
    return np.clip(out, 0.0, 1.0).astype(np.float32)


_MODE_SCALE = np.array([0.02, 0.015, 40.0])  # one mean-shift "step" in (r, g, intensity)


_GAMMA_LUT = (np.arange(256, dtype=np.float32) / 255.0) ** 2.2


def _colour_features(image: np.ndarray) -> np.ndarray:
    """Per-pixel (r, g, intensity): chromaticity of linearised RGB (unchanged by shading) and grey level."""
    if image.dtype != np.uint8:
        lin = (image.astype(np.float32) / 255.0) ** 2.2
        total = lin.sum(axis=-1, keepdims=True) + 1e-3
        rg = lin[..., :2] / total
        return np.concatenate([rg, image.astype(np.float32).mean(axis=-1, keepdims=True)], axis=-1)
    # Channel by channel: numpy's reductions over an axis of length 3 cost ten times more (same result).
    image = np.ascontiguousarray(image)
    r, g, b = cv2.split(cv2.LUT(image, _GAMMA_LUT.reshape(1, 256)))
    total = r + g + b + np.float32(1e-3)
    c0, c1, c2 = cv2.split(image)
    grey = (c0.astype(np.float32) + c1 + c2) / np.float32(3.0)
    return np.dstack([r / total, g / total, grey])


def _sq_distance(x: tuple[np.ndarray, np.ndarray, np.ndarray], centre: np.ndarray) -> np.ndarray:
    """Squared distance of the points (given as three coordinate columns) to ``centre``."""
    d0, d1, d2 = x[0] - centre[0], x[1] - centre[1], x[2] - centre[2]
    return d0 * d0 + d1 * d1 + d2 * d2


def _skin_mode(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre and spread of the dominant colour cluster (the skin) among face pixels.

    Hair strands, shadows or a fringe can make up a large share of the reference band, so the mean or
    median may fall between clusters. Mean-shift from several brightness seeds finds the densest mode;
    its spread comes from the interquartile range of the pixels near it.
    """
    if len(samples) > 4000:  # a fixed, evenly spread subsample keeps this fast and deterministic
        samples = samples[np.linspace(0, len(samples) - 1, 4000).astype(np.int64)]
    x = samples.astype(np.float64) / _MODE_SCALE
    seeds = [np.median(x[x[:, 2] >= level], axis=0) for level in np.percentile(x[:, 2], (0, 40, 70))]
    columns = (x[:, 0].copy(), x[:, 1].copy(), x[:, 2].copy())
    best, best_count = seeds[0], -1
    for centre in seeds:
        for _ in range(15):
            near = _sq_distance(columns, centre) < 2.0**2
            if not near.any():
                break
            new = x[near].mean(axis=0)
            if (np.abs(new - centre) <= 1e-3 + 1e-5 * np.abs(centre)).all():  # np.allclose, without its overhead
                break
            centre = new
        count = int((_sq_distance(columns, centre) < 2.0**2).sum())
        if count > best_count:
            best, best_count = centre, count
    near = _sq_distance(columns, best) < 3.0**2
    core = samples[near] if near.sum() >= 20 else samples
    q1, q3 = np.percentile(core, [25, 75], axis=0)
    spread = np.maximum((q3 - q1) / 1.35, np.array([0.012, 0.008, 12.0]))
    spread[2] *= 3.0  # shading changes brightness far more than chromaticity: be lenient on it
    return best * _MODE_SCALE, spread


#: A colour turned this far (degrees) from the skin's hue towards blue is another material (a pink or
#: purple mask); towards yellow, skin in warm light turns further, so 60 degrees hold there.
_PURPLE_TURN = 30.0
#: Hair over a face: grey level under this share of the skin's, and fine relative contrast over this
#: multiple of the plain skin's (:func:`_hair`).
_HAIR_DARKNESS = 0.3
_HAIR_TEXTURE = 4.0
#: ... and the rest of a hair region found in part: under this share of the skin's grey level.
_HAIR_GROWTH = 0.5


def _nose_base(nostrils: np.ndarray) -> float:
    """Image row of the nose's base (the nostrils' mean row): hair reaches above it, a beard does not."""
    return float(np.nonzero(nostrils)[0].mean())


def _hair(
    image: np.ndarray,
    bright: np.ndarray,
    bright_s: float,
    reference: np.ndarray,
    nostrils: np.ndarray,
    face: np.ndarray,
) -> np.ndarray:
    """Strands of hair over the face: far darker than the skin and textured (strands and their
    highlights), where a shadow on skin, as dark, keeps the skin's own fine texture; only in regions
    that reach above the nose's base, so a beard (the face's own, below it) does not count. Brown hair
    has the skin's hue, so the colour rules alone cannot tell it from shading."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    low = cv2.GaussianBlur(grey, (0, 0), 1.5)
    texture = cv2.GaussianBlur(np.abs(grey - low) / (low + 8.0), (0, 0), 3.0)
    # the plain skin's texture: a low quantile, as hair or a mask's edge may enter the reference band
    skin_texture = float(np.percentile(texture[reference], 25))
    hair = (bright < _HAIR_DARKNESS * bright_s) & (texture > max(_HAIR_TEXTURE * skin_texture, 0.03)) & face
    if not hair.any() or not nostrils.any():
        return hair
    nose_base = _nose_base(nostrils)
    count, labels = cv2.connectedComponents(hair.astype(np.uint8))
    top = np.full(count, np.inf)
    np.minimum.at(top, labels[hair], np.nonzero(hair)[0].astype(np.float64))
    return (top < nose_base)[labels] & hair


def _grow_hair(
    occ: np.ndarray, bright: np.ndarray, bright_s: float, area: np.ndarray, nostrils: np.ndarray
) -> np.ndarray:
    """Hair found in part (its darkest, most textured strands) brings the rest of it: pixels under half
    the skin's grey level connected to an occluder, above the nose's base (not into a beard). A shadow
    on skin has no occluder in it to start from, so it stays skin."""
    if not nostrils.any():
        return occ
    above = np.arange(occ.shape[0])[:, None] < _nose_base(nostrils)
    dark = (bright < _HAIR_GROWTH * bright_s) & area & above
    seeds = occ.astype(bool) & dark
    if not seeds.any():
        return occ
    _, labels = cv2.connectedComponents((dark | seeds).astype(np.uint8))
    hit = np.unique(labels[seeds])
    return occ | np.isin(labels, hit[hit > 0]).astype(occ.dtype)


def _entering_components(occ: np.ndarray, face: np.ndarray) -> np.ndarray:
    """Keep the regions that reach the face's outline: hands, masks, microphones, hair and glasses
    come in from outside the face, while blemishes, moles and shadows inside it do not."""
    border = cv2.morphologyEx(face.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((5, 5), np.uint8)) > 0
    count, labels = cv2.connectedComponents(occ.astype(np.uint8))
    keep = np.zeros_like(occ, dtype=np.uint8)
    for label in np.unique(labels[border & (labels > 0)]):
        keep[labels == label] = 1
    return keep


def _without_brow_overflow(occ: np.ndarray, brows: np.ndarray, margin: int) -> np.ndarray:
    """Drop the regions that lie mostly next to the brows: thick brows reach beyond the mesh's brow
    outline, and those dark edges are the face's own brows, not hair or an object in front."""
    if not brows.any():
        return occ
    near = dilate_disk(brows, margin) > 0
    count, labels = cv2.connectedComponents(occ.astype(np.uint8))
    if count <= 1:
        return occ
    area = np.bincount(labels.ravel(), minlength=count)
    beside = np.bincount(labels[near].ravel(), minlength=count)
    drop = (beside >= 0.5 * area) & (np.arange(count) > 0)
    return (occ.astype(bool) & ~drop[labels]).astype(occ.dtype)


def _holes(mask: np.ndarray) -> np.ndarray:
    """Pixels not in ``mask`` that ``mask`` encloses completely."""
    h, w = mask.shape
    padded = np.zeros((h + 2, w + 2), np.uint8)
    padded[1:-1, 1:-1] = mask > 0
    flood = padded.copy()
    cv2.floodFill(flood, np.zeros((h + 4, w + 4), np.uint8), (0, 0), 1)
    return flood[1:-1, 1:-1] == 0


def _sharp_components(
    image: np.ndarray, occ: np.ndarray, face: np.ndarray, skin: np.ndarray, ratio: float = 1.0
) -> np.ndarray:
    """Keep the candidate regions whose outline inside the face is a sharp edge (an object), and drop
    those with soft outlines (shading, a shadow's terminator), which colour alone cannot tell apart."""
    grey = cv2.GaussianBlur(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32), (0, 0), 1.0)
    grad = np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3))
    inner_face = cv2.erode(face.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    skin_grad = np.median(grad[skin]) if skin.any() else np.median(grad)
    count, labels = cv2.connectedComponents(occ)
    keep = np.zeros_like(occ)
    for label in range(1, count):
        comp = (labels == label).astype(np.uint8)
        filled = (comp > 0) | _holes(comp)  # the outer outline only: holes left by excluded lips etc. are not edges
        outline = (
            cv2.morphologyEx(filled.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
        ) & inner_face
        if outline.sum() < 10 or np.median(grad[outline]) > ratio * max(skin_grad, 1.0):
            keep |= comp  # an outline along the face's border only, or a sharp one: an object
    return keep


def bare_skin_mask(image: np.ndarray, regions: dict[str, np.ndarray], darkest: float = 0.55) -> np.ndarray:
    """The face's skin without what is much darker than its typical tone (beard, stubble, deep shadow).

    For means of skin colour (relighting): a beard inside the mesh's skin region would pull a local
    mean down, and the bare skin beside it would then look bright, in blotches, once relit.

    Args:
        image: RGB uint8, shape (H, W, 3).
        regions: output of :func:`face_region_masks` for that image.
        darkest: pixels darker than this share of the skin's typical grey level are left out.

    Returns:
        float32 mask (H, W): ``regions["skin"]`` where the pixel is not much darker than the skin.
    """
    skin = regions["skin"] > 0.5
    reference = skin & (regions["reference"] > 0.5)
    if reference.sum() < 50:
        reference = skin
    if reference.sum() < 50:
        return regions["skin"].astype(np.float32)
    grey = image.astype(np.float32).mean(axis=-1)
    centre, _ = _skin_mode(_colour_features(image)[reference])
    return (regions["skin"] * (grey >= darkest * centre[2])).astype(np.float32)


def glasses_mask(image: np.ndarray, regions: dict[str, np.ndarray], eye_distance: float) -> np.ndarray:
    """Spectacle frames: thin lines, darker or brighter than their surroundings, around the eyes.

    Frames are often too thin or too skin-coloured (metal rims) for the colour rules of
    :func:`skin_occlusion_mask`, but they are thin *lines*: morphological black-hat and top-hat
    transforms (line width up to 5% of the eye distance) respond to them. Responses well above the
    skin's own texture, in a band around the eyes, forming pieces longer than a third of the eye
    distance (rims and bridge, not pores) and not lying mostly beside the brows, count as glasses.

    Returns:
        float32 mask (H, W), 1 on the frames (slightly dilated, without the skin beside them).
    """
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    k = max(3, int(eye_distance * 0.05)) | 1
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    response = np.maximum(
        cv2.morphologyEx(grey, cv2.MORPH_BLACKHAT, kernel), cv2.morphologyEx(grey, cv2.MORPH_TOPHAT, kernel)
    ).astype(np.float32)
    eyes = (regions["eyes"] > 0.5).astype(np.uint8)
    reach = max(3, int(eye_distance * 0.45))
    band = dilate_disk(eyes, reach) > 0
    band &= ~(cv2.dilate(eyes, np.ones((5, 5), np.uint8)) > 0)
    skin = regions["skin"] > 0.5
    if not skin.any() or not band.any():
        return np.zeros(image.shape[:2], np.float32)
    threshold = max(10.0, 4.0 * float(np.median(response[skin])))
    candidate = ((response > threshold) & band).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(candidate)
    keep = np.zeros_like(candidate)
    for i in range(1, count):
        if max(stats[i, 2], stats[i, 3]) > 0.35 * eye_distance:
            keep[labels == i] = 1
    # The lower edge of a thick brow and the lid crease are lines too: pieces lying mostly beside
    # the brows are the face's own.
    keep = _without_brow_overflow(keep, regions["brows"] > 0.5, max(2, int(eye_distance * 0.08)))
    mask = cv2.dilate(keep, np.ones((3, 3), np.uint8)) > 0
    if not mask.any():
        return mask.astype(np.float32)
    # The top-hat also answers to strips of skin between two dark lines (a rim's inner and outer edge,
    # a rim and the lid), and the dilation adds a ring of skin: kept as the target's, that skin shows as
    # a light outline around the frames when the swapped face is darker. Pixels within 8% of the local
    # skin grey level are skin, not frame.
    grey_f = grey.astype(np.float32)
    local, weight = masked_blur(grey_f, (skin & ~mask).astype(np.float32), max(2.0, 0.1 * eye_distance))
    skin_like = (np.abs(grey_f - local) < 0.08 * np.maximum(local, 1.0)) & (weight > 0.05)
    return (mask & ~skin_like).astype(np.float32)


def bilateral_pieces(mask: np.ndarray, landmarks: np.ndarray, eye_distance: float, share: float = 0.3) -> np.ndarray:
    """The connected pieces of ``mask`` that have a mirror image across the face's midline: spectacles are
    symmetric, while a smile's fold beside the nose, a lock of hair or a brow's edge found on one side is not.

    The midline runs through the mesh's nose bridge (point 168) along its forehead-to-chin direction (10 to 152);
    a piece is kept when at least ``share`` of its pixels lie within 0.06 eye distances of the mirrored mask.

    Args:
        mask: bool (H, W).
        landmarks: the face's 478-point mesh in the mask's pixels, (478, 2+).
        eye_distance: the face's eye distance, pixels.
        share: the least share of a piece that must meet its mirror image.

    Returns:
        bool (H, W), the kept pieces.

    Example:
        >>> mesh = np.zeros((478, 2)); mesh[[10, 168, 152]] = [[16, 0], [16, 10], [16, 31]]
        >>> m = np.zeros((32, 32), bool); m[8, 4:10] = m[8, 22:28] = True; m[20, 2:6] = True
        >>> int(bilateral_pieces(m, mesh, 40.0).sum())  # the pair of bars kept, the lone bar dropped
        12
    """
    mask = np.asarray(mask, bool)
    pts = np.asarray(landmarks, np.float64)[:, :2]
    down = pts[152] - pts[10]
    if not mask.any() or np.linalg.norm(down) < 1e-6:
        return np.zeros_like(mask)
    d = down / np.linalg.norm(down)
    R = 2.0 * np.outer(d, d) - np.eye(2)  # reflection across the line through pts[168] along d
    M = np.hstack([R, (pts[168] - R @ pts[168])[:, None]])
    h, w = mask.shape
    as_u8 = mask.astype(np.uint8)
    mirror = cv2.warpAffine(as_u8, M, (w, h), flags=cv2.INTER_NEAREST) > 0  # a reflection is its own inverse
    near = dilate_disk(mirror, max(1.0, 0.06 * eye_distance)) > 0
    count, labels = cv2.connectedComponents(as_u8)
    hit = np.bincount(labels[near & mask], minlength=count)
    size = np.bincount(labels.ravel(), minlength=count)
    keep = hit >= share * np.maximum(size, 1)
    keep[0] = False
    return keep[labels]


def skin_occlusion_mask(image: np.ndarray, regions: dict[str, np.ndarray], neutral_only: bool = False) -> np.ndarray:
    """Pixels of the face that are not this face's skin nor a face part: occluders.

    Shading changes a skin pixel's brightness and, under coloured light, its saturation along the
    skin's own hue, but rarely turns it grey or gives it another hue; the objects that cover faces
    (face masks, microphones, glasses frames, hair, phones) are grey, dark or of another hue. So, in
    the chromaticity of linear RGB (r, g), relative to the face's own skin (the densest colour mode
    of the band from the brows to the nose bridge, :func:`_skin_mode`), a pixel is an occluder when

    - its hue differs from the skin's by more than 60 degrees (blue or green masks), or by more than
      30 towards blue (a pink or purple mask; skin in warm light turns the other way), or
    - it is much greyer than the skin (less than 45% of its saturation: white, grey, black objects), or
    - it is far darker (under 45% of the skin's brightness) and not more saturated than the skin, or
    - it is far more saturated (1.6x) without being darker (a hand of another tone, a red object);

    (for the two saturation rules the skin's saturation is the lower, respectively the higher, of the
    mode's and the band's median: in strong light the mode can be the highlights);

    for very pale, nearly grey skin, where hue is unreliable, a pixel much brighter than the skin
    (a white mask) counts instead. Strands of hair of any hue count too: far darker than the skin and
    textured, in a region reaching above the nose's base (:func:`_hair`), with the darker pixels
    connected to them (:func:`_grow_hair`). Candidates outside the eyes, brows, lips and nostrils are
    cleaned morphologically; a region with a soft outline (shading) or one that does not reach the
    face's outline (occluders come in from outside) is dropped; lips enclosed by an occluder are
    covered. A hand of the face's own skin tone is not found (no colour cue separates it).

    Args:
        image: RGB uint8, shape (H, W, 3).
        regions: output of :func:`face_region_masks` for that image.
        neutral_only: only grey objects (rule 2 and 3): used on sources, where over-detection would
            erase identity.

    Returns:
        float32 mask (H, W), 1 where the face is occluded.
    """
    feats = _colour_features(image)
    skin = regions["skin"] > 0.5
    face = regions["face"] > 0.5
    reference = skin & (regions["reference"] > 0.5) if "reference" in regions else skin
    if reference.sum() < 50:
        reference = skin
    if reference.sum() < 50:
        return np.zeros(image.shape[:2], np.float32)
    centre, _ = _skin_mode(feats[reference])
    neutral = 1.0 / 3.0
    d = feats[..., :2] - neutral
    ds = centre[:2] - neutral
    sat = np.hypot(d[..., 0], d[..., 1])
    sat_s = float(np.linalg.norm(ds))
    bright = feats[..., 2]
    bright_s = max(float(centre[2]), 1.0)
    if sat_s > 0.03:
        cos = (d @ ds) / (sat * sat_s + 1e-9)
        # the signed turn from the skin's hue: negative is towards blue (pinks, purples: fabric)
        sin = (ds[0] * d[..., 1] - ds[1] * d[..., 0]) / (sat * sat_s + 1e-9)
        other_hue = (sat > 0.02) & ((cos < 0.5) | (sin < -np.sin(np.radians(_PURPLE_TURN))))
        # In strong or warm light the densest colour of the reference band can be its highlights (paler
        # than the diffuse skin): measured from them, the cheeks' ordinary skin looked "vivid". The
        # saturation rules take the less telling of the mode and the band's median saturation.
        sat_median = float(np.median(sat[reference]))
        sat_lo, sat_hi = min(sat_s, sat_median), max(sat_s, sat_median)
        grey = sat < 0.45 * sat_lo
        dark = (bright < 0.45 * bright_s) & (sat < 1.0 * sat_s)
        # Much more saturated yet not darker: another person's skin or a coloured object in the same
        # light (a shadow on this skin is more saturated too, but darker).
        vivid = (sat > 1.6 * sat_hi) & (bright > 0.75 * bright_s)
        candidate = grey | dark if neutral_only else other_hue | grey | dark | vivid
    else:  # pale skin: chroma says little; a much brighter object (white mask) or a very dark one
        candidate = (bright > 1.12 * bright_s + 8.0) | (bright < 0.3 * bright_s)
    features = np.maximum.reduce([regions["eyes_outer"], regions["brows"], regions["lips"], regions["nostrils"]]) > 0.5
    if not neutral_only:
        candidate = candidate | _hair(image, bright, bright_s, reference, regions["nostrils"] > 0.5, face)
    occluded = candidate & face & ~features
    occ = occluded.astype(np.uint8)
    size = max(3, int(round(np.sqrt(face.sum()) * 0.03)) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    occ = cv2.morphologyEx(occ, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))  # specks only: thin frames stay
    occ = cv2.morphologyEx(occ, cv2.MORPH_CLOSE, kernel)
    occ = _sharp_components(image, occ, face, skin)
    occ = _entering_components(occ, face)
    occ = _without_brow_overflow(occ, regions["brows"] > 0.5, 2 * size)
    if not neutral_only:
        occ = _grow_hair(occ, bright, bright_s, face & ~features, regions["nostrils"] > 0.5)
    # Lips or nostrils enclosed by an occluder (a face mask over the mouth) are covered too.
    reach = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (4 * size + 1, 4 * size + 1))
    enclosed = (cv2.morphologyEx(occ, cv2.MORPH_CLOSE, reach) > 0) | _holes(occ)
    lower = np.maximum.reduce([regions["lips"], regions["nostrils"], regions["mouth"]]) > 0.5
    occ = occ | (enclosed & lower).astype(np.uint8)
    return (occ > 0).astype(np.float32) * face
