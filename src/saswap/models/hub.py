"""The project's hub mixin: ``save_pretrained`` / ``from_pretrained`` / ``push_to_hub`` from
``huggingface_hub.PyTorchModelHubMixin``, with strict loading (missing or unexpected keys are an error)."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

from huggingface_hub import PyTorchModelHubMixin

from saswap.errors import ModelNotFoundError, first_line

__all__ = ["SaSwapModelMixin", "load_model_folder"]


class SaSwapModelMixin(
    PyTorchModelHubMixin,
    library_name="saswap",
    repo_url="https://github.com/saswap/saswap",
    tags=["saswap", "face-swap"],
):
    """Mixin for every SaSwap model: the typed ``__init__`` is the config; weights are safetensors."""

    @classmethod
    def _from_pretrained(cls, *, strict: bool = True, **kwargs):  # noqa: ARG003 - strict is forced on
        with contextlib.redirect_stdout(io.StringIO()):  # huggingface_hub prints a progress line for local folders
            return super()._from_pretrained(strict=True, **kwargs)


def load_model_folder(model_cls: type[SaSwapModelMixin], folder: str | os.PathLike) -> SaSwapModelMixin:
    """The model a local ``save_pretrained`` folder holds, built from its ``config.json`` and loaded strictly by
    ``model_cls.from_pretrained`` (never looked up on the Hub: the folder is local).

    Raises:
        ModelNotFoundError: ``config.json`` or ``model.safetensors`` is missing, or a file is damaged or another
            model's (the first line of what went wrong is in the message).

    Example:
        >>> from saswap.face.parsing import face_parser_path
        >>> from saswap.models import FaceParser
        >>> load_model_folder(FaceParser, face_parser_path()).num_classes
        9
    """
    part = Path(folder)
    for file in ("config.json", "model.safetensors"):
        if not (part / file).is_file():
            raise ModelNotFoundError(f"{part}: no {file} (the model folder is incomplete; export it again)")
    try:
        return model_cls.from_pretrained(part)
    except Exception as err:  # noqa: BLE001 - a damaged file: safetensors, json or torch's size checks
        detail = first_line(err, empty="")
        raise ModelNotFoundError(
            f"{part}: cannot be loaded ({type(err).__name__}: {detail}); the file is damaged or from another "
            "model; export it again"
        ) from None
