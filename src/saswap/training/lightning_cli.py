"""The LightningCLI that ``saswap train``, ``train-parser`` and ``train-harmonizer`` share.

What it adds to Lightning's:

- only the subcommands the system can run (``SUBCOMMANDS``): ``saswap train validate`` is a usage error naming
  ``fit``, not a traceback from inside the trainer;
- ``--ckpt_path last`` resumes from the newest ``last.ckpt`` of the earlier runs of the same logger (every
  ``version_N`` under ``save_dir/name``, or the ``ModelCheckpoint``'s own ``dirpath``), and says which file; with
  none it is an error. (Lightning itself looks only in the new run's empty ``version_N`` and starts afresh.) The
  checkpoint's hyper-parameters are not read back into the configuration, as they are for a checkpoint named by
  its path: give the run's configuration again;
- a checkpoint that does not exist, cannot be read or was written by another system is a one-line error before
  anything is built or written;
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
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any, ClassVar

import lightning.pytorch
import yaml
from jsonargparse import ActionConfigFile
from lightning.pytorch import Callback
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities import rank_zero_info

from saswap.errors import SaSwapError

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

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("parser_class", _OneLineErrors)
        super().__init__(*args, **kwargs)

    def init_parser(self, **kwargs: Any) -> LightningArgumentParser:
        kwargs.setdefault("dump_header", [f"lightning.pytorch=={lightning.pytorch.__version__}"])
        parser = self.parser_class(**kwargs)
        parser.add_argument(
            "-c", "--config", action=_ConfigFile, help="Path to a configuration file in json or yaml format."
        )
        return parser

    @classmethod
    def subcommands(cls) -> dict[str, set[str]]:
        return {k: v for k, v in LightningCLI.subcommands().items() if k in cls.SUBCOMMANDS}

    # --- checkpoints ---------------------------------------------------------------------------------------

    def _parse_ckpt_path(self) -> None:
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if ckpt_path is not None and ckpt_path != "last":
            self._check_checkpoint(Path(ckpt_path))
        super()._parse_ckpt_path()

    def _check_checkpoint(self, path: Path) -> None:
        """A one-line error for a checkpoint that is missing, unreadable or of another system."""
        from saswap.training.checkpoints import read_checkpoint

        ckpt = read_checkpoint(path, weights_only=True, mmap=True)  # as LightningCLI reads it next; weights not read
        system = self._model_class
        hparams = {k for k in ckpt.get("hyper_parameters", {}) if k not in ("_instantiator", "_class_path")}
        params = inspect.signature(system).parameters
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            foreign = sorted(hparams - set(params))
            if foreign:
                raise SaSwapError(
                    f"{path}: a checkpoint of another system, not of {system.__name__} (its hyper-parameters "
                    f"{', '.join(foreign[:5])} are not {system.__name__}'s); give one that saswap {self.COMMAND} wrote"
                )

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
            kwargs["ckpt_path"] = str(self._last_checkpoint())
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
