"""Contact sheets: images fitted into square cells, for looking at benchmark outputs side by side."""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["fit_cell"]


def fit_cell(image: np.ndarray, cell: int, background: int = 24) -> np.ndarray:
    """``image`` scaled to fit a ``cell`` x ``cell`` square, centred on a dark background.

    Args:
        image: RGB uint8, shape (H, W, 3).
        cell: side of the square cell, pixels.
        background: grey level around the image.

    Returns:
        RGB uint8, shape (cell, cell, 3).

    Example:
        >>> fit_cell(np.zeros((40, 80, 3), np.uint8), 32).shape
        (32, 32, 3)
    """
    h, w = image.shape[:2]
    s = cell / max(h, w)
    small = cv2.resize(image, (max(1, int(w * s)), max(1, int(h * s))), interpolation=cv2.INTER_AREA)
    canvas = np.full((cell, cell, 3), background, np.uint8)
    y, x = (cell - small.shape[0]) // 2, (cell - small.shape[1]) // 2
    canvas[y : y + small.shape[0], x : x + small.shape[1]] = small
    return canvas
