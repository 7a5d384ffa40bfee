"""Landmark conventions: the MediaPipe 478-point mesh, its 68-point iBUG-style subset, 5 keypoints.

``IBUG68_FROM_MESH`` was derived from data by ``tools/derive_ibug68.py``: for each point of the
iBUG 300-W 68-point scheme, the mesh vertex nearest (median over the 23 near-frontal photos found at
derivation time) to dlib's 68-point predictor, with mirrored points forced onto mirrored vertices.
The jaw points (0-16) are fixed mesh vertices, so on a turned face the far-side jaw points lie on
the hidden cheek rather than on the visible outline; the 3D prior's fit treats
them accordingly (see :mod:`saswap.face.morphable`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["IBUG68_FROM_MESH", "MESH_KEYPOINTS5", "mesh_to_68", "mesh_to_keypoints5", "IBUG68_GROUPS"]

# fmt: off
IBUG68_FROM_MESH: tuple[int, ...] = (
    127, 227, 147, 215, 172, 136, 149, 148, 152, 377, 378, 365, 397, 435, 376, 447, 356,  # jaw
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,  # brows
    168, 197, 195, 4, 240, 97, 2, 326, 460,  # nose
    33, 159, 158, 155, 153, 144, 382, 385, 386, 263, 373, 380,  # eyes
    61, 39, 37, 0, 267, 269, 291, 321, 314, 17, 84, 91,  # outer lips
    78, 82, 13, 312, 292, 317, 14, 87,  # inner lips
)
# fmt: on

#: Mesh vertices for the five keypoints: iris centres (subject's right, left), nose tip, mouth corners.
MESH_KEYPOINTS5: tuple[int, ...] = (468, 473, 1, 61, 291)

#: Index ranges of the 68-point scheme's parts.
IBUG68_GROUPS: dict[str, slice] = {
    "jaw": slice(0, 17),
    "brow_right": slice(17, 22),
    "brow_left": slice(22, 27),
    "nose": slice(27, 36),
    "eye_right": slice(36, 42),
    "eye_left": slice(42, 48),
    "mouth_outer": slice(48, 60),
    "mouth_inner": slice(60, 68),
}


def mesh_to_68(mesh: np.ndarray) -> np.ndarray:
    """The 68-point iBUG-style subset of a MediaPipe mesh.

    Args:
        mesh: shape (>=468, D), D >= 2.

    Returns:
        shape (68, 2), float32.

    Example:
        >>> mesh_to_68(np.zeros((478, 3))).shape
        (68, 2)
    """
    mesh = np.asarray(mesh)
    if mesh.ndim != 2 or mesh.shape[0] < 468 or mesh.shape[1] < 2:
        raise ValueError(f"expected a MediaPipe mesh of shape (468 or 478, 2 or 3), got {mesh.shape}")
    return mesh[list(IBUG68_FROM_MESH), :2].astype(np.float32)


def mesh_to_keypoints5(mesh: np.ndarray) -> np.ndarray:
    """Five ArcFace-order keypoints of a 478-point mesh (a 468-point mesh uses eye-corner midpoints).

    Example:
        >>> mesh_to_keypoints5(np.zeros((478, 3))).shape
        (5, 2)
    """
    mesh = np.asarray(mesh)
    if mesh.shape[0] >= 478:
        return mesh[list(MESH_KEYPOINTS5), :2].astype(np.float32)
    right = (mesh[33, :2] + mesh[133, :2]) / 2
    left = (mesh[263, :2] + mesh[362, :2]) / 2
    return np.stack([right, left, mesh[1, :2], mesh[61, :2], mesh[291, :2]]).astype(np.float32)
