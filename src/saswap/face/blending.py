"""Multi-band (Laplacian pyramid) blending: seamless across a mask edge, sharp inside it.

Convention:
    Images RGB uint8 or float (H, W, 3); the mask is float (H, W) in [0, 1], 1 = foreground.
"""

from __future__ import annotations

import cv2
import numpy as np

from saswap.face.colour import _channels, masked_blur

__all__ = ["blend_offset", "membrane_correction", "pyramid_blend"]


def pyramid_blend(
    foreground: np.ndarray, background: np.ndarray, mask: np.ndarray, levels: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    """Blend two images band by band (Burt and Adelson): coarse bands mix over wide transitions, so
    low-frequency colour differences leave no step at the edge, while fine bands switch over a few
    pixels, so detail stays crisp and no double contour appears.

    Args:
        foreground: shape (H, W, 3).
        background: shape (H, W, 3).
        mask: foreground weight, shape (H, W).
        levels: number of pyramid levels below full resolution.

    Returns:
        (blended RGB uint8 image, support mask (H, W) float32: where the result may differ from
        ``background``, 1 inside, fading to 0 at its outer edge).

    Example:
        >>> fg = np.full((64, 64, 3), 200, np.uint8); bg = np.zeros((64, 64, 3), np.uint8)
        >>> m = np.zeros((64, 64), np.float32); m[16:48, 16:48] = 1
        >>> out, support = pyramid_blend(fg, bg, m, levels=3)
        >>> bool(out[32, 32, 0] > 190 and ((out != bg).any(axis=2) <= (support > 0)).all())
        True
    """
    bg = background.astype(np.float32)
    m = np.clip(mask.astype(np.float32), 0.0, 1.0)
    out, gm = _blend_offset(foreground.astype(np.float32) - bg, m, levels)
    out += bg
    result = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    # Support: where any band's weight reaches (the coarsest mask, expanded back to full size).
    reach = gm[-1]
    for lvl in range(levels - 1, -1, -1):
        reach = cv2.pyrUp(reach, dstsize=(gm[lvl].shape[1], gm[lvl].shape[0]))
    support = np.clip(np.maximum(reach * 8.0, m), 0.0, 1.0)
    support[reach < 1e-4] = 0.0
    support = np.maximum(support, (m > 0).astype(np.float32))
    return result, support.astype(np.float32)


def _blend_offset(diff: np.ndarray, mask: np.ndarray, levels: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """The pyramid blend's change to the background: the Laplacian pyramid of ``diff`` (foreground minus
    background), each band weighted by the mask's Gaussian pyramid at its level, collapsed. The background's
    own bands collapse back to itself, so only the difference needs a pyramid. Returns (offset, the mask's pyramid)."""
    gd, gm = [diff], [mask]
    for _ in range(levels):
        gd.append(cv2.pyrDown(gd[-1]))
        gm.append(cv2.pyrDown(gm[-1]))
    out = cv2.multiply(gd[-1], _channels(gm[-1], gd[-1]))
    for lvl in range(levels - 1, -1, -1):
        size = (gd[lvl].shape[1], gd[lvl].shape[0])
        band = cv2.subtract(gd[lvl], cv2.pyrUp(gd[lvl + 1], dstsize=size))
        out = cv2.add(cv2.pyrUp(out, dstsize=size), cv2.multiply(band, _channels(gm[lvl], band)))
    return out, gm


def blend_offset(foreground: np.ndarray, background: np.ndarray, mask: np.ndarray, levels: int = 4) -> np.ndarray:
    """What :func:`pyramid_blend` adds to ``background``, float32 (H, W, 3), unrounded and unclipped (for a
    caller that weights it further before rounding once).

    Example:
        >>> fg = np.full((32, 32, 3), 90, np.uint8); bg = np.full((32, 32, 3), 10, np.uint8)
        >>> off = blend_offset(fg, bg, np.ones((32, 32), np.float32), levels=2)
        >>> bool(np.allclose(off, 80.0, atol=1e-3))
        True
    """
    m = np.clip(mask.astype(np.float32), 0.0, 1.0)
    return _blend_offset(foreground.astype(np.float32) - background.astype(np.float32), m, levels)[0]


def membrane_correction(
    foreground: np.ndarray,
    background: np.ndarray,
    boundary: np.ndarray,
    scale: float,
    outlier: float = 2.5,
    min_tolerance: float = 8.0,
    median_far: bool = True,
) -> np.ndarray:
    """Smooth colour offset that makes ``foreground`` meet ``background`` on ``boundary`` pixels.

    An approximation of the membrane of Poisson image editing (Pérez et al.): the difference
    ``background - foreground`` is known on the boundary samples and spread into the rest of the image
    by normalised convolution from coarse to fine (pull-push), so the offset equals the difference at
    the boundary and varies smoothly, without detail, inside. Adding it to the foreground removes any
    colour step where the two meet while leaving the foreground's own detail (its identity) intact.

    Args:
        foreground: shape (H, W, 3).
        background: shape (H, W, 3), in the same geometry.
        boundary: where the difference is measured, float (H, W) in [0, 1].
        scale: the largest spreading scale, pixels (about the region's radius).
        outlier: boundary samples whose difference lies more than this many robust standard
            deviations from the median difference are ignored.
        min_tolerance: the smallest such deviation that is ever called an outlier (grey levels).
        median_far: far from every sample (beyond about ``scale / 2``) the offset is the samples'
            median difference, and the local estimates take over from ``scale / 4`` down; otherwise
            the widest level is a local mean at ``scale / 2``, which, where the samples lie on one side
            only (a profile's outline, a face half covered), extrapolates that side's difference
            across the region.

    Returns:
        the offset, float32 (H, W, 3); zeros when there are no boundary samples.

    Example:
        >>> fg = np.full((64, 64, 3), 100.0, np.float32); bg = np.full((64, 64, 3), 130.0, np.float32)
        >>> ring = np.zeros((64, 64), np.float32); ring[8, 8:56] = ring[55, 8:56] = 1
        >>> off = membrane_correction(fg, bg, ring, scale=32)
        >>> bool(abs(off[8, 32, 0] - 30) < 1 and abs(off[32, 32, 0] - 30) < 1)
        True
    """
    diff = background.astype(np.float32) - foreground.astype(np.float32)
    weight = np.clip(boundary.astype(np.float32), 0.0, 1.0).copy()
    sel = weight > 0.5
    if sel.sum() < 8:
        return np.zeros(diff.shape, np.float32)
    # Robust to stray samples (a hair strand or a shadow edge on the boundary): differences far from
    # the typical one, in units of their median absolute deviation, are left out.
    samples = diff[sel]
    centre = np.median(samples, axis=0)
    spread = np.median(np.abs(samples - centre), axis=0)
    far = (np.abs(samples - centre) > np.maximum(outlier * 1.4826 * spread, min_tolerance)).any(axis=-1)
    weight[sel] *= ~far

    # The offset is smooth: it is built at half resolution (finest scale 1 pixel there) and upsampled.
    h, w = weight.shape
    half = (max(1, w // 2), max(1, h // 2))
    weight_s = cv2.resize(weight, half, interpolation=cv2.INTER_AREA)
    diff_s = cv2.resize(cv2.multiply(diff, _channels(weight, diff)), half, interpolation=cv2.INTER_AREA)
    diff_s = cv2.divide(diff_s, _channels(np.maximum(weight_s, 1e-6), diff_s))
    offset = None
    sigma = float(scale) / 2.0
    if median_far:
        offset = np.broadcast_to(np.median(diff[weight > 0.5], axis=0), (*weight_s.shape, 3)).astype(np.float32)
        sigma /= 2.0
    while offset is None or sigma >= 1.0:  # coarse to fine: finer estimates take over near the samples
        mean, density = masked_blur(diff_s, weight_s, sigma)
        if offset is None:
            offset = mean
        else:
            # density is the Gaussian-weighted share of boundary samples; a line of samples seen at
            # scale sigma gives about 1 / (sigma * sqrt(2 pi)) per unit of line weight.
            trust = _channels(np.clip(density * np.float32(sigma * 2.5), 0.0, 1.0), mean)
            offset = cv2.add(offset, cv2.multiply(cv2.subtract(mean, offset), trust))
        sigma /= 2.0
    offset = cv2.resize(offset, (w, h), interpolation=cv2.INTER_LINEAR)
    return offset.astype(np.float32)
