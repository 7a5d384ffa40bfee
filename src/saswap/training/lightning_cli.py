"""The LightningCLI that ``saswap train``, ``train-parser`` and ``train-harmonizer`` share.

What it adds to Lightning's:

- only the subcommands the system can run (``SUBCOMMANDS``): ``saswap train validate`` is a usage error naming
  ``fit``, not a traceback from inside the trainer;
- ``--ckpt_path last`` resumes from the newest ``last.ckpt`` of the earlier runs of the same logger (every
  ``version_N`` under ``save_dir/name``, or the ``ModelCheckpoint``'s own ``dirpath``), and says which file; with
  none it is an error. (Lightning itself looks only in the new run's empty ``version_N`` and starts afresh.);
- a checkpoint that does not exist, cannot be read or was written by another system is a one-line error before
  anything is built or written;
- ``fit --init_from WEIGHTS`` starts a *new* run (step 0, a fresh optimiser, the options given now) from trained
  weights, where ``--ckpt_path`` resumes one: a ``.ckpt`` (its ``state_dict``), a ``.safetensors`` file of the
  system's weights (or of its one model's), a model folder ``saswap export`` wrote, or a shipped model's zoo name
  where the command has one (``saswap-face-parser``). The weights load strictly into the model built, before
  anything is written: a parameter missing, unexpected or of another shape is a one-line error naming the first
  (loss weights, learning rates and other options that change no shape may differ from the checkpoint's: they are
  logged, ``option: old -> new``). Given with ``--ckpt_path`` (a fine-tuning run resumed from its ``config.yaml``,
  which records it), the checkpoint's weights are used and ``--init_from`` is not loaded again (a log line says so);
- resuming continues the run the checkpoint was saved from, so the configuration's model options must be the ones
  it was trained with (its ``hyper_parameters``): a difference is a one-line error naming the options, before
  anything is written, for ``last`` as for a path. (Lightning reads a named checkpoint's hyper-parameters back over
  the configuration, the options given on the command line included, without a word; a ``last`` checkpoint's it
  did not read at all, and a model of other sizes ended in the strict load's traceback.) Weights that do not fit
  the model built, whatever the options say, are a one-line error naming the first parameters that differ;
- a ``--config`` file that is not valid YAML is an error naming the file, the line and the column;
- usage errors are one line (``saswap: error: ...``), exit code 2;
- Ctrl-C (SIGTERM) during a run raises ``KeyboardInterrupt`` (``saswap.interrupts.Terminated``) where Lightning
  would ``sys.exit(1)``, so the command line exits 130 (143) with ``saswap: interrupted``;
- a run that fails before writing any checkpoint removes the log folder it created when that holds nothing but
  what a run writes at its start (``config.yaml``, ``hparams.yaml``, empty folders; TensorBoard's event file when
  not one batch ran), so failed runs do not pile up ``version_N`` folders.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import lightning.pytorch
import yaml
from jsonargparse import ActionConfigFile
from lightning.pytorch import Callback
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities import rank_zero_info

from saswap.errors import SaSwapError, first_line

__all__ = ["TrainingCLI"]

_LAST = re.compile(r"last(-v\d+)?\.ckpt")
#: what a run writes in its log folder before its first batch (SaveConfigCallback, the loggers' hyper-parameters)
_START_FILES = ("config.yaml", "hparams.yaml")


class _OneLineErrors(LightningArgumentParser):
    """jsonargparse's usage errors as one ``saswap: error:`` line (not the whole usage), exit code 2."""

    def error(self, message: str, ex: Exception | None = None):
        if not self.exit_on_error or os.environ.get("JSONARGPARSE_DEBUG") or callable(self._error_handler):
            super().error(message, ex)  # raises, or exits as jsonargparse does
        parser = getattr(ex, "subcommand_parser", None) or self
        prog = parser.prog.replace(" [options]", "")
        message = " ".join(line.strip() for line in str(message).splitlines() if line.strip())
        sys.stderr.write(f"saswap: error: {message} (options: {prog} --help)\n")
        self.exit(2)


class _ConfigFile(ActionConfigFile):
    """``--config``: a file that is not valid YAML is an error naming the file, the line and the column (jsonargparse
    names neither the file nor, for a string it was given, that it is one)."""

    def __call__(self, parser, cfg, values, option_string=None):
        _check_yaml(values)
        super().__call__(parser, cfg, values, option_string)


def _check_yaml(value: Any) -> None:
    """Raise a TypeError (a usage error) when ``value`` names a file whose text is not valid YAML."""
    try:
        path = Path(str(value))
        text = path.read_text(encoding="utf-8") if path.is_file() else None
    except (OSError, ValueError):  # a YAML string given as the value, not a file name; a file that is not UTF-8
        return
    if text is None:
        return
    try:
        yaml.compose(text, Loader=yaml.SafeLoader)  # the syntax only: what the values mean is jsonargparse's to check
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = err.problem or "unreadable"
        context = f" ({err.context})" if err.context else ""
        raise TypeError(f"{path}: not valid YAML{where}: {problem}{context}") from None
    except yaml.YAMLError as err:
        raise TypeError(f"{path}: not valid YAML: {str(err).splitlines()[0]}") from None


class _RunRecord(Callback):
    """Notes whether the run saved a checkpoint, how many batches it ran and the exception that stopped it."""

    def __init__(self) -> None:
        self.saved = False
        self.batches = 0
        self.exception: BaseException | None = None

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        self.saved = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.batches += 1

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self.exception = exception


class TrainingCLI(LightningCLI):
    """LightningCLI for one SaSwap system; subclasses set ``COMMAND`` and ``SUBCOMMANDS``.

    Pass the keyword arguments of :class:`lightning.pytorch.cli.LightningCLI`; ``parser_class`` defaults to one
    that prints usage errors in one line.
    """

    #: the command's name in messages (``saswap COMMAND``)
    COMMAND: ClassVar[str] = "train"
    #: the Trainer methods the system supports (a ``validate`` needs ``validation_step`` and a validation set)
    SUBCOMMANDS: ClassVar[tuple[str, ...]] = ("fit",)
    #: values that must agree, linked when parsing: ``{source: target}`` (messages name a target by its source)
    LINKS: ClassVar[dict[str, str]] = {}
    #: which of :data:`saswap.training.checkpoints.CHECKPOINT_KINDS` the system is (its weights' key prefix)
    KIND: ClassVar[str] = "saswap"
    #: the system's attribute holding the one model ``saswap export`` writes as a ``save_pretrained`` folder
    #: (``--init_from FOLDER``); None where the export is another layout (:meth:`_folder_weights` says how to read it)
    MODEL: ClassVar[str | None] = None
    #: what ``--init_from`` takes besides files, for its help
    INIT_FROM_FOLDERS: ClassVar[str] = "a model folder 'saswap export' wrote"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("parser_class", _OneLineErrors)
        self._resume_from: Path | None = None  # the checkpoint checked (``last`` found), until its weights are
        self._checked: dict[str, Any] | None = None  # ... its contents (weights memory-mapped), read once
        self._init_from: Path | None = None  # --init_from's file or folder
        self._init_weights: Mapping[str, Any] | None = None  # ... a file's weights, read before the model is built
        self._init_options: dict[str, Any] | None = None  # ... and the model options a checkpoint records
        super().__init__(*args, **kwargs)

    def init_parser(self, **kwargs: Any) -> LightningArgumentParser:
        kwargs.setdefault("dump_header", [f"lightning.pytorch=={lightning.pytorch.__version__}"])
        parser = self.parser_class(**kwargs)
        parser.add_argument(
            "-c", "--config", action=_ConfigFile, help="Path to a configuration file in json or yaml format."
        )
        return parser

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        for source, target in self.LINKS.items():
            parser.link_arguments(source, target)

    @classmethod
    def subcommands(cls) -> dict[str, set[str]]:
        return {k: v for k, v in LightningCLI.subcommands().items() if k in cls.SUBCOMMANDS}

    def _prepare_subcommand_parser(self, klass: type, subcommand: str, **kwargs: Any) -> LightningArgumentParser:
        parser = super()._prepare_subcommand_parser(klass, subcommand, **kwargs)
        if subcommand == "fit":
            parser.add_argument(
                "--init_from", type=str | None, default=None,
                help=f"Fine-tune: start a new run (step 0, a fresh optimizer, the options given now) from trained "
                f"weights: a .ckpt (its state_dict), a .safetensors file, or {self.INIT_FROM_FOLDERS}. Options that "
                "change no shape (loss weights, learning rates) may differ from the checkpoint's; the architecture "
                "must match. With --ckpt_path, which resumes a run (a fine-tuning run's config.yaml records its "
                "--init_from), the checkpoint's weights are used and --init_from is not loaded.",
            )  # fmt: skip
        return parser

    # --- checkpoints ---------------------------------------------------------------------------------------

    def _parse_ckpt_path(self) -> None:
        """Check a checkpoint named by its path before anything is built. Lightning's own reading of its
        hyper-parameters back over the configuration is not done: it overrode the user's options without a word;
        :meth:`_check_options` makes a difference an error instead. ``--init_from``'s file is read here too."""
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        init_from = self.config[subcommand].get("init_from") if subcommand else None
        if ckpt_path is None:
            if init_from is not None:
                self._parse_init_from(subcommand, str(init_from))
            return
        if ckpt_path != "last":
            ckpt_path = self.config[subcommand]["ckpt_path"] = os.path.expanduser(str(ckpt_path))
            self._resume_from = Path(ckpt_path)
            self._checked = self._check_checkpoint(self._resume_from)
        if init_from is not None:
            # resuming a fine-tuning run (its config.yaml records where it started): the checkpoint holds the weights
            rank_zero_info(
                f"--ckpt_path {ckpt_path} resumes the run; --init_from {init_from} (where it started) is not loaded "
                "again"
            )

    def _check_checkpoint(self, path: Path) -> dict[str, Any]:
        """The checkpoint at ``path`` (weights memory-mapped), or a one-line error for one that is missing,
        unreadable, of another system or trained with other model options than the configuration's."""
        from saswap.training.checkpoints import read_checkpoint

        ckpt = read_checkpoint(path, weights_only=True, mmap=True)  # plain data, the weights not read
        saved = _saved_options(ckpt)
        self._check_system(path, saved)
        self._check_options(path, saved)
        return ckpt

    def _check_system(self, path: Path, saved: dict[str, Any]) -> None:
        """A one-line error when the options a checkpoint records are not all its system's (another system's)."""
        system = self._model_class
        params = inspect.signature(system).parameters
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            foreign = sorted(set(saved) - set(params))
            if foreign:
                raise SaSwapError(
                    f"{path}: a checkpoint of another system, not of {system.__name__} (its hyper-parameters "
                    f"{', '.join(foreign[:5])} are not {system.__name__}'s); give one that saswap {self.COMMAND} wrote"
                )

    def _model_options(self) -> dict[str, Any]:
        """The configuration's ``model`` as its YAML dump holds it (link targets included)."""
        subcommand = self.config.get("subcommand")
        dump = yaml.safe_load(self.parser.dump(self.config, skip_link_targets=False, skip_none=False, format="yaml"))
        return (dump.get(subcommand, dump) if subcommand else dump).get("model") or {}

    def _check_options(self, path: Path, saved: dict[str, Any]) -> None:
        """A one-line error when the configuration's model options differ from those ``path`` was trained with."""
        differences = _differences(saved, self._model_options(), "model")
        if not differences:
            return
        sources = {target: source for source, target in self.LINKS.items()}
        described = []
        for key, there, here in differences[:3]:
            name = f"{key} (from {sources[key]})" if key in sources else key
            described.append(f"{name} is {there} in the checkpoint, {here} in this configuration")
        more = f" (and {len(differences) - 3} more)" if len(differences) > 3 else ""
        raise SaSwapError(
            f"{path}: trained with other model options: {'; '.join(described)}{more}; {self._verb()} with the recipe "
            f"and options it was trained with{_run_config_hint(path)}"
        )

    def _check_weights(
        self, path: Path, weights: Mapping[str, Any], covers: tuple[str, ...] | None = None, held: str = "checkpoint"
    ) -> None:
        """A one-line error when weights (a checkpoint's ``state_dict``) do not fit the model built (Lightning's
        strict load). ``covers``: the key prefixes of the modules the weights are for (a model folder holds no
        discriminator), None for all; ``held``: what messages call what holds them."""
        built = self.model.state_dict()
        problems = []
        for key, tensor in built.items():  # in the model's order (a safetensors file's is alphabetical)
            if key in weights and tuple(getattr(weights[key], "shape", ())) != tuple(tensor.shape):
                there, here = _shape(weights[key].shape), _shape(tensor.shape)
                problems.append(f"{key} is {there} in the {held}, {here} in this configuration")
        if getattr(self.model, "strict_loading", True):  # a system may allow missing and unexpected keys
            missing = [k for k in built if k not in weights and (covers is None or k.startswith(covers))]
            unexpected = [k for k in weights if k not in built]
            if missing:
                extra = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
                problems.append(f"{missing[0]}{extra} is missing from the {held}")
            if unexpected:
                extra = f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else ""
                problems.append(f"{unexpected[0]}{extra} is in the {held}, not in this configuration's model")
        if problems:
            more = f" (and {len(problems) - 2} more)" if len(problems) > 2 else ""
            advice = (
                "fine-tune with the model sizes it was trained with"
                if self._init_from is not None
                else f"{self._verb()} with the recipe and options it was trained with"
            )
            raise SaSwapError(
                f"{path}: its weights do not fit this configuration's {type(self.model).__name__}: "
                f"{'; '.join(problems[:2])}{more}; {advice}{_run_config_hint(path)}"
            )

    # --- fine-tuning: --init_from -----------------------------------------------------------------------------

    def _parse_init_from(self, subcommand: str, value: str) -> None:
        """Before anything is built: find ``--init_from``'s file or folder (``~`` expanded) and read a file's
        weights, or a one-line error for one that is missing, unreadable or of another system."""
        path = Path(os.path.expanduser(value))
        if path.is_file():
            self.config[f"{subcommand}.init_from"] = str(path)  # as the run's config.yaml records it
            if path.suffix == ".safetensors":
                self._init_weights = self._read_safetensors(path)
            else:
                from saswap.training.checkpoints import read_checkpoint

                ckpt = read_checkpoint(path, weights_only=True, mmap=True)  # plain data, the weights not read
                self._init_options = _saved_options(ckpt)
                self._check_system(path, self._init_options)
                self._init_weights = ckpt["state_dict"]
            self._check_kind(path, self._init_weights)
        elif path.is_dir():
            self.config[f"{subcommand}.init_from"] = str(path)  # read once the model is built, by its classes
        else:
            named = self._named_weights(value)
            if named is None:
                raise SaSwapError(
                    f"{path}: no such file or folder (--init_from takes a .ckpt, a .safetensors file or "
                    f"{self.INIT_FROM_FOLDERS})"
                )
            path = named
        self._init_from = path

    def _named_weights(self, name: str) -> Path | None:
        """The folder of shipped weights ``name`` names (a zoo name), None when it names none; subclasses whose model
        ships weights say which."""
        return None

    def _read_safetensors(self, path: Path) -> dict[str, Any]:
        """A ``.safetensors`` file's tensors, keyed as the system's ``state_dict``: one model's (a ``save_pretrained``
        folder's ``model.safetensors``) get the prefix of the system's :attr:`MODEL`."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            weights = load_file(path)
        except (SafetensorError, OSError) as err:
            first = first_line(err)
            raise SaSwapError(f"{path}: not a safetensors file safetensors can read ({first})") from None
        from saswap.training.checkpoints import weights_kind

        if self.MODEL is not None and weights_kind(weights) is None:
            weights = {f"{self.MODEL}.{k}": v for k, v in weights.items()}
        return weights

    def _check_kind(self, path: Path, weights: Mapping[str, Any]) -> None:
        """A one-line error when ``weights`` hold none of this system's models (another system's, or none)."""
        from saswap.training.checkpoints import CHECKPOINT_KINDS, weights_kind

        kind = weights_kind(weights)
        if kind == self.KIND:
            return
        prefix, system, _ = CHECKPOINT_KINDS[self.KIND]
        held = f"the weights of {CHECKPOINT_KINDS[kind][1]}" if kind is not None else f"no {prefix}* weights"
        raise SaSwapError(
            f"{path}: {held}, not of {system}; give weights saswap {self.COMMAND} trained ({self.INIT_FROM_FOLDERS} "
            "or a .ckpt it wrote)"
        )

    def _folder_weights(self, folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
        """The weights a model folder holds, keyed as the system's ``state_dict``, and the model options they were
        trained with (as a configuration's ``model`` holds them). By default a ``save_pretrained`` folder of the
        system's :attr:`MODEL`, loaded by its class (:func:`saswap.models.hub.load_model_folder`)."""
        from saswap.models.hub import load_model_folder

        if self.MODEL is None:
            raise NotImplementedError(f"{type(self).__name__} reads no model folders")
        loaded = load_model_folder(type(getattr(self.model, self.MODEL)), folder)
        weights = {f"{self.MODEL}.{k}": v for k, v in loaded.state_dict().items()}
        return weights, {self.MODEL: {"init_args": json.loads((folder / "config.json").read_text(encoding="utf-8"))}}

    def _load_init_weights(self) -> None:
        """Load ``--init_from``'s weights into the model built, strictly (:meth:`_check_weights`), and log the options
        that differ from those the weights were trained with."""
        path, weights, self._init_weights = self._init_from, self._init_weights, None
        covers, held = None, "file" if path.suffix == ".safetensors" else "checkpoint"
        if weights is None:  # a folder
            weights, self._init_options = self._folder_weights(path)
            covers, held = tuple(dict.fromkeys(k.split(".", 1)[0] + "." for k in weights)), "folder"
        self._check_weights(path, weights, covers, held)
        self.model.load_state_dict(weights, strict=False)  # strict: checked above, less what a folder cannot hold
        del weights  # a checkpoint's mapping is not held through the run
        if self._init_options is None:
            options = "a .safetensors file records no options"
        else:
            differences = _differences(self._init_options, self._model_options(), "model")
            changed = ", ".join(f"{key}: {there} -> {here}" for key, there, here in differences)
            options = f"options changed: {changed}" if changed else "the options it was trained with"
        built = [
            name for name, module in self.model.named_children()
            if covers is not None and not f"{name}.".startswith(covers) and module.state_dict()
        ]  # fmt: skip
        kept = f"; as built, not in the folder: {', '.join(built)}" if built else ""
        rank_zero_info(
            f"Fine-tuning from {path}: a new run from its weights (step 0, a fresh optimizer); {options}{kept}"
        )

    def _verb(self) -> str:
        return "resume" if self.config.get("subcommand") == "fit" else f"{self.config.get('subcommand')} it"

    def after_instantiate_classes(self) -> None:
        """Before anything is written: the checkpoint to resume from (``last`` found now that the trainer says
        where) agrees with the configuration's options and fits the model built."""
        super().after_instantiate_classes()
        if self._init_from is not None:
            self._load_init_weights()
            return
        subcommand = self.subcommand
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if ckpt_path is None:
            return
        if ckpt_path == "last":
            self._resume_from = self._last_checkpoint()
            self._checked = self._check_checkpoint(self._resume_from)
        ckpt, self._checked = self._checked, None  # the weights' mapping is not held through the run
        self._check_weights(self._resume_from, ckpt["state_dict"])

    def _checkpoint_folders(self) -> tuple[list[Path], str]:
        """The folders where this configuration's runs write checkpoints, and a description for messages."""
        trainer = self.trainer
        folders: list[Path] = []
        where: list[str] = []
        for callback in trainer.checkpoint_callbacks:
            if not isinstance(callback, ModelCheckpoint):
                continue
            if callback.dirpath is not None:
                folders.append(Path(callback.dirpath))
                where.append(str(callback.dirpath))
            elif trainer.loggers:
                logger = trainer.loggers[0]
                root = Path(logger.save_dir or trainer.default_root_dir, str(logger.name))
                folders.extend(sorted(root.glob("*/checkpoints")))
                where.append(str(root / "*" / "checkpoints"))
            else:
                folders.append(Path(trainer.default_root_dir, "checkpoints"))
                where.append(str(folders[-1]))
        return folders, " or ".join(dict.fromkeys(where))

    def _last_checkpoint(self) -> Path:
        """The newest ``last.ckpt`` of the earlier runs, or a SaSwapError saying where none was found."""
        folders, where = self._checkpoint_folders()
        if not where:
            raise SaSwapError("--ckpt_path last: this configuration writes no checkpoints (no ModelCheckpoint)")
        found = [p for folder in folders if folder.is_dir() for p in folder.iterdir() if _LAST.fullmatch(p.name)]
        if not found:
            raise SaSwapError(
                f"--ckpt_path last: no last.ckpt in {where} (written by a ModelCheckpoint with save_last: true, "
                "as in the recipes); run without --ckpt_path to start, or give a checkpoint file"
            )
        return max(found, key=lambda p: (p.stat().st_mtime, str(p)))

    def _prepare_subcommand_kwargs(self, subcommand: str) -> dict[str, Any]:
        kwargs = super()._prepare_subcommand_kwargs(subcommand)
        if kwargs.get("ckpt_path") == "last":
            kwargs["ckpt_path"] = str(self._resume_from or self._last_checkpoint())
            rank_zero_info(f"{'Resuming from' if subcommand == 'fit' else 'Loading'} {kwargs['ckpt_path']}")
        return kwargs

    # --- a run that fails or is interrupted ------------------------------------------------------------------

    def _run_subcommand(self, subcommand: str) -> None:
        trainer = self.trainer
        record = _RunRecord()
        trainer.callbacks.append(record)
        log_dir = Path(trainer.log_dir) if trainer.log_dir and trainer.is_global_zero else None
        created = _missing_folders(log_dir) if log_dir is not None else []
        try:
            super()._run_subcommand(subcommand)
        except BaseException as err:
            if created and not record.saved:
                _remove_start_only(created, record.batches == 0)
            # Lightning answers Ctrl-C with sys.exit(1): raise the interrupt again for the caller to handle
            if isinstance(err, SystemExit) and isinstance(record.exception, KeyboardInterrupt):
                raise record.exception.with_traceback(None) from None
            raise


def _saved_options(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The model options a checkpoint records (its ``hyper_parameters``, less LightningCLI's bookkeeping)."""
    return {k: v for k, v in (ckpt.get("hyper_parameters") or {}).items() if k not in ("_instantiator", "_class_path")}


def _differences(saved: Any, current: Any, key: str) -> list[tuple[str, str, str]]:
    """``(key, saved value, current value)`` where the options a checkpoint was trained with (``saved``) differ from
    the configuration's; an option the checkpoint does not record (one added since) is not compared, and of a
    model given by another class only its ``class_path`` is named."""
    if isinstance(saved, dict) and isinstance(current, dict):
        if "class_path" in saved and saved.get("class_path") != current.get("class_path"):
            return [(f"{key}.class_path", _value(saved.get("class_path")), _value(current.get("class_path")))]
        found = []
        for name, value in saved.items():
            if name in current:
                found.extend(_differences(value, current[name], f"{key}.{name}"))
            else:
                found.append((f"{key}.{name}", _value(value), "not an option"))
        return found
    return [] if _plain(saved) == _plain(current) else [(key, _value(saved), _value(current))]


def _plain(value: Any) -> Any:
    """A value as the YAML dump of a configuration holds it: a tuple (as a checkpoint may save one) is a list."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _value(value: Any) -> str:
    """An option's value as a message shows it: a class by its name, anything else as JSON (as a YAML recipe reads)."""
    if isinstance(value, dict) and "class_path" in value:
        return str(value["class_path"])
    return json.dumps(value, default=str)


def _shape(shape: Any) -> str:
    return "[" + ",".join(str(int(n)) for n in shape) + "]"


def _run_config_hint(path: Path) -> str:
    """``: --config RUN/config.yaml`` when the run that wrote ``path`` saved its configuration beside it."""
    config = path.parent.parent / "config.yaml"
    return (
        f" (that run's configuration: --config {config})"
        if path.parent.name == "checkpoints" and config.is_file()
        else ""
    )


def _missing_folders(folder: Path) -> list[Path]:
    """``folder`` and its ancestors that do not exist yet, deepest first."""
    missing = []
    folder = folder.absolute()
    while not folder.exists() and folder.parent != folder:
        missing.append(folder)
        folder = folder.parent
    return missing


def _remove_start_only(created: list[Path], no_batch: bool) -> None:
    """Remove the run's log folder (``created[0]``) when it holds only what a run writes at its start, then the
    empty folders above it that the run created."""
    folder = created[0]
    if folder.is_dir():
        for path in folder.rglob("*"):
            if path.is_symlink() or not (
                path.is_dir()
                or path.name in _START_FILES
                or (no_batch and path.name.startswith("events.out.tfevents."))
            ):
                return  # anything else (a checkpoint, metrics) is kept
        shutil.rmtree(folder, ignore_errors=True)
    for parent in created[1:]:
        try:
            parent.rmdir()
        except OSError:
            break
