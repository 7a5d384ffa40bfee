"""Video benchmark: speed of the whole `saswap swap` command against the decode + encode floor, with and
without the template cache, peak memory against video length, and temporal stability.

    python benchmarks/bench_video.py                      # speed + memory on liveportrait__s32.mp4 looped to ~30 s
    python benchmarks/bench_video.py --workers 2 p8 t8      # also cached swaps with 8 worker processes / threads
    python benchmarks/bench_video.py --analysis-workers 2 0 # template analysis with 2 worker processes; also with none
    python benchmarks/bench_video.py --no-speed --memory  # peak memory of the clip x1 against x10
    python benchmarks/bench_video.py --no-speed --stability   # stability on the talking heads (one process per clip)
    python benchmarks/bench_video.py --no-speed --stability --crf 0   # the same, swaps written losslessly
    python benchmarks/bench_video.py --no-speed --stability --sources sberswap__beckham.jpg sberswap__murakami.jpg
    python benchmarks/bench_video.py --no-speed --stability --config '{"expression_exchange": 0}'   # an ablation
    python benchmarks/bench_video.py --no-speed --stability --sources self   # the control: each clip's own person

Figures go to benchmarks/outputs/video/summary.json; copy them into RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SASWAP_TEST_DATA", ROOT.parent / "shared" / "data"))


def loop_video(src: Path, dst: Path, times: int) -> float:
    """Write ``src`` played ``times`` times in a row (video re-encoded losslessly-ish, audio dropped); returns seconds."""
    import av

    with av.open(str(src)) as inp:
        stream = inp.streams.video[0]
        frames = [f.to_ndarray(format="yuv420p") for f in inp.decode(stream)]
        fps = stream.average_rate
        w, h = stream.codec_context.width, stream.codec_context.height
    with av.open(str(dst), "w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.options = {"crf": "16", "preset": "veryfast"}
        for _ in range(times):
            for arr in frames:
                for packet in vs.encode(av.VideoFrame.from_ndarray(arr, format="yuv420p")):
                    out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
    return len(frames) * times / float(fps)


def floor(path: Path, preset: str) -> float:
    """Wall time of a plain PyAV decode (to RGB) + libx264 encode of the whole video."""
    import av

    from saswap.videoio import DEFAULT_BFRAMES, DEFAULT_CRF

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, av.open(str(path)) as inp:
        stream = inp.streams.video[0]
        stream.thread_type = "AUTO"
        with av.open(str(Path(tmp) / "floor.mp4"), "w") as out:
            vs = out.add_stream("libx264", rate=stream.average_rate)
            vs.width, vs.height, vs.pix_fmt = stream.codec_context.width, stream.codec_context.height, "yuv420p"
            # the swap's own default quality and frame types
            vs.options = {"crf": str(DEFAULT_CRF), "preset": preset, "bf": str(DEFAULT_BFRAMES)}
            vs.thread_type = "AUTO"
            for frame in inp.decode(stream):
                rgb = frame.to_ndarray(format="rgb24")
                for packet in vs.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                    out.mux(packet)
            for packet in vs.encode():
                out.mux(packet)
    return time.perf_counter() - t0


def _status_mb(pid: int, key: str) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def _children(pid: int) -> list[int]:
    kids = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids += [int(k) for k in (task / "children").read_text().split()]
        except OSError:
            pass
    return kids


def run(cmd: list[str], peaks: dict | None = None) -> tuple[float, float, str]:
    """Run a command; (wall seconds, peak resident memory in MB (VmHWM, polled), its output). ``peaks`` gets
    ``"all"``: the peak of the command's and its child processes' (frame workers') resident memory summed."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = [0.0, 0.0]

    def poll() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], _status_mb(proc.pid, "VmHWM:"))
            peak[1] = max(peak[1], sum(_status_mb(p, "VmRSS:") for p in [proc.pid, *_children(proc.pid)]))
            time.sleep(0.1)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    out, _ = proc.communicate()
    watcher.join()
    wall = time.perf_counter() - t0
    if peaks is not None:
        peaks["all"] = peak[1]
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{out}")
    return wall, peak[0], out


def _workers(spec: str) -> list[str]:
    """``--workers`` entries: N (the swap's own choice of threads or processes), tN (threads), pN (processes)."""
    kind = {"t": "threads", "p": "processes"}.get(spec[:1], "auto")
    return ["--workers", spec.lstrip("tp"), "--worker-kind", kind]


def speed(args, out_dir: Path) -> dict:
    src = DATA / "videos" / "liveportrait__s32.mp4"
    source = DATA / "images" / args.source
    clip = out_dir / "s32_loop.mp4"
    saswap = [sys.executable, "-m", "saswap", "-v"]
    cache_dir = out_dir / "cache"
    if args.reuse:  # the looped clip made by an earlier run (elsewhere): not looped again
        shutil.copy(Path(args.reuse) / "s32_loop.mp4", clip)
        from saswap.videoio import probe_video

        duration = float(probe_video(clip).duration)
    else:
        duration = loop_video(src, clip, args.loops)
    shutil.rmtree(cache_dir, ignore_errors=True)
    res: dict = {"clip": f"{src.name} x{args.loops}", "duration_s": round(duration, 2)}
    for preset in ("ultrafast", "veryfast"):
        res[f"floor_{preset}"] = round(floor(clip, preset) / duration, 3)

    def timed(cmd: list[str], lines: int) -> dict:
        peaks: dict = {}
        wall, peak, out = run(saswap + cmd, peaks)
        log = out.strip().splitlines()[-lines:]
        # peak_mb: the command's own process; peak_mb_with_workers: with its frame worker processes (resident, summed)
        return {"ratio": round(wall / duration, 3), "wall_s": round(wall, 1), "peak_mb": round(peak),
                "peak_mb_with_workers": round(peaks["all"]), "log": log}  # fmt: skip

    base = ["swap", "-s", str(source), "-t", str(clip), "--quiet"]
    workers = _workers(args.workers[0])
    analysis = [] if args.analysis_workers[0] == "auto" else ["--analysis-workers", args.analysis_workers[0]]
    res["no_cache"] = timed(base + workers + analysis + ["-o", str(out_dir / "nocache.mp4"), "--no-cache"], 2)
    pre = ["precompute", str(clip), "--quiet"]
    res["precompute"] = timed(pre + ["--cache-dir", str(cache_dir)] + (analysis and ["--workers", analysis[1]]), 1)
    res["analysis_workers"] = args.analysis_workers[0]
    for n in args.analysis_workers[1:]:  # the template's analysis with other worker counts (timed alone)
        other = out_dir / f"cache_a{n}"
        shutil.rmtree(other, ignore_errors=True)
        res[f"precompute_workers_{n}"] = timed(pre + ["--cache-dir", str(other), "--workers", n], 1)
    size = sum(p.stat().st_size for p in cache_dir.glob("*.stc"))
    res["cache_mb_per_minute_720p"] = round(size / 1e6 / (duration / 60.0), 1)
    res["cached"] = timed(base + workers + ["-o", str(out_dir / "cached.mp4"), "--cache-dir", str(cache_dir)], 2)
    res["cached_over_floor_veryfast"] = round(res["cached"]["ratio"] / res["floor_veryfast"], 2)
    res["workers"] = args.workers[0]
    for n in args.workers[1:]:  # more frame workers, for a machine with more cores (the same output)
        cmd = base + _workers(n) + ["-o", str(out_dir / f"cached_w{n}.mp4"), "--cache-dir", str(cache_dir)]
        res[f"cached_workers_{n}"] = timed(cmd, 2)
    for key, run_ in res.items():  # a cache made with other settings (or another SaSwap) is rebuilt: not a cache hit
        if key.startswith("cached") and isinstance(run_, dict) and "template cache hit" not in run_["log"][0]:
            raise SystemExit(f"{key}: the template cache was not hit ({run_['log'][0]})")
    return res


def memory(args, out_dir: Path) -> dict:
    """Peak resident memory of a cached swap (and of the precompute) of the clip once and looped 10 times, with two
    frame threads and with two frame worker processes (the swap's default picks threads for the short clip and
    processes for the long one: each kind is compared with itself)."""
    src = DATA / "videos" / "liveportrait__s32.mp4"
    source = DATA / "images" / args.source
    saswap = [sys.executable, "-m", "saswap"]
    cache_dir = out_dir / "memory_cache"
    res: dict = {}
    for name, loops in (("x1", 1), ("x10", 10)):
        clip = out_dir / f"s32_{name}.mp4"
        loop_video(src, clip, loops)
        _, peak_pre, _ = run(saswap + ["precompute", str(clip), "--cache-dir", str(cache_dir), "--quiet"])
        res[name] = {"peak_mb_precompute": round(peak_pre)}
        for kind in ("threads", "processes"):
            cmd = ["swap", "-s", str(source), "-t", str(clip), "--quiet", "-o", str(out_dir / f"mem_{name}_{kind}.mp4")]
            cmd += ["--workers", "2", "--worker-kind", kind, "--cache-dir", str(cache_dir)]
            peaks: dict = {}
            wall, peak, _ = run(saswap + cmd, peaks)
            # peak_mb: the swap's own process; with_workers: its frame worker processes' resident memory added
            res[name][kind] = {"peak_mb": round(peak), "peak_mb_with_workers": round(peaks["all"]), "wall_s": round(wall, 1)}
    for kind in ("threads", "processes"):
        res[f"{kind}_x10_over_x1"] = round(
            res["x10"][kind]["peak_mb_with_workers"] / res["x1"][kind]["peak_mb_with_workers"], 3
        )
    return res


TALKING_HEADS = [
    "liveportrait__d0.mp4", "liveportrait__d5.mp4", "liveportrait__d6.mp4", "liveportrait__d7.mp4",
    "liveportrait__d8.mp4", "liveportrait__d9.mp4", "liveportrait__d10.mp4", "liveportrait__d11.mp4",
    "liveportrait__d12.mp4", "liveportrait__d14.mp4", "liveportrait__d18.mp4", "liveportrait__d19.mp4",
    "video-retalking__1.mp4", "video-retalking__2.mp4", "video-retalking__3.mp4", "video-retalking__4.mp4",
    "sadtalker__WDA_AlexandriaOcasioCortez_000.mp4", "liveportrait__s32.mp4",
]  # fmt: skip


def stability_clip(args, out_dir: Path, name: str) -> dict:
    """Swap the first ``--seconds`` of one talking head and measure it against its template (one process per clip:
    see :func:`stability`)."""
    from saswap import SaSwapPipeline
    from saswap.eval.video_stability import DlibLandmarks, measure_video_stability
    from saswap.face.identity import DlibEmbedder
    from saswap.io import load_image
    from saswap.videoio import VideoReader

    if args.config:  # an ablation: the geometric engine's and the compositor's keyword arguments
        from saswap.compose import Compositor
        from saswap.engines import GeometricEngine

        engine_config, compose = Compositor.split_config(json.loads(args.config))
        pipe = SaSwapPipeline(GeometricEngine(**engine_config), compositor=Compositor(**compose))
    else:
        pipe = SaSwapPipeline.from_pretrained("saswap-geometric")
    clip = DATA / "videos" / name
    own = None
    if args.source == SELF:  # the control: the clip's own person, so only what the swap itself adds is measured
        own, src_img = _own_frame(pipe, clip, args.seconds)
    else:
        src_img = load_image(DATA / "images" / args.source)
    prepared, src_face = pipe.prepare_source(src_img)
    judge = DlibEmbedder()

    def frames_of(path: Path, **span) -> list[np.ndarray]:
        with VideoReader(path, **span) as reader:
            return [frame.image for frame in reader]

    out = out_dir / f"swapped_{name}"
    quality = {} if args.crf is None else {"crf": args.crf}  # --crf 0: no encoder noise, nor its smoothing
    # the clip's first seconds as the template, as it comes (its own encoding), analysed for this span alone
    result = pipe.swap_video(
        prepared, clip, out, cache=False, end=args.seconds, progress=False, skin_sigma=args.skin_sigma,
        crop_size=args.crop_size, **quality,
    )  # fmt: skip
    template, output = frames_of(clip, end=args.seconds), frames_of(out)
    sampled = list(range(0, len(template), args.every))
    stills = {}
    for i in sampled:
        try:
            stills[i] = pipe(prepared, template[i], crop_size=args.crop_size).image
        except Exception:  # noqa: BLE001 - no face in that frame: not sampled
            pass
    # the jitter also read by an independent detector (dlib's), beside the swap's own analyzer (MediaPipe)
    m = measure_video_stability(template, output, pipe.analyzer, judge, (src_img, src_face), stills, DlibLandmarks())
    return {**m.to_dict(), "fps": round(result.fps, 2), **({} if own is None else {"source_frame": own})}


#: ``--source self`` / ``--sources self``: each clip swapped with a frame of its own (a control: the same person, so
#: what the stability figures show beyond the template's is what the swap adds, not how a detector reads a new face;
#: its identity figures, ``closer_video`` and ``closer_images``, mean nothing there).
SELF = "self"


def _own_frame(pipe, clip: Path, seconds: float, every: int = 5) -> tuple[int, np.ndarray]:
    """A frame of ``clip`` to swap into it as the control's source (:meth:`SaSwapPipeline.source_frame`: of every
    ``every``-th frame's largest face, those after the first ``seconds``, the measured span, when the clip goes on
    with a face, else all of them; of those the ones whose mouth is at most as open as their median, and of those the
    most frontal). Returns its index and picture."""
    index, _, image = pipe.source_frame(clip, every=every, after=seconds)
    return index, image


def stability(args, out_dir: Path) -> dict:
    """Swap the first ``--seconds`` of each talking head and measure it against its template.

    The template is the clip itself, trimmed by the swap (``end``), its frames as they were encoded (not re-encoded:
    libx264 as PyAV ships it can write different pixels for the same input from one process to the next), and each
    clip is swapped and measured in a process of its own (``--one-clip``), so a clip's figures do not depend on the
    clips measured before it (see ``benchmarks/RESULTS.md``, stop 31). With ``--sources``, every clip is swapped with
    each source (its rows in a folder of its own), and the summary pools them (per source as well)."""
    sources = args.sources or [args.source]
    rows: dict = {}
    for source in sources:
        folder = out_dir if len(sources) == 1 else out_dir / Path(source).stem
        folder.mkdir(parents=True, exist_ok=True)
        for name in args.clips or TALKING_HEADS:
            row_file = folder / f"row_{name}.json"
            cmd = [sys.executable, str(Path(__file__).resolve()), "--no-speed", "--stability", "--one-clip", name]
            cmd += ["--out", str(folder), "--source", source]
            cmd += ["--seconds", str(args.seconds), "--every", str(args.every)]
            cmd += [] if args.crf is None else ["--crf", str(args.crf)]
            cmd += [] if not args.config else ["--config", args.config]
            cmd += [] if not args.skin_sigma else ["--skin-sigma", str(args.skin_sigma)]
            cmd += [] if args.crop_size is None else ["--crop-size", str(args.crop_size)]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            key = name if len(sources) == 1 else f"{source}:{name}"
            rows[key] = json.loads(row_file.read_text())
            print(key, json.dumps(rows[key]), flush=True)
    summary = _stability_summary(list(rows.values()), args)
    if len(sources) > 1:
        summary["sources"] = sources
        summary["per_source"] = {
            source: _stability_summary([v for k, v in rows.items() if k.startswith(source + ":")], args)
            for source in sources
        }
    return {"summary": summary, "clips": rows}


def _stability_summary(vals: list[dict], args) -> dict:
    """Medians, extremes and counts over rows of the stability benchmark (one per clip, or per clip and source)."""
    return {
        "clips": len(vals),
        "seconds_per_clip": args.seconds,
        "crf": args.crf,
        "jitter_ratio_max": max(v["jitter_ratio"] for v in vals),
        "jitter_ratio_median": float(np.median([v["jitter_ratio"] for v in vals])),
        "jitter_within_bar": sum(v["jitter_ratio"] <= 1.1 for v in vals),
        "jitter_ratio_dlib_median": _median([v.get("jitter_ratio_dlib") for v in vals]),
        "jitter_ratio_dlib_max": max(
            (v["jitter_ratio_dlib"] for v in vals if v.get("jitter_ratio_dlib") is not None), default=None
        ),
        "jitter_dlib_within_bar": sum(
            v.get("jitter_ratio_dlib") is not None and v["jitter_ratio_dlib"] <= 1.1 for v in vals
        ),
        "tone_ratio_max": max(v["tone_ratio"] for v in vals),
        "tone_ratio_median": float(np.median([v["tone_ratio"] for v in vals])),
        "tone_within_bar": sum(v["tone_ratio"] <= 1.2 for v in vals),
        "found_min": min(v["found"] for v in vals),
        "closer_video": sum(v["closer_video"] for v in vals),
        "closer_images": sum(v["closer_images"] for v in vals),
        "sampled": sum(v["sampled"] for v in vals),
        "expression_carried_median": _median([v["expression_carried"] for v in vals]),
        "tone_ratio_template_region_median": _median([v["tone_ratio_template_region"] for v in vals]),
        "tone_ratio_template_region_max": max(
            (v["tone_ratio_template_region"] for v in vals if v["tone_ratio_template_region"] is not None), default=None
        ),
        "texture_ratio_median": _median([v.get("texture_ratio") for v in vals]),
        "texture_ratio_max": max((v["texture_ratio"] for v in vals if v.get("texture_ratio") is not None), default=None),
        "mouth_sync_median": _median([v["mouth_sync"] for v in vals]),
        "mouth_sync_min": min((v["mouth_sync"] for v in vals if v["mouth_sync"] is not None), default=None),
        "jitter_parts_median": {
            part: _median([v["jitter_parts"].get(part) for v in vals]) for part in vals[0]["jitter_parts"]
        },
        "config": json.loads(args.config) if args.config else {},
        "skin_sigma": args.skin_sigma,
        "crop_size": args.crop_size,
    }


def _median(values: list) -> float | None:
    """The median of the values that are not None or NaN (None when there are none)."""
    kept = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.median(kept)) if kept else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "outputs" / "video"))
    parser.add_argument(
        "--source", default="sberswap__beckham.jpg", help=f"a photo of ../shared/data/images, or {SELF!r} (the control)"
    )
    parser.add_argument(
        "--sources", nargs="+", default=None, help="stability: swap every clip with each of these sources (pooled figures)"
    )
    parser.add_argument("--loops", type=int, default=5, help="times the 6-s clip is looped (5: 30 s)")
    parser.add_argument(
        "--workers",
        nargs="+",
        default=["2"],
        help="speed: frame workers of the swaps (the first for all; each further count one more cached swap): N, "
        "or tN threads, pN processes",
    )
    parser.add_argument(
        "--analysis-workers",
        nargs="+",
        default=["auto"],
        help="speed: template analysis worker processes: the first (N or auto) for the uncached swap and the precompute, "
        "each further count N one more precompute",
    )
    parser.add_argument("--reuse", default=None, help="speed: a folder with s32_loop.mp4 from an earlier run (not looped again)")
    parser.add_argument("--memory", action="store_true", help="also peak memory of the clip x1 against x10")
    parser.add_argument("--stability", action="store_true", help="temporal stability on the talking heads")
    parser.add_argument("--no-speed", action="store_true", help="skip the speed runs")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds of each talking head (stability)")
    parser.add_argument("--every", type=int, default=10, help="sample every N-th frame for identity (stability)")
    parser.add_argument("--clips", nargs="*", help="talking heads to measure (default: all)")
    parser.add_argument("--one-clip", default=None, help=argparse.SUPPRESS)  # stability: this process measures one clip
    parser.add_argument(
        "--crf", type=int, default=None, help="the swaps' crf (stability; default: the swap's own; 0: lossless)"
    )
    parser.add_argument(
        "--config", default=None, help="stability: JSON keyword arguments of the geometric engine and the compositor"
    )
    parser.add_argument(
        "--skin-sigma", type=float, default=0.0, help="stability: the swaps' skin_sigma (the SkinStabiliser; 0: off)"
    )
    parser.add_argument(
        "--crop-size", default=None,
        help="stability: the swaps' crop_size (auto or pixels; the stills' too; default: the engine's own)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.crop_size not in (None, "auto"):
        args.crop_size = int(args.crop_size)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.one_clip:  # a clip of the stability benchmark, in its own process: the row to a file
        row = stability_clip(args, out_dir, args.one_clip)
        (out_dir / f"row_{args.one_clip}.json").write_text(json.dumps(row))
        return
    summary: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} cores"}
    if not args.no_speed:
        summary["speed"] = speed(args, out_dir)
    if args.memory:
        summary["memory"] = memory(args, out_dir)
    if args.stability:
        summary["stability"] = stability(args, out_dir)
    name = "summary.json" if not args.no_speed else ("summary_memory.json" if args.memory else "summary_stability.json")
    (out_dir / name).write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
