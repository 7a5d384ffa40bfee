"""Tone harmoniser (issue 13, part 2): a trained harmoniser on the held-out split, and its speed.

Usage:
    python benchmarks/bench_harmonizer.py [HARMONIZER] [--data ../shared/data] [--cache outputs/cache/face-parser]
        [--per-face 2] [--json out.json]

HARMONIZER is ``saswap-tone-harmonizer`` (the shipped weights, the default), a ``save_pretrained`` folder of a
:class:`saswap.models.ToneHarmonizer` or a ``.ckpt`` of this project's
:class:`saswap.training.harmonizer_system.ToneHarmonizerSystem` (exported to a temporary folder first).

Cases: every face of the held-out photos and videos (the face parser's ``HELDOUT_FILES``, never trained on),
``--per-face`` seeded draws each, made as in training (:func:`saswap.training.harmonize_data.harmonization_sample`
with the recipe's settings): the visible face's colour and light changed inside a jittered mask. Figures, each
the mean over the cases, before (the changed input) and after the harmoniser: ΔE76 of the face's skin against
the original per pixel and of its mean colour (tone), and the colour step across the mask's border minus the
original's own. Then the same faces unchanged (strength 0): how much the harmoniser changes a face that needs
nothing (skin ΔE, should stay near 0). Milliseconds per 256-px crop: batch 1, eager torch, this machine's threads.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def load_harmonizer(path: str | Path):
    from saswap.models import ToneHarmonizer

    if str(path).endswith(".ckpt"):
        from saswap.training.harmonizer_system import export_harmonizer

        folder = Path(tempfile.mkdtemp(prefix="harmonizer-")) / "harmonizer"
        export_harmonizer(path, folder)
        path = folder
    return ToneHarmonizer.from_pretrained(path).eval()


def measure(model, dataset, batch: int = 8) -> dict[str, float]:
    from saswap.training.harmonizer_system import border_colour_step, mean_delta_e, tone_delta_e

    sums: dict[str, list[float]] = {}
    for start in range(0, len(dataset), batch):
        items = [dataset[i] for i in range(start, min(start + batch, len(dataset)))]
        b = {k: torch.stack([it[k] for it in items]) for k in ("image", "mask", "target", "skin")}
        with torch.inference_mode():
            out = model.harmonize(b["image"], b["mask"])
        skin = (b["skin"].unsqueeze(1) & (b["mask"] > 0.5)).float()
        own = border_colour_step(b["target"], b["mask"])
        values = {
            "skin_de_input": mean_delta_e(b["image"], b["target"], skin),
            "skin_de": mean_delta_e(out, b["target"], skin),
            "tone_de_input": tone_delta_e(b["image"], b["target"], skin),
            "tone_de": tone_delta_e(out, b["target"], skin),
            "border_excess_input": border_colour_step(b["image"], b["mask"]) - own,
            "border_excess": border_colour_step(out, b["mask"]) - own,
        }
        for k, v in values.items():
            sums.setdefault(k, []).extend(float(x) for x in v if not torch.isnan(x))
    return {k: float(np.mean(v)) for k, v in sums.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("harmonizer", nargs="?", default="saswap-tone-harmonizer")
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--cache", default="outputs/cache/face-parser")
    ap.add_argument("--frames-per-video", type=int, default=24)
    ap.add_argument("--per-face", type=int, default=2)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    import yaml

    from saswap.training.harmonize_data import ToneHarmonizationDataset
    from saswap.training.parsing_data import face_records

    recipe = yaml.safe_load((Path(__file__).resolve().parents[1] / "recipes" / "tone-harmonizer.yaml").read_text())["data"]
    roots = [str(Path(args.data) / "images"), str(Path(args.data) / "videos")]
    held = face_records(roots, args.cache, recipe["cache_size"], args.frames_per_video, True)
    model = load_harmonizer(args.harmonizer)
    kw = {k: recipe[k] for k in ("max_dilate", "edge_jitter", "max_erode", "min_strength", "scene", "strength") if k in recipe}
    changed = ToneHarmonizationDataset(held, recipe["image_size"], None, flip=False, seed=0, **kw)
    changed.length = len(changed.records) * args.per_face
    result = {"cases": len(changed), "faces": len(changed.records), "changed": measure(model, changed)}
    same = ToneHarmonizationDataset(held, recipe["image_size"], None, flip=False, seed=1, **{**kw, "strength": 0.0})
    unchanged = measure(model, same)
    result["unchanged"] = {"skin_de": unchanged["skin_de"], "tone_de": unchanged["tone_de"]}

    x, m = torch.rand(1, 3, 256, 256), torch.ones(1, 1, 256, 256)
    m[..., :40, :] = 0
    with torch.inference_mode():
        for _ in range(3):
            model.harmonize(x, m)
        times = []
        for _ in range(20):
            t0 = time.perf_counter()
            model.harmonize(x, m)
            times.append((time.perf_counter() - t0) * 1000)
    result["ms_per_256_crop"] = float(np.median(times))
    result["threads"] = torch.get_num_threads()
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
