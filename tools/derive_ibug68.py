"""Derive the 68-point iBUG subset of MediaPipe's face mesh from data.

For near-frontal photos, runs dlib's 68-point predictor (the iBUG 300-W annotation) and SaSwap's
face mesh, and picks for each iBUG point the mesh vertex with the smallest median distance
(normalised by the outer-eye-corner distance). The result is the index table
``saswap.face.landmarks.IBUG68_FROM_MESH``; dlib's model is used only here, offline.

Usage:  python tools/derive_ibug68.py ../shared/data/images
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

_IBUG_MIRROR = (
    [(i, 16 - i) for i in range(8)]
    + [(17 + i, 26 - i) for i in range(5)]
    + [(31, 35), (32, 34), (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]
    + [(48, 54), (49, 53), (50, 52), (59, 55), (58, 56), (60, 64), (61, 63), (67, 65)]
)


def _face_frame(mesh: np.ndarray) -> np.ndarray:
    """Mesh vertices in the face's own frame (origin at the centroid, axes of pose_from_mesh)."""
    from saswap.face.geometry import MESH_SYMMETRIC_PAIRS

    p = mesh.astype(np.float64) * [1.0, -1.0, -1.0]
    x = sum(p[j] - p[i] for i, j in MESH_SYMMETRIC_PAIRS)
    x /= np.linalg.norm(x)
    y = p[168] - p[152]
    y -= x * (y @ x)
    y /= np.linalg.norm(y)
    rot = np.stack([x, y, np.cross(x, y)])
    return (p - p.mean(0)) @ rot.T


def normalised_frame(face) -> np.ndarray:
    """The face's 468 mesh vertices in its own frame, in units of the outer-eye-corner distance."""
    mesh = face.landmarks[:468]
    return _face_frame(mesh) / np.linalg.norm(mesh[33, :2] - mesh[263, :2])


def frontal_faces(folder: str, analyzer=None):
    """(image, face) of every photo in ``folder`` with exactly one near-frontal face."""
    from saswap.face import FaceAnalyzer
    from saswap.io import load_image

    analyzer = analyzer or FaceAnalyzer()
    for path in sorted(Path(folder).glob("*")):
        try:
            img = load_image(path)
        except Exception:
            continue
        faces = analyzer(img)
        if len(faces) == 1 and abs(faces[0].pose[0]) < 12 and abs(faces[0].pose[1]) < 15:
            yield img, faces[0]


def main(folder: str) -> None:
    import dlib

    models = Path(importlib.util.find_spec("face_recognition_models").origin).parent / "models"
    predictor = dlib.shape_predictor(str(models / "shape_predictor_68_face_landmarks.dat"))
    dists, frames = [], []
    for img, face in frontal_faces(folder):
        x1, y1, x2, y2 = face.box
        shape = predictor(img, dlib.rectangle(int(x1), int(y1), int(x2), int(y2)))
        ref = np.array([(p.x, p.y) for p in shape.parts()], np.float64)
        iod = np.linalg.norm(ref[36] - ref[45])
        mesh = face.landmarks[:468, :2]
        dists.append(np.linalg.norm(ref[:, None] - mesh[None], axis=2) / iod)
        frames.append(_face_frame(face.landmarks[:468]) / iod)
    d = np.median(np.stack(dists), axis=0)
    # Mirror table of the mesh: the vertex nearest to each vertex's reflection in the mean face frame.
    mean = np.mean(frames, axis=0)
    mirror = np.linalg.norm((mean * [-1, 1, 1])[:, None] - mean[None], axis=2).argmin(axis=1)
    idx = d.argmin(axis=1)
    # Left-right pairs of the 68-point scheme get mirrored vertices (the pair's summed error is minimal).
    for a, b in _IBUG_MIRROR:
        cost = d[a] + d[b, mirror]
        va = int(cost.argmin())
        idx[a], idx[b] = va, mirror[va]
    print(f"{len(dists)} photos; median error per point: {np.round(d[np.arange(68), idx], 3).tolist()}")
    print("IBUG68_FROM_MESH = (" + ", ".join(str(i) for i in idx) + ")")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/images")
