"""The command line: analyze, bad input, exit codes, no partial outputs."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import data_path
from PIL import Image

from saswap.cli import build_parser, main
from saswap.errors import SaSwapError
from saswap.pipelines.batch import BatchSettings


def test_analyze_json_and_annotated_output(tmp_path, capsys):
    out = tmp_path / "annotated.png"
    code = main(["analyze", str(data_path("images", "insightface__t1.jpg")), "--output", str(out), "--json"])
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    assert len(payload["faces"]) == 6
    face = payload["faces"][0]
    assert len(face["box"]) == 4 and len(face["keypoints"]) == 5 and len(face["landmarks"]) == 478
    assert set(face["pose"]) == {"yaw", "pitch", "roll"}
    drawn = np.asarray(Image.open(out))
    original = np.asarray(Image.open(data_path("images", "insightface__t1.jpg")).convert("RGB"))
    assert drawn.shape == original.shape and (drawn != original).any(axis=2).mean() > 0.001


@pytest.mark.parametrize(
    "content,message",
    [
        (b"", "the file is empty"),
        (b"just some text, not pixels", "not an image"),
        (b"GIF89a broken", "corrupt or truncated GIF"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 50, "corrupt or truncated"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, content, message):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(content)
    out = tmp_path / "out.png"
    assert main(["analyze", str(bad), "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "bad.jpg" in err and message in err
    assert not out.exists() and list(tmp_path.iterdir()) == [bad]


def test_unsupported_output_format(tmp_path, capsys):
    out = tmp_path / "out.xyz"
    assert main(["analyze", str(data_path("images", "face_recognition__obama.jpg")), "-o", str(out)]) == 2
    # the formats it writes (it said ".png or .jpg", and wrote .webp, .bmp and .tif too)
    err = capsys.readouterr().err
    assert "unsupported output format '.xyz'; use one of .png, .jpg, .jpeg, .webp, .bmp, .tif" in err
    assert not out.exists()


def test_usage_error_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["analyze"])
    assert exc.value.code == 2


def test_console_script_is_installed(tmp_path):
    """The installed ``saswap`` entry point runs and reports a bad file on one stderr line."""
    bad = tmp_path / "zero.png"
    bad.write_bytes(b"")
    proc = subprocess.run(
        [sys.executable, "-m", "saswap", "analyze", str(bad)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"saswap: error: {bad}: the file is empty (0 bytes)"]


def test_swap_writes_a_tagged_image(tmp_path, capsys):
    from saswap.provenance import read_tag

    out = tmp_path / "swap.jpg"
    code = main(
        [
            "swap",
            "--source",
            str(data_path("images", "sberswap__beckham.jpg")),
            "--target",
            str(data_path("images", "sadtalker__happy.png")),
            "--output",
            str(out),
            "--shape-strength",
            "0.5",
        ]
    )
    assert code == 0 and out.is_file()
    assert read_tag(out)["shape_strength"] == 0.5 and "tone_lock" not in read_tag(out)
    # the compose stage's tone lock is set from the command line, and the tag says so
    locked = tmp_path / "locked.jpg"
    source, target = data_path("images", "sberswap__beckham.jpg"), data_path("images", "sadtalker__happy.png")
    assert main(["swap", "-s", str(source), "-t", str(target), "-o", str(locked), "--shape-strength", "0.5",
                 "--tone-lock", "1"]) == 0  # fmt: skip
    assert read_tag(locked)["tone_lock"] == 1.0
    assert np.abs(np.asarray(Image.open(locked), np.int16) - np.asarray(Image.open(out), np.int16)).max() >= 3
    assert main(["inspect", str(out)]) == 0
    assert "SYNTHETIC" in capsys.readouterr().out
    assert main(["inspect", str(data_path("images", "sadtalker__happy.png"))]) == 1  # no tag: exit 1
    assert "no saswap provenance tag" in capsys.readouterr().out


def test_demo_refuses_a_shape_strength_out_of_range_before_making_its_folder(tmp_path, capsys):
    assert main(["demo", "--output", str(tmp_path / "demo"), "--shape-strength", "5"]) == 2
    assert "--shape-strength must lie in [0, 1], got 5.0" in capsys.readouterr().err
    assert not (tmp_path / "demo").exists()


def test_swap_refuses_to_overwrite_its_target(tmp_path, capsys):
    import shutil

    target = tmp_path / "same.png"
    shutil.copy(data_path("images", "sadtalker__happy.png"), target)
    before = target.read_bytes()
    src = str(data_path("images", "sberswap__beckham.jpg"))
    assert main(["swap", "-s", src, "-t", str(target), "-o", str(target)]) == 2
    err = capsys.readouterr().err
    assert "is the target itself" in err and "--overwrite" in err
    assert target.read_bytes() == before


def test_swap_on_a_device_the_engine_cannot_use_is_a_clear_error(tmp_path, capsys):
    out = tmp_path / "o.png"
    src, target = str(data_path("images", "sberswap__beckham.jpg")), str(data_path("images", "sadtalker__happy.png"))
    assert main(["swap", "-s", src, "-t", target, "-o", str(out), "--device", "cuda"]) == 2
    assert "computes on the CPU only; it cannot move to 'cuda'" in capsys.readouterr().err
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("which", ["source", "target"])
def test_swap_no_face_exit_2_and_no_output(tmp_path, capsys, which):
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((120, 120, 3), 90, np.uint8)).save(blank)
    good = str(data_path("images", "sadtalker__happy.png"))
    out = tmp_path / "o.png"
    args = {"source": good, "target": good}
    args[which] = str(blank)
    assert main(["swap", "-s", args["source"], "-t", args["target"], "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"blank.png: no face found in the {which}" in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blank.png"]


def test_swap_bad_arguments(tmp_path, capsys):
    good = str(data_path("images", "sadtalker__happy.png"))
    assert main(["swap", "-s", good, "-t", good, "-o", str(tmp_path / "x.gif")]) == 2
    assert "unsupported output format" in capsys.readouterr().err
    assert main(["swap", "-s", good, "-t", good, "-o", str(tmp_path / "x.png"), "--shape-strength", "3"]) == 2
    assert "--shape-strength" in capsys.readouterr().err
    bad_values = [("--tone-lock", "1.5"), ("--tone-lock", "nan"), ("--tone-lock", "dark"), ("--steady-skin", "-1"),
                  ("--steady-skin", "many"), ("--crf", "99"), ("--crf", "-1"), ("--crf", "high"), ("--workers", "-1"),
                  ("--analysis-workers", "two")]  # fmt: skip
    for option, bad in bad_values:
        with pytest.raises(SystemExit) as exc:
            main(["swap", "-s", good, "-t", good, "-o", str(tmp_path / "x.mp4"), option, bad])
        assert exc.value.code == 2 and f"argument {option}" in capsys.readouterr().err
    # a batch's --crf too: it failed every video job (exit 1) where the image jobs went on
    with pytest.raises(SystemExit) as exc:
        main(["batch", "--sources", good, "--templates", good, "-o", str(tmp_path / "b"), "--crf", "99"])
    assert exc.value.code == 2 and "argument --crf" in capsys.readouterr().err and not (tmp_path / "b").exists()
    with pytest.raises(SaSwapError, match="crf must be a whole number from 0 to 63"):
        BatchSettings(crf=99)
    with pytest.raises(SystemExit) as exc:  # (a batch's library call says it: run_batch checks its own)
        main(["precompute", good, "--workers", "-1"])
    assert exc.value.code == 2 and "argument --workers: must be 0 or more, got -1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["swap", "-s", good, "-t", good, "-o", "x.png", "--all-faces", "--face-index", "1"])
    assert exc.value.code == 2


@pytest.mark.slow
def test_demo_runs_on_packaged_photos(tmp_path, capsys, monkeypatch):
    from saswap.provenance import read_tag
    from saswap.videoio import probe_video, read_video_tag, sample_frames

    monkeypatch.setenv("SASWAP_CACHE", str(tmp_path / "cache"))
    assert main(["demo", "--output", str(tmp_path / "demo")]) == 0
    files = sorted((tmp_path / "demo").glob("*.png"))
    assert len(files) == 2 and all(read_tag(f)["demo"] for f in files)
    assert all(min(Image.open(f).size) >= 512 for f in files)  # big enough to judge (was 112 px)
    err = capsys.readouterr().err
    # the packaged source is turned 33 degrees: analysed (and warned about) once, not once per target
    assert err.count("source face is turned") == 1
    # the video path too, on a template made from a packaged photo: every frame kept, the faces changed, tagged
    template, swapped = tmp_path / "demo" / "t1_pan.mp4", tmp_path / "demo" / "tom_hanks_into_t1_pan.mp4"
    info, out = probe_video(template), probe_video(swapped)
    assert (out.frame_count, out.width, out.height, out.fps) == (info.frame_count, info.width, info.height, info.fps)
    assert read_video_tag(swapped)["synthetic"] is True and read_video_tag(template) is None
    assert read_video_tag(swapped)["note"] == "synthetic video, made with saswap"
    assert read_tag(files[0])["note"] == "synthetic image, made with saswap"
    before, after = sample_frames(template, 3), sample_frames(swapped, 3)
    for a, b in zip(before, after):
        changed = np.abs(a.astype(int) - b.astype(int)).max(axis=2) > 20
        assert 0.01 < changed.mean() < 0.3  # the faces, not the whole frame
    assert "cache hit" not in capsys.readouterr().out  # the first run analysed the template
    # with the tone lock: the template's cache (written without it) serves, the faces change, the tag says so; and the
    # skin stabiliser switched on from the command line
    from saswap.pipelines import video

    made, real = [], video.SkinStabiliser
    monkeypatch.setattr(video, "SkinStabiliser", lambda sigma, **kw: made.append(sigma) or real(sigma, **kw))
    locked = tmp_path / "locked.mp4"
    argv = ["swap", "-s", "sample:tom_hanks", "-t", str(template), "--all-faces", "-o", str(locked), "--tone-lock", "1"]
    assert main([*argv, "--end", "0.4", "-q", "--steady-skin"]) == 0 and "cache hit" in capsys.readouterr().out
    assert made == [1.0]
    assert read_video_tag(locked)["tone_lock"] == 1.0 and "tone_lock" not in read_video_tag(swapped)
    assert probe_video(locked).frame_count == 6  # its first 0.4 s
    assert np.abs(after[0].astype(int) - sample_frames(locked, 1)[0].astype(int)).max() > 3


def test_swap_reports_a_broken_input_before_loading_any_model(tmp_path, capsys, monkeypatch):
    from saswap.pipelines.image import SaSwapPipeline

    def no_models(*args, **kwargs):
        raise AssertionError("models were loaded before the inputs were checked")

    monkeypatch.setattr(SaSwapPipeline, "from_pretrained", classmethod(no_models))
    good = str(data_path("images", "sadtalker__happy.png"))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 30)
    for args in (["-s", str(broken), "-t", good], ["-s", good, "-t", str(broken)], ["-s", good, "-t", good, "--reference", str(tmp_path / "none.jpg")]):
        assert main(["swap", *args, "-o", str(tmp_path / "o.png")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and ("broken.png" in err or "none.jpg" in err), err
    assert not (tmp_path / "o.png").exists()


def test_swap_errors_found_by_the_pipeline_name_the_file(tmp_path, capsys):
    good = str(data_path("images", "sadtalker__happy.png"))
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((120, 120, 3), 90, np.uint8)).save(blank)
    out = tmp_path / "o.png"
    assert main(["swap", "-s", good, "-t", good, "-o", str(out), "--face-index", "3"]) == 2
    err = capsys.readouterr().err
    assert f"{good}: face index 3 out of range (1 face found; the first is 0)" in err and err.count("\n") == 1
    assert main(["swap", "-s", good, "-t", good, "-o", str(out), "--reference", str(blank)]) == 2
    err = capsys.readouterr().err
    assert "blank.png" in err and "reference" in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blank.png"]


def test_a_failed_swap_leaves_no_output_folder_behind(tmp_path, capsys):
    good = str(data_path("images", "sadtalker__happy.png"))
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((120, 120, 3), 90, np.uint8)).save(blank)
    (tmp_path / "kept").mkdir()
    for out in (tmp_path / "new" / "deeper" / "o.png", tmp_path / "kept" / "new" / "o.png"):
        assert main(["swap", "-s", str(blank), "-t", good, "-o", str(out)]) == 2
        assert "no face found in the source" in capsys.readouterr().err
    # Only the folders the command created are removed; one that was there before stays.
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == ["blank.png", "kept"]
    out = tmp_path / "made" / "o.png"
    assert main(["swap", "-s", good, "-t", good, "-o", str(out)]) == 0
    assert out.is_file()


def test_verbose_is_accepted_after_the_subcommand(capsys):
    parser = build_parser()
    assert parser.parse_args(["inspect", "x.png", "-v"]).verbose is True
    assert parser.parse_args(["-v", "inspect", "x.png"]).verbose is True
    assert parser.parse_args(["inspect", "x.png"]).verbose is False
    assert parser.parse_args(["swap", "-s", "a", "-t", "b", "-o", "c.png", "--verbose"]).verbose is True


@pytest.mark.slow
def test_train_prints_each_lightning_line_once_and_no_argv_warning(tmp_path):
    pytest.importorskip("jsonargparse", reason="training needs the 'train' extra")
    from conftest import ROOT

    missing = tmp_path / "no-data"
    cmd = [sys.executable, "-m", "saswap", "train", "fit", "--config", str(ROOT / "recipes" / "debug-tiny.yaml"),
           "--data.root", str(missing), "--trainer.default_root_dir", str(tmp_path / "run")]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 2 and f"{missing}: training data folder not found" in run.stderr
    assert run.stderr.count("Seed set to 0") == 1, run.stderr
    assert "args parameter" not in run.stderr


def test_missing_vgg19_weights_are_one_error_line_naming_the_file_and_the_way_round(tmp_path, monkeypatch, capsys):
    """Offline, with no VGG19 in torch's hub cache: one `saswap: error:` line (not jsonargparse's Union error)."""
    pytest.importorskip("jsonargparse", reason="training needs the 'train' extra")
    import urllib.error

    import torch
    from conftest import ROOT

    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    data = tmp_path / "faces"
    data.mkdir()
    small = ["--model.attribute_encoder.init_args.block_out_channels", "[8, 8, 8, 8, 8, 8, 8]",
             "--model.generator.init_args.block_out_channels", "[8, 8, 8, 8, 8, 8, 8, 8]",
             "--model.generator.init_args.attr_channels", "[8, 16, 16, 16, 16, 16, 16, 16]",
             "--model.discriminator.init_args.block_out_channels", "[8, 8]",
             "--trainer.accelerator", "cpu"]  # fmt: skip
    recipe = str(ROOT / "recipes" / "saswap-256.yaml")
    code = main(["train", "fit", "--config", recipe, "--data.root", str(data), *small])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("saswap: error:")]
    assert code == 2 and len(lines) == 1 and "Union" not in err and "Traceback" not in err, err
    folder = tmp_path / "torch" / "hub" / "checkpoints"
    url = "https://download.pytorch.org/models/"
    for needed in ("vgg19-dcbb9e9d.pth", str(folder), url, "--model.contextual_loss null"):
        assert needed in lines[0]


def test_verbose_swap_prints_the_stage_timings(tmp_path, capsys):
    src, tgt = str(data_path("images", "sberswap__beckham.jpg")), str(data_path("images", "insightface__1561.jpg"))
    assert main(["swap", "-s", src, "-t", tgt, "-o", str(tmp_path / "o.png"), "-v"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and all(f"{stage} " in lines[1] for stage in ("analyze_target", "swap", "paste", "total"))


@pytest.mark.parametrize("command,recipe", [("train", "debug-tiny.yaml"), ("train-parser", "face-parser.yaml")])
def test_lightning_commands_take_their_own_help_and_recipe(command, recipe, capsys):
    pytest.importorskip("jsonargparse", reason="training needs the 'train' extra")
    from conftest import ROOT

    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])  # LightningCLI's help, not "unrecognized arguments"
    assert exc.value.code == 0 and f"saswap {command}" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main([command, "fit", "--config", str(ROOT / "recipes" / recipe), "--print_config"])
    assert exc.value.code == 0 and "seed_everything" in capsys.readouterr().out


def test_a_stream_is_read_once(tmp_path, capsys):
    """``--target <(cat photo.jpg)``: a pipe can be read only once, and the check before the swap had emptied it
    ("the file is empty"). Streams are now copied once into a temporary folder."""
    import os
    import threading

    fifo = tmp_path / "target.fifo"
    os.mkfifo(fifo)
    photo = data_path("images", "sadtalker__happy.png").read_bytes()
    feeder = threading.Thread(target=lambda: fifo.write_bytes(photo), daemon=True)
    feeder.start()
    out = tmp_path / "out.png"
    codes = []
    args = ["swap", "-s", str(data_path("images", "sberswap__beckham.jpg")), "-t", str(fifo), "-o", str(out)]
    swap = threading.Thread(target=lambda: codes.append(main(args)), daemon=True)
    swap.start()
    swap.join(timeout=120)  # reading the pipe a second time would wait for a writer for ever
    assert codes == [0], capsys.readouterr().err
    assert Image.open(out).size == Image.open(data_path("images", "sadtalker__happy.png")).size


def test_file_system_limits_are_errors_not_tracebacks(tmp_path, capsys):
    source, target = str(data_path("images", "sberswap__beckham.jpg")), str(data_path("images", "sadtalker__happy.png"))
    too_long = tmp_path / ("n" * 300 + ".png")
    assert main(["swap", "-s", source, "-t", target, "-o", str(too_long)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.endswith("File name too long")
    assert main(["swap", "-s", source, "-t", str(too_long), "-o", str(tmp_path / "o.png")]) == 2
    assert "cannot be read (File name too long)" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_inspect_says_what_a_file_is(tmp_path, capsys):
    folder = tmp_path / "photos.jpg"
    folder.mkdir()
    assert main(["inspect", str(folder)]) == 2
    assert "is a folder" in capsys.readouterr().err
    truncated = tmp_path / "cut.mp4"
    truncated.write_bytes(b"\x00\x00\x00\x20ftypisom" + b"\x00" * 300)
    assert main(["inspect", str(truncated)]) == 2
    err = capsys.readouterr().err
    assert "cut.mp4" in err and "not a readable image" not in err
    # a script asking for JSON gets the error as JSON too, and exit code 2
    (tmp_path / "notes.png").write_text("hello")
    assert main(["inspect", "--json", str(tmp_path / "notes.png")]) == 2
    captured = capsys.readouterr()
    answer = json.loads(captured.out)
    assert answer["file"] == str(tmp_path / "notes.png") and "not a readable image" in answer["error"]
    assert captured.err.startswith("saswap: error:")


def test_models_lists_the_zoo_and_says_what_is_ready(capsys):
    from saswap.zoo import list_models

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in list_models())
    assert "saswap-geometric  [swap engine; --engine saswap-geometric]  ready (needs no weights)" in out
    assert "saswap-face-parser  [face parser; --occlusion saswap-face-parser]  ready (inside the package)" in out
    assert "saswap-256  [swap engine; --engine saswap-256]  not published: train it with recipes/saswap-256.yaml" in out
    assert main(["models", "--json"]) == 0
    entries = {e["name"]: e for e in json.loads(capsys.readouterr().out)}
    assert set(entries) == set(list_models()) and entries["saswap-tone-harmonizer"]["kind"] == "tone harmoniser"
    assert entries["saswap-tone-harmonizer"]["state"].startswith("not published")


def test_video_options_given_for_a_still_target_are_named_as_ignored(tmp_path, capsys):
    """``--start 1 --crf 20`` on a photo was ignored without a word."""
    source, target = data_path("images", "sberswap__beckham.jpg"), data_path("images", "sadtalker__happy.png")
    out = tmp_path / "out.png"
    assert main(["swap", "-s", str(source), "-t", str(target), "-o", str(out), "--start", "1", "--crf", "20",
                 "--no-cache", "--steady-skin"]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert f"{target}: a still image, and these options are for videos; --crf, --start, --no-cache, --steady-skin " \
        "ignored" in err and out.is_file()  # fmt: skip
    assert main(["swap", "-s", str(source), "-t", str(target), "-o", str(out)]) == 0
    assert "ignored" not in capsys.readouterr().err


def test_a_transparent_target_keeps_its_transparency(tmp_path, capsys):
    """A sticker (a PNG with a transparent background) was flattened onto black without a word: a .png output keeps
    its alpha, a .jpg says it cannot."""
    photo = np.asarray(Image.open(data_path("images", "sadtalker__happy.png")).convert("RGB"))  # 256 px, the face
    target = np.random.default_rng(0).integers(0, 256, (448, 448, 3), dtype=np.uint8)  # on a canvas of noise
    target[96:352, 96:352] = photo
    h, w = target.shape[:2]
    yy, xx = np.mgrid[:h, :w]
    beyond = np.maximum(np.abs(yy - 223.5), np.abs(xx - 223.5)) - 144  # px outside the photo and a 16-px margin
    alpha = np.clip(255 - beyond * 255 / 50, 0, 255).astype(np.uint8)  # opaque middle, a 50-px soft edge, clear rest
    Image.fromarray(np.dstack([target, alpha]), "RGBA").save(tmp_path / "sticker.png")
    source = str(data_path("images", "sberswap__beckham.jpg"))
    assert main(["swap", "-s", source, "-t", str(tmp_path / "sticker.png"), "-o", str(tmp_path / "out.png")]) == 0
    assert "transparen" not in capsys.readouterr().err
    out = np.asarray(Image.open(tmp_path / "out.png"))
    assert out.shape == (h, w, 4) and np.array_equal(out[..., 3], alpha)
    changed = np.abs(out[..., :3].astype(int) - target).max(axis=2) > 20
    assert changed[alpha == 255].mean() > 0.02  # a face was swapped
    edge = (alpha > 0) & (alpha < 255)  # the soft edge, away from the face, is the target's (composited anywhere)
    a = alpha[edge, None] / 255.0
    assert np.abs(out[..., :3][edge] * a - target[edge] * a).max() <= 1.0
    assert main(["swap", "-s", source, "-t", str(tmp_path / "sticker.png"), "-o", str(tmp_path / "out.jpg")]) == 0
    assert "out.jpg: the target is transparent, and a .jpg has no transparency; written on black" in \
        capsys.readouterr().err  # fmt: skip
    assert Image.open(tmp_path / "out.jpg").mode == "RGB"


def test_an_avif_photo_is_swapped_as_a_photo(tmp_path, capsys):
    """A phone's AVIF photo as the target: swapped as a picture (it was taken for a video, being in an ISO-BMFF box:
    "the target is a video; give a video output")."""
    Image.open(data_path("images", "sadtalker__happy.png")).convert("RGB").save(tmp_path / "happy.avif", quality=90)
    out = tmp_path / "out.png"
    assert main(["swap", "-s", str(data_path("images", "sberswap__beckham.jpg")), "-t", str(tmp_path / "happy.avif"),
                 "-o", str(out)]) == 0, capsys.readouterr().err  # fmt: skip
    assert "swapped 1 face(s)" in capsys.readouterr().out and out.is_file()


def test_swap_crop_size_option(tmp_path, capsys):
    """``--crop-size``: a number of pixels for a photo or a video (recorded in the output's tag), refused outside
    256-2048."""
    from saswap.provenance import read_tag

    source, target = data_path("images", "sberswap__beckham.jpg"), data_path("images", "sadtalker__happy.png")
    out = tmp_path / "big.png"
    assert main(["swap", "-s", str(source), "-t", str(target), "-o", str(out), "--crop-size", "512"]) == 0
    assert read_tag(out)["crop_size"] == 512
    with pytest.raises(SystemExit) as exit_:
        main(["swap", "-s", str(source), "-t", str(target), "-o", str(tmp_path / "x.png"), "--crop-size", "100"])
    assert exit_.value.code == 2 and "from 256 to 2048 pixels, got 100" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:  # a side of 5,000 px ran for minutes in gigabytes
        main(["swap", "-s", str(source), "-t", str(target), "-o", str(tmp_path / "x.png"), "--crop-size", "5000"])
    assert exit_.value.code == 2 and "got 5000" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
    from saswap.videoio import read_video_tag

    clip = data_path("videos", "liveportrait__d8.mp4")
    video_out = tmp_path / "v.mp4"
    assert main(["swap", "-s", str(source), "-t", str(clip), "-o", str(video_out), "--crop-size", "448", "--end",
                 "0.2", "--no-cache", "-q"]) == 0  # fmt: skip
    assert read_video_tag(video_out)["crop_size"] == 448
    # a batch takes the same option (its settings check it again, for the API)
    batch = build_parser().parse_args(["batch", "--sources", "a", "--templates", "b", "-o", "c", "--crop-size", "auto"])
    assert batch.crop_size == "auto"
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["batch", "--sources", "a", "--templates", "b", "-o", "c", "--crop-size", "big"])
    assert exit_.value.code == 2 and "'auto' or a number of pixels" in capsys.readouterr().err


def test_a_video_target_with_an_output_it_cannot_write_names_the_extension(tmp_path, capsys):
    """``-o out.avi`` for a video target said "the target is a video; give a video output": .avi is a video."""
    clip, source = data_path("videos", "liveportrait__d8.mp4"), data_path("images", "sberswap__beckham.jpg")
    assert main(["swap", "-s", str(source), "-t", str(clip), "-o", str(tmp_path / "out.avi")]) == 2
    err = capsys.readouterr().err
    assert "'.avi' is not a video output SaSwap writes; use one of .mp4" in err and not list(tmp_path.iterdir())


@pytest.mark.parametrize("target", [("images", "sadtalker__happy.png"), ("videos", "liveportrait__d0.mp4")])
def test_swap_reports_an_unknown_enhancer_before_any_work(tmp_path, capsys, monkeypatch, target):
    from saswap.pipelines.image import SaSwapPipeline

    def no_models(*args, **kwargs):
        raise AssertionError("models were loaded (and a video's template analysed) before --enhance was checked")

    monkeypatch.setattr(SaSwapPipeline, "from_pretrained", classmethod(no_models))
    out = tmp_path / ("o.mp4" if target[0] == "videos" else "o.png")
    src = str(data_path("images", "sberswap__beckham.jpg"))
    assert main(["swap", "-s", src, "-t", str(data_path(*target)), "-o", str(out), "--enhance", "gfpgan"]) == 2
    err = capsys.readouterr().err
    assert err == "saswap: error: gfpgan: not an enhancer file, folder or known name (gfpgan-1.4, gpen-bfr-512)\n"
    assert list(tmp_path.iterdir()) == []


def test_analyze_refuses_to_write_its_annotated_copy_over_the_photo(tmp_path, capsys):
    import shutil

    photo = tmp_path / "photo.jpg"
    shutil.copy(data_path("images", "face_recognition__obama.jpg"), photo)
    before = photo.read_bytes()
    assert main(["analyze", str(photo), "-o", str(tmp_path / "." / "photo.jpg")]) == 2
    assert capsys.readouterr().err == f"saswap: error: {photo}: is the image itself; give another output file\n"
    assert photo.read_bytes() == before and list(tmp_path.iterdir()) == [photo]


def test_a_tilde_the_shell_left_in_a_path_is_the_home_folder(tmp_path, capsys, monkeypatch):
    import shutil

    # bash leaves `--cache-dir=~/cache` as it is: `~` was a folder of that name made in the working folder
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    home = str(tmp_path)
    parser = build_parser()
    for argv, dest in [
        (["swap", "-s", "~/a.jpg", "-t", "x.mp4", "-o", "o.mp4", "--cache-dir=~/cache"], "cache_dir"),
        (["swap", "-s", "~/a.jpg", "-t", "x.mp4", "-o", "o.mp4"], "source"),
        (["swap", "-s", "a.jpg", "-t", "~/x.mp4", "-o", "~/o.mp4", "--reference=~/r.jpg"], "reference"),
        (["swap", "-s", "a.jpg", "-t", "x.jpg", "-o", "o.png", "--enhance=~/gfpgan.onnx"], "enhance"),
        (["precompute", "~/x.mp4", "--cache-dir=~/cache"], "cache_dir"),
        (["demo", "--output=~/demo"], "output"),
    ]:
        assert getattr(parser.parse_args(argv), dest).startswith(home + "/"), (argv, dest)
    shutil.copy(data_path("images", "face_recognition__obama.jpg"), tmp_path / "photo.jpg")
    assert main(["analyze", "~/photo.jpg", "--output=~/annotated.png"]) == 0
    assert (tmp_path / "annotated.png").is_file() and list((tmp_path / "work").iterdir()) == []


def test_a_video_where_only_a_photo_will_do_is_named_as_a_video(tmp_path, capsys):
    clip, photo = str(data_path("videos", "liveportrait__d0.mp4")), str(data_path("images", "sadtalker__happy.png"))
    # it was "not an image file (or an unsupported image format)"
    assert main(["analyze", clip]) == 2
    assert capsys.readouterr().err.startswith(f"saswap: error: {clip}: is a video; saswap analyze takes a photo")
    for target, out in ((photo, tmp_path / "o.png"), (clip, tmp_path / "o.mp4")):
        assert main(["swap", "-s", photo, "-t", target, "-o", str(out), "--reference", clip]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"saswap: error: {clip}: is a video; --reference takes a photo") and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_a_negative_face_index_is_a_usage_error(tmp_path, capsys):
    # it was found after the work: for a video, after its whole template analysis
    clip, photo = str(data_path("videos", "liveportrait__d0.mp4")), str(data_path("images", "sadtalker__happy.png"))
    for command in (["swap", "-s", photo, "-t", clip, "-o", str(tmp_path / "o.mp4")],
                    ["batch", "--sources", photo, "--templates", clip, "-o", str(tmp_path / "out")]):  # fmt: skip
        with pytest.raises(SystemExit) as exc:
            main([*command, "--face-index", "-1"])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert err.endswith("argument --face-index: must be 0 or more (0 is the largest face), got -1\n")
    assert list(tmp_path.iterdir()) == []


def test_a_cache_folder_that_is_a_file_says_so_and_where_it_was_set(tmp_path, capsys, monkeypatch):
    clip = str(data_path("videos", "liveportrait__d0.mp4"))
    (tmp_path / "a file").write_text("not a folder")
    monkeypatch.setenv("SASWAP_CACHE", str(tmp_path / "a file"))
    assert main(["precompute", clip, "-q"]) == 2  # it said "cannot be created or written", and not where it came from
    assert capsys.readouterr().err == (
        f"saswap: error: {tmp_path / 'a file'} (from $SASWAP_CACHE): the template cache folder cannot be created "
        "(is a file, not a folder)\n"
    )
    assert main(["precompute", clip, "-q", "--cache-dir", str(tmp_path / "a file" / "templates")]) == 2
    err = capsys.readouterr().err
    assert f"templates: the template cache folder cannot be created ({tmp_path / 'a file'} is a file" in err
    assert "SASWAP_CACHE" not in err and [p.name for p in tmp_path.iterdir()] == ["a file"]


def test_several_sources_pair_with_repeated_face_indices_or_references(tmp_path, capsys, monkeypatch):
    """``-s`` repeated, each with its ``--face-index`` or ``--reference`` in the same order; anything else is a usage
    error of one line saying what to give, before any work; every source and reference is checked as an input."""
    a, b = (str(data_path("images", name)) for name in ("sberswap__beckham.jpg", "deepface__img41.jpg"))
    two = str(data_path("images", "face_recognition__two_people.jpg"))
    out = tmp_path / "o.png"
    base = ["swap", "-s", a, "-s", b, "-t", two, "-o", str(out)]
    for extra, message in [
        ([], "2 --source photos but no face chosen for each; give --face-index or --reference 2 times, once per"),
        (["--all-faces"], "--all-faces swaps one source into every face; for 2 --source photos give"),
        (["--face-index", "1"], "2 --source photos but --face-index given 1 time; give"),
        (["--reference", a, "--reference", b, "--reference", a], "2 --source photos but --reference given 3 times"),
        (["--face-index", "1", "--face-index", "1"], "--face-index 1 is given twice; each --source replaces a face"),
    ]:  # fmt: skip
        with pytest.raises(SystemExit) as exc:
            main([*base, *extra])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and err.count("\n") == 1 and message in err, err
    with pytest.raises(SystemExit):
        main(["swap", "-s", a, "-t", two, "-o", str(out), "--face-index", "0", "--face-index", "1"])
    assert "--face-index is given 2 times for one --source; give one --source each" in capsys.readouterr().err
    assert not out.exists()
    # each value is the user's path (~ too); one --source parses to a path, as it did
    monkeypatch.setenv("HOME", str(tmp_path))
    args = build_parser().parse_args(["swap", "-s", "~/a.jpg", "-s", "~/b.jpg", "--reference", "~/r.jpg",
                                      "--reference", "r2.jpg", "-t", "t.mp4", "-o", "o.mp4"])  # fmt: skip
    assert args.source == [f"{tmp_path}/a.jpg", f"{tmp_path}/b.jpg"]
    assert args.reference == [f"{tmp_path}/r.jpg", "r2.jpg"]
    assert build_parser().parse_args(["swap", "-s", "a.jpg", "--face-index", "1", "-t", "t", "-o", "o"]).face_index == 1
    # the output may not replace any source or reference
    mine = tmp_path / "mine.png"
    Image.open(b).save(mine)
    for extra in (["-s", str(mine), "--face-index", "0", "--face-index", "1"],
                  ["-s", b, "--reference", a, "--reference", str(mine)]):  # fmt: skip
        assert main(["swap", "-s", a, *extra, "-t", two, "-o", str(mine)]) == 2
        err = capsys.readouterr().err
        assert "mine.png: is the " in err and "itself" in err
    # a broken second source is named before any model loads
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"no picture")
    assert main(["swap", "-s", a, "-s", str(broken), "--face-index", "0", "--face-index", "1", "-t", two, "-o",
                 str(out)]) == 2  # fmt: skip
    assert "broken.jpg" in capsys.readouterr().err and not out.exists()
    # the swap: both faces, tagged with the number of sources
    assert main([*base, "--face-index", "1", "--face-index", "0"]) == 0
    assert "swapped 2 face(s)" in capsys.readouterr().out
    assert main(["inspect", str(out)]) == 0
    assert "faces=2" in (said := capsys.readouterr().out) and "sources=2" in said
