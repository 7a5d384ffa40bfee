"""How far may a source photo be turned before the swap breaks? (first-hour issue, item 4)

Every single-face photo of the shared data and frames of the two videos with turning heads are used as
sources, each swapped into the same frontal targets. Per source: its head pose as the analyzer reads it,
the share of targets whose output dlib (the independent judge) finds closer to the source than to the
target, and the mean margin. Sources are split by file name hash into a tuning half (the limit is chosen
there) and a held-out half (the limit is checked there). A contact sheet sorted by |yaw| shows the
outputs.

    python benchmarks/bench_source_pose.py [--out benchmarks/outputs/source_pose]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SASWAP_TEST_DATA", ROOT.parent / "shared" / "data"))
TARGETS = (
    "face_recognition__obama.jpg", "sadtalker__happy.png", "insightface__1561.jpg", "gfpgan__Adele_crop.png",
    "sberswap__beckham.jpg", "facenet-pytorch__shea_whigham_1.jpg",
)  # fmt: skip
VIDEOS = ("face_recognition__short_hamilton_clip.mp4", "facenet-pytorch__video.mp4")
BINS = (0, 15, 25, 35, 45, 55, 90)


def _crop(img: np.ndarray, box, margin: float = 0.5) -> np.ndarray:
    x1, y1, x2, y2 = box
    m = int(margin * max(x2 - x1, y2 - y1))
    return img[max(0, int(y1) - m) : int(y2) + m, max(0, int(x1) - m) : int(x2) + m]


def photos(skip: tuple[str, ...]) -> Iterator[tuple[str, np.ndarray]]:
    """(file name, image) for every readable photo of the shared data, but those named in ``skip``."""
    from saswap.io import load_image

    for path in sorted((DATA / "images").iterdir()):
        if path.name in skip:
            continue
        try:
            yield path.name, load_image(path)
        except Exception:
            continue


def sources(pipe) -> list[tuple[str, np.ndarray]]:
    from saswap.videoio import VideoReader

    found = [(name, img) for name, img in photos(TARGETS) if len(pipe.analyzer(img)) == 1]
    for name in VIDEOS:  # frames with one face, spread over the yaw range
        frames = []
        with VideoReader(DATA / "videos" / name) as reader:
            for frame in reader:
                if frame.index % 4:
                    continue
                faces = pipe.analyzer(frame.image)
                if len(faces) == 1:
                    frames.append((abs(faces[0].pose[0]), frame.index, frame.image))
        frames.sort(key=lambda t: t[0])
        for k in np.linspace(0, len(frames) - 1, min(12, len(frames))).round().astype(int):
            _, index, image = frames[k]
            found.append((f"{name}#{index}", image))
    return found


def split_of(name: str) -> str:
    """The half a picture belongs to ("tune" or "held-out"), by a hash of its file's name: a clip's frames
    (``NAME#FRAME``) and a photo's faces (``NAME@FACE``) go together."""
    digest = hashlib.sha256(name.split("#")[0].split("@")[0].encode()).hexdigest()
    return "tune" if int(digest, 16) % 2 == 0 else "held-out"


def start(description: str, default_out: Path):
    """The command line (``--out``, its folder made), the geometric pipeline, and dlib, the judge."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=Path, default=default_out)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    from saswap import SaSwapPipeline
    from saswap.face.identity import DlibEmbedder

    return args, SaSwapPipeline.from_pretrained("saswap-geometric"), DlibEmbedder()


def main() -> None:
    args, pipe, judge = start(__doc__.splitlines()[0], ROOT / "benchmarks" / "outputs" / "source_pose")

    from saswap.eval.sheets import fit_cell
    from saswap.io import load_image, save_image

    targets = [(t, load_image(DATA / "images" / t)) for t in TARGETS]
    target_faces = [pipe.analyzer(img)[0] for _, img in targets]
    target_embeds = [judge(img, f) for (_, img), f in zip(targets, target_faces)]
    rows, sheet = [], []
    for name, img in sources(pipe):
        prepared, face = pipe.prepare_source(img)
        yaw, pitch, _ = face.pose
        src_embed = judge(img, face)
        closer, margins, crops = [], [], [fit_cell(_crop(img, face.box), 128)]
        for (tname, timg), tface, temb in zip(targets, target_faces, target_embeds):
            out = pipe(prepared, timg)
            oface = pipe.analyzer(out.image)
            if not oface:
                closer.append(False)
                margins.append(-1.0)
                continue
            oemb = judge(out.image, oface[0])
            d_src, d_tgt = float(np.linalg.norm(oemb - src_embed)), float(np.linalg.norm(oemb - temb))
            closer.append(d_src < d_tgt)
            margins.append(d_tgt - d_src)
            crops.append(fit_cell(_crop(out.image, tface.box), 128))
        split = split_of(name)
        rows.append({"source": name, "yaw": round(float(yaw), 1), "pitch": round(float(pitch), 1),
                     "closer": float(np.mean(closer)), "margin": float(np.mean(margins)), "split": split})  # fmt: skip
        sheet.append((abs(yaw), np.concatenate(crops + [np.full((128, 128, 3), 24, np.uint8)] * (1 + len(targets) - len(crops)), 1)))
        print(f"{name:60s} yaw {yaw:+6.1f}  closer {np.mean(closer):.2f}  margin {np.mean(margins):+.3f}  [{split}]")
    sheet.sort(key=lambda t: t[0])
    for part in range(0, len(sheet), 24):
        save_image(np.concatenate([r for _, r in sheet[part : part + 24]], 0), args.out / f"sheet_{part // 24}.png")
    summary = {"targets": list(TARGETS), "sources": rows, "bins": {}}
    for split in ("tune", "held-out", "all"):
        chosen = [r for r in rows if split == "all" or r["split"] == split]
        for lo, hi in zip(BINS[:-1], BINS[1:]):
            in_bin = [r for r in chosen if lo <= abs(r["yaw"]) < hi]
            if in_bin:
                summary["bins"].setdefault(split, {})[f"{lo}-{hi}"] = {
                    "sources": len(in_bin),
                    "closer": round(float(np.mean([r["closer"] for r in in_bin])), 3),
                    "margin": round(float(np.mean([r["margin"] for r in in_bin])), 3),
                }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary["bins"], indent=1))


if __name__ == "__main__":
    main()
