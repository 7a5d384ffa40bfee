"""Derive the rigid pose template of MediaPipe's mesh: the mean position of expression-stable vertices
(forehead, brows' inner ends, nose bridge and tip, eye corners, temples) over near-frontal photos, in
the face's own frame, in units of the outer-eye-corner distance. The result is
``saswap.face.geometry.POSE_TEMPLATE``.

Usage:  python tools/derive_pose_template.py ../shared/data/images
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from derive_ibug68 import frontal_faces, normalised_frame  # noqa: E402


def main(folder: str) -> None:
    from saswap.face.geometry import POSE_VERTICES

    frames = []
    for _, face in frontal_faces(folder):
        frames.append(normalised_frame(face)[list(POSE_VERTICES)])
    mean = np.mean(frames, axis=0)
    mean -= mean.mean(0)
    print(f"{len(frames)} photos")
    print("POSE_TEMPLATE = np.array([")
    for row in mean:
        print(f"    [{row[0]:.4f}, {row[1]:.4f}, {row[2]:.4f}],")
    print("])")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/images")
