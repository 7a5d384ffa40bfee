"""Occluders kept by real swaps (issue 13, part 1, at the swap level): the face parser against the colour rules.

Every held-out photo of the face parser's split (``HELDOUT_FILES``, none of them seen in its training; the
three real occluded photos aside) gets each held-out occluder kind (``HELDOUT_OCCLUDER_KINDS``: a fist in
the face's own skin tone, photographed face masks, microphones, cups) pasted over its largest face, and is
swapped with a source photo (two sources, alternating). An occluder is kept when fewer than 20% of its
pixels change by more than 20 levels (:func:`saswap.eval.parsing.occluder_kept`). The same cases run with
each occlusion method of the compose stage (``--methods``); the visible face changed by the swap (share of
the mesh's face region outside the occluder whose pixels change by more than 20 levels) shows that a method
does not keep occluders by leaving the face alone.

Then the three real occluded photos (a face mask, a microphone, a hand with a ball) are swapped, and a contact
sheet (``--out``) shows every method's output side by side for a look.

    python benchmarks/bench_occlusion.py [--methods rules parser] [--out benchmarks/outputs/occlusion] [--json F]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SASWAP_TEST_DATA", ROOT.parent / "shared" / "data"))
SOURCES = ("face_recognition__obama.jpg", "deepface__img41.jpg")


def _tone(image: np.ndarray, face) -> tuple[int, int, int]:
    from saswap.face.masks import face_region_masks

    x1, y1, x2, y2 = (int(v) for v in face.box)
    pad = int(0.3 * max(x2 - x1, y2 - y1))
    y0, x0 = max(0, y1 - pad), max(0, x1 - pad)
    crop = image[y0 : y2 + pad, x0 : x2 + pad]
    mesh = face.landmarks[:468, :2].astype(np.float64) - [x0, y0]
    ref = face_region_masks(mesh, crop.shape[:2])["reference"] > 0.5
    if ref.sum() < 20:
        return (200, 150, 120)
    return tuple(int(v) for v in np.median(crop[ref], axis=0))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--methods", nargs="+", default=["rules", "parser"], help="compositor occlusion settings (parser@0.7: with a threshold)"
    )
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "outputs" / "occlusion")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shape-strength", type=float, default=1.0)
    args = ap.parse_args(argv)

    import cv2

    from saswap import SaSwapPipeline
    from saswap.compose import Compositor
    from saswap.eval.occluder_kinds import HELDOUT_OCCLUDER_KINDS, OCCLUDER_KINDS
    from saswap.eval.parsing import occluder_kept, paste_on_face
    from saswap.eval.sheets import fit_cell
    from saswap.eval.swap_metrics import changed_share
    from saswap.face.masks import face_region_masks
    from saswap.io import load_image
    from saswap.training.parsing_data import HELDOUT_FILES, REAL_OCCLUDED_FILES

    photos = sorted(
        p for p in (DATA / "images").iterdir() if p.name in HELDOUT_FILES and p.name not in REAL_OCCLUDED_FILES
    )
    def compositor(method: str) -> Compositor:  # "parser@0.7": the parser with its threshold
        name, _, threshold = method.partition("@")
        return Compositor(occlusion=name, **({"occlusion_threshold": float(threshold)} if threshold else {}))

    pipes = {m: SaSwapPipeline.from_pretrained("saswap-geometric", compositor=compositor(m)) for m in args.methods}
    first = pipes[args.methods[0]]
    sources = {}
    for name in SOURCES:
        sources[name] = first.prepare_source(load_image(DATA / "images" / name))
    cases = []
    for i, path in enumerate(photos):
        image = load_image(path)
        faces = first.analyzer(image)
        if not faces:
            continue
        face = faces[0]
        tone = _tone(image, face)
        for k, kind in enumerate(HELDOUT_OCCLUDER_KINDS):
            rng = np.random.default_rng((args.seed, i, k))
            occluded, mask = paste_on_face(image, face, kind, rng, tone=tone)
            if mask.sum() < 50 or not first.analyzer(occluded):  # covered so much that no face is found: no swap
                continue
            region = face_region_masks(face.landmarks[:468, :2].astype(np.float64), image.shape[:2])["face"] > 0.5
            cases.append((path.name, kind, occluded, mask, region & ~mask, SOURCES[len(cases) % len(SOURCES)]))
    results: dict[str, dict] = {}
    for method, pipe in pipes.items():
        kept, changed, per_kind, fails = [], [], {}, []
        for name, kind, occluded, mask, visible, src in cases:
            prepared, _ = sources[src]
            out = pipe(prepared, occluded, shape_strength=args.shape_strength).image
            ok = occluder_kept(occluded, out, mask)
            kept.append(ok)
            per_kind.setdefault(kind, []).append(ok)
            changed.append(changed_share(occluded, out, visible) if visible.any() else 0.0)
            if not ok:
                fails.append(f"{name}:{kind}")
        results[method] = {
            "cases": len(cases),
            "occluders_kept": float(np.mean(kept)),
            "skin_toned_kept": float(np.mean([v for (n, k, *_), v in zip(cases, kept) if OCCLUDER_KINDS[k].skin])),
            "by_kind": {k: float(np.mean(v)) for k, v in per_kind.items()},
            "visible_face_changed_median": float(np.median(changed)),
            "failures": fails,
        }
        print(method, json.dumps(results[method]), flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in REAL_OCCLUDED_FILES:
        image = load_image(DATA / "images" / name)
        cells = [fit_cell(image, 256)]
        for pipe in pipes.values():
            cells.append(fit_cell(pipe(sources[SOURCES[0]][0], image).image, 256))
        rows.append(np.hstack(cells))
    for name, kind, occluded, mask, visible, src in cases[:: max(1, len(cases) // 8)][:8]:
        cells = [fit_cell(occluded, 256)] + [fit_cell(p(sources[src][0], occluded).image, 256) for p in pipes.values()]
        rows.append(np.hstack(cells))
    sheet = args.out / "occlusion_sheet.png"
    cv2.imwrite(str(sheet), np.vstack(rows)[..., ::-1])
    results["sheet"] = str(sheet)
    results["columns"] = ["target"] + list(args.methods)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
