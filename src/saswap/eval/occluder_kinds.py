"""Kinds of occluders drawn procedurally (or cut from images inside installed packages) with known masks,
split into kinds to train on and kinds held out for evaluation.

Every kind draws an RGBA uint8 image (alpha 255 where the object is) for a face crop of a given side,
and names the parser class its opaque pixels get (``occluder``, ``glasses`` or ``hair``) and where on
the face it goes (``lower`` face, ``eyes``, ``forehead`` or ``anywhere`` over the face).

Convention:
    Colours are RGB. ``tone`` is an RGB skin tone; hands and fingers are drawn in it, so a test can
    paste a hand in the face's own tone. The split is by *kind*: no held-out kind is ever drawn for
    training (:data:`TRAIN_OCCLUDER_KINDS`, :data:`HELDOUT_OCCLUDER_KINDS`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from saswap.eval.occluders import face_mask_occluder, hand_occluder, microphone_occluder

__all__ = [
    "HELDOUT_OCCLUDER_KINDS",
    "OCCLUDER_KINDS",
    "SKIN_TONES",
    "TRAIN_OCCLUDER_KINDS",
    "OccluderKind",
    "draw_occluder",
    "paste_rgba",
    "random_skin_tone",
]

#: Skin tones from very light to very dark (RGB), jittered by :func:`random_skin_tone`.
SKIN_TONES: tuple[tuple[int, int, int], ...] = (
    (255, 224, 205),
    (241, 194, 167),
    (224, 172, 138),
    (205, 150, 120),
    (198, 134, 96),
    (171, 112, 76),
    (141, 85, 54),
    (112, 66, 42),
    (84, 50, 34),
    (58, 36, 26),
)


def random_skin_tone(rng: np.random.Generator, face_tone: tuple[int, int, int] | None = None) -> tuple[int, int, int]:
    """A skin tone: the face's own (``face_tone``, with probability 0.4 when given) or one of
    :data:`SKIN_TONES`, jittered by up to +-12 levels per channel."""
    if face_tone is not None and rng.random() < 0.4:
        base = np.asarray(face_tone, np.float64)
    else:
        base = np.asarray(SKIN_TONES[int(rng.integers(len(SKIN_TONES)))], np.float64)
    return tuple(int(v) for v in np.clip(base + rng.uniform(-12, 12, 3), 0, 255))


def _canvas(h: int, w: int) -> np.ndarray:
    return np.zeros((max(h, 4), max(w, 4), 4), np.uint8)


def _shade(img: np.ndarray, sigma: float, strength: float = 0.3) -> np.ndarray:
    """Darken towards the object's edges (a rounded look) and darken its outline a little."""
    alpha = (img[..., 3] > 0).astype(np.float32)
    inner = cv2.GaussianBlur(alpha, (0, 0), max(sigma, 0.5))
    img[..., :3] = np.clip(img[..., :3] * ((1 - strength) + strength * inner[..., None]), 0, 255).astype(np.uint8)
    return img


def _random_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    hsv = np.uint8([[[rng.integers(0, 180), rng.integers(0, 256), rng.integers(30, 256)]]])
    return tuple(int(v) for v in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])


def _hand_open(rng: np.random.Generator, size: int, tone: tuple[int, int, int]) -> np.ndarray:
    return hand_occluder(size=max(int(size * rng.uniform(0.5, 0.8)), 24), tone=tone)


def _fingers(rng: np.random.Generator, size: int, tone: tuple[int, int, int]) -> np.ndarray:
    n = int(rng.integers(1, 4))
    fw = max(int(size * rng.uniform(0.07, 0.1)), 3)
    length = int(size * rng.uniform(0.35, 0.6))
    img = _canvas(length + fw, n * (fw + 2) + fw)
    for i in range(n):
        x = fw // 2 + i * (fw + 2) + fw // 2
        top = fw // 2 + int(rng.integers(0, max(length // 6, 1)))
        cv2.rectangle(img, (x - fw // 2, top), (x + fw // 2, img.shape[0] - 1), (*tone, 255), -1)
        cv2.circle(img, (x, top), fw // 2, (*tone, 255), -1)
        nail = tuple(int(min(255, c * 1.12 + 10)) for c in tone)
        cv2.ellipse(img, (x, top + fw // 3), (max(fw // 3, 1), max(fw // 2, 1)), 0, 0, 360, (*nail, 255), -1)
        for k in (0.45, 0.7):  # knuckle creases
            y = int(top + k * (img.shape[0] - top))
            crease = tuple(int(c * 0.75) for c in tone)
            cv2.line(img, (x - fw // 3, y), (x + fw // 3, y), (*crease, 255), 1)
    return _shade(img, fw / 3)


def _hand_fist(rng: np.random.Generator, size: int, tone: tuple[int, int, int]) -> np.ndarray:
    s = int(size * rng.uniform(0.4, 0.6))
    img = _canvas(s, s)
    colour = (*tone, 255)
    r = s // 9
    cv2.rectangle(img, (r, 2 * r), (s - r, s - 1), colour, -1)
    for i in range(4):  # knuckles
        cv2.circle(img, (int(r + (i + 0.5) * (s - 2 * r) / 4), 2 * r), int(1.1 * r), colour, -1)
    dark = tuple(int(c * 0.7) for c in tone)
    for i in range(1, 4):  # gaps between curled fingers
        x = int(r + i * (s - 2 * r) / 4)
        cv2.line(img, (x, 2 * r), (x, int(s * 0.55)), (*dark, 255), max(1, s // 60))
    thumb = tuple(int(min(255, c * 1.05)) for c in tone)
    cv2.ellipse(img, (s // 2, int(s * 0.62)), (int(s * 0.33), r), -8, 0, 360, (*thumb, 255), -1)
    cv2.ellipse(img, (s // 2, int(s * 0.62)), (int(s * 0.33), r), -8, 0, 360, (*dark, 255), max(1, s // 80))
    return _shade(img, s / 12)


def _face_mask_drawn(rng: np.random.Generator, size: int, tone: tuple[int, int, int]) -> np.ndarray:  # noqa: ARG001
    w = int(size * rng.uniform(0.5, 0.65))
    h = int(w * rng.uniform(0.55, 0.75))
    img = _canvas(h, w)
    colour = _random_colour(rng) if rng.random() < 0.5 else tuple(int(v) for v in rng.choice([235, 60, 20]) * np.ones(3))
    poly = np.array(
        [[0.08, 0.12], [0.5, 0.0], [0.92, 0.12], [1.0, 0.5], [0.8, 0.92], [0.5, 1.0], [0.2, 0.92], [0.0, 0.5]]
    ) * [w - 1, h - 1]
    cv2.fillPoly(img, [poly.round().astype(np.int32)], (*colour, 255))
    pleat = tuple(int(c * 0.8) for c in colour)
    for k in (0.35, 0.55, 0.75):
        cv2.line(img, (int(0.08 * w), int(k * h)), (int(0.92 * w), int(k * h)), (*pleat, 255), max(1, h // 40))
    return _shade(img, h / 10, 0.2)


def _face_mask_photo(rng: np.random.Generator, size: int, tone: tuple[int, int, int]) -> np.ndarray:  # noqa: ARG001
    img = face_mask_occluder(str(rng.choice(["white", "blue", "black", "green"])))
    w = int(size * rng.uniform(0.55, 0.7))
    return cv2.resize(img, (w, max(int(w * img.shape[0] / img.shape[1]), 4)), interpolation=cv2.INTER_AREA)


def _microphone(rng: np.random.Generator, size: int, tone: tuple[int, int, int]) -> np.ndarray:  # noqa: ARG001
    return microphone_occluder(size=max(int(size * rng.uniform(0.4, 0.6)), 24))


def _phone(rng: np.random.Generator, size: int, tone: tuple[int, int, int]) -> np.ndarray:  # noqa: ARG001
    w = int(size * rng.uniform(0.25, 0.35))
    h = int(w * rng.uniform(1.8, 2.1))
    img = _canvas(h, w)
    body = _random_colour(rng) if rng.random() < 0.5 else (20, 20, 22)
    r = max(w // 8, 2)
    cv2.rectangle(img, (r, 0), (w - 1 - r, h - 1), (*body, 255), -1)
    cv2.rectangle(img, (0, r), (w - 1, h - 1 - r), (*body, 255), -1)
    for cx, cy in ((r, r), (w - 1 - r, r), (r, h - 1 - r), (w - 1 - r, h - 1 - r)):
        cv2.circle(img, (cx, cy), r, (*body, 255), -1)
    if rng.random() < 0.6:  # the screen side
        screen = np.linspace(0, 1, h)[:, None] * np.asarray(_random_colour(rng)) + 30
        m = r
        img[m : h - m, m : w - m, :3] = np.clip(screen[m : h - m, None, :], 0, 255).astype(np.uint8)
    return img


def _cup(rng: np.random.Generator, size: int, tone: tuple[int, int, int]) -> np.ndarray:  # noqa: ARG001
    w = int(size * rng.uniform(0.3, 0.42))
    h = int(w * rng.uniform(1.0, 1.3))
    img = _canvas(h, int(w * 1.4))
    colour = _random_colour(rng)
    ew = max(h // 10, 2)
    cv2.rectangle(img, (0, ew), (w - 1, h - 1 - ew), (*colour, 255), -1)
    cv2.ellipse(img, (w // 2, h - 1 - ew), (w // 2, ew), 0, 0, 180, (*colour, 255), -1)
    inside = tuple(int(c * 0.45) for c in colour)
    cv2.ellipse(img, (w // 2, ew), (w // 2, ew), 0, 0, 360, (*inside, 255), -1)
    cv2.ellipse(img, (w, h // 2), (int(w * 0.22), int(h * 0.22)), 0, -90, 90, (*colour, 255), max(w // 9, 2))
    if rng.random() < 0.5:  # a band of another colour
        y = int(h * rng.uniform(0.35, 0.6))
        img[y : y + max(h // 8, 1), :w][img[y : y + max(h // 8, 1), :w, 3] > 0, :3] = _random_colour(rng)
    return _shade(img, w / 8, 0.35)


def _glasses_frame(rng: np.random.Generator, size: int, tone: tuple[int, int, int]) -> np.ndarray:  # noqa: ARG001
    w = int(size * rng.uniform(0.6, 0.75))
    lens_w = int(w * 0.42)
    lens_h = int(lens_w * rng.uniform(0.55, 0.8))
    img = _canvas(lens_h + 4, w)
    colour = _random_colour(rng) if rng.random() < 0.4 else tuple(int(v) for v in rng.integers(0, 70, 3))
    t = max(int(size * rng.uniform(0.008, 0.025)), 1)
    sunglasses = rng.random() < 0.25
    round_lenses = rng.random() < 0.5
    for cx in (lens_w // 2 + 1, w - 1 - lens_w // 2 - 1):
        box = ((cx, lens_h // 2 + 2), (lens_w - 2 * t, lens_h - 2 * t), 0)
        if sunglasses:
            cv2.ellipse(img, box, (*(int(v * 0.4) for v in _random_colour(rng)), 240), -1)
        if round_lenses:
            cv2.ellipse(img, box, (*colour, 255), t)
        else:
            x0, y0 = cx - lens_w // 2 + t, 2 + t
            cv2.rectangle(img, (x0, y0), (x0 + lens_w - 2 * t, y0 + lens_h - 2 * t), (*colour, 255), t)
    cv2.line(img, (lens_w - t, lens_h // 3), (w - lens_w + t, lens_h // 3), (*colour, 255), t)
    return img


def _hair_strands(rng: np.random.Generator, size: int, tone: tuple[int, int, int]) -> np.ndarray:  # noqa: ARG001
    w = int(size * rng.uniform(0.3, 0.6))
    h = int(size * rng.uniform(0.25, 0.45))
    img = _canvas(h, w)
    base = np.asarray([(20, 15, 12), (60, 40, 25), (110, 75, 45), (200, 170, 110), (140, 50, 25)][rng.integers(5)])
    for _ in range(int(rng.integers(6, 30))):
        p = np.array([[rng.uniform(0, w), 0], [rng.uniform(0, w), rng.uniform(0, h)], [rng.uniform(0, w), h]])
        tt = np.linspace(0, 1, 24)[:, None]
        curve = (1 - tt) ** 2 * p[0] + 2 * (1 - tt) * tt * p[1] + tt**2 * p[2]
        colour = tuple(int(v) for v in np.clip(base + rng.uniform(-15, 15, 3), 0, 255))
        cv2.polylines(img, [curve.round().astype(np.int32)], False, (*colour, 255), int(rng.integers(1, 4)), cv2.LINE_AA)
    img[..., 3] = np.where(img[..., 3] > 100, 255, 0).astype(np.uint8)
    return img


def _scarf(rng: np.random.Generator, size: int, tone: tuple[int, int, int]) -> np.ndarray:  # noqa: ARG001
    w = int(size * rng.uniform(0.7, 0.9))
    h = int(size * rng.uniform(0.2, 0.32))
    img = _canvas(h, w)
    a, b = _random_colour(rng), _random_colour(rng)
    yy, xx = np.mgrid[:h, :w]
    period = int(rng.integers(6, 20))
    pattern = ((xx // period + yy // period) % 2 == 0) if rng.random() < 0.5 else ((yy // period) % 2 == 0)
    img[..., :3] = np.where(pattern[..., None], np.asarray(a), np.asarray(b)).astype(np.uint8)
    top = (h * 0.2 * (1 + np.sin(xx[0] / w * np.pi * rng.uniform(1, 3)))).astype(int)
    img[..., 3] = np.where(yy >= top[None, :], 255, 0).astype(np.uint8)
    return _shade(img, h / 6, 0.3)


def _object(rng: np.random.Generator, size: int, tone: tuple[int, int, int]) -> np.ndarray:  # noqa: ARG001
    s = int(size * rng.uniform(0.2, 0.45))
    img = _canvas(s, s)
    n = int(rng.integers(5, 10))
    ang = np.sort(rng.uniform(0, 2 * np.pi, n))
    rad = rng.uniform(0.3, 0.5, n) * s
    pts = np.stack([s / 2 + rad * np.cos(ang), s / 2 + rad * np.sin(ang)], 1)
    cv2.fillPoly(img, [pts.round().astype(np.int32)], (*_random_colour(rng), 255))
    noise = rng.normal(0, 25, (s, s, 1))
    img[..., :3] = np.clip(img[..., :3] + noise, 0, 255).astype(np.uint8)
    return _shade(img, s / 8, 0.4)


@dataclass(frozen=True)
class OccluderKind:
    """One kind of occluder.

    Attributes:
        name: the kind's name (``hand_open``, ``microphone``...).
        draw: ``draw(rng, size, tone) -> RGBA uint8`` for a face crop of side ``size`` and skin ``tone``.
        label: the parser class of its opaque pixels: ``occluder``, ``glasses`` or ``hair``.
        place: where it goes: ``lower`` (mouth and chin), ``eyes``, ``forehead`` or ``anywhere``.
        skin: whether it is drawn in a skin tone (hands and fingers).
    """

    name: str
    draw: Callable[[np.random.Generator, int, tuple[int, int, int]], np.ndarray]
    label: str
    place: str
    skin: bool = False


#: Every kind, by name.
OCCLUDER_KINDS: dict[str, OccluderKind] = {
    k.name: k
    for k in (
        OccluderKind("hand_open", _hand_open, "occluder", "anywhere", skin=True),
        OccluderKind("fingers", _fingers, "occluder", "anywhere", skin=True),
        OccluderKind("face_mask_drawn", _face_mask_drawn, "occluder", "lower"),
        OccluderKind("phone", _phone, "occluder", "anywhere"),
        OccluderKind("scarf", _scarf, "occluder", "lower"),
        OccluderKind("object", _object, "occluder", "anywhere"),
        OccluderKind("glasses_frame", _glasses_frame, "glasses", "eyes"),
        OccluderKind("hair_strands", _hair_strands, "hair", "forehead"),
        OccluderKind("hand_fist", _hand_fist, "occluder", "anywhere", skin=True),
        OccluderKind("face_mask_photo", _face_mask_photo, "occluder", "lower"),
        OccluderKind("microphone", _microphone, "occluder", "lower"),
        OccluderKind("cup", _cup, "occluder", "lower"),
    )
}

#: Kinds held out of training, for evaluation only: a hand shape never seen (a fist, drawn in the face's
#: own tone among others), photographed face masks (training sees drawn ones), microphones and cups.
HELDOUT_OCCLUDER_KINDS: tuple[str, ...] = ("hand_fist", "face_mask_photo", "microphone", "cup")

#: Kinds drawn for training.
TRAIN_OCCLUDER_KINDS: tuple[str, ...] = tuple(k for k in OCCLUDER_KINDS if k not in HELDOUT_OCCLUDER_KINDS)


def draw_occluder(
    kind: str,
    rng: np.random.Generator,
    size: int,
    face_tone: tuple[int, int, int] | None = None,
    tone: tuple[int, int, int] | None = None,
) -> np.ndarray:
    """Draw one occluder of ``kind`` for a crop of side ``size`` with random colour, blur and rotation.

    Args:
        kind: a name in :data:`OCCLUDER_KINDS`.
        rng: random generator.
        size: side of the face crop, pixels.
        face_tone: the face's own skin tone (RGB); skin-toned kinds use it 40% of the time.
        tone: when given, skin-toned kinds use exactly this tone (e.g. the face's own, for a test).

    Returns:
        RGBA uint8, shape (h, w, 4).

    Example:
        >>> draw_occluder("phone", np.random.default_rng(0), 128).shape[-1]
        4
    """
    if kind not in OCCLUDER_KINDS:
        raise KeyError(f"unknown occluder kind {kind!r}; choose one of {sorted(OCCLUDER_KINDS)}")
    spec = OCCLUDER_KINDS[kind]
    if tone is None:
        tone = random_skin_tone(rng, face_tone) if spec.skin else (128, 128, 128)
    img = spec.draw(rng, size, tuple(int(v) for v in tone))
    if not spec.skin and spec.label == "occluder" and rng.random() < 0.3:  # recolour: hue shift
        hsv = cv2.cvtColor(img[..., :3], cv2.COLOR_RGB2HSV).astype(np.int32)
        hsv[..., 0] = (hsv[..., 0] + int(rng.integers(0, 180))) % 180
        img[..., :3] = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)
    angle = float(rng.uniform(-40, 40)) if spec.place == "anywhere" else float(rng.uniform(-10, 10))
    if spec.place == "anywhere" and rng.random() < 0.5:
        angle += 180.0 if rng.random() < 0.3 else 0.0
    h, w = img.shape[:2]
    R = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    cos, sin = abs(R[0, 0]), abs(R[0, 1])
    nw, nh = int(h * sin + w * cos) + 2, int(h * cos + w * sin) + 2
    R[:, 2] += (nw / 2 - w / 2, nh / 2 - h / 2)
    img = cv2.warpAffine(img, R, (nw, nh), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0, 0))
    if rng.random() < 0.3:  # out of focus
        img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.5, 1.5)))
    return img


def paste_rgba(
    image: np.ndarray, rgba: np.ndarray, centre: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Alpha-blend an RGBA patch into an image, centred at ``centre`` = (x, y); parts outside are cut.

    Args:
        image: RGB uint8, shape (H, W, 3).
        rgba: RGBA uint8, shape (h, w, 4).
        centre: where the patch's centre goes, pixels.

    Returns:
        (the image with the patch, shape (H, W, 3); the patch's opaque pixels (alpha >= 128), bool (H, W)).

    Example:
        >>> patch = np.full((4, 4, 4), 255, np.uint8)
        >>> out, mask = paste_rgba(np.zeros((8, 8, 3), np.uint8), patch, (4, 4))
        >>> int(mask.sum()), int(out[4, 4, 0])
        (16, 255)
    """
    if image.ndim != 3 or image.shape[2] != 3 or rgba.ndim != 3 or rgba.shape[2] != 4:
        raise ValueError(f"expected an (H, W, 3) image and an (h, w, 4) patch, got {image.shape} and {rgba.shape}")
    H, W = image.shape[:2]
    h, w = rgba.shape[:2]
    ox, oy = int(round(centre[0] - w / 2)), int(round(centre[1] - h / 2))
    out = image.copy()
    mask = np.zeros((H, W), bool)
    dx0, dy0, dx1, dy1 = max(0, ox), max(0, oy), min(W, ox + w), min(H, oy + h)
    if dx1 <= dx0 or dy1 <= dy0:
        return out, mask
    patch = rgba[dy0 - oy : dy1 - oy, dx0 - ox : dx1 - ox]
    a = patch[..., 3:4].astype(np.float32) / 255.0
    region = out[dy0:dy1, dx0:dx1].astype(np.float32)
    out[dy0:dy1, dx0:dx1] = np.clip(region * (1 - a) + patch[..., :3] * a + 0.5, 0, 255).astype(np.uint8)
    mask[dy0:dy1, dx0:dx1] = patch[..., 3] >= 128
    return out, mask
