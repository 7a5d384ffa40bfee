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

With ``--swapped DIR ...``, the reading noise of swaps that ``bench_video.py --stability --out DIR`` wrote
(``DIR/<source>/swapped_<clip>`` or ``DIR/swapped_<clip>``) against their template's, which tells a detector that reads
the new face less steadily from a new face that moves: every ``--every``-th frame, whose picture differs from the
frame before it, is read as it is and moved by three fixed sub-pixel offsets ((0.5, 0), (0, 0.5), (0.33, 0.33) px);
nothing in it moves but by those offsets, so what the 68 points move beyond them (per outer-eye-corner distance,
split into the whole face's mean and the points' own movement around it, and by the stability benchmark's parts) is
the reading's noise. A swap whose noise is twice its template's reads above the jitter bar with no motion of its own.

    python benchmarks/bench_detector_texture.py --swapped /tmp/video --clips liveportrait__s32.mp4 --seconds 3
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
    ap.add_argument("--swapped", nargs="+", type=Path, default=None, help="folders of bench_video.py's swapped clips")
    ap.add_argument("--every", type=int, default=5, help="with --swapped: read every N-th frame")
    args = ap.parse_args(argv)
    if args.swapped:
        return reading_noise_rows(args)

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


#: The fixed sub-pixel offsets (x, y) a frame is read at besides its own place, for ``--swapped``.
OFFSETS = ((0.5, 0.0), (0.0, 0.5), (0.33, 0.33))


def reading_noise(frames: list[np.ndarray], analyzer, every: int) -> dict[str, float]:
    """How far the main face's 68 points (MediaPipe's, as the stability benchmark reads them) move beyond a sub-pixel
    shift of the whole frame, per outer-eye-corner distance: ``face`` the mean over the points of that movement (the
    whole face read elsewhere), ``shape`` the points' own movement around that mean, and each part of
    :data:`saswap.eval.video_stability.JITTER_PARTS` (the points' whole movement). Every ``every``-th frame that is
    no repeat of the one before it (a frame-rate conversion's repeats would count twice); NaN where no face is found."""
    from saswap.eval.video_stability import JITTER_PARTS

    def main_face(image):
        faces = analyzer(image)
        return max(faces, key=lambda f: f.area) if faces else None

    readings: dict[str, list[float]] = {"face": [], "shape": [], **{k: [] for k in JITTER_PARTS}}
    for i in range(0, len(frames), every):
        if i and np.abs(frames[i].astype(np.int16) - frames[i - 1]).mean() < 0.5:
            continue
        at = main_face(frames[i])
        if at is None:
            continue
        eye = max(at.eye_distance, 1.0)
        for dx, dy in OFFSETS:
            moved = main_face(shift(frames[i], dx, dy))
            if moved is None:
                continue
            d = (moved.landmarks_68[:, :2] - at.landmarks_68[:, :2] - [dx, dy]) / eye
            mean = d.mean(0)
            readings["face"].append(float(np.linalg.norm(mean)))
            readings["shape"].append(float(np.linalg.norm(d - mean, axis=1).mean()))
            for name, part in JITTER_PARTS.items():
                readings[name].append(float(np.linalg.norm(d[part], axis=1).mean()))
    return {k: float(np.mean(v)) if v else float("nan") for k, v in readings.items()}


def reading_noise_rows(args) -> dict:
    """``--swapped``: each swap's reading noise over its template's, per clip and source folder."""
    from saswap.face import FaceAnalyzer
    from saswap.videoio import VideoReader

    def read(path: Path) -> list[np.ndarray]:
        with VideoReader(path, end=args.seconds) as reader:
            return [frame.image for frame in reader]

    rows = {}
    with FaceAnalyzer() as analyzer:
        for name in args.clips:
            template = reading_noise(read(DATA / "videos" / name), analyzer, args.every)
            named = f"swapped_{name}"
            places = [p for folder in args.swapped for p in (folder / named, *folder.glob(f"*/{named}"))]
            swaps = sorted(p for p in places if p.is_file())
            for path in swaps:
                swap = reading_noise(read(path), analyzer, args.every)
                row = {"template": {k: round(v, 5) for k, v in template.items()}}
                row["swap_over_template"] = {k: round(swap[k] / max(template[k], 1e-9), 3) for k in template}
                rows[f"{path.parent.name}:{name}"] = row
                print(f"{path.parent.name}:{name}", json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
