"""Exporting one model of a trained system's checkpoint as a ``save_pretrained`` folder."""

from __future__ import annotations

from pathlib import Path

import torch

from saswap.errors import SaSwapError

__all__ = ["export_submodule"]


def export_submodule(checkpoint: str | Path, out_dir: str | Path, key: str, model_cls: type, system: str) -> Path:
    """Write the model a system holds under ``key`` as a ``save_pretrained`` folder (config.json + safetensors).

    Args:
        checkpoint: a ``.ckpt`` written by training this project's ``system`` (through LightningCLI its
            hyper-parameters hold the model's ``class_path`` and ``init_args``; a system built in Python
            pickles the model itself, so load only checkpoints you made).
        out_dir: the folder to write; it must not exist or be empty.
        key: the system's attribute and hyper-parameter holding the model (``parser``, ``harmonizer``).
        model_cls: the model's class.
        system: the system's name, for error messages.

    Returns:
        ``out_dir``. The crop size the data module trained at goes into the model's ``image_size``
        (LightningCLI records the constructor's default there).
    """
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise SaSwapError(f"{out}: output folder exists and is not empty")
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
    spec = ckpt.get("hyper_parameters", {}).get(key)
    name = model_cls.__name__
    if isinstance(spec, dict) and str(spec.get("class_path", "")).rsplit(".", 1)[-1] == name:
        init = dict(spec.get("init_args", {}))
        trained_at = ckpt.get("datamodule_hyper_parameters", {}).get("image_size")
        if trained_at:
            init["image_size"] = int(trained_at)
        model = model_cls(**init)
    elif isinstance(spec, model_cls):
        model = spec
    else:
        raise SaSwapError(f"{checkpoint}: not a {system} checkpoint (no {name} in its hyper-parameters)")
    prefix = f"{key}."
    model.load_state_dict({k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)})
    model.eval().save_pretrained(out)
    return out
