"""Batch swapping: jobs and outputs, the manifest, resuming, a broken input among good ones, Ray.

The Ray tests run the command line inside a network namespace that holds only loopback (``unshare -n``):
Ray then uses 127.0.0.1 for its nodes, and nothing leaves the machine.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import data_path
from PIL import Image

from saswap.cli import main
from saswap.errors import SaSwapError
from saswap.pipelines.batch import MANIFEST_NAME, BatchSettings, Manifest, collect_inputs, plan_batch, run_batch


def _clip(src: Path, dst: Path, end: float) -> Path:
    from saswap.videoio import VideoReader, VideoWriter

    with VideoReader(src, end=end) as reader, VideoWriter(dst, like=reader, crf=12) as writer:
        for frame in reader:
            writer.write(None, frame)
    return dst


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Two good source photos and a broken one; an image template and a short video template."""
    root = tmp_path_factory.mktemp("batch-inputs")
    (root / "src").mkdir()
    (root / "tpl").mkdir()
    for name in ("sberswap__beckham.jpg", "face_recognition__obama.jpg"):
        shutil.copy(data_path("images", name), root / "src" / name)
    (root / "src" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 64)
    shutil.copy(data_path("images", "insightface__1561.jpg"), root / "tpl" / "still.jpg")
    _clip(data_path("videos", "liveportrait__d8.mp4"), root / "tpl" / "clip.mp4", 0.5)
    return root


def _jobs(out: Path) -> list[dict]:
    return [r for r in Manifest(out / MANIFEST_NAME).records() if r.get("type") == "job"]


def _temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*.tmp")]


def _tag(path: Path) -> dict | None:
    if path.suffix == ".mp4":
        from saswap.videoio import read_video_tag

        return read_video_tag(path)
    from saswap.provenance import read_tag

    return read_tag(path)


def test_inputs_from_folders_and_lists_with_unique_output_names(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    for folder in (a, b):
        (folder / "x.jpg").write_bytes(b"x" + folder.name.encode())
    (a / "notes.md").write_text("not an image")
    (a / ".hidden.jpg").write_bytes(b"h")
    listing = tmp_path / "list.txt"
    listing.write_text("# sources\nb/x.jpg\n\na/x.jpg  # twice: taken once\n")
    found = collect_inputs([a, listing], "sources", videos=False)
    assert found == [a / "x.jpg", b / "x.jpg"]
    jobs = plan_batch(found, [a / "x.jpg"], tmp_path / "out", BatchSettings())
    assert [j.output.relative_to(tmp_path / "out").as_posix() for j in jobs] == ["x/x.jpg", "x-2/x.jpg"]
    assert len({j.key for j in jobs}) == 2
    # the key follows the content and the settings, not the file name
    again = plan_batch(found, [a / "x.jpg"], tmp_path / "elsewhere", BatchSettings())
    assert [j.key for j in again] == [j.key for j in jobs]
    other = plan_batch(found, [a / "x.jpg"], tmp_path / "out", BatchSettings(shape_strength=0.5))
    assert not {j.key for j in other} & {j.key for j in jobs}
    # the tone lock is part of the key when set (off, the keys are those of batches planned before it existed)
    assert "tone_lock" not in BatchSettings().key_fields()
    assert BatchSettings(tone_lock=0.5).key_fields()["tone_lock"] == 0.5
    locked = plan_batch(found, [a / "x.jpg"], tmp_path / "out", BatchSettings(tone_lock=0.5))
    assert not {j.key for j in locked} & {j.key for j in jobs}
    with pytest.raises(SaSwapError, match="tone_lock"):
        BatchSettings(tone_lock=1.5)
    # so is the crop size, one key per size however it was written
    assert "crop_size" not in BatchSettings().key_fields()
    assert BatchSettings(crop_size="512").key_fields()["crop_size"] == 512
    sized = plan_batch(found, [a / "x.jpg"], tmp_path / "out", BatchSettings(crop_size="512"))
    as_number = plan_batch(found, [a / "x.jpg"], tmp_path / "out", BatchSettings(crop_size=512))
    assert [j.key for j in sized] == [j.key for j in as_number]
    assert not {j.key for j in sized} & {j.key for j in jobs}
    auto = plan_batch(found, [a / "x.jpg"], tmp_path / "out", BatchSettings(crop_size="auto"))
    assert not {j.key for j in auto} & ({j.key for j in jobs} | {j.key for j in sized})
    for bad in ("big", 32, 1.5):
        with pytest.raises(SaSwapError, match="crop size"):
            BatchSettings(crop_size=bad)
    with pytest.raises(SaSwapError, match="list.txt, line 2: nope.jpg: no such file"):
        listing.write_text("b/x.jpg\nnope.jpg\n")
        collect_inputs([listing], "sources", videos=False)
    with pytest.raises(SaSwapError, match="no templates found"):
        empty = tmp_path / "empty"
        empty.mkdir()
        collect_inputs([empty], "templates", videos=True)


def test_a_photo_added_beside_another_of_its_name_and_a_copy_get_outputs_and_jobs_of_their_own(tmp_path):
    """A photo added later whose name differs from another's by its suffix alone does not take over that photo's
    output folder (the output names do not hang on which other files are there), and a copy of a photo under
    another name is a job of its own (one key each: counted and recorded apart), the first keeping its key."""
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    (src / "a.png").write_bytes(b"one person")
    template = tmp_path / "t.jpg"
    template.write_bytes(b"template")
    (first,) = plan_batch([src / "a.png"], [template], out, BatchSettings())
    assert first.output == out / "a" / "t.jpg"
    (src / "a.jpg").write_bytes(b"another person")
    (src / "copy.png").write_bytes(b"one person")
    jobs = plan_batch(collect_inputs([src], "sources", videos=False), [template], out, BatchSettings())
    outputs = {j.source.name: j.output.relative_to(out).as_posix() for j in jobs}
    assert outputs == {"a.jpg": "a-jpg/t.jpg", "a.png": "a-png/t.jpg", "copy.png": "copy/t.jpg"}
    assert len({j.key for j in jobs}) == 3
    assert next(j.key for j in jobs if j.source.name == "a.png") == first.key


def test_gif_templates_are_videos_when_animated(tmp_path):
    """A template folder's GIFs are collected; an animated one is a video template written as a GIF, a one-frame one
    a picture (written as PNG, which carries the provenance tag)."""
    from PIL import Image

    folder = tmp_path / "templates"
    folder.mkdir()
    frames = [Image.fromarray(np.full((32, 32, 3), 40 * i, np.uint8)) for i in range(3)]
    frames[0].save(folder / "meme.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
    frames[0].save(folder / "still.gif")
    found = collect_inputs([folder], "templates", videos=True)
    assert [p.name for p in found] == ["meme.gif", "still.gif"]
    source = data_path("images", "sberswap__beckham.jpg")
    jobs = plan_batch([source], found, tmp_path / "out", BatchSettings())
    assert [(j.kind, j.output.name) for j in jobs] == [("video", "meme.gif"), ("image", "still.png")]


def test_an_output_written_by_a_worker_that_never_reported_is_adopted(tmp_path):
    """A complete output whose tag names its job (the worker died after the rename) is not redone."""
    from saswap.provenance import make_tag, save_tagged

    src, tpl = tmp_path / "s.png", tmp_path / "t.png"
    rng = np.random.default_rng(0)
    for p in (src, tpl):
        save_tagged(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), p)
    (job,) = plan_batch([src], [tpl], tmp_path / "out", BatchSettings())
    job.output.parent.mkdir(parents=True)
    save_tagged(np.zeros((8, 8, 3), np.uint8), job.output, make_tag(batch_job="another-job"))
    report = run_batch(src, tpl, tmp_path / "out", backend="local", dry_run=True, progress=False)
    assert report.status[job.key] == "planned"
    save_tagged(np.zeros((8, 8, 3), np.uint8), job.output, make_tag(batch_job=job.key))
    report = run_batch(src, tpl, tmp_path / "out", backend="local", progress=False)
    assert report.status[job.key] == "skipped" and report.ok
    (record,) = _jobs(tmp_path / "out")
    assert record["status"] == "done" and record["adopted"] is True and record["bytes"] == job.output.stat().st_size


def test_local_batch_isolates_a_broken_input_and_resumes(inputs, tmp_path, capsys):
    out, cache = tmp_path / "out", tmp_path / "cache"
    args = ["batch", "--sources", str(inputs / "src"), "--templates", str(inputs / "tpl"), "-o", str(out),
            "--backend", "local", "--cache-dir", str(cache), "-q"]  # fmt: skip
    assert main(args) == 1  # one broken source: its jobs fail, the others are done
    printed = capsys.readouterr().out
    assert "6 job(s): 4 done, 2 failed" in printed
    assert printed.count("broken.jpg: corrupt or truncated") == 2
    records = _jobs(out)
    assert sorted(r["status"] for r in records) == ["done"] * 4 + ["failed"] * 2
    for r in records:
        assert r["saswap"] and r["engine"] == "saswap-geometric" and r["timings"]["job"] > 0
        if r["status"] == "done":
            output = Path(r["output"])
            assert output.is_file() and _tag(output)["batch_job"] == r["job"]
            if output.suffix == ".mp4":  # swap_video's own fields with the job's key
                assert _tag(output)["media"] == "video" and _tag(output)["engine"] == "geometric"
                assert _tag(output)["model"] == "saswap-geometric"
                assert _tag(output)["note"] == "synthetic video, made with saswap"
        else:
            assert "broken.jpg" in r["error"] and not Path(r["output"]).exists()
    assert not (out / "broken").exists() and not _temporaries(out)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "face_recognition__obama/clip.mp4", "face_recognition__obama/still.jpg", MANIFEST_NAME,
        "sberswap__beckham/clip.mp4", "sberswap__beckham/still.jpg",
    ]  # fmt: skip
    video = next(r for r in records if r["status"] == "done" and r["kind"] == "video")
    assert video["cache_hit"] is True  # the template stage built the cache the swap then used
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.*") if p.name != MANIFEST_NAME}

    # the same command again: nothing done twice, the failed jobs tried again
    assert main(args) == 1
    assert "4 skipped, 2 failed" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    records = _jobs(out)
    assert sum(r["status"] == "done" for r in records) == 4 and sum(r["status"] == "failed" for r in records) == 4

    # a lost output and a temporary file left by a killed writer: that job alone is redone, the litter removed
    lost = out / "sberswap__beckham" / "still.jpg"
    lost.unlink()
    (lost.parent / ".still.jpg.0badf00d.tmp").write_bytes(b"partial")
    assert main(args[:-1] + ["--dry-run"]) == 0
    plan = capsys.readouterr().out
    assert plan.count("to do") == 3 and plan.count("done already") == 3
    assert main(args) == 1
    assert "1 done, 3 skipped, 2 failed" in capsys.readouterr().out
    assert lost.is_file() and not _temporaries(out)


def test_a_broken_template_fails_its_own_jobs_with_the_single_file_message(inputs, tmp_path, capsys):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 200)
    good = inputs / "tpl" / "still.jpg"
    args = ["batch", "--sources", str(inputs / "src" / "sberswap__beckham.jpg"), "--templates", str(broken), str(good),
            "-o", str(tmp_path / "out"), "--backend", "local", "--cache-dir", str(tmp_path / "cache"), "-q"]  # fmt: skip
    assert main(args) == 1
    printed = capsys.readouterr().out
    assert "2 job(s): 1 done, 1 failed" in printed
    (template,) = [r for r in Manifest(tmp_path / "out" / MANIFEST_NAME).records() if r["type"] == "template"]
    assert template["status"] == "failed"
    (failed,) = [r for r in _jobs(tmp_path / "out") if r["status"] == "failed"]
    # the message `saswap swap` prints for the same file
    assert main(["swap", "-s", args[2], "-t", str(broken), "-o", str(tmp_path / "single.mp4")]) == 2
    single = capsys.readouterr().err.strip().removeprefix("saswap: error: ")
    assert failed["error"] == template["error"] == single and "broken.mp4" in single
    assert main(["batch", "--sources", args[2], "--templates", str(good), "-o", str(tmp_path / "o2"), "--workers", "0"]) == 2
    assert "workers must be at least 1" in capsys.readouterr().err
    # a reference photo without a face would fail every job: the batch is refused before any starts
    blank = tmp_path / "wall.png"
    Image.fromarray(np.full((256, 256, 3), 128, np.uint8)).save(blank)
    assert main(["batch", "--sources", args[2], "--templates", str(good), "-o", str(tmp_path / "o3"),
                 "--backend", "local", "--reference", str(blank), "-q"]) == 2  # fmt: skip
    assert f"{blank}: no face found in the reference photo" in capsys.readouterr().err
    assert not _jobs(tmp_path / "o3")


def _netns_available() -> str | None:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare or ip is not installed"
    probe = subprocess.run(["unshare", "-n", "sh", "-c", "ip link set lo up"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"cannot create a network namespace ({probe.stderr.strip() or probe.returncode}); needs root or user namespaces"
    return None


def _in_netns(args: list[str]) -> list[str]:
    """Run ``args`` in a network namespace with loopback only (so Ray binds 127.0.0.1); exec keeps the pid."""
    return ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$0" "$@"', *args]


@pytest.mark.slow
def test_ray_batch_interrupted_then_resumed_does_every_job_once(inputs, tmp_path):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'saswap[batch]')")
    why = _netns_available()
    if why:
        pytest.skip(why)
    out, cache = tmp_path / "out", tmp_path / "cache"
    longer = tmp_path / "tpl"
    longer.mkdir()
    shutil.copy(inputs / "tpl" / "still.jpg", longer / "still.jpg")
    _clip(data_path("videos", "liveportrait__d8.mp4"), longer / "clip.mp4", 1.5)
    cmd = _in_netns([
        sys.executable, "-m", "saswap", "batch", "--sources", str(inputs / "src"), "--templates", str(longer),
        "-o", str(out), "--workers", "2", "--threads", "1", "--cache-dir", str(cache), "-q",
    ])  # fmt: skip

    # first run: interrupted (SIGINT) once the first job is done
    # Python's own Ctrl-C handling in the child even where this runner was started with SIGINT ignored
    # (a background job of a non-interactive shell)
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        if any(r["status"] == "done" for r in _jobs(out)):
            break
        time.sleep(0.1)
    assert proc.poll() is None, f"the batch ended before it could be interrupted: {proc.communicate()}"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    first = {r["job"]: r for r in _jobs(out) if r["status"] == "done"}
    assert 1 <= len(first) < 4
    assert not _temporaries(out), "an interrupted job left a partial file"
    stamps = {r["output"]: Path(r["output"]).stat().st_mtime_ns for r in first.values()}

    # second run: resumes; the broken source fails its own jobs only
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stdout + run.stderr
    assert f"{4 - len(first)} done, {len(first)} skipped, 2 failed" in run.stdout
    records = _jobs(out)
    done = [r for r in records if r["status"] == "done"]
    assert len(done) == 4 and len({r["job"] for r in done}) == 4  # every job done exactly once
    assert {r["output"]: Path(r["output"]).stat().st_mtime_ns for r in first.values()} == stamps
    for r in done:
        assert _tag(Path(r["output"]))["batch_job"] == r["job"]
        assert len(r["node"]) > 8 and r["pid"] > 0  # a Ray node id and the worker's process
    failed = [r for r in records if r["status"] == "failed"]
    assert failed and all("broken.jpg" in r["error"] for r in failed)
    templates = [r for r in Manifest(out / MANIFEST_NAME).records() if r.get("type") == "template"]
    assert templates and all(r["status"] == "done" for r in templates)
    assert not _temporaries(out)
    assert json.loads((out / MANIFEST_NAME).read_text().splitlines()[-1])["type"] == "job"


def test_a_jobs_record_says_what_its_swap_warned_about(inputs, tmp_path):
    # a small face in an old photo: every job of that source is told, not only the first (its preparation is cached)
    from saswap.pipelines.batch import BatchJob, BatchWorker

    small = tmp_path / "old.png"
    shutil.copy(data_path("images", "gfpgan__10045.png"), small)
    worker = BatchWorker({}, str(tmp_path / "cache"), threads=2)
    records = [
        worker.swap(BatchJob(f"{source.stem}/{n}", source, inputs / "tpl" / "still.jpg", tmp_path / source.stem / f"{n}.jpg", "image").to_dict())
        for source in (small, inputs / "src" / "sberswap__beckham.jpg")
        for n in ("a", "b")
    ]  # fmt: skip
    assert [r["status"] for r in records] == ["done"] * 4
    for r in records[:2]:
        assert len(r["warnings"]) == 1 and r["warnings"][0].startswith(f"{small}: the source face is small"), r
    assert "warnings" not in records[2] and "warnings" not in records[3]
    assert all("_source_notes" not in r for r in records)
    assert "tone_lock" not in _tag(tmp_path / "sberswap__beckham" / "a.jpg")


def test_a_batch_with_the_tone_lock_makes_its_outputs_with_it(inputs, tmp_path):
    from saswap.pipelines.batch import BatchJob, BatchWorker

    worker = BatchWorker({"tone_lock": 1.0}, str(tmp_path / "cache"), threads=2)
    assert worker.pipe.compositor.tone_lock == 1.0
    source = inputs / "src" / "sberswap__beckham.jpg"
    job = BatchJob("k", source, inputs / "tpl" / "still.jpg", tmp_path / "locked.jpg", "image")
    record = worker.swap(job.to_dict())
    assert record["status"] == "done" and _tag(tmp_path / "locked.jpg")["tone_lock"] == 1.0


def test_a_batch_with_a_crop_size_swaps_photos_and_videos_in_that_crop(inputs, tmp_path):
    # the template cache is made for the crop; the photo's and the video's tags record it
    from saswap.pipelines.batch import BatchJob, BatchWorker
    from saswap.pipelines.cache import TemplateCache

    worker = BatchWorker({"crop_size": 448}, str(tmp_path / "cache"), threads=2)
    source = inputs / "src" / "sberswap__beckham.jpg"
    cached = worker.precompute(str(inputs / "tpl" / "clip.mp4"))
    assert cached["status"] == "done" and not cached["hit"], cached
    assert TemplateCache.open(Path(cached["cache"])).header["crop_size"] == 448
    photo = BatchJob("p", source, inputs / "tpl" / "still.jpg", tmp_path / "photo.jpg", "image")
    video = BatchJob("v", source, inputs / "tpl" / "clip.mp4", tmp_path / "clip.mp4", "video")
    records = [worker.swap(photo.to_dict()), worker.swap(video.to_dict())]
    assert [r["status"] for r in records] == ["done", "done"], records
    assert records[1]["cache_hit"] and records[1]["frames_swapped"] == records[1]["frames"]
    assert _tag(tmp_path / "photo.jpg")["crop_size"] == 448 and _tag(tmp_path / "clip.mp4")["crop_size"] == 448
    # the engine's own crop: another cache, and tags that say 384
    plain = BatchWorker({}, str(tmp_path / "cache"), threads=2)
    assert plain.precompute(str(inputs / "tpl" / "clip.mp4"))["cache"] != cached["cache"]
    assert plain.swap(BatchJob("q", source, inputs / "tpl" / "still.jpg", tmp_path / "own.jpg", "image").to_dict())[
        "status"
    ] == "done"
    assert _tag(tmp_path / "own.jpg")["crop_size"] == 384


def test_couple_sources_are_folders_of_one_photo_per_person(tmp_path):
    """With a face index (or reference) per person, a source is a folder of as many photos (name order), or a folder
    of such folders; a folder holding another number of photos is refused, naming it. A couple job's key, record and
    output folder come from its photos and its folder."""
    from saswap.pipelines.batch import BatchJob, collect_source_groups

    pairs = tmp_path / "pairs"
    for name, photos in (("anna-ben", ("1.jpg", "2.jpg")), ("cleo-dan", ("a.png", "b.png")), (".hidden", ("x.jpg",))):
        (pairs / name).mkdir(parents=True)
        for photo in photos:
            (pairs / name / photo).write_bytes(f"{name}/{photo}".encode())
    groups = collect_source_groups([pairs], 2)
    assert groups == [(pairs / "anna-ben" / "1.jpg", pairs / "anna-ben" / "2.jpg"),
                      (pairs / "cleo-dan" / "a.png", pairs / "cleo-dan" / "b.png")]  # fmt: skip
    assert collect_source_groups([pairs / "cleo-dan", pairs], 2) == groups[::-1]  # a group's folder itself; once each
    (pairs / "anna-ben" / "3.jpg").write_bytes(b"third")
    with pytest.raises(SaSwapError, match=r"anna-ben: 3 photo\(s\) \(1.jpg, 2.jpg, 3.jpg\), but 2 people are chosen"):
        collect_source_groups([pairs], 2)
    with pytest.raises(SaSwapError, match="x.jpg: not a folder"):
        collect_source_groups([pairs / ".hidden" / "x.jpg"], 2)
    (pairs / "anna-ben" / "3.jpg").unlink()

    settings = BatchSettings(face_index=[0, 1])
    assert settings.face_index == (0, 1) and settings.people == 2
    jobs = plan_batch(groups, [pairs / "anna-ben" / "1.jpg"], tmp_path / "out", settings)
    assert [j.output.parent.name for j in jobs] == ["anna-ben", "cleo-dan"]
    assert BatchJob.from_dict(jobs[0].to_dict()) == jobs[0] and jobs[0].to_dict()["source"][1].endswith("2.jpg")
    swapped = plan_batch([groups[0][::-1]], [pairs / "anna-ben" / "1.jpg"], tmp_path / "out", settings)
    assert swapped[0].key != jobs[0].key  # the order pairs photos with faces: another job
    assert plan_batch(groups, [pairs / "anna-ben" / "1.jpg"], tmp_path / "out", BatchSettings(face_index=[1, 0]))[
        0].key != jobs[0].key  # fmt: skip
    with pytest.raises(SaSwapError, match="face index 0 is given twice"):
        BatchSettings(face_index=[0, 0])
    with pytest.raises(SaSwapError, match="no such file"):
        BatchSettings(reference=[str(pairs / "anna-ben" / "1.jpg"), str(tmp_path / "missing.jpg")])


def test_a_couples_batch_swaps_each_person_with_their_own_photo(tmp_path, capsys):
    """``saswap batch --face-index 0 --face-index 1``: each pair's photos go into the two faces of a two-person photo,
    one each (the tag says two sources; both faces change, differently for the two pairs); a rerun skips the jobs."""
    from saswap.io import load_image

    pairs = tmp_path / "pairs"
    for name, photos in (("ab", ("sberswap__beckham.jpg", "sberswap__mark.jpg")),
                         ("ba", ("sberswap__mark.jpg", "sberswap__beckham.jpg"))):  # fmt: skip
        (pairs / name).mkdir(parents=True)
        for n, photo in enumerate(photos, 1):
            shutil.copy(data_path("images", photo), pairs / name / f"{n}.jpg")
    template = tmp_path / "two.jpg"
    shutil.copy(data_path("images", "face_recognition__two_people.jpg"), template)
    argv = ["batch", "--sources", str(pairs), "--templates", str(template), "-o", str(tmp_path / "out"),
            "--backend", "local", "--face-index", "0", "--face-index", "1", "-q"]  # fmt: skip
    assert main(argv) == 0
    assert "2 done" in capsys.readouterr().out
    outputs = {name: tmp_path / "out" / name / "two.jpg" for name in ("ab", "ba")}
    assert all(_tag(path)["sources"] == 2 for path in outputs.values())
    before = load_image(template).astype(int)
    ab, ba = (load_image(path).astype(int) for path in outputs.values())
    from saswap.face import FaceAnalyzer

    for face in FaceAnalyzer()(template):
        x0, y0, x1, y1 = (int(v) for v in face.box)
        box = (slice(y0, y1), slice(x0, x1))
        assert (np.abs(ab[box] - before[box]).max(axis=2) > 20).mean() > 0.2  # the face changed
        assert np.abs(ab[box] - ba[box]).mean() > 5  # by the other photo in the other pair
    assert [r["source"] for r in _jobs(tmp_path / "out")][0][0].endswith("1.jpg")
    assert main(argv) == 0 and "2 skipped" in capsys.readouterr().out
    assert main([*argv[:-5], "--face-index", "0", "--face-index", "0"]) == 2
    assert "face index 0 is given twice" in capsys.readouterr().err
