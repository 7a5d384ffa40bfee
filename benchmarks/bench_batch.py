"""Batch benchmark (``saswap batch``): throughput with 1 and 2 Ray workers against the plain single-process loop,
a two-node Ray cluster with the template caches built on one node and used on the other, and a worker killed
in the middle of a batch.

    python benchmarks/bench_batch.py                 # throughput: 4 sources x 3 templates (2 s clips)
    python benchmarks/bench_batch.py --two-node      # two-node cluster (ray.cluster_utils.Cluster)
    python benchmarks/bench_batch.py --fault         # SIGKILL one worker mid-batch; every job done exactly once
    python benchmarks/bench_batch.py --all

Ray runs on loopback only: the script re-runs itself inside a network namespace that holds only ``lo``
(``unshare -n``; root, or user namespaces, needed) unless ``--no-netns`` is given.
Figures go to benchmarks/outputs/batch/summary.json; copy them into RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SASWAP_TEST_DATA", ROOT.parent / "shared" / "data"))
SOURCES = ("sberswap__beckham.jpg", "face_recognition__obama.jpg", "gfpgan__Adele_crop.png", "insightface__1561.jpg")
TEMPLATES = ("liveportrait__d8.mp4", "video-retalking__2.mp4", "liveportrait__s32.mp4")


def _only_loopback() -> bool:
    try:
        return sorted(os.listdir("/sys/class/net")) == ["lo"]
    except OSError:
        return False


def _reexec_in_netns() -> None:
    if _only_loopback() or os.environ.get("SASWAP_BENCH_NETNS"):
        return
    if shutil.which("unshare") is None:
        sys.exit("bench_batch: needs unshare (util-linux) for a loopback-only network namespace; or pass --no-netns")
    env = {**os.environ, "SASWAP_BENCH_NETNS": "1"}
    cmd = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$0" "$@"', sys.executable, *sys.argv]
    sys.exit(subprocess.call(cmd, env=env))


def make_inputs(folder: Path, seconds: float) -> tuple[Path, Path, float]:
    """Copies of the source photos and the first ``seconds`` of each template video; returns (sources, templates,
    seconds of video per source)."""
    from saswap.videoio import VideoReader, VideoWriter

    src, tpl = folder / "sources", folder / "templates"
    src.mkdir(parents=True, exist_ok=True)
    tpl.mkdir(parents=True, exist_ok=True)
    for name in SOURCES:
        shutil.copy(DATA / "images" / name, src / name)
    total = 0.0
    for name in TEMPLATES:
        with VideoReader(DATA / "videos" / name, end=seconds) as reader, VideoWriter(tpl / name, like=reader, crf=14) as w:
            n = 0
            for frame in reader:
                w.write(None, frame)
                n += 1
            total += n / float(reader.info.fps)
    return src, tpl, total


def _jobs(out: Path) -> list[dict]:
    from saswap.pipelines.batch import MANIFEST_NAME, Manifest

    return [r for r in Manifest(out / MANIFEST_NAME).records() if r.get("type") == "job"]


def throughput(work: Path, seconds: float, repeats: int) -> dict:
    from saswap.pipelines.batch import run_batch

    src, tpl, video_seconds = make_inputs(work / "inputs", seconds)
    cache = work / "cache"
    t0 = time.perf_counter()
    pre = run_batch(src, tpl, work / "warm", backend="local", cache_dir=cache, progress=False)  # builds the caches
    warm = time.perf_counter() - t0
    assert pre.ok, pre.errors
    configs = [
        ("local loop, 2 threads", {"backend": "local", "threads": 2}),
        ("ray, 1 worker x 2 threads", {"backend": "ray", "workers": 1, "threads": 2}),
        ("ray, 1 worker x 1 thread", {"backend": "ray", "workers": 1, "threads": 1}),
        ("ray, 2 workers x 1 thread", {"backend": "ray", "workers": 2, "threads": 1}),
    ]
    rows = {}
    for name, kwargs in configs:
        walls, swaps = [], []
        for r in range(repeats):
            out = work / f"out-{len(rows)}-{r}"
            t = time.perf_counter()
            report = run_batch(src, tpl, out, cache_dir=cache, progress=False, **kwargs)
            walls.append(time.perf_counter() - t)
            swaps.append(report.timings["swaps"])
            assert report.ok and report.count("done") == len(report.jobs), report.errors
            assert all(rec.get("cache_hit") for rec in _jobs(out)), "a swap job rebuilt a template cache"
            shutil.rmtree(out)
        jobs = len(report.jobs)
        wall, swap = min(walls), min(swaps)
        rows[name] = {
            "jobs": jobs, "wall_s": round(wall, 2), "swap_stage_s": round(swap, 2),
            "jobs_per_min": round(60 * jobs / wall, 2), "jobs_per_min_swap_stage": round(60 * jobs / swap, 2),
            "walls": [round(w, 2) for w in walls],
        }  # fmt: skip
        print(f"{name:28s} {jobs} jobs: wall {wall:6.1f} s ({60 * jobs / wall:5.2f} jobs/min), swap stage {swap:6.1f} s")
    local, r1, r1t1, r2 = (rows[n] for n, _ in configs)
    summary = {
        "batch": f"{len(SOURCES)} sources x {len(TEMPLATES)} templates ({seconds:g} s clips, {video_seconds:.1f} s of video per source)",
        "template_caches_s": round(warm, 2),
        "rows": rows,
        "ray_overhead_vs_local_1_worker": round(r1["wall_s"] / local["wall_s"] - 1, 4),
        "scaling_2_vs_1_worker_same_threads": round(r1t1["wall_s"] / r2["wall_s"], 3),
        "scaling_2_workers_vs_1_worker_2_threads": round(r1["wall_s"] / r2["wall_s"], 3),
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "rows"}, indent=1))
    return summary


def two_node(work: Path, seconds: float) -> dict:
    """Head node 'a' builds the template caches; node 'b' runs every swap and finds them there."""
    import ray
    from ray.cluster_utils import Cluster

    from saswap.pipelines.batch import MANIFEST_NAME, Manifest, run_batch

    src, tpl, _ = make_inputs(work / "inputs", seconds)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "resources": {"node_a": 1}})
    cluster.add_node(num_cpus=1, resources={"node_b": 1})
    cluster.wait_for_nodes()
    try:
        ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
        ids = {n["NodeID"]: ("b" if n["Resources"].get("node_b") else "a") for n in ray.nodes() if n["Alive"]}
        out = work / "two-node"
        t = time.perf_counter()
        report = run_batch(
            src, tpl, out, cache_dir=work / "shared-cache", progress=False, workers=1, threads=1,
            template_actor_options={"resources": {"node_a": 1}}, actor_options={"resources": {"node_b": 1}},
        )  # fmt: skip
        wall = time.perf_counter() - t
    finally:
        ray.shutdown()
        cluster.shutdown()
    records = Manifest(out / MANIFEST_NAME).records()
    templates = [r for r in records if r["type"] == "template"]
    jobs = [r for r in records if r["type"] == "job"]
    summary = {
        "nodes": sorted(set(ids.values())),
        "templates_built_on": sorted({ids.get(r["node"], "?") for r in templates}),
        "templates_hit": sum(bool(r.get("hit")) for r in templates),
        "jobs_ran_on": sorted({ids.get(r["node"], "?") for r in jobs}),
        "jobs_done": sum(r["status"] == "done" for r in jobs),
        "jobs": len(report.jobs),
        "jobs_cache_hit": sum(bool(r.get("cache_hit")) for r in jobs),
        "wall_s": round(wall, 2),
    }
    print(json.dumps(summary, indent=1))
    assert summary["templates_built_on"] == ["a"] and summary["jobs_ran_on"] == ["b"], summary
    assert summary["jobs_cache_hit"] == summary["jobs"] == summary["jobs_done"], summary
    return summary


def fault(work: Path, seconds: float) -> dict:
    """``saswap batch`` with 2 workers; once the first job is reported, the worker that did it is killed (SIGKILL).
    The batch must finish with every job done exactly once."""
    from saswap.videoio import read_video_tag

    src, tpl, _ = make_inputs(work / "inputs", seconds)
    out = work / "fault"
    cmd = [sys.executable, "-m", "saswap", "batch", "--sources", str(src), "--templates", str(tpl), "-o", str(out),
           "--workers", "2", "--threads", "1", "--cache-dir", str(work / "cache"), "-q"]  # fmt: skip
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim = None
    while proc.poll() is None and victim is None:
        done = [r for r in _jobs(out) if r["status"] == "done"]
        if done:
            victim = done[0]["pid"]
            time.sleep(1.0)  # it has taken its next job by now
            os.kill(victim, signal.SIGKILL)
        time.sleep(0.05)
    stdout, stderr = proc.communicate(timeout=1800)
    wall = time.perf_counter() - t
    jobs = _jobs(out)
    done = [r for r in jobs if r["status"] == "done"]
    keys = [r["job"] for r in done]
    outputs = [Path(r["output"]) for r in done]
    files = sorted(p for p in out.rglob("*.mp4"))
    summary = {
        "exit_code": proc.returncode,
        "killed_pid": victim,
        "jobs_planned": len(SOURCES) * len(TEMPLATES),
        "done_records": len(done),
        "distinct_jobs_done": len(set(keys)),
        "retried_jobs": sum(r.get("attempt", 1) > 1 for r in done),
        "output_files": len(files),
        "outputs_tagged_with_their_job": sum((read_video_tag(p) or {}).get("batch_job") == k for p, k in zip(outputs, keys)),
        "temporary_files_left": len(list(out.rglob("*.tmp"))),
        "wall_s": round(wall, 2),
        "stdout": stdout.strip().splitlines()[:3],
        "warnings": [line for line in stderr.splitlines() if "died" in line][:3],
    }
    print(json.dumps(summary, indent=1))
    n = summary["jobs_planned"]
    assert proc.returncode == 0 and victim is not None, summary
    assert summary["done_records"] == summary["distinct_jobs_done"] == summary["output_files"] == n, summary
    assert summary["outputs_tagged_with_their_job"] == n and summary["temporary_files_left"] == 0, summary
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each template clip")
    parser.add_argument("--repeats", type=int, default=1, help="runs per configuration (the fastest is kept)")
    parser.add_argument("--two-node", action="store_true")
    parser.add_argument("--fault", action="store_true")
    parser.add_argument("--all", action="store_true", help="throughput, two-node and fault")
    parser.add_argument("--no-throughput", action="store_true")
    parser.add_argument("--no-netns", action="store_true", help="do not re-run inside a loopback-only network namespace")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "outputs" / "batch")
    args = parser.parse_args()
    if not args.no_netns:
        _reexec_in_netns()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    args.out.mkdir(parents=True, exist_ok=True)
    summary_path = args.out / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    summary["machine"] = f"{platform.node()} / {platform.processor() or platform.machine()} / {os.cpu_count()} CPUs"
    with tempfile.TemporaryDirectory(prefix="saswap-bench-batch-") as tmp:
        work = Path(tmp)
        if not args.no_throughput:
            summary["throughput"] = throughput(work / "t", args.seconds, args.repeats)
        if args.two_node or args.all:
            summary["two_node"] = two_node(work / "n", args.seconds)
        if args.fault or args.all:
            summary["fault"] = fault(work / "f", args.seconds)
    summary_path.write_text(json.dumps(summary, indent=1))
    print(f"summary: {summary_path}")


if __name__ == "__main__":
    main()
