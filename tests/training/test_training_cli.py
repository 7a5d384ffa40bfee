"""The training commands as a user runs them: one-line errors with exit code 2, only the subcommands a system
supports, ``--ckpt_path last`` resuming the newest earlier run, Ctrl-C and SIGTERM exiting 130 and 143, and failed
runs leaving no empty log folders behind."""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path

import pytest
import torch
from conftest import ROOT, data_path

pytest.importorskip("lightning")
pytest.importorskip("jsonargparse")

from saswap.cli import main  # noqa: E402
from saswap.training.system import SaSwapSystem  # noqa: E402

RECIPE = str(ROOT / "recipes" / "debug-tiny.yaml")


def _error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("saswap: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err, err
    return lines[0]


def _exit_code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # jsonargparse's usage errors
        return exc.code


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("train_cache")


def _tiny(tmp_path: Path, cache: Path, root: str | None = None) -> list[str]:
    runs = str(tmp_path / "runs")
    return [
        "--config", RECIPE, "--data.root", root or str(data_path("videos")), "--data.frames_per_video", "1",
        "--data.max_files", "2", "--data.cache_dir", str(cache), "--trainer.default_root_dir", runs,
        "--trainer.logger.init_args.save_dir", runs, "--trainer.max_steps", "2",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "args,message",
    [
        (["fit", "--config", "{tmp}/nope.yaml"], "nope.yaml"),
        (["fit", "--config", "{tmp}/bad.yaml"], "{tmp}/bad.yaml: not valid YAML at line 2, column 6: expected ','"),
        (
            ["fit", "--config", "{tmp}/bad2.yaml"],
            "{tmp}/bad2.yaml: not valid YAML at line 3, column 14: mapping values",
        ),
        (["fit", "--config", RECIPE, "--bogus", "1"], "unrecognized arguments: --bogus"),
        (["fit", "--config", RECIPE, "--model.lr_g", "abc"], 'Parser key "model.lr_g"'),
        (["validate", "--config", RECIPE], "invalid choice: 'validate' (choose from 'fit')"),
        (["predict"], "invalid choice: 'predict' (choose from 'fit')"),
    ],
)
def test_usage_errors_are_one_line_exit_2(tmp_path, capfd, args, message):
    (tmp_path / "bad.yaml").write_text("trainer: [\n  bad")
    (tmp_path / "bad2.yaml").write_text("model:\n  lr_g: 0.1\n   lambda_adv: 2\n")
    assert _exit_code(["train", *(a.format(tmp=tmp_path) for a in args)]) == 2
    assert message.format(tmp=tmp_path) in _error_line(capfd.readouterr().err)
    assert not any(tmp_path.glob("**/lightning_logs"))


@pytest.mark.parametrize("command,unsupported", [("train-parser", "predict"), ("train-harmonizer", "test")])
def test_parser_and_harmonizer_offer_fit_and_validate(capfd, command, unsupported):
    assert _exit_code([command, unsupported]) == 2
    assert f"invalid choice: '{unsupported}' (choose from 'fit', 'validate')" in _error_line(capfd.readouterr().err)


def test_bad_checkpoints_are_one_line_errors_before_anything_is_written(tmp_path, capfd):
    torch.save({"state_dict": {}, "hyper_parameters": {"parser": {}, "lr": 0.1}}, tmp_path / "parser.ckpt")
    (tmp_path / "junk.ckpt").write_text("not a checkpoint")
    common = ["train", "fit", "--config", RECIPE, "--trainer.default_root_dir", str(tmp_path / "runs"),
              "--trainer.logger.init_args.save_dir", str(tmp_path / "runs")]  # fmt: skip
    cases = {
        "nope.ckpt": "nope.ckpt: no such checkpoint",
        str(tmp_path / "parser.ckpt"): "a checkpoint of another system, not of SaSwapSystem",
        str(tmp_path / "junk.ckpt"): "junk.ckpt: not a training checkpoint",
    }
    for ckpt, message in cases.items():
        assert _exit_code([*common, "--ckpt_path", ckpt]) == 2
        assert message in _error_line(capfd.readouterr().err)
    assert not (tmp_path / "runs").exists()


PARSER = {"class_path": "saswap.models.FaceParser", "init_args": {"block_out_channels": [8, 16]}}
HARMONIZER = {"class_path": "saswap.models.ToneHarmonizer", "init_args": {"grid_size": 4}}


@pytest.mark.parametrize(
    "command,model,message",
    [
        ("train-parser", {"parser": PARSER, "lr": 0.003},
         "model.parser.init_args.block_out_channels is [8, 16] in the checkpoint, [16, 32, 64, 96, 128] in this"),
        ("train-harmonizer", {"harmonizer": HARMONIZER, "lr": 0.002},
         "model.harmonizer.init_args.grid_size is 4 in the checkpoint, 8 in this configuration"),
    ],
)  # fmt: skip
def test_a_checkpoint_of_other_model_options_is_an_error_before_anything_is_built(
    tmp_path, capfd, command, model, message
):
    """The parser at another width: the options that differ, named before anything is built or written. Lightning read
    the checkpoint's options back over the recipe's without a word (the same for the harmoniser)."""
    recipe = str(ROOT / "recipes" / ("face-parser.yaml" if command == "train-parser" else "tone-harmonizer.yaml"))
    torch.save({"state_dict": {}, "hyper_parameters": model}, tmp_path / "other.ckpt")
    runs = str(tmp_path / "runs")
    args = ["fit", "--config", recipe, "--trainer.default_root_dir", runs, "--trainer.logger.init_args.save_dir", runs]
    assert _exit_code([command, *args, "--ckpt_path", str(tmp_path / "other.ckpt")]) == 2
    line = _error_line(capfd.readouterr().err)
    assert f"{tmp_path / 'other.ckpt'}: trained with other model options: {message}" in line
    assert "model.lr" not in line  # the recipe's own lr: the same value, not a difference
    assert not (tmp_path / "runs").exists()


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cache):
    """A folder with one tiny run (``runs/lightning_logs/version_0``, 2 steps) to resume."""
    folder = tmp_path_factory.mktemp("trained")
    assert main(["train", "fit", *_tiny(folder, cache)]) == 0
    return folder


@pytest.mark.parametrize(
    "ckpt,options,message",
    [
        ("last", ["--model.lambda_adv", "0.5"], "model.lambda_adv is 0.1 in the checkpoint, 0.5 in this configuration"),
        ("path", ["--model.lambda_adv", "0.5"], "model.lambda_adv is 0.1 in the checkpoint, 0.5 in this configuration"),
        ("last", ["--model.generator.init_args.block_out_channels", "[128,32,16,16]"],
         "model.generator.init_args.block_out_channels is [64, 32, 16, 16] in the checkpoint, [128, 32, 16, 16] in"),
        ("last", ["--data.image_size", "128"],
         "model.flow_estimator.init_args.image_size (from data.image_size) is 64 in the checkpoint, 128 in this"),
    ],
)  # fmt: skip
def test_resuming_with_other_model_options_is_an_error_naming_them(trained, cache, capfd, ckpt, options, message):
    """`last` read no options back (a model of other sizes ended in the strict load's traceback, other loss weights
    mixed in without a word); a named checkpoint's options silently replaced those given on the command line."""
    run = trained / "runs" / "lightning_logs" / "version_0"
    last = run / "checkpoints" / "last.ckpt"
    capfd.readouterr()
    args = [*_tiny(trained, cache), *options, "--ckpt_path", "last" if ckpt == "last" else str(last)]
    assert _exit_code(["train", "fit", *args]) == 2
    line = _error_line(capfd.readouterr().err)
    assert f"{last}: trained with other model options: {message}" in line
    assert line.endswith(
        f"resume with the recipe and options it was trained with (that run's configuration: --config {run}/config.yaml)"
    )
    assert sorted(p.name for p in run.parent.iterdir()) == ["version_0"]


def test_weights_that_do_not_fit_the_model_are_an_error_naming_the_parameter(trained, cache, tmp_path, capfd):
    """The same options but weights of other shapes (or names): one line naming the parameter, before anything is
    written, where Lightning's strict load ended in a traceback."""
    ckpt = torch.load(
        trained / "runs" / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt", weights_only=True
    )
    key = "generator.blocks.0.aad1.attr_gamma.weight"
    assert ckpt["state_dict"][key].shape == (64, 64, 1, 1)
    ckpt["state_dict"][key] = torch.zeros(32, 16, 3, 3)
    torch.save(ckpt, tmp_path / "reshaped.ckpt")
    del ckpt["state_dict"][key]
    torch.save(ckpt, tmp_path / "missing.ckpt")
    cases = {
        "reshaped.ckpt": f"{key} is [32,16,3,3] in the checkpoint, [64,64,1,1] in this configuration; resume with",
        "missing.ckpt": f"{key} is missing from the checkpoint; resume with",
    }
    for name, message in cases.items():
        assert _exit_code(["train", "fit", *_tiny(tmp_path, cache), "--ckpt_path", str(tmp_path / name)]) == 2
        line = _error_line(capfd.readouterr().err)
        assert f"{tmp_path / name}: its weights do not fit this configuration's SaSwapSystem: {message}" in line
    assert not (tmp_path / "runs").exists()


def test_ckpt_path_last_without_an_earlier_run_is_an_error(tmp_path, cache, capfd):
    assert _exit_code(["train", "fit", *_tiny(tmp_path, cache), "--ckpt_path", "last"]) == 2
    line = _error_line(capfd.readouterr().err)
    assert "--ckpt_path last: no last.ckpt in" in line and str(tmp_path / "runs" / "lightning_logs") in line
    assert not (tmp_path / "runs").exists()


def test_ckpt_path_last_resumes_the_newest_earlier_run_and_failed_runs_leave_no_folder(tmp_path, cache, capfd, caplog):
    caplog.set_level(logging.INFO)
    logs = tmp_path / "runs" / "lightning_logs"
    assert _exit_code(["train", "fit", *_tiny(tmp_path, cache)]) == 0
    first = logs / "version_0" / "checkpoints" / "last.ckpt"
    assert torch.load(first, weights_only=True)["global_step"] == 2
    capfd.readouterr()
    # a run that fails (missing data) after its start wrote config.yaml: its version_1 goes, version_0 stays
    missing = tmp_path / "no-data"
    assert _exit_code(["train", "fit", *_tiny(tmp_path, cache, str(missing)), "--ckpt_path", "last"]) == 2
    assert f"{missing}: training data folder not found" in _error_line(capfd.readouterr().err)
    assert sorted(p.name for p in logs.iterdir()) == ["version_0"] and first.is_file()
    # a folder that existed before a run is never removed, even one with only a config in it
    (logs / "version_1").mkdir()
    (logs / "version_1" / "config.yaml").write_text("# an earlier run's\n")
    assert _exit_code(["train", "fit", *_tiny(tmp_path, cache, str(missing))]) == 2
    assert sorted(p.name for p in logs.iterdir()) == ["version_0", "version_1"]
    # resuming: from version_0's last.ckpt (the newest), on to step 4, in a new version folder
    assert _exit_code(["train", "fit", *_tiny(tmp_path, cache), "--ckpt_path", "last", "--trainer.max_steps", "4"]) == 0
    assert f"Resuming from {first}" in capfd.readouterr().err + caplog.text  # Lightning's handler, or pytest's
    resumed = logs / "version_2" / "checkpoints" / "last.ckpt"
    assert torch.load(resumed, weights_only=True)["global_step"] == 4


@pytest.mark.parametrize(
    "sig,code,message,at_step", [("SIGINT", 130, "saswap: interrupted", 2), ("SIGTERM", 143, "saswap: terminated", 0)]
)
def test_a_signal_during_training_exits_like_the_other_commands(
    tmp_path, cache, capfd, monkeypatch, sig, code, message, at_step
):
    """Lightning answers Ctrl-C with sys.exit(1); the command exits 130 (143 for SIGTERM) and says so. Interrupted
    after its first checkpoint (step 2), the run's folder stays; before any (step 0), it goes."""
    step = SaSwapSystem.training_step

    def signalled_step(self, batch, batch_idx):
        if self.global_step == at_step:
            os.kill(os.getpid(), getattr(signal, sig))
            time.sleep(1)  # the handler raises here
        return step(self, batch, batch_idx)

    monkeypatch.setattr(SaSwapSystem, "training_step", signalled_step)
    every_2 = ["--trainer.callbacks.init_args.every_n_train_steps", "2"]
    args = [*_tiny(tmp_path, cache), "--trainer.max_steps", "6", *every_2]
    # Python's own handlers, as in a terminal: a test run started in the background of a shell without job control
    # (a CI script) inherits SIGINT ignored, which the command line rightly leaves ignored
    before = {signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler)}
    before[signal.SIGTERM] = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        exit_code = _exit_code(["train", "fit", *args])
        left = signal.getsignal(signal.SIGINT)
    finally:
        for number, handler in before.items():
            signal.signal(number, handler)
    assert exit_code == code
    err = capfd.readouterr().err
    assert err.strip().splitlines()[-1] == message and "Traceback" not in err
    run = tmp_path / "runs" / "lightning_logs" / "version_0"
    if at_step:
        assert (run / "checkpoints" / "last.ckpt").is_file()
    else:
        assert not (tmp_path / "runs").exists()
    assert left is signal.default_int_handler  # Lightning's SIG_IGN is not left behind


def test_options_saved_as_tuples_equal_the_configurations_lists():
    """A checkpoint may save a tuple (a system's default) where the configuration's YAML holds a list: the same option,
    not a difference that would refuse every resume; a value that differs is still named."""
    from saswap.training.lightning_cli import _differences

    saved = {"betas": (0.0, 0.999), "generator": {"class_path": "G", "init_args": {"channels": (64, 32)}}}
    same = {"betas": [0.0, 0.999], "generator": {"class_path": "G", "init_args": {"channels": [64, 32]}}}
    assert _differences(saved, same, "model") == []
    other = {**same, "betas": [0.5, 0.999]}
    assert _differences(saved, other, "model") == [("model.betas", "[0.0, 0.999]", "[0.5, 0.999]")]
