"""Colour and lighting transfer between faces (linear-RGB gains from masked low-pass statistics).

Convention:
    Images are RGB uint8 (H, W, 3); masks float32 (H, W) in [0, 1].
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["masked_blur", "shading_detail", "soften_skin_hue", "apply_detail", "highlight_roll_off", "relight", "delta_e"]


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
    weighted, m, factor = _reduce(image, mask, sigma)
    out, den = _normalised_blur(weighted, m, sigma / factor)
    if factor > 1:
        out = cv2.resize(out, (w, h), interpolation=cv2.INTER_LINEAR)
        den = cv2.resize(den, (w, h), interpolation=cv2.INTER_LINEAR)
    return out, den


def _reduce(image: np.ndarray, mask: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray, int]:
    """``image * mask`` and ``mask`` (float32) at the resolution a blur of ``sigma`` pixels is computed at, and
    the reduction factor (large blurs at up to 1/8 of the size: the result is smooth anyway)."""
    h, w = mask.shape[:2]
    m = mask.astype(np.float32)
    img = image.astype(np.float32)
    weighted = cv2.multiply(img, _channels(m, img))
    factor = int(max(1, min(8, sigma // 3)))
    if factor > 1:
        # Reduce the weighted image and the weights, not the image: pixels outside the mask must not
        # leak into the means through the area averaging.
        size = (max(1, w // factor), max(1, h // factor))
        m = cv2.resize(m, size, interpolation=cv2.INTER_AREA)
        weighted = cv2.resize(weighted, size, interpolation=cv2.INTER_AREA).reshape(*m.shape, *img.shape[2:])
    return weighted, m, factor


def _normalised_blur(weighted: np.ndarray, m: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    num = cv2.GaussianBlur(weighted, (0, 0), sigma).reshape(weighted.shape)
    den = cv2.GaussianBlur(m, (0, 0), sigma)
    return cv2.divide(num, _channels(np.maximum(den, 1e-4), num)).reshape(weighted.shape), den


def _channels(plane: np.ndarray, like: np.ndarray) -> np.ndarray:
    """A float32 (H, W) plane repeated to the channels of ``like`` (OpenCV's per-element arithmetic is several
    times faster than numpy's broadcasting over a trailing channel axis)."""
    if like.ndim == 2 or like.shape[2] == 1:
        return plane.reshape(like.shape)
    return cv2.merge([plane] * like.shape[2])


def _srgb_to_linear(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


_LINEAR_LUT = _srgb_to_linear(np.arange(256, dtype=np.float32) / 255.0)


def _to_linear(rgb: np.ndarray) -> np.ndarray:
    if rgb.dtype == np.uint8:
        return cv2.LUT(rgb, _LINEAR_LUT.reshape(1, 256))  # a table lookup: the power function per pixel is slow
    return _srgb_to_linear(rgb.astype(np.float32) / 255.0)


def _encode_srgb(lin: np.ndarray) -> np.ndarray:
    """Linear RGB in [0, 1] (float32) to sRGB uint8, by the formula."""
    lin = np.clip(lin, 0.0, 1.0)
    x = np.where(lin <= 0.0031308, lin * 12.92, 1.055 * np.power(lin, 1 / 2.4) - 0.055)
    return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)


#: :func:`_to_srgb` looks its result up in a table of 2**16 bins of linear values (the value times 2**16,
#: rounded): the sRGB level at a bin's lower and upper end; the few bins across which the level changes are
#: computed by the formula.
_SRGB_BINS = 1 << 16
_SRGB_EDGES = (np.arange(_SRGB_BINS + 1, dtype=np.float64) - 0.5) / _SRGB_BINS
_SRGB_LOW = _encode_srgb(np.nextafter(_SRGB_EDGES[:-1].astype(np.float32), np.float32(2)))
_SRGB_HIGH = _encode_srgb(np.nextafter(_SRGB_EDGES[1:].astype(np.float32), np.float32(-1)))
_SRGB_LOW[0], _SRGB_HIGH[-1] = 0, 255  # the end bins also hold everything below 0 and above 1


def _to_srgb(lin: np.ndarray) -> np.ndarray:
    """Linear RGB (float) to sRGB uint8, equal to :func:`_encode_srgb` (a table lookup: the power per pixel is slow).

    Example:
        >>> x = np.random.default_rng(0).random((64, 64, 3), dtype=np.float32) * 1.2 - 0.1
        >>> bool((_to_srgb(x) == _encode_srgb(x)).all())
        True
    """
    lin = np.asarray(lin, np.float32)
    index = cv2.multiply(lin, float(_SRGB_BINS), dtype=cv2.CV_16U)  # rounded and saturated to the table
    out = np.take(_SRGB_LOW, index)
    unsure = out != np.take(_SRGB_HIGH, index)  # a level boundary inside the bin
    if unsure.any():
        out[unsure] = _encode_srgb(lin[unsure])
    return out


def _local_mean(lin: np.ndarray, mask: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian mean of ``lin`` (H, W, 3) over ``mask``; where the mask has nothing nearby (its blurred weight
    below 0.2), fading to its mean over the whole mask. Computed at the blur's reduced resolution, upsampled once."""
    h, w = mask.shape[:2]
    weighted, m, factor = _reduce(lin, mask, sigma)
    total = float(m.sum())
    fallback = weighted.reshape(-1, 3).sum(axis=0) / total if total > 0 else lin.reshape(-1, 3).mean(axis=0)
    fallback = fallback.astype(np.float32)
    mean, weight = _normalised_blur(weighted, m, sigma / factor)
    a = _channels(np.clip(weight * np.float32(5.0), 0, 1), mean)  # weight / 0.2
    out = (mean - fallback) * a + fallback
    return cv2.resize(out, (w, h), interpolation=cv2.INTER_LINEAR) if factor > 1 else out


def shading_detail(
    image: np.ndarray,
    mask: np.ndarray,
    sigma: float,
    max_detail: float = 2.5,
    min_detail: float = 0.1,
    chroma_sigma: float | None = None,
) -> np.ndarray:
    """An image's detail relative to its own local skin colour: ``linear(image) / skin low-pass``.

    Colour is albedo times shading, so this ratio keeps the face's own shading below the scale
    ``sigma`` (eye sockets, cheekbones, brows, stubble) and drops its skin tone and broad lighting.
    Computing it in the image's own geometry, before any mapping, means that parts copied from
    elsewhere on the face (a turned face's mirrored side) bring their detail, not their lighting.

    With a smaller ``chroma_sigma`` the detail's colour is taken relative to the skin nearer by:
    ``linear(image) / near * Y(near) / Y(far)``, ``near`` and ``far`` the skin low-passes at ``chroma_sigma``
    and ``sigma``, ``Y`` their luminance. Its lightness still follows the shading down from ``sigma`` (the
    face's shape), but its hue only what differs from the skin within ``chroma_sigma``: the colour of lips,
    eyes, moles and veins against the skin around them, not patches of another hue (the light's colour, a
    warm key beside a cool fill, or a compressed photo's colour blocks), which on another face's skin look
    like bruises.

    Args:
        image: RGB uint8 (H, W, 3).
        mask: where ``image`` shows skin, float (H, W).
        sigma: scale of the low-pass, pixels.
        max_detail: upper bound of the ratio, so a highlight cannot blow out.
        min_detail: lower bound of the ratio. Dark parts of a face (a black beard, brows, nostrils)
            lie far below the skin's low-pass: bounded at 0.4 they turned into grey blotches on a pale
            target, and the output lost identity (dlib margin on 6x5 pairs +0.02 at 0.4, +0.08 at 0.1).
        chroma_sigma: scale of the low-pass the detail's colour is taken over, pixels (None, or not below
            ``sigma``: the same as its lightness).

    Returns:
        float32 (H, W, 3), about 1 on plain skin.

    Example:
        >>> img = np.zeros((64, 64, 3), np.uint8); img[...] = (200, 150, 120)
        >>> img[:, 32:] = (150, 150, 170)  # the right half lit by a cool light
        >>> m = np.ones((64, 64), np.float32)
        >>> hue = lambda d: float(d[32, 48, 2] / d[32, 48, 0])  # blue over red of the detail on the right
        >>> round(hue(shading_detail(img, m, 32.0)), 2), round(hue(shading_detail(img, m, 32.0, chroma_sigma=2.0)), 2)
        (1.73, 1.0)
    """
    lin = _to_linear(image)
    far = np.maximum(_local_mean(lin, mask, sigma), 1e-4)
    if chroma_sigma is None or chroma_sigma >= sigma:
        detail = lin / far
    else:
        near = np.maximum(_local_mean(lin, mask, chroma_sigma), 1e-4)
        detail = lin / near * (_luminance(near) / _luminance(far))[..., None]
    return np.clip(detail, min_detail, max_detail).astype(np.float32)


def soften_skin_hue(detail: np.ndarray, skin: np.ndarray, keep: float) -> np.ndarray:
    """Keep only ``keep`` of a shading detail's hue over skin: its lightness as it is, its colour ratios pulled
    towards the skin's own (1) by ``1 - keep`` where ``skin`` is 1, untouched where it is 0.

    What differs in hue from the skin around it *within* the skin is rarely the face: a photo's colour noise and
    compression blocks, the casts of a faded print, a coloured light's patch, all of which a face enlarged onto
    another one shows as green, blue or orange blotches. The features whose colour is identity (lips, eyes, brows)
    lie outside the skin and keep theirs; so does every pixel's lightness (pores, wrinkles, stubble, shading).

    Args:
        detail: output of :func:`shading_detail`, float32 (H, W, 3).
        skin: where the hue is softened, float (H, W) in [0, 1] (feathered: no step at the features' edges).
        keep: share of the hue's deviation kept over the skin, in [0, 1] (1: the detail unchanged).

    Returns:
        float32 (H, W, 3), with the same luminance as ``detail`` (within the detail's bounds).

    Example:
        >>> d = np.ones((4, 4, 3), np.float32); d[..., 1] = 0.8  # a magenta tint
        >>> skin = np.zeros((4, 4), np.float32); skin[:, :2] = 1.0
        >>> out = soften_skin_hue(d, skin, 0.5)
        >>> bool(np.allclose(_luminance(out), _luminance(d))), bool(np.allclose(out[:, 2:], d[:, 2:]))
        (True, True)
        >>> tint = lambda x: float(x[0, 0, 1] / _luminance(x)[0, 0] - 1.0)  # green against the pixel's lightness
        >>> round(tint(out) / tint(d), 2)  # half the tint left on skin
        0.5
    """
    if not 0.0 <= keep <= 1.0:
        raise ValueError(f"keep must lie in [0, 1], got {keep}")
    if keep >= 1.0:
        return detail
    y = _luminance(detail)[..., None]
    hue = detail / np.maximum(y, 1e-4)
    kept = (1.0 - (1.0 - keep) * np.clip(skin, 0.0, 1.0).astype(np.float32))[..., None]
    return np.clip((1.0 + (hue - 1.0) * kept) * y, detail.min(), detail.max()).astype(np.float32)


def _luminance(lin: np.ndarray) -> np.ndarray:
    """Relative luminance of linear RGB (Rec. 709 primaries), (H, W)."""
    return lin[..., 0] * 0.2126 + lin[..., 1] * 0.7152 + lin[..., 2] * 0.0722


def apply_detail(
    detail: np.ndarray, target: np.ndarray, target_mask: np.ndarray, sigma: float, highlight_knee: float | None = None
) -> np.ndarray:
    """The target's local skin colour and lighting (low-pass over its skin) times ``detail``.

    Args:
        detail: output of :func:`shading_detail`, in the target's geometry.
        target: RGB uint8 (H, W, 3).
        target_mask: where ``target`` shows skin, float (H, W).
        sigma: scale of the low-pass, pixels.
        highlight_knee: where the product's brightest channel exceeds this (linear light), the pixel rolls off
            towards white with its hue kept (:func:`highlight_roll_off`) instead of being clipped channel by
            channel; None clips.

    Returns:
        RGB uint8 (H, W, 3).
    """
    lin = _local_mean(_to_linear(target), target_mask, sigma) * detail
    if highlight_knee is not None:
        lin = highlight_roll_off(lin, highlight_knee)
    return _to_srgb(lin)


def highlight_roll_off(lin: np.ndarray, knee: float) -> np.ndarray:
    """Bring linear RGB over 1 back into range without changing its hue.

    Clipping each channel at 1 turns a bright skin highlight white or yellow (its red saturates first while green
    and blue go on rising). Here, where a pixel's brightest channel ``m`` exceeds ``knee``, the whole pixel is
    scaled by ``f(m) / m`` with ``f(m) = knee + (1 - knee) (1 - exp(-(m - knee) / (1 - knee)))``: continuous with
    slope 1 at the knee and below 1 for every ``m``, so the channels keep their ratios. Below the knee nothing changes.

    Args:
        lin: linear RGB, float32 (H, W, 3) (modified in place and returned).
        knee: in (0, 1).

    Returns:
        ``lin``.

    Example:
        >>> px = np.array([[[1.6, 1.0, 0.6]]], np.float32)  # a highlight: red over range
        >>> out = highlight_roll_off(px.copy(), 0.8)
        >>> bool(out.max() < 1.0), bool(np.allclose(out / out[..., :1], px / px[..., :1]))
        (True, True)
    """
    if not 0.0 < knee < 1.0:
        raise ValueError(f"knee must lie in (0, 1), got {knee}")
    r, g, b = cv2.split(lin)
    m = cv2.max(cv2.max(r, g), b)
    over = m > knee
    if over.any():
        mv = m[over]
        f = knee + (1.0 - knee) * (1.0 - np.exp(-(mv - knee) / (1.0 - knee)))
        lin[over] *= (f / mv).astype(lin.dtype)[:, None]
    return lin


def relight(
    source: np.ndarray,
    target: np.ndarray,
    source_mask: np.ndarray,
    target_mask: np.ndarray,
    sigma: float,
    max_detail: float = 2.5,
    min_detail: float = 0.1,
) -> np.ndarray:
    """Give ``source`` the target's skin tone and low-frequency lighting, keeping its own detail.

    ``out = lowpass_t(target) * source / lowpass_s(source)`` in linear RGB, the means taken over skin
    only (:func:`shading_detail`, :func:`apply_detail`). Dark details (brows, stubble) stay dark and
    keep their hue instead of being shifted towards the target's skin hue, and the target's eyes,
    brows, beard or an occluder do not darken the result around them (no "raccoon eyes"), as only
    skin enters the means. Both images must share one geometry.

    Args:
        source: RGB uint8 (H, W, 3), already warped onto the target.
        target: RGB uint8 (H, W, 3).
        source_mask: where ``source`` shows skin, float (H, W).
        target_mask: where ``target`` shows skin, float (H, W).
        sigma: scale of the transferred tone and lighting, pixels.
        max_detail: upper bound of the source's local contrast ratio carried over.
        min_detail: its lower bound.

    Returns:
        RGB uint8, shape of ``source``.

    Example:
        >>> src = np.full((32, 32, 3), 200, np.uint8); tgt = np.full((32, 32, 3), 90, np.uint8)
        >>> m = np.ones((32, 32), np.float32)
        >>> int(relight(src, tgt, m, m, sigma=4.0)[16, 16, 0])
        90
    """
    detail = shading_detail(source, source_mask, sigma, max_detail, min_detail)
    return apply_detail(detail, target, target_mask, sigma)


def delta_e(rgb_a: np.ndarray, rgb_b: np.ndarray) -> np.ndarray:
    """CIE76 colour difference between sRGB colours on the 0-255 scale (any matching shapes ending in 3), uint8 or
    not: a mean colour is compared as it is, unrounded, and in CIELAB's own units (not OpenCV's 8-bit steps, whose
    rounding of a* and b* to whole units moved a difference of two mean colours by up to one unit).

    Example:
        >>> float(delta_e(np.array([255, 255, 255], np.uint8), np.array([255, 255, 255], np.uint8)))
        0.0
        >>> round(float(delta_e(np.array([0.0, 0.0, 0.0]), np.array([255.0, 255.0, 255.0]))), 3)  # black to white
        100.0
    """

    def lab(x):
        x = (np.asarray(x, np.float32) / np.float32(255.0)).reshape(-1, 1, 3)
        return cv2.cvtColor(x, cv2.COLOR_RGB2LAB).astype(np.float64).reshape(-1, 3)

    a, b = lab(rgb_a), lab(rgb_b)
    return np.linalg.norm(a - b, axis=1).reshape(np.asarray(rgb_a).shape[:-1])
