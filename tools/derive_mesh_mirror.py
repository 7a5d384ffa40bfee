"""Derive the left-right mirror table of MediaPipe's 468-vertex face mesh from data.

Each vertex's mirror is the vertex nearest to its reflection across the face's mid-plane, in the
mean of near-frontal meshes expressed in the face's own frame (see ``tools/derive_ibug68.py``).
A pair is kept only where the relation is mutual; the result is
``saswap.face.topology.MESH_MIRROR``.

Usage:  python tools/derive_mesh_mirror.py ../shared/data/images
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from derive_ibug68 import frontal_faces, normalised_frame  # noqa: E402


def main(folder: str) -> None:
    frames = []
    for _, face in frontal_faces(folder):
        frames.append(normalised_frame(face))
    mean = np.mean(frames, axis=0)
    mean[:, 0] -= np.median(mean[:, 0])
    dist = np.linalg.norm((mean * [-1, 1, 1])[:, None] - mean[None], axis=2)
    mirror = dist.argmin(axis=1)
    mutual = mirror[mirror] == np.arange(468)
    print(f"{len(frames)} photos; mutual pairs {mutual.sum()} of 468; median residual {np.median(dist.min(1)):.4f}")
    mirror = np.where(mutual, mirror, np.arange(468))
    print("MESH_MIRROR = (" + ", ".join(str(int(i)) for i in mirror) + ")")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/images")
