"""Face alignment: similarity transforms to crop templates, and the inverse warp for paste-back.

Convention:
    A transform is a 2x3 float64 matrix ``M`` mapping image pixel coordinates to crop coordinates,
    ``crop_xy = M @ [x, y, 1]`` (OpenCV's ``warpAffine`` convention). Pixel centres are at integer
    coordinates.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from saswap.face.types import Face

__all__ = [
    "ARCFACE_TEMPLATE_112",
    "umeyama_similarity",
    "arcface_transform",
    "ffhq_transform",
    "invert_affine",
    "transform_points",
    "warp_face",
    "warp_back",
    "transform_face",
    "transform_scale",
]

#: ArcFace's five-point template for 112x112 crops (insightface ``arcface_dst``), ArcFace keypoint order.
ARCFACE_TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)


def umeyama_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) taking ``src`` onto ``dst``.

    Args:
        src: points, shape (N, D) with D = 2 or 3, N >= D.
        dst: points, shape (N, D).

    Returns:
        ``M``, shape (D, D + 1), with ``dst ~ src @ M[:, :D].T + M[:, D]``.

    Example:
        >>> src = np.array([[0, 0], [1, 0], [0, 1.]])
        >>> umeyama_similarity(src, 2 * src + 3).round(6)
        array([[2., 0., 3.],
               [0., 2., 3.]])
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] not in (2, 3) or src.shape[0] < src.shape[1]:
        raise ValueError(
            f"expected two point sets of the same shape (N, 2) or (N, 3), N >= 2 or 3, got {src.shape} and {dst.shape}"
        )
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s_c, d_c = src - mu_s, dst - mu_d
    var_s = (s_c**2).sum() / len(src)
    if var_s < 1e-12:
        raise ValueError("source points are all identical; cannot estimate a similarity")
    cov = d_c.T @ s_c / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(src.shape[1])
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1.0
    rot = u @ np.diag(d) @ vt
    scale = (sig * d).sum() / var_s
    t = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, t[:, None]])


def arcface_transform(keypoints: np.ndarray, size: int = 112) -> np.ndarray:
    """Similarity that maps five ArcFace-order keypoints onto the ArcFace template (scaled to ``size``).

    Example:
        >>> M = arcface_transform(ARCFACE_TEMPLATE_112)
        >>> np.allclose(M, [[1, 0, 0], [0, 1, 0]])
        True
    """
    return umeyama_similarity(np.asarray(keypoints, np.float64).reshape(5, 2), ARCFACE_TEMPLATE_112 * (size / 112.0))


def ffhq_transform(keypoints: np.ndarray, size: int = 256) -> np.ndarray:
    """FFHQ-style similarity from five ArcFace-order keypoints to a ``size`` x ``size`` crop.

    As in FFHQ's alignment: the crop's centre sits a little below the eyes' midpoint (a tenth of the
    eye-to-mouth vector), its side is the larger of 4x the eye distance and 3.6x the eye-to-mouth
    distance, and it is rotated so that the eye line is horizontal; the whole head fits with margin.

    Example:
        >>> kps = np.array([[100, 100], [140, 100], [120, 120], [105, 140], [135, 140.]])
        >>> M = ffhq_transform(kps, 256)
        >>> transform_points(M, kps)[:2, 1].round(2)  # both eyes on one row
        array([121.1, 121.1])
    """
    kps = np.asarray(keypoints, np.float64).reshape(5, 2)
    eye_avg = (kps[0] + kps[1]) / 2
    mouth_avg = (kps[3] + kps[4]) / 2
    eye_to_eye = kps[1] - kps[0]
    eye_to_mouth = mouth_avg - eye_avg
    x = eye_to_eye - np.array([-eye_to_mouth[1], eye_to_mouth[0]])
    x /= np.linalg.norm(x) + 1e-12
    x *= max(np.linalg.norm(eye_to_eye) * 2.0, np.linalg.norm(eye_to_mouth) * 1.8)
    y = np.array([-x[1], x[0]])
    c = eye_avg + eye_to_mouth * 0.1
    quad = np.stack([c - x - y, c - x + y, c + x + y, c + x - y])  # top-left, bottom-left, bottom-right, top-right
    target = np.array([[0, 0], [0, size], [size, size], [size, 0]], np.float64) - 0.5
    return umeyama_similarity(quad, target)


def invert_affine(M: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine transform.

    Example:
        >>> M = np.array([[2., 0, 3], [0, 2, 1]])
        >>> invert_affine(M).round(3) + 0.0
        array([[ 0.5,  0. , -1.5],
               [ 0. ,  0.5, -0.5]])
    """
    M = np.asarray(M, np.float64)
    if M.shape != (2, 3):
        raise ValueError(f"expected a 2x3 affine matrix, got shape {M.shape}")
    return cv2.invertAffineTransform(M)


def transform_points(M: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2x3 transform to points of shape (N, 2).

    Example:
        >>> transform_points(np.array([[1., 0, 5], [0, 1, 0]]), np.zeros((1, 2)))
        array([[5., 0.]])
    """
    pts = np.asarray(points, np.float64)
    return pts @ np.asarray(M, np.float64)[:, :2].T + np.asarray(M, np.float64)[:, 2]


def warp_face(
    image: np.ndarray, M: np.ndarray, size: int | tuple[int, int], border: int = cv2.BORDER_REFLECT101
) -> np.ndarray:
    """Crop the face with transform ``M`` into an image of ``size`` (int or (width, height)).

    Args:
        image: shape (H, W, C) or (H, W).
        M: image -> crop transform, shape (2, 3).
        size: crop side, or (width, height).
        border: OpenCV border mode for pixels outside the image.

    Returns:
        crop, shape (size, size, C).
    """
    w, h = (size, size) if isinstance(size, int) else size
    return cv2.warpAffine(image, np.asarray(M, np.float64), (int(w), int(h)), flags=cv2.INTER_LINEAR, borderMode=border)


def warp_back(crop: np.ndarray, M: np.ndarray, out_shape: tuple[int, int]) -> np.ndarray:
    """Warp a crop made with ``M`` back into image coordinates (zeros outside the crop).

    Args:
        crop: shape (h, w, C) or (h, w).
        M: the image -> crop transform that made the crop, shape (2, 3).
        out_shape: (H, W) of the image.

    Returns:
        array of shape (H, W, C) or (H, W).
    """
    H, W = out_shape
    return cv2.warpAffine(
        crop,
        np.asarray(M, np.float64),
        (int(W), int(H)),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


def transform_scale(M: np.ndarray) -> float:
    """The scale of a similarity (or the mean scale of an affine map), crop pixels per image pixel for a crop's
    ``M``.

    Example:
        >>> transform_scale(np.array([[2.0, 0, 5], [0, 2.0, 1]]))
        2.0
    """
    return float(np.sqrt(abs(np.linalg.det(np.asarray(M, np.float64)[:, :2]))))


def transform_face(face: Face, M: np.ndarray) -> Face:
    """The same face in the coordinates of a crop made with the similarity ``M``.

    Box, keypoints and landmarks are transformed; the landmarks' depth is scaled like x and y; the
    box becomes the bounding box of the transformed corners.
    """
    M = np.asarray(M, np.float64)
    scale = transform_scale(M)
    x1, y1, x2, y2 = face.box
    corners = transform_points(M, np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]]))
    landmarks = face.landmarks.astype(np.float64).copy()
    landmarks[:, :2] = transform_points(M, landmarks[:, :2])
    if landmarks.shape[1] > 2:
        landmarks[:, 2:] *= scale
    return replace(
        face,
        box=np.concatenate([corners.min(0), corners.max(0)]).astype(np.float32),
        keypoints=transform_points(M, face.keypoints).astype(np.float32),
        landmarks=landmarks.astype(np.float32),
        landmarks_68=transform_points(M, face.landmarks_68).astype(np.float32),
    )
