"""Colour and lighting transfer between faces (linear-RGB gains from masked low-pass statistics).

Convention:
    Images are RGB uint8 (H, W, 3); masks float32 (H, W) in [0, 1].
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["masked_blur", "relight", "delta_e"]


def masked_blur(image: np.ndarray, mask: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Normalised convolution: the Gaussian-weighted mean of ``image`` over ``mask`` at each pixel.

    Large blurs are computed at a reduced resolution (the result is smooth anyway) and upsampled.

    Returns:
        (mean image of the same shape as ``image``, weight map (H, W)); the mean is only meaningful
        where the weight is not tiny.

    Example:
        >>> img = np.full((64, 64, 3), 7.0, np.float32); m = np.zeros((64, 64), np.float32); m[:, :32] = 1
        >>> mean, w = masked_blur(img, m, 4.0)
        >>> bool(np.allclose(mean[:, :40], 7.0, atol=1e-3))
        True
    """
    h, w = mask.shape[:2]
    m = mask.astype(np.float32)
    img = image.astype(np.float32)
    factor = int(max(1, min(8, sigma // 3)))
    if factor > 1:
        size = (max(1, w // factor), max(1, h // factor))
        m = cv2.resize(m, size, interpolation=cv2.INTER_AREA)
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    s = sigma / factor
    weighted = img * (m[..., None] if img.ndim == 3 else m)
    num = cv2.GaussianBlur(weighted, (0, 0), s)
    den = cv2.GaussianBlur(m, (0, 0), s)
    out = num / np.maximum(den[..., None] if img.ndim == 3 else den, 1e-4)
    if factor > 1:
        out = cv2.resize(out, (w, h), interpolation=cv2.INTER_LINEAR)
        den = cv2.resize(den, (w, h), interpolation=cv2.INTER_LINEAR)
    return out, den


def _to_linear(rgb: np.ndarray) -> np.ndarray:
    x = rgb.astype(np.float32) / 255.0
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def _to_srgb(lin: np.ndarray) -> np.ndarray:
    lin = np.clip(lin, 0.0, 1.0)
    x = np.where(lin <= 0.0031308, lin * 12.92, 1.055 * np.power(lin, 1 / 2.4) - 0.055)
    return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)


def relight(
    source: np.ndarray,
    target: np.ndarray,
    source_mask: np.ndarray,
    target_mask: np.ndarray,
    sigma: float,
    max_detail: float = 2.5,
) -> np.ndarray:
    """Give ``source`` the target's skin tone and low-frequency lighting, keeping its own detail.

    Colour is albedo times shading, so in linear RGB the source is multiplied, channel by channel,
    by the ratio of the target's local skin colour to the source's (Gaussian means of scale ``sigma``
    pixels taken over skin only): ``out = blur_t(target) * source / blur_s(source)``, the source's
    local ratio bounded by ``max_detail``. Dark details
    (brows, stubble) stay dark and keep their hue instead of being shifted towards the target's skin
    hue, and the target's eyes, brows, beard or an occluder do not darken the result around them
    (no "raccoon eyes"), as only skin enters the means. Both images must share one geometry.

    Args:
        source: RGB uint8 (H, W, 3), already warped onto the target.
        target: RGB uint8 (H, W, 3).
        source_mask: where ``source`` shows skin, float (H, W).
        target_mask: where ``target`` shows skin, float (H, W).
        sigma: scale of the transferred tone and lighting, pixels.
        max_detail: bound of the source's local contrast ratio (and its inverse) carried over.

    Returns:
        RGB uint8, shape of ``source``.
    """
    src = _to_linear(source)
    tgt = _to_linear(target)
    mean_s, w_s = masked_blur(src, source_mask, sigma)
    mean_t, w_t = masked_blur(tgt, target_mask, sigma)
    # Where one side has no skin nearby, fall back to its global skin mean.
    for mean, w, img, m in ((mean_s, w_s, src, source_mask), (mean_t, w_t, tgt, target_mask)):
        sel = m > 0.5
        g = img[sel].mean(axis=0) if sel.any() else img.reshape(-1, 3).mean(axis=0)
        a = np.clip(w / 0.2, 0, 1)[..., None]
        mean[:] = a * mean + (1 - a) * g
    # out = mean_t * (src / mean_s): the source's detail ratio on the target's local colour, with the
    # ratio bounded so that a highlight or deep shadow of the source cannot blow out or crush.
    detail = np.clip(src / np.maximum(mean_s, 1e-4), 1.0 / max_detail, max_detail)
    return _to_srgb(mean_t * detail)


def delta_e(rgb_a: np.ndarray, rgb_b: np.ndarray) -> np.ndarray:
    """CIE76 colour difference between RGB colours (any matching shapes ending in 3).

    Example:
        >>> float(delta_e(np.array([255, 255, 255], np.uint8), np.array([255, 255, 255], np.uint8)))
        0.0
    """

    def lab(x):
        x = np.asarray(x, np.uint8).reshape(-1, 1, 3)
        out = cv2.cvtColor(x, cv2.COLOR_RGB2LAB).astype(np.float64).reshape(-1, 3)
        return out * np.array([100 / 255, 1, 1]) - np.array([0, 128, 128])

    a, b = lab(rgb_a), lab(rgb_b)
    return np.linalg.norm(a - b, axis=1).reshape(np.asarray(rgb_a).shape[:-1])
