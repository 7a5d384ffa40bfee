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


# --- fine-tuning: --init_from ------------------------------------------------------------------------------------


def _first_step_probe(monkeypatch, system_cls) -> dict:
    """Record, at the first training step (before any optimiser step), the step, the epoch, the weights and how much
    state the optimisers hold."""
    seen: dict = {}
    step = system_cls.training_step

    def probe(self, batch, batch_idx):
        if not seen:
            optimizers = self.optimizers()
            optimizers = optimizers if isinstance(optimizers, list) else [optimizers]
            seen.update(
                step=self.global_step, epoch=self.current_epoch, hparams=dict(self.hparams),
                weights={k: v.detach().clone() for k, v in self.state_dict().items()},
                optimizer_state=sum(len(o.optimizer.state) for o in optimizers),
            )  # fmt: skip
        return step(self, batch, batch_idx)

    monkeypatch.setattr(system_cls, "training_step", probe)
    return seen


def _last(trained: Path) -> Path:
    return trained / "runs" / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"


def _same_weights(weights: dict, expected: dict, keys=None) -> list[str]:
    """The keys of ``keys`` (default: all of ``expected``) whose tensors differ."""
    return [k for k in keys or expected if not torch.equal(weights[k], expected[k].to(weights[k].dtype))]


def test_init_from_starts_a_new_run_from_a_checkpoints_weights_with_other_options(
    trained, cache, tmp_path, capfd, caplog, monkeypatch
):
    """Other loss weights and learning rate: step 0, epoch 0, fresh optimisers, the checkpoint's weights before the
    first step, the options given now in the new run's checkpoint, and one log line naming what changed."""
    caplog.set_level(logging.INFO)
    source = torch.load(_last(trained), weights_only=True)
    assert source["global_step"] == 2 and source["hyper_parameters"]["lambda_adv"] == 0.1
    seen = _first_step_probe(monkeypatch, SaSwapSystem)
    options = ["--model.lambda_adv", "0.5", "--model.lr_g", "0.0005"]
    assert main(["train", "fit", *_tiny(tmp_path, cache), "--init_from", str(_last(trained)), *options]) == 0
    assert seen["step"] == 0 and seen["epoch"] == 0 and seen["optimizer_state"] == 0
    assert seen["hparams"]["lambda_adv"] == 0.5 and seen["hparams"]["lr_g"] == 0.0005
    assert set(seen["weights"]) == set(source["state_dict"])
    assert _same_weights(seen["weights"], source["state_dict"]) == []
    run = tmp_path / "runs" / "lightning_logs" / "version_0"
    tuned = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert tuned["global_step"] == 2  # 2 steps of its own, not 2 more after the source's 2
    assert tuned["hyper_parameters"]["lambda_adv"] == 0.5
    assert _same_weights(tuned["state_dict"], source["state_dict"])  # it trained from there
    assert f"init_from: {_last(trained)}" in (run / "config.yaml").read_text()
    logged = capfd.readouterr().err + caplog.text
    assert (
        f"Fine-tuning from {_last(trained)}: a new run from its weights (step 0, a fresh optimizer); options changed: "
        "model.lambda_adv: 0.1 -> 0.5, model.lr_g: 0.001 -> 0.0005"
    ) in logged


def test_init_from_weights_of_other_shapes_is_one_line_before_anything_is_written(trained, cache, tmp_path, capfd):
    wider = ["--model.generator.init_args.block_out_channels", "[128,32,16,16]"]
    assert _exit_code(["train", "fit", *_tiny(tmp_path, cache), "--init_from", str(_last(trained)), *wider]) == 2
    line = _error_line(capfd.readouterr().err)
    assert f"saswap: error: {_last(trained)}: its weights do not fit this configuration's SaSwapSystem: " in line
    assert "generator.stem.weight is [32,64,4,4] in the checkpoint, [32,128,4,4] in this configuration" in line
    assert line.endswith(
        f"fine-tune with the model sizes it was trained with (that run's configuration: --config "
        f"{_last(trained).parent.parent}/config.yaml)"
    )
    assert not (tmp_path / "runs").exists()


def test_a_fine_tuning_run_resumes_from_its_own_config_without_loading_init_from_again(
    trained, cache, tmp_path, capfd, caplog, monkeypatch
):
    """Its config.yaml records --init_from; resumed with it and --ckpt_path (given with ~), the run goes on from its
    own checkpoint: the weights of that checkpoint, not --init_from's, at its step."""
    caplog.set_level(logging.INFO)
    monkeypatch.setenv("HOME", str(tmp_path))
    options = ["--model.lambda_adv", "0.5"]
    assert main(["train", "fit", *_tiny(tmp_path, cache), "--init_from", str(_last(trained)), *options]) == 0
    run = tmp_path / "runs" / "lightning_logs" / "version_0"
    tuned = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    seen = _first_step_probe(monkeypatch, SaSwapSystem)
    last = "~/runs/lightning_logs/version_0/checkpoints/last.ckpt"
    resume = ["--config", str(run / "config.yaml"), "--ckpt_path", last]
    assert main(["train", "fit", *resume, "--trainer.max_steps", "3"]) == 0
    assert seen["step"] == 2 and _same_weights(seen["weights"], tuned["state_dict"]) == []
    logged = capfd.readouterr().err + caplog.text
    assert f"--init_from {_last(trained)} (where it started) is not loaded again" in logged
    assert "Fine-tuning from" not in logged.split("resumes the run")[-1]


def test_init_from_a_missing_file_or_another_systems_weights_is_one_line(tmp_path, cache, capfd, monkeypatch):
    from safetensors.torch import save_file

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    torch.save({"state_dict": {"parser.head.weight": torch.zeros(1)}, "hyper_parameters": {"parser": {}, "lr": 0.1}},
               tmp_path / "parser.ckpt")  # fmt: skip
    save_file({"parser.head.weight": torch.zeros(1)}, tmp_path / "parser.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not safetensors")
    cases = {
        "~/nope.ckpt": f"{tmp_path}/home/nope.ckpt: no such file or folder (--init_from takes a .ckpt, a .safetensors",
        str(tmp_path / "parser.ckpt"): "parser.ckpt: a checkpoint of another system, not of SaSwapSystem",
        str(tmp_path / "parser.safetensors"): (
            "parser.safetensors: the weights of FaceParserSystem (saswap train-parser), not of SaSwapSystem (saswap "
            "train); give weights saswap train trained"
        ),
        str(tmp_path / "junk.safetensors"): "junk.safetensors: not a safetensors file safetensors can read",
    }
    for init_from, message in cases.items():
        assert _exit_code(["train", "fit", *_tiny(tmp_path, cache), "--init_from", init_from]) == 2
        assert message in _error_line(capfd.readouterr().err)
    assert not (tmp_path / "runs").exists()


def test_init_from_a_safetensors_file_under_the_home_folder(trained, cache, tmp_path, monkeypatch):
    from safetensors.torch import save_file

    monkeypatch.setenv("HOME", str(tmp_path))
    source = torch.load(_last(trained), weights_only=True)["state_dict"]
    save_file({k: v.contiguous() for k, v in source.items()}, tmp_path / "weights.safetensors")
    seen = _first_step_probe(monkeypatch, SaSwapSystem)
    assert main(["train", "fit", *_tiny(tmp_path, cache), "--init_from", "~/weights.safetensors"]) == 0
    assert seen["step"] == 0 and seen["optimizer_state"] == 0
    assert _same_weights(seen["weights"], source) == []


def test_init_from_a_folder_saswap_export_wrote(trained, cache, tmp_path, capfd, caplog, monkeypatch):
    """The exported networks start the run (its generator, the EMA's weights, starts the generator and its EMA); the
    discriminator, which an export leaves out, starts as built, and the log says so."""
    from saswap.training.export import export_checkpoint

    caplog.set_level(logging.INFO)
    folder = tmp_path / "exported"
    export_checkpoint(_last(trained), folder, onnx=False)
    source = torch.load(_last(trained), weights_only=True)["state_dict"]
    seen = _first_step_probe(monkeypatch, SaSwapSystem)
    assert main(["train", "fit", *_tiny(tmp_path, cache), "--init_from", str(folder)]) == 0
    weights = seen["weights"]
    assert seen["step"] == 0 and seen["optimizer_state"] == 0
    for name in ("identity_encoder", "attribute_encoder", "flow_estimator"):
        keys = [k for k in source if k.startswith(f"{name}.")]
        assert keys and _same_weights(weights, source, keys) == []
    ema = [k for k in source if k.startswith("generator_ema.")]
    assert _same_weights(weights, source, ema) == []
    assert all(torch.equal(weights[k], weights[k.replace("generator_ema.", "generator.", 1)]) for k in ema)
    disc = [k for k in source if k.startswith("discriminator.")]
    assert _same_weights(weights, source, disc)  # as built, not the trained one
    assert "; as built, not in the folder: discriminator" in capfd.readouterr().err + caplog.text
    # a folder missing a component: one line naming it
    (folder / "generator" / "model.safetensors").unlink()
    assert _exit_code(["train", "fit", *_tiny(tmp_path / "again", cache), "--init_from", str(folder)]) == 2
    assert f"{folder / 'generator'}: no model.safetensors" in _error_line(capfd.readouterr().err)
    assert not (tmp_path / "again").exists()


def _parser_args(tmp_path: Path, *extra: str) -> list[str]:
    runs = str(tmp_path / "runs")
    return [
        "fit", "--config", str(ROOT / "recipes" / "face-parser.yaml"), "--data.roots", f"[{data_path('images')}]",
        "--trainer.default_root_dir", runs, "--trainer.logger.init_args.save_dir", runs, *extra,
    ]  # fmt: skip


@pytest.fixture
def no_run(monkeypatch):
    """The training commands build everything and load --init_from's weights, but do not train."""
    from saswap.training.lightning_cli import TrainingCLI

    monkeypatch.setattr(TrainingCLI, "_run_subcommand", lambda self, subcommand: None)


def test_train_parser_init_from_the_shipped_parser_by_its_zoo_name(tmp_path, no_run):
    from saswap.models import FaceParser
    from saswap.training.parser_cli import train_parser_main

    cli = train_parser_main(_parser_args(tmp_path, "--init_from", "saswap-face-parser", "--model.lr", "0.0003"))
    shipped = FaceParser.from_pretrained("saswap-face-parser").state_dict()
    assert _same_weights(cli.model.parser.state_dict(), shipped) == []
    assert cli.model.hparams.lr == 0.0003


def test_train_parser_init_from_a_parser_folder_or_its_safetensors_and_one_of_other_sizes(tmp_path, capfd, no_run):
    from saswap.models import FaceParser
    from saswap.training.parser_cli import train_parser_main

    torch.manual_seed(1)
    FaceParser(block_out_channels=(4, 8, 16), image_size=64).save_pretrained(tmp_path / "mine")
    tiny = ("--model.parser.init_args.block_out_channels", "[4, 8, 16]")
    expected = FaceParser.from_pretrained(tmp_path / "mine").state_dict()
    for init_from in (tmp_path / "mine", tmp_path / "mine" / "model.safetensors"):
        cli = train_parser_main(_parser_args(tmp_path, "--init_from", str(init_from), *tiny))
        assert _same_weights(cli.model.parser.state_dict(), expected) == []
    # the recipe's wider parser: one line naming the first parameter and both shapes
    for init_from, held in ((tmp_path / "mine", "folder"), (tmp_path / "mine" / "model.safetensors", "file")):
        assert _exit_code(["train-parser", *_parser_args(tmp_path, "--init_from", str(init_from))]) == 2
        line = _error_line(capfd.readouterr().err)
        assert f"{init_from}: its weights do not fit this configuration's FaceParserSystem: parser.stem.0.0.weight " \
            f"is [4,3,3,3] in the {held}, [16,3,3,3] in this configuration" in line
    assert not (tmp_path / "runs").exists()


def test_train_harmonizer_init_from_a_checkpoint_and_the_zoo_name_that_has_no_weights_yet(tmp_path, capfd, no_run):
    from saswap.models import ToneHarmonizer
    from saswap.training.harmonizer_cli import train_harmonizer_main

    torch.manual_seed(2)
    model = ToneHarmonizer(grid_size=4, block_out_channels=(4, 8), work_size=32)
    spec = {"class_path": "saswap.models.ToneHarmonizer",
            "init_args": {"grid_size": 4, "block_out_channels": [4, 8], "work_size": 32}}  # fmt: skip
    state = {f"harmonizer.{k}": v for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "hyper_parameters": {"harmonizer": spec, "lr": 0.002}}, tmp_path / "h.ckpt")
    runs = str(tmp_path / "runs")
    args = [
        "fit", "--config", str(ROOT / "recipes" / "tone-harmonizer.yaml"), "--trainer.default_root_dir", runs,
        "--trainer.logger.init_args.save_dir", runs, "--model.harmonizer.init_args.block_out_channels", "[4, 8]",
        "--model.harmonizer.init_args.work_size", "32", "--model.harmonizer.init_args.grid_size", "4",
    ]  # fmt: skip
    cli = train_harmonizer_main([*args, "--init_from", str(tmp_path / "h.ckpt"), "--model.lr", "0.0001"])
    assert _same_weights(cli.model.state_dict(), state) == [] and cli.model.hparams.lr == 0.0001
    assert _exit_code(["train-harmonizer", *args, "--init_from", "saswap-tone-harmonizer"]) == 2
    assert "saswap-tone-harmonizer: no weights ship yet" in _error_line(capfd.readouterr().err)
    assert not (tmp_path / "runs").exists()
