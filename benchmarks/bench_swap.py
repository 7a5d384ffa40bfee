"""Image-swap acceptance benchmark (identity, attributes, shape, realism, occlusion, speed).

Usage:  python benchmarks/bench_swap.py [--data ../shared/data] [--out benchmarks/outputs]
            [--engine geometric|naive] [--config '{"occlusion": false}'] [--shape-strength 1.0] [--pairs heldout]

Writes ``swap_results.json`` and a contact sheet (sources, targets, outputs) to ``--out``; the
folder is git-ignored because the photos are not ours to redistribute. Copy the printed figures
into ``benchmarks/RESULTS.md``. ``--engine naive`` measures the reference baseline the swap issue
names (mesh warp + CIELAB transfer + ``seamlessClone``, :mod:`saswap.eval.baseline`) on the same pairs;
``--config`` passes keyword arguments to the geometric engine (ablations) or to the naive one
(``--engine naive --config '{"keep_covered": true}'``: the reference under the occlusion bar, the target's covered
pixels kept as the compose stage keeps them for every engine). Any run other than the
default geometric one writes ``swap_results_<engine>[_config][_strength-S].json`` and its own contact
sheet; ``--shape-strength`` sets the strength of the identity, pose and realism pairs (the shape and
expression measurements always compare 0 and 1). ``--pairs heldout`` measures the held-out sources and targets
(``HELDOUT_SOURCES``, ``HELDOUT_TARGETS``: other people, kept out of every tuning) instead, and adds ``_heldout`` to the
files' names.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
from pathlib import Path

import cv2
import numpy as np


def contact_sheet(pipe, data: Path, sources, targets, path: Path, cell: int = 192) -> None:
    from saswap.eval.sheets import fit_cell
    from saswap.io import load_image, save_image

    def fit(img):
        return fit_cell(img, cell)

    rows = [
        np.concatenate(
            [np.full((cell, cell, 3), 24, np.uint8)] + [fit(load_image(data / "images" / t)) for t in targets], 1
        )
    ]
    for src in sources:
        s_img = load_image(data / "images" / src)
        prepared, _ = pipe.prepare_source(s_img)
        row = [fit(s_img)]
        for tgt in targets:
            t_img = load_image(data / "images" / tgt)
            out = pipe(prepared, t_img).image
            x1, y1, x2, y2 = pipe.analyzer(t_img)[0].box
            m = int(0.6 * max(x2 - x1, y2 - y1))
            crop = out[max(0, int(y1) - m) : int(y2) + m, max(0, int(x1) - m) : int(x2) + m]
            row.append(fit(crop))
        rows.append(np.concatenate(row, 1))
    save_image(np.concatenate(rows, 0), path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        default=os.environ.get("SASWAP_TEST_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data")),
    )
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "outputs"))
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--speed-only", action="store_true", help="time the 720p swap only (no pairs, no sheet)")
    parser.add_argument("--engine", choices=["geometric", "naive"], default="geometric")
    parser.add_argument(
        "--config", default="{}", help="JSON keyword arguments of the engine and the compositor"
    )
    parser.add_argument("--shape-strength", type=float, default=1.0, help="strength of the identity pairs")
    parser.add_argument(
        "--pairs", choices=["bench", "heldout"], default="bench", help="the benchmark's pairs, or the held-out ones"
    )
    args = parser.parse_args()
    data, out_dir = Path(args.data), Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = json.loads(args.config)

    from saswap import SaSwapPipeline
    from saswap.compose import Compositor
    from saswap.engines import GeometricEngine
    from saswap.eval.baseline import NaiveSwapEngine
    from saswap.eval.swap_benchmark import HELDOUT_SOURCES, HELDOUT_TARGETS, SOURCES, TARGETS, SwapBenchmark, time_swap
    from saswap.io import load_image

    engine_config, compose = Compositor.split_config(config)
    if args.engine == "naive" and set(engine_config) - {"crop_size", "keep_covered"}:
        parser.error("--config: the naive engine takes crop_size and keep_covered (and the compositor's settings)")
    engine = NaiveSwapEngine(**engine_config) if args.engine == "naive" else GeometricEngine(**engine_config)
    pipe = SaSwapPipeline(engine, compositor=Compositor(**compose))
    # a setting's value may be a folder (a parser's weights): only its last part, in characters a file name can hold
    tag = "".join(f"_{k}-{re.sub(r'[^A-Za-z0-9.+-]', '_', Path(str(v)).name or str(v))}" for k, v in sorted(config.items()))
    if args.shape_strength != 1.0:
        tag += f"_strength-{args.shape_strength:g}"
    if tag or args.engine != "geometric":
        tag = f"_{args.engine}{tag}"
    sources, targets = (HELDOUT_SOURCES, HELDOUT_TARGETS) if args.pairs == "heldout" else (SOURCES, TARGETS)
    if args.pairs == "heldout":
        tag += "_heldout"
    portrait = load_image(data / "images" / "face_recognition__obama.jpg")
    frame = np.full((720, 1280, 3), 60, np.uint8)
    frame[4:716, 355:925] = cv2.resize(portrait, (570, 712), interpolation=cv2.INTER_AREA)
    speed = time_swap(pipe, load_image(data / "images" / "sberswap__beckham.jpg"), frame, args.repeats)
    if args.speed_only:
        print(f"speed_720p: {speed}")
        return
    result = SwapBenchmark(pipe, data).run(sources, targets, shape_strength=args.shape_strength)
    summary = {**result.summary, "speed_720p": speed, "machine": f"{platform.machine()}, {os.cpu_count()} cores"}
    summary["engine"] = {"name": args.engine, "config": config, "shape_strength": args.shape_strength}
    summary["pairs_set"] = args.pairs
    (out_dir / f"swap_results{tag}.json").write_text(
        json.dumps(
            {
                "summary": summary,
                "pairs": result.pairs,
                "shape": result.shape,
                "occlusion": result.occlusion,
                "glasses": result.glasses,
            },
            indent=1,
            default=float,
        )
    )
    contact_sheet(pipe, data, sources, targets, out_dir / f"contact_sheet{tag}.png")
    for k, v in summary.items():
        print(f"{k}: {v}")


if __name__ == "__main__":
    main()
