"""Reading a training checkpoint, telling which system wrote it, and exporting one model it holds as a
``save_pretrained`` folder."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from saswap.errors import SaSwapError, first_line

__all__ = ["read_checkpoint", "checkpoint_kind", "weights_kind", "load_submodule", "export_submodule", "CHECKPOINT_KINDS"]

#: What each kind of checkpoint holds, by the prefix of its ``state_dict`` keys: the system that trains it and the
#: model ``saswap export`` writes from it.
CHECKPOINT_KINDS = {
    "saswap": ("generator.", "SaSwapSystem (saswap train)", "the SaSwap swap model"),
    "parser": ("parser.", "FaceParserSystem (saswap train-parser)", "the face parser"),
    "harmonizer": ("harmonizer.", "ToneHarmonizerSystem (saswap train-harmonizer)", "the tone harmoniser"),
}


def read_checkpoint(
    checkpoint: str | Path | dict[str, Any], *, weights_only: bool = False, mmap: bool = False
) -> dict[str, Any]:
    """A Lightning checkpoint's contents (a dict is returned as it is).

    By default it is unpickled whole (a system built in Python pickles its models), so load only checkpoints you
    made; ``weights_only`` and ``mmap`` are ``torch.load``'s (a check before training: plain data, the weights not
    read).

    Raises:
        SaSwapError: no such file, or not a checkpoint torch can read, or one without a ``state_dict``.
    """
    if isinstance(checkpoint, dict):
        return checkpoint
    path = Path(checkpoint)
    if not path.is_file():
        raise SaSwapError(f"{path}: no such checkpoint" + (" (a folder)" if path.is_dir() else ""))
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=weights_only, mmap=mmap)
    except Exception as err:  # noqa: BLE001 - whatever torch raises, the file is not a checkpoint it can read
        first = first_line(err)
        raise SaSwapError(f"{path}: not a training checkpoint (torch cannot read it: {first})") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise SaSwapError(f"{path}: not a Lightning training checkpoint (no state_dict in it)")
    return ckpt


def _where(checkpoint: str | Path | dict[str, Any], name: str | None) -> str:
    """What messages call a checkpoint: ``name``, else its path, else "the checkpoint"."""
    return name or (str(checkpoint) if not isinstance(checkpoint, dict) else "the checkpoint")


def weights_kind(keys: Iterable[str]) -> str | None:
    """Which of :data:`CHECKPOINT_KINDS` weights keyed as a system's ``state_dict`` are (the first whose prefix a key
    has), None for none.

    Example:
        >>> weights_kind(["parser.head.weight"]), weights_kind(["head.weight"])
        ('parser', None)
    """
    keys = list(keys)
    return next((kind for kind, (p, _, _) in CHECKPOINT_KINDS.items() if any(k.startswith(p) for k in keys)), None)


def checkpoint_kind(checkpoint: str | Path | dict[str, Any], name: str | None = None) -> str:
    """Which of :data:`CHECKPOINT_KINDS` wrote ``checkpoint`` (``"saswap"``, ``"parser"``, ``"harmonizer"``);
    ``name`` is what messages call it (default: its path).

    Raises:
        SaSwapError: not a checkpoint, or one of none of these systems.
    """
    kind = weights_kind(read_checkpoint(checkpoint)["state_dict"])
    if kind is not None:
        return kind
    where = _where(checkpoint, name)
    systems = ", ".join(system for _, system, _ in CHECKPOINT_KINDS.values())
    raise SaSwapError(f"{where}: not a checkpoint of saswap's training (none of {systems} wrote it)")


def load_submodule(
    checkpoint: str | Path | dict[str, Any], key: str, model_cls: type, system: str, name: str | None = None
) -> nn.Module:
    """The model a system's checkpoint holds under ``key``, built and loaded, in eval mode.

    Args:
        checkpoint: a ``.ckpt`` (or its contents) written by training this project's ``system`` (through
            LightningCLI its hyper-parameters hold the model's ``class_path`` and ``init_args``; a system built in
            Python pickles the model itself, so load only checkpoints you made).
        key: the system's attribute and hyper-parameter holding the model (``parser``, ``harmonizer``).
        model_cls: the model's class.
        system: the system's name, for error messages.
        name: what messages call the checkpoint (default: its path).

    The crop size the data module trained at goes into the model's ``image_size`` (LightningCLI records the
    constructor's default there).
    """
    ckpt = read_checkpoint(checkpoint)
    where = _where(checkpoint, name)
    spec = (ckpt.get("hyper_parameters") or {}).get(key)
    cls_name = model_cls.__name__
    if isinstance(spec, dict) and str(spec.get("class_path", "")).rsplit(".", 1)[-1] == cls_name:
        init = dict(spec.get("init_args", {}))
        trained_at = (ckpt.get("datamodule_hyper_parameters") or {}).get("image_size")
        if trained_at:
            init["image_size"] = int(trained_at)
        model = model_cls(**init)
    elif isinstance(spec, model_cls):
        model = spec
    else:
        raise SaSwapError(f"{where}: not a {system} checkpoint (no {cls_name} in its hyper-parameters)")
    prefix = f"{key}."
    try:
        model.load_state_dict({k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)})
    except RuntimeError as err:
        first = first_line(err)
        raise SaSwapError(
            f"{where}: its {key} weights do not fit the {cls_name} its hyper-parameters describe ({first})"
        ) from None
    return model.eval()


def export_submodule(
    checkpoint: str | Path | dict[str, Any], out_dir: str | Path, key: str, model_cls: type, system: str,
    name: str | None = None,
) -> Path:  # fmt: skip
    """Write the model a system holds under ``key`` (:func:`load_submodule`) as a ``save_pretrained`` folder
    (config.json + safetensors), whole or not at all (:func:`saswap.training.export.new_model_folder`).

    Returns:
        ``out_dir``, which must not exist or be empty.
    """
    from saswap.training.export import new_model_folder

    with new_model_folder(out_dir) as tmp:
        load_submodule(checkpoint, key, model_cls, system, name).save_pretrained(tmp)
    return Path(out_dir)
