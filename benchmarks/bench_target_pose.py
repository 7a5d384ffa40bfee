"""How far may a target face be turned before the swap stops carrying the source? (the profile-target warning)

The mirror image of ``bench_source_pose.py``: the same six frontal faces are now the *sources*, and the *targets* are
the faces of 96 px or more in every photo of the shared data (but those six) and in frames of the clips with turning
heads. Per target: its head pose as the analyzer reads it and, over the six sources, the share of outputs that dlib
(the independent judge) finds closer to the source than to the target, the mean margin (distance to the target minus
distance to the source), the skin tone's distance from the target's (ΔE) and the colour step at the face's border over
the target's own. Targets are split by a hash of their file's name (a clip's frames and a photo's faces stay together)
into a tuning half and a held-out half. Contact sheets sorted by |yaw| show each target and its six outputs.

    python benchmarks/bench_target_pose.py [--out benchmarks/outputs/target_pose]
"""

from __future__ import annotations

import json

import numpy as np

# run as a script: benchmarks/ is on the path
from bench_source_pose import BINS, DATA, ROOT, _crop, photos, split_of, start
from bench_source_pose import TARGETS as SOURCES  # the same six frontal faces, in the other role

#: clips whose heads turn (a head turn, a stage, a crowd): faces in their frames, spread over yaw
VIDEOS = ("liveportrait__s32.mp4", "face_recognition__short_hamilton_clip.mp4", "facenet-pytorch__video.mp4")
FRAMES_PER_VIDEO = 16
#: the smallest face judged (box width, pixels): dlib's 150-px chip from fewer pixels reads blur, not identity
MIN_FACE = 96


def _faces(pipe, image: np.ndarray) -> list[tuple[int, object]]:
    """(face index as the pipeline numbers them, face) for the faces big enough to judge."""
    faces = pipe.target_analyzer.faces(image, turn="auto")
    return [(k, f) for k, f in enumerate(faces) if f.box[2] - f.box[0] >= MIN_FACE]


def targets(pipe) -> list[tuple[str, np.ndarray, int, object]]:
    """(name, image, face index, face) for every face of :data:`MIN_FACE` px or more in the photos but the sources,
    and for faces in frames of :data:`VIDEOS` (:data:`FRAMES_PER_VIDEO` per clip, spread over their yaw)."""
    from saswap.videoio import VideoReader

    found = []
    for name, img in photos(SOURCES):
        faces = _faces(pipe, img)
        for k, face in faces:
            found.append((name if len(faces) == 1 else f"{name}@{k}", img, k, face))
    for name in VIDEOS:
        frames = []
        with VideoReader(DATA / "videos" / name) as reader:
            for frame in reader:
                if frame.index % 6 == 0:
                    for k, face in _faces(pipe, frame.image):
                        frames.append((abs(float(face.pose[0])), frame.index, frame.image, k, face))
        frames.sort(key=lambda t: t[0])
        for j in sorted(set(np.linspace(0, len(frames) - 1, min(FRAMES_PER_VIDEO, len(frames))).round().astype(int))):
            _, index, image, k, face = frames[j]
            found.append((f"{name}#{index}@{k}", image, k, face))
    return found


def summarise(rows: list[dict]) -> dict:
    """Per split and |yaw| bin: targets, closer share, mean margin, median tone ΔE, median border step excess."""
    bins: dict = {}
    keys = ("closer", "margin", "tone_de", "border_excess", "upper_excess")
    for split in ("tune", "held-out", "all"):
        chosen = [r for r in rows if split == "all" or r["split"] == split]
        for lo, hi in zip(BINS[:-1], BINS[1:], strict=True):
            in_bin = [r for r in chosen if lo <= abs(r["yaw"]) < hi]
            if not in_bin:
                continue
            entry = {"targets": len(in_bin)}
            for key in keys:
                values = [r[key] for r in in_bin if r.get(key) is not None and np.isfinite(r[key])]
                reduce = np.mean if key in ("closer", "margin") else np.median
                entry[key] = round(float(reduce(values)), 3) if values else None
            bins.setdefault(split, {})[f"{lo}-{hi}"] = entry
    return bins


def main() -> None:
    args, pipe, judge = start(__doc__.splitlines()[0], ROOT / "benchmarks" / "outputs" / "target_pose")

    from saswap.eval.sheets import fit_cell
    from saswap.eval.swap_benchmark import output_face
    from saswap.eval.swap_metrics import boundary_colour_step, skin_tone_difference
    from saswap.io import load_image, save_image

    sources = []
    for name in SOURCES:
        img = load_image(DATA / "images" / name)
        prepared, face = pipe.prepare_source(img)
        sources.append((name, prepared, judge(img, face)))
    rows, sheet = [], []
    cell = 128
    for name, img, index, face in targets(pipe):
        yaw, pitch, _ = (float(v) for v in face.pose)
        t_embed = judge(img, face)
        t_border = boundary_colour_step(img, face)
        t_upper = boundary_colour_step(img, face, upper=True)
        closer, margins, tones, borders, uppers = [], [], [], [], []
        crops = [fit_cell(_crop(img, face.box), cell)]
        for _, prepared, s_embed in sources:
            out = pipe(prepared, img, face_index=index)
            o_face = output_face(pipe.analyzer, out.image, face)
            crops.append(fit_cell(_crop(out.image, face.box), cell))
            if o_face is None:  # the swapped face is not found where the target's was: a failure
                closer.append(False)
                margins.append(-1.0)
                continue
            o_embed = judge(out.image, o_face)
            d_src, d_tgt = float(np.linalg.norm(o_embed - s_embed)), float(np.linalg.norm(o_embed - t_embed))
            closer.append(d_src < d_tgt)
            margins.append(d_tgt - d_src)
            tones.append(skin_tone_difference(out.image, o_face, img, face))
            borders.append(boundary_colour_step(out.image, o_face) - t_border)
            uppers.append(boundary_colour_step(out.image, o_face, upper=True) - t_upper)
        split = split_of(name)
        rows.append({
            "target": name, "yaw": round(yaw, 1), "pitch": round(pitch, 1), "split": split,
            "closer": float(np.mean(closer)), "margin": float(np.mean(margins)),
            "tone_de": float(np.median(tones)) if tones else None,
            "border_excess": float(np.median(borders)) if borders else None,
            "upper_excess": float(np.median(uppers)) if uppers else None,
        })  # fmt: skip
        sheet.append((abs(yaw), np.concatenate(crops, 1)))
        print(f"{name:50s} yaw {yaw:+6.1f} pitch {pitch:+6.1f}  closer {np.mean(closer):.2f}  "
              f"margin {np.mean(margins):+.3f}  [{split}]", flush=True)  # fmt: skip
    sheet.sort(key=lambda t: t[0])
    for part in range(0, len(sheet), 16):
        save_image(np.concatenate([r for _, r in sheet[part : part + 16]], 0), args.out / f"sheet_{part // 16}.png")
    summary = {"sources": list(SOURCES), "targets": rows, "bins": summarise(rows)}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary["bins"], indent=1))


if __name__ == "__main__":
    main()
