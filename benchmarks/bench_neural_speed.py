"""Speed of the neural SaSwap engine's path at the design's size, with untrained (random) weights: the engine per face
on a device, and a whole cached video swap with the engine there. The figures say how fast the path is, nothing about
what it makes: no trained weights exist (the untrained generator paints a flat, featureless face).

    python benchmarks/bench_neural_speed.py --device cuda --clip s32_loop.mp4      # a GPU machine
    python benchmarks/bench_neural_speed.py --faces 3 --clip CLIP --end 0.2         # a check on a CPU

The model: the default sizes of `IdentityEncoder` (ArcFace-shaped, 512-D), `AttributeEncoder`, `FusionGenerator` and
`FlowEstimator` at 256 px (about 237 M parameters), made with a fixed seed and saved as an exported model folder.
Figures go to OUT/summary.json; copy them into RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SASWAP_TEST_DATA", ROOT.parent / "shared" / "data"))


def make_model(folder: Path) -> Path:
    """The design-size components with random weights, as an exported model folder (``model_index.json``)."""
    import torch

    from saswap import __version__, models

    torch.manual_seed(0)
    parts = {
        "identity_encoder": models.IdentityEncoder(),
        "attribute_encoder": models.AttributeEncoder(),
        "generator": models.FusionGenerator(embed_dim=512),
        "flow_estimator": models.FlowEstimator(image_size=256),
    }
    for name, module in parts.items():
        module.eval().save_pretrained(folder / name)
    index = {
        "engine": "saswap", "saswap_version": __version__, "image_size": 256, "untrained": True,
        "components": {name: type(module).__name__ for name, module in parts.items()},
    }  # fmt: skip
    (folder / "model_index.json").write_text(json.dumps(index, indent=2))
    return folder


def engine_speed(folder: Path, device: str, faces: int, source: Path, frame: np.ndarray) -> dict:
    """Milliseconds per face of the engine alone (crop in, face out, on ``device``), after a warm-up."""
    import torch

    from saswap import SaSwapPipeline
    from saswap.face.alignment import warp_face
    from saswap.io import load_image

    pipe = SaSwapPipeline.from_pretrained(folder).to(device)
    prepared, _ = pipe.prepare_source(load_image(source))
    tf = pipe.target_analyzer(frame).faces[0]
    crop = warp_face(frame, tf.transform, pipe.engine.crop_size)
    for _ in range(min(3, faces)):
        pipe.engine.swap(crop, tf.crop_face, prepared, 1.0, tf.data)
    times = []
    for _ in range(faces):
        t = time.perf_counter()
        pipe.engine.swap(crop, tf.crop_face, prepared, 1.0, tf.data)  # ends with the face copied back to the CPU
        times.append(time.perf_counter() - t)
    params = sum(p.numel() for m in (pipe.engine.attribute_encoder, pipe.engine.generator, pipe.engine.flow_estimator)
                 for p in m.parameters())  # fmt: skip
    return {
        "device": pipe.device,
        "device_name": torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else "cpu",
        "swap_parameters_m": round(params / 1e6, 1),
        "ms_per_face_median": round(1000 * float(np.median(times)), 2),
        "ms_per_face_min": round(1000 * float(np.min(times)), 2),
        "faces": faces,
    }


def video_speed(
    folder: Path, device: str, clip: Path, source: Path, out: Path, end: float | None, workers, kind: str
) -> dict:
    """Wall time of ``saswap precompute`` and of the cached ``saswap swap`` with the engine on ``device``, over the
    swapped span's duration."""
    from saswap.videoio import probe_video

    info = probe_video(clip)
    whole = float(info.duration)
    duration = whole if end is None else min(whole, end)
    saswap = [sys.executable, "-m", "saswap", "-v"]
    cache = out / "cache"
    res: dict = {"clip": clip.name, "clip_s": round(whole, 2), "duration_s": round(duration, 2)}

    def timed(cmd: list[str], seconds: float = duration) -> dict:
        t = time.perf_counter()
        done = subprocess.run(saswap + cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
        return {"ratio": round(wall / seconds, 3), "wall_s": round(wall, 1), "log": done.stdout.strip().splitlines()[-2:]}

    # the cache covers the whole clip: its ratio is over the clip's duration
    res["precompute"] = timed(["precompute", str(clip), "--weights", str(folder), "--cache-dir", str(cache), "--quiet"], whole)
    swap = ["swap", "-s", str(source), "-t", str(clip), "--weights", str(folder), "--cache-dir", str(cache), "--quiet"]
    swap += ["--device", device] + ([] if end is None else ["--end", str(end)])
    swap += ([] if workers is None else ["--workers", str(workers)]) + ["--worker-kind", kind]
    res["cached"] = timed(swap + ["-o", str(out / "neural.mp4")])
    if "template cache hit" not in res["cached"]["log"][0]:
        raise SystemExit(f"the cached swap did not hit the cache: {res['cached']['log'][0]}")
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "outputs" / "neural-speed"))
    parser.add_argument("--device", default="cpu", help="torch device of the engine (cuda, cuda:1, cpu)")
    parser.add_argument("--faces", type=int, default=100, help="faces timed for the engine alone")
    parser.add_argument("--source", default="sberswap__beckham.jpg")
    parser.add_argument("--clip", default=None, help="a video to swap whole (cached), e.g. liveportrait__s32 looped")
    parser.add_argument("--end", type=float, default=None, help="swap only the clip's first seconds")
    parser.add_argument("--workers", type=int, default=None, help="frame workers of the video swap")
    parser.add_argument(
        "--worker-kind", default="auto", choices=("auto", "threads", "processes"),
        help="threads, or processes (with the engine on a GPU: the compose stage in them, the engine here)",
    )  # fmt: skip
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    source = DATA / "images" / args.source
    folder = out / "model"
    if not (folder / "model_index.json").is_file():
        t = time.perf_counter()
        make_model(folder)
        print(f"model made in {time.perf_counter() - t:.1f} s", flush=True)
    if args.clip:
        from saswap.videoio import VideoReader

        with VideoReader(args.clip) as reader:
            frame = next(iter(reader)).image
    else:
        from saswap.io import load_image

        frame = load_image(DATA / "images" / "sadtalker__happy.png")
    summary = {"engine": engine_speed(folder, args.device, args.faces, source, frame)}
    print(json.dumps(summary["engine"]), flush=True)
    if args.clip:
        summary["video"] = video_speed(
            folder, args.device, Path(args.clip), source, out, args.end, args.workers, args.worker_kind
        )
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
