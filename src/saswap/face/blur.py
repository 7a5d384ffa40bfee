"""How blurred an image is at its strongest edges: a swapped face should be as sharp as the target around it.

A source photo's face is often sharper than the target's (a video's motion blur, a soft or small target face
enlarged into the aligned crop), and a crisp face on a blurred head is one of the first things that gives a swap
away. :func:`edge_blur` reads the blur of an image's strongest edges with the gradient-ratio method of Zhuo and Sim
("Defocus map estimation from a single image", Pattern Recognition 44(9), 2011): an edge blurred by a Gaussian of
sigma s, blurred again with a known ``sigma0``, has its gradient divided by R = sqrt(s^2 + sigma0^2) / s, so
s = sigma0 / sqrt(R^2 - 1). It needs no model and no threshold tuned to a picture: the median over the strongest
edges of a region (in a face: eyes, lashes, brows, nostrils, lips).

Skin carries a texture of its own below the edges' scale (pores, stubble, fine wrinkles, a camera's grain, or none
after a beauty filter or a video's compression): :func:`fine_texture` reads how much of it a face's skin shows, and
:func:`texture_gain` how far a new face's must be lowered to read as its target's.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["band_texture", "blur_region", "edge_blur", "extra_blur", "fine_texture", "texture_gain", "TEXTURE_SCALE"]

#: Scale of the fine texture band (:func:`fine_texture`), in eye-corner distances: about 2.7 px in a 384-px aligned crop
#: (pores, stubble, grain; not the shading of wrinkles and features, which is identity).
TEXTURE_SCALE = 0.02


def _aligned(shape: tuple[int, ...]) -> np.ndarray:
    """An empty float32 array of ``shape`` whose data starts on a 64-byte boundary.

    OpenCV's float Sobel and Gaussian blur (their IPP paths) round differently, in the last bits, when their input or
    output starts elsewhere, and NumPy places arrays on 16-byte boundaries or on pages depending on their size and the
    allocator's state. Without a fixed alignment for every array :func:`edge_blur` hands OpenCV, two readings of the
    same crop differed by up to 2e-4 px on a few frames (two analyses of one template gave different caches).

    Example:
        >>> a = _aligned((2, 3))
        >>> a.ctypes.data % 64, a.dtype.name, a.shape
        (0, 'float32', (2, 3))
    """
    n = int(np.prod(shape)) * 4
    buf = np.empty(n + 64, np.uint8)
    start = (-buf.ctypes.data) % 64
    return buf[start : start + n].view(np.float32).reshape(shape)


def _aligned_grey(image: np.ndarray) -> np.ndarray:
    """``image`` (RGB or grey, uint8 or float, levels 0-255) as a float32 grey copy in a 64-byte aligned buffer (see
    :func:`_aligned`)."""
    image = image if image.dtype in (np.uint8, np.float32) else image.astype(np.float32)
    grey = image if image.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    aligned = _aligned(grey.shape)  # the same rounding whatever the input's place in memory
    np.copyto(aligned, grey, casting="unsafe")
    return aligned


def _gradient(grey: np.ndarray) -> np.ndarray:
    """The gradient magnitude of a float32 image, every array OpenCV touches 64-byte aligned (see :func:`_aligned`)."""
    gx, gy, mag = _aligned(grey.shape), _aligned(grey.shape), _aligned(grey.shape)
    cv2.Sobel(grey, cv2.CV_32F, 1, 0, dst=gx, ksize=3, scale=0.125)
    cv2.Sobel(grey, cv2.CV_32F, 0, 1, dst=gy, ksize=3, scale=0.125)
    cv2.magnitude(gx, gy, mag)
    return mag


def blur_region(face: np.ndarray, eye_distance: float, margin: float = 0.1) -> np.ndarray:
    """Where a face's blur is read: its region without a band of ``margin`` eye-corner distances along its outline
    (where the face meets hair or background, an edge that is not the face's own), bool (H, W).

    Example:
        >>> face = np.zeros((40, 40)); face[10:30, 10:30] = 1
        >>> int(blur_region(face, 30.0).sum())  # 3 pixels off each side
        196
    """
    r = max(1, int(round(margin * max(float(eye_distance), 1.0))))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return cv2.erode((np.asarray(face) > 0.5).astype(np.uint8), kernel) > 0


def edge_blur(
    image: np.ndarray, region: np.ndarray, sigma0: float = 1.0, top: float = 0.1, min_edges: int = 20
) -> float | None:
    """The Gaussian blur (pixels) of ``image``'s strongest edges inside ``region``.

    The reading includes the pixel grid's and the gradient operator's own width (a sharp photo reads about
    1.2), so compare two images by the difference of their squares (:func:`extra_blur`), not by the readings.

    Args:
        image: RGB or grey, uint8 or float (levels 0-255).
        region: where to look, (H, W), non-zero inside.
        sigma0: the known re-blur.
        top: the share of the region's pixels with the largest gradient that count as edges.
        min_edges: fewer edge pixels than this (a flat or tiny region): None.

    Returns:
        the median blur over the edges, or None.

    Example:
        >>> img = np.zeros((64, 64), np.float32); img[:, 32:] = 200.0
        >>> sharp = edge_blur(img, np.ones((64, 64)))
        >>> soft = edge_blur(cv2.GaussianBlur(img, (0, 0), 3.0), np.ones((64, 64)))
        >>> round(sharp, 1), round(soft, 1)
        (0.8, 3.5)
    """
    grey = _aligned_grey(image)
    g1 = _gradient(grey)
    inside = np.asarray(region) > 0
    values = g1[inside]
    if values.size < min_edges:
        return None
    # the strongest edges; a floor of 2 levels per pixel leaves out a flat region's noise
    edges = inside & (g1 >= max(float(np.quantile(values, 1.0 - top)), 2.0))
    blurred = _aligned(grey.shape)
    cv2.GaussianBlur(grey, (0, 0), sigma0, dst=blurred)
    g2 = _gradient(blurred)
    ratio = g1[edges] / np.maximum(g2[edges], 1e-3)
    ratio = ratio[ratio > 1.0 + 1e-3]
    if ratio.size < min_edges:
        return None
    return float(np.median(sigma0 / np.sqrt(ratio * ratio - 1.0)))


def extra_blur(target: float | None, image: float | None, least: float = 1.0) -> float:
    """The Gaussian sigma that blurs an image reading ``image`` (:func:`edge_blur`) towards a target reading
    ``target``: sqrt(target^2 - image^2 - least^2), 0 when that is not positive (or a reading is missing).

    ``least`` is a dead zone in quadrature: two sharp photos of different faces read differently (their edges are
    not all steps; 0.8-1.2 here), so only what exceeds such a difference is added, and the added blur grows from
    0 continuously (a video's frames near the edge of the zone do not switch between sharp and blurred).

    Example:
        >>> extra_blur(3.0, 2.0, least=1.0), extra_blur(1.5, 2.5), extra_blur(2.0, 1.8), extra_blur(None, 1.0)
        (2.0, 0.0, 0.0, 0.0)
    """
    if target is None or image is None:
        return 0.0
    excess = target * target - image * image - least * least
    return float(np.sqrt(excess)) if excess > 0 else 0.0


def fine_texture(image: np.ndarray, region: np.ndarray, sigma: float, min_pixels: int = 200) -> float | None:
    """How much fine texture ``image`` shows inside ``region``: the mean absolute difference of its grey levels from
    their Gaussian low-pass of ``sigma`` pixels (levels 0-255).

    Convention:
        Levels 0-255 whatever the dtype; RGB is converted to grey (ITU-R BT.601 weights, OpenCV's); the low-pass
        replicates the image's border by reflection (OpenCV's default).

    Args:
        image: RGB (H, W, 3) or grey (H, W), uint8 or float.
        region: where to read, (H, W), non-zero inside (a face's visible skin, its features left out).
        sigma: the low-pass's Gaussian sigma, pixels (the band read is what lies below it).
        min_pixels: fewer pixels than this in ``region`` give None.

    Returns:
        the reading, or None.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> smooth = np.full((64, 64), 128.0, np.float32)
        >>> grainy = smooth + rng.normal(0, 6, (64, 64)).astype(np.float32)
        >>> region = np.ones((64, 64), bool)
        >>> fine_texture(smooth, region, 2.0), round(fine_texture(grainy, region, 2.0))
        (0.0, 5)
    """
    return band_texture(image, region, 0.0, sigma, min_pixels)


def band_texture(
    image: np.ndarray, region: np.ndarray, fine: float, coarse: float, min_pixels: int = 200
) -> float | None:
    """How much texture ``image`` shows inside ``region`` in a band of scales: the mean absolute difference of its grey
    levels' Gaussian low-passes of ``fine`` and ``coarse`` pixels (``fine`` 0: the grey levels themselves, which is
    :func:`fine_texture`; levels 0-255, the same conventions as there). None with fewer than ``min_pixels`` pixels in
    ``region``.

    Example:
        >>> flat = np.full((64, 64), 120.0, np.float32)
        >>> blotches = cv2.GaussianBlur(np.random.default_rng(0).normal(0, 40, (64, 64)), (0, 0), 2.0)
        >>> region = np.ones((64, 64), bool)
        >>> round(band_texture(flat, region, 1.0, 4.0), 3), band_texture(flat + blotches, region, 1.0, 4.0) > 1.0
        (0.0, True)
    """
    inside = np.asarray(region) > 0
    if image.ndim not in (2, 3) or inside.shape != image.shape[:2]:
        raise ValueError(f"region {inside.shape} must have the image's height and width, image {image.shape}")
    if int(inside.sum()) < min_pixels:
        return None
    grey = _aligned_grey(image)
    near = grey
    if fine > 0:
        near = _aligned(grey.shape)
        cv2.GaussianBlur(grey, (0, 0), max(float(fine), 0.5), dst=near)
    far = _aligned(grey.shape)
    cv2.GaussianBlur(grey, (0, 0), max(float(coarse), 0.5), dst=far)
    return float(np.abs(near - far)[inside].mean())


def texture_gain(target: float | None, image: float | None, floor: float = 0.3) -> float:
    """The factor that brings an image's fine texture reading (:func:`fine_texture`) down to a target's: ``target /
    image``, at most 1 (texture is never added: noise drawn onto a face is not its skin) and at least ``floor`` (a
    face is never made waxy); 1 when a reading is missing.

    Args:
        target: the target's reading (None or NaN: none).
        image: the image's reading (None or not above 0: none).
        floor: the least factor.

    Returns:
        the factor, in [``floor``, 1].

    Example:
        >>> texture_gain(2.0, 4.0), texture_gain(5.0, 4.0), texture_gain(0.1, 4.0), texture_gain(None, 4.0)
        (0.5, 1.0, 0.3, 1.0)
    """
    if target is None or image is None or not np.isfinite(target) or not image > 0:
        return 1.0
    return float(np.clip(target / image, floor, 1.0))
