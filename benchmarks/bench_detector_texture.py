"""How much a landmark detector's jitter depends on the face's texture alone: a control for the stability benchmark.

Usage:  python benchmarks/bench_detector_texture.py [--clips liveportrait__d5.mp4 ...] [--seconds 3] [--json out.json]
        python benchmarks/bench_detector_texture.py --shake 0.1 0.2 0.4 [--dlib]   # what the bar means in pixels

The stability benchmark (``bench_video.py --stability``) divides the output's landmark jitter, as MediaPipe's mesh
reads it, by the template's. This script changes nothing in a template's geometry: it only sharpens its frames
(unsharp mask, sigma 2 px, amounts 1 and 2) or lays a fixed grain over them (Gaussian, 3 levels, the same pattern in
every frame), and reads the jitter of the result over the template's. A ratio above 1 here is the detector reading a
more textured face less steadily, not motion. Each row also gives the sharpened frames' skin texture over the
template's (:func:`saswap.face.blur.fine_texture`, median over every 10th frame), the figure the stability benchmark
reports for a swap as ``texture_ratio``.

With ``--shake``, the other calibration: each frame of the template shifted by a random sub-pixel offset (Gaussian,
the given sigmas in pixels, a fixed seed), and for comparison all frames by the same quarter pixel (the same bilinear
resampling, no jitter). Read by MediaPipe and, with ``--dlib``, by dlib's 68 points (the stability benchmark's
independent reading, :class:`saswap.eval.video_stability.DlibLandmarks`): how much random motion of the whole face
reads as the 1.1x jitter bar on each clip.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SASWAP_TEST_DATA", ROOT.parent / "shared" / "data"))
#: The steady talking heads (low template jitter) on which the swaps' jitter ratios exceeded 1.1 at stop 34, and two
#: moving ones.
CLIPS = ["liveportrait__d5.mp4", "liveportrait__d7.mp4", "liveportrait__d18.mp4", "liveportrait__d10.mp4", "video-retalking__2.mp4"]


def sharpen(image: np.ndarray, amount: float, sigma: float = 2.0) -> np.ndarray:
    """An unsharp mask: ``image + amount * (image - its Gaussian low-pass of sigma px)``, RGB uint8 in and out."""
    x = image.astype(np.float32)
    return np.clip(x + amount * (x - cv2.GaussianBlur(x, (0, 0), sigma)) + 0.5, 0, 255).astype(np.uint8)


def shift(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``image`` moved by (dx, dy) pixels, bilinearly (the border reflected)."""
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(image, m, image.shape[1::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", nargs="+", default=CLIPS)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--shake", nargs="+", type=float, default=None, help="sigmas (px) of random whole-frame shifts")
    ap.add_argument("--dlib", action="store_true", help="with --shake: also read by dlib's 68 points")
    args = ap.parse_args(argv)

    from saswap.eval.video_stability import DlibLandmarks, _jitter, _texture_ratio, face_track, point_jitter
    from saswap.face import FaceAnalyzer
    from saswap.videoio import VideoReader

    rows = {}
    with FaceAnalyzer() as analyzer:
        for name in args.clips:
            with VideoReader(DATA / "videos" / name, end=args.seconds) as reader:
                frames = [frame.image for frame in reader]
            track = face_track(frames, analyzer)
            base = _jitter(track)
            row = {"jitter_template": round(base, 5)}
            if args.shake:
                dlib = DlibLandmarks() if args.dlib else None
                base_dlib = point_jitter(dlib.track(frames)) if dlib else None
                rng = np.random.default_rng(0)
                variants = {"shift_fixed_0.25": [shift(f, 0.25, 0.25) for f in frames]}
                for sigma in args.shake:
                    offsets = rng.normal(0.0, sigma, (len(frames), 2))
                    variants[f"shake_{sigma:g}"] = [shift(f, dx, dy) for f, (dx, dy) in zip(frames, offsets)]
                for key, changed in variants.items():
                    row[f"{key}_jitter_ratio"] = round(_jitter(face_track(changed, analyzer)) / base, 3)
                    if dlib:
                        row[f"{key}_jitter_ratio_dlib"] = round(point_jitter(dlib.track(changed)) / base_dlib, 3)
            else:
                grain = np.random.default_rng(0).normal(0.0, 3.0, frames[0].shape[:2])[..., None]
                variants = {
                    "sharpen_1": [sharpen(f, 1.0) for f in frames],
                    "sharpen_2": [sharpen(f, 2.0) for f in frames],
                    "static_grain_3": [np.clip(f + grain + 0.5, 0, 255).astype(np.uint8) for f in frames],
                }
                for key, changed in variants.items():
                    row[f"{key}_jitter_ratio"] = round(_jitter(face_track(changed, analyzer)) / base, 3)
                    row[f"{key}_texture_ratio"] = round(_texture_ratio(frames, changed, track), 3)
            rows[name] = row
            print(name, json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
