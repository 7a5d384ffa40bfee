"""Same-light swaps: one person's face into another's in the same photo, where the right tone is known.

Usage:  python benchmarks/bench_same_light.py [--data ../shared/data] [--out benchmarks/outputs/same_light]
            [--config '{"membrane": false}'] [--max-faces 4]

In a swap between two photos, how the new face should be lit is a judgement (the source's light must be
removed, the target's applied). Between two faces of one photo it is not: the camera, the light and the
white balance are shared, so every difference of tone, every colour step at the border and every blotch
the output shows beyond the target's own is the method's. Each group photo of :data:`PHOTOS` (one shot; collages
left out) with two or more faces of eye-corner distance >= 30 px gives pairs: each of its largest ``--max-faces`` faces into each other
one, one face swapped at a time. A face turned further than the pipeline accepts as a source
(``SOURCE_TURN_LIMIT``, 45 degrees: ``prepare_source`` refuses it unless forced) is a target only; the summary lists
those under ``sources_refused``.

Per pair, with the benchmark's measures (:mod:`saswap.eval.swap_metrics`): skin tone ΔE against the target
face, the colour step at the upper face border over the target's own, seam and chroma mottling over the
target's, and identity (dlib: closer to the source than to the target; the source face is another person in
the same photo). Writes ``same_light.json`` and a contact sheet (target crops before and after) to ``--out``
(git-ignored: the photos are not ours to redistribute). Copy the printed summary into ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

#: Group photos of ``../shared/data/images`` taken in one shot (one camera, one light); collages of separate
#: photos (``dlib__bald_guys``, ``3ddfav2__emma``, ``3ddfav2__trump_hillary``, ``face_recognition__two_people``)
#: are left out: their faces do not share a light.
PHOTOS = [
    "insightface__t1.jpg", "deepface__couple.jpg", "deepface__selfie-many-people.jpg", "dlib__2008_002506.jpg",
    "face_recognition__kit_with_rose.jpg", "face_recognition__obama_and_biden.jpg", "facenet-pytorch__multiface.jpg",
    "gfpgan__00.jpg", "gfpgan__10045.png", "insightface__7242.jpg", "simswap__multi_people.jpg",
]  # fmt: skip


def _pairs(pipe, images: Path, photos: list[str], max_faces: int, min_eye: float):
    """(file, image, faces, their indices among all the photo's faces) for every photo with two or more usable
    faces, largest first."""
    from saswap.io import load_image

    for name in photos:
        path = images / name
        image = load_image(path)
        every = pipe.analyzer(image)
        chosen = [k for k, f in enumerate(every) if f.eye_distance >= min_eye][:max_faces]
        if len(chosen) >= 2:
            yield path.name, image, [every[k] for k in chosen], chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "outputs" / "same_light"))
    parser.add_argument(
        "--config", default=None, help="JSON keyword arguments of the geometric engine and the compositor"
    )
    parser.add_argument("--max-faces", type=int, default=4, help="the largest faces of each photo taken")
    parser.add_argument("--min-eye", type=float, default=30.0, help="smallest eye-corner distance of a face, pixels")
    args = parser.parse_args()

    from saswap import SaSwapPipeline
    from saswap.compose import Compositor
    from saswap.engines.geometric import GeometricEngine
    from saswap.eval.sheets import fit_cell
    from saswap.eval.swap_benchmark import output_face
    from saswap.eval.swap_metrics import boundary_colour_step, chroma_mottling, seam_energy, skin_tone_difference
    from saswap.face.identity import DlibEmbedder
    from saswap.io import save_image
    from saswap.pipelines.image import SOURCE_TURN_LIMIT, source_turn

    engine_kw, compose_kw = Compositor.split_config(json.loads(args.config) if args.config else {})
    pipe = SaSwapPipeline(GeometricEngine(**engine_kw), compositor=Compositor(**compose_kw))
    judge = DlibEmbedder()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)

    rows, sheet, refused = [], [], []
    for name, image, faces, index in _pairs(pipe, Path(args.data) / "images", PHOTOS, args.max_faces, args.min_eye):
        embeddings = [judge.raw(image, f) for f in faces]
        for i in range(len(faces)):
            if source_turn(faces[i]) > SOURCE_TURN_LIMIT:  # the pipeline refuses such a source (unless forced)
                refused.append({"photo": name, "source": i, "turn": round(source_turn(faces[i]), 1)})
                continue
            source = pipe.engine.prepare_source(image, faces[i])
            for j, target_face in enumerate(faces):
                if i == j:
                    continue
                out = pipe(source, image, face_index=index[j])
                face = output_face(pipe.analyzer, out.image, target_face)
                rec = {"photo": name, "source": i, "target": j, "target_yaw": round(float(target_face.pose[0]), 1)}
                if face is None:
                    rows.append({**rec, "found": False})
                    continue
                emb = judge.raw(out.image, face)
                mask = out.masks[0]
                rec.update(
                    found=True,
                    closer_to_source=bool(np.linalg.norm(emb - embeddings[i]) < np.linalg.norm(emb - embeddings[j])),
                    skin_tone_de=skin_tone_difference(out.image, face, image, target_face),
                    boundary_step=boundary_colour_step(out.image, face) - boundary_colour_step(image, target_face),
                    seam_ratio=seam_energy(out.image, mask) / max(seam_energy(image, mask), 1e-6),
                    mottling_ratio=chroma_mottling(out.image, face) / max(chroma_mottling(image, target_face), 1e-6),
                )
                rows.append(rec)
                x1, y1, x2, y2 = target_face.box
                m = int(0.4 * max(x2 - x1, y2 - y1))
                box = (slice(max(0, int(y1) - m), int(y2) + m), slice(max(0, int(x1) - m), int(x2) + m))
                sheet.append(np.concatenate([fit_cell(image[box], 160), fit_cell(out.image[box], 160)], 1))
        print(name, len(faces), "faces", flush=True)

    done = [r for r in rows if r.get("found")]

    def stats(key):
        v = np.array([r[key] for r in done], np.float64)
        return {"median": round(float(np.median(v)), 3), "max": round(float(v.max()), 3)}

    summary = {
        "photos": len({r["photo"] for r in rows}),
        "pairs": len(rows),
        "sources_refused": refused,
        "found": round(len(done) / max(len(rows), 1), 3),
        "closer_to_source": round(float(np.mean([r["closer_to_source"] for r in done])), 3),
        "skin_tone_de": stats("skin_tone_de"),
        "skin_tone_de_over_5": round(float(np.mean([r["skin_tone_de"] > 5 for r in done])), 3),
        "boundary_step_excess": stats("boundary_step"),
        "seam_ratio": stats("seam_ratio"),
        "mottling_ratio": stats("mottling_ratio"),
        "config": json.loads(args.config) if args.config else {},
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    (out_dir / "same_light.json").write_text(json.dumps({"summary": summary, "pairs": rows}, indent=1))
    if sheet:
        cols = 6
        sheet += [np.zeros_like(sheet[0])] * (-len(sheet) % cols)
        grid = np.concatenate([np.concatenate(sheet[k : k + cols], 1) for k in range(0, len(sheet), cols)], 0)
        save_image(grid, out_dir / "same_light_sheet.png")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
