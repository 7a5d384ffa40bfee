"""Occluders to paste over faces for occlusion tests: face masks (from insightface's wheel), a
microphone (drawn), and a hand (drawn from a few ellipses and rounded rectangles in skin tones).

Every occluder is an RGBA uint8 image; :func:`paste_occluder` puts it over the lower third of a face.
"""

from __future__ import annotations

import cv2
import numpy as np

from saswap.face.types import Face

__all__ = ["face_mask_occluder", "microphone_occluder", "hand_occluder", "paste_occluder"]


def face_mask_occluder(colour: str = "white") -> np.ndarray:
    """A surgical face mask photo from insightface's wheel (``mask_{white,blue,black,green}.jpg``), its
    near-white background made transparent."""
    from pathlib import Path

    from saswap.io import load_image
    from saswap.samples import sample_path

    path = Path(sample_path("t1")).parent / f"mask_{colour}.jpg"
    rgb = load_image(path)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    sat = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)[..., 1]
    candidate = ((grey > 228) & (sat < 30)).astype(np.uint8)
    # the background: near-white regions that touch the image border (the mask's own white stays)
    _, labels = cv2.connectedComponents(candidate)
    touching = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    background = np.isin(labels, touching[touching > 0])
    alpha = np.where(background, 0, 255).astype(np.uint8)
    alpha = cv2.morphologyEx(alpha, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    return np.dstack([rgb, alpha])


def microphone_occluder(size: int = 200) -> np.ndarray:
    """A handheld microphone: a dark grille ball on a black handle, with shading."""
    img = np.zeros((size, size, 4), np.uint8)
    c = size // 2
    cv2.rectangle(img, (c - size // 10, c), (c + size // 10, size - 1), (25, 25, 28, 255), -1)
    cv2.circle(img, (c, c - size // 8), size // 4, (90, 90, 95, 255), -1)
    yy, xx = np.mgrid[:size, :size]
    grille = ((xx // 4 + yy // 4) % 2 == 0) & ((xx - c) ** 2 + (yy - c + size // 8) ** 2 < (size // 4) ** 2)
    img[grille, :3] = (60, 60, 64)
    shade = np.clip(1.2 - ((xx - c + size // 10) ** 2 + (yy - c) ** 2) / (size * size * 0.25), 0.5, 1.2)
    img[..., :3] = np.clip(img[..., :3] * shade[..., None], 0, 255).astype(np.uint8)
    return img


def hand_occluder(size: int = 220, tone: tuple[int, int, int] = (205, 150, 120)) -> np.ndarray:
    """A stylised open hand (palm and four fingers, shaded) in a skin tone unlike the face's usually is."""
    img = np.zeros((size, size, 4), np.uint8)
    s = size / 220.0
    colour = (*tone, 255)
    cv2.ellipse(img, (int(110 * s), int(150 * s)), (int(60 * s), int(55 * s)), 0, 0, 360, colour, -1)
    for i, x in enumerate((70, 95, 122, 148)):
        top = int((40 + abs(i - 1.5) * 12) * s)
        cv2.rectangle(img, (int((x - 10) * s), top), (int((x + 10) * s), int(140 * s)), colour, -1)
        cv2.circle(img, (int(x * s), top), int(10 * s), colour, -1)
    cv2.ellipse(img, (int(180 * s), int(135 * s)), (int(14 * s), int(40 * s)), -35, 0, 360, colour, -1)
    alpha = img[..., 3] > 0
    shade = cv2.GaussianBlur(alpha.astype(np.float32), (0, 0), 8 * s)
    img[..., :3] = np.clip(img[..., :3] * (0.75 + 0.25 * shade[..., None]), 0, 255).astype(np.uint8)
    edges = cv2.Canny(alpha.astype(np.uint8) * 255, 50, 150) > 0
    img[edges, :3] = (img[edges, :3] * 0.7).astype(np.uint8)
    return img


def paste_occluder(
    image: np.ndarray, face: Face, occluder: np.ndarray, cover: float = 0.36
) -> tuple[np.ndarray, np.ndarray]:
    """Paste an RGBA occluder over the lower third of a face.

    The occluder is scaled to the face's width and placed so that it covers the bottom ``cover``
    share of the face box (chin, mouth).

    Returns:
        (image with the occluder, occluder mask (H, W) bool).
    """
    x1, y1, x2, y2 = face.box
    w = x2 - x1
    h = y2 - y1
    ow = int(round(w * 1.05))
    oh = int(round(ow * occluder.shape[0] / occluder.shape[1]))
    occ = cv2.resize(occluder, (max(ow, 2), max(oh, 2)), interpolation=cv2.INTER_AREA)
    ox = int(round((x1 + x2) / 2 - ow / 2))
    oy = int(round(y2 - cover * h))
    out = image.copy()
    mask = np.zeros(image.shape[:2], bool)
    H, W = image.shape[:2]
    sx0, sy0 = max(0, -ox), max(0, -oy)
    dx0, dy0 = max(0, ox), max(0, oy)
    dx1, dy1 = min(W, ox + occ.shape[1]), min(H, oy + occ.shape[0])
    if dx1 <= dx0 or dy1 <= dy0:
        return out, mask
    patch = occ[sy0 : sy0 + dy1 - dy0, sx0 : sx0 + dx1 - dx0]
    a = patch[..., 3:4].astype(np.float32) / 255.0
    region = out[dy0:dy1, dx0:dx1].astype(np.float32)
    out[dy0:dy1, dx0:dx1] = np.clip(region * (1 - a) + patch[..., :3] * a + 0.5, 0, 255).astype(np.uint8)
    mask[dy0:dy1, dx0:dx1] = patch[..., 3] > 127
    return out, mask
