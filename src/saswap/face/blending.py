"""Multi-band (Laplacian pyramid) blending: seamless across a mask edge, sharp inside it.

Convention:
    Images RGB uint8 or float (H, W, 3); the mask is float (H, W) in [0, 1], 1 = foreground.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["pyramid_blend"]


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
    h, w = mask.shape
    fg = foreground.astype(np.float32)
    bg = background.astype(np.float32)
    m = np.clip(mask.astype(np.float32), 0.0, 1.0)
    gf, gb, gm = [fg], [bg], [m]
    for _ in range(levels):
        gf.append(cv2.pyrDown(gf[-1]))
        gb.append(cv2.pyrDown(gb[-1]))
        gm.append(cv2.pyrDown(gm[-1]))
    out = gf[-1] * gm[-1][..., None] + gb[-1] * (1 - gm[-1][..., None])
    for lvl in range(levels - 1, -1, -1):
        size = (gf[lvl].shape[1], gf[lvl].shape[0])
        lf = gf[lvl] - cv2.pyrUp(gf[lvl + 1], dstsize=size)
        lb = gb[lvl] - cv2.pyrUp(gb[lvl + 1], dstsize=size)
        band = lf * gm[lvl][..., None] + lb * (1 - gm[lvl][..., None])
        out = cv2.pyrUp(out, dstsize=size) + band
    result = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    # Support: where any band's weight reaches (the coarsest mask, expanded back to full size).
    reach = gm[-1]
    for lvl in range(levels - 1, -1, -1):
        reach = cv2.pyrUp(reach, dstsize=(gm[lvl].shape[1], gm[lvl].shape[0]))
    support = np.clip(np.maximum(reach * 8.0, m), 0.0, 1.0)
    support[reach < 1e-4] = 0.0
    support = np.maximum(support, (m > 0).astype(np.float32))
    return result, support.astype(np.float32)
