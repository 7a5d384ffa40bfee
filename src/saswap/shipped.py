"""The project's own small models at run time: where their weights are, and a wrapper that loads them once.

SaSwap ships the weights it trains itself inside the package (``saswap/weights/<folder>``, Apache-2.0,
safetensors, a model card beside them). A run-time wrapper (:class:`~saswap.face.parsing.FaceParsing`,
:class:`~saswap.compose.harmonizer.ToneHarmonization`) takes a zoo name of such weights or a
``save_pretrained`` folder, loads the model on first use and names the weights by their digest (part of a
template cache's key or a compositor's config). Nothing here imports torch.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from saswap.errors import ModelNotFoundError

__all__ = ["LazyPretrained", "model_setting", "weights_folder", "weights_sha256"]


def model_setting(value: bool | str | os.PathLike | None, default: str, aliases: tuple[str, ...] = ()) -> str:
    """Normalise a setting that names a model or switches it off: ``"off"`` (``False``, ``None``, ``"off"``,
    ``"none"``, ``"false"``), ``default`` (``True``, ``"true"``, ``default`` or one of ``aliases``), else the
    value as a string (a folder).

    Example:
        >>> model_setting(True, "saswap-face-parser"), model_setting(None, "x"), model_setting("p", "x", ("p",))
        ('saswap-face-parser', 'off', 'x')
    """
    if value is None or value is False or str(value).lower() in ("off", "none", "false"):
        return "off"
    if value is True or str(value).lower() in (*aliases, "true", default):
        return default
    return str(value)


def weights_folder(name_or_path: str | os.PathLike, shipped: dict[str, str], what: str, how: str) -> Path:
    """The local folder of a model's weights: a shipped one by its zoo name, else a ``save_pretrained`` folder.

    Args:
        name_or_path: a zoo name in ``shipped`` or a folder.
        shipped: zoo name -> folder under ``saswap/weights``.
        what: what the model is, for the error message ("face parser").
        how: how such a folder is made, for the error message.

    Raises:
        ModelNotFoundError: the folder, its ``config.json`` or its ``model.safetensors`` is missing.

    Example:
        >>> weights_folder("saswap-face-parser", {"saswap-face-parser": "face-parser"}, "face parser", "").name
        'face-parser'
    """
    if str(name_or_path) in shipped:
        from importlib.resources import files

        folder = Path(str(files("saswap") / "weights" / shipped[str(name_or_path)]))
    else:
        folder = Path(name_or_path)
    if not (folder / "model.safetensors").is_file() or not (folder / "config.json").is_file():
        raise ModelNotFoundError(f"{folder}: no {what} there (expected config.json and model.safetensors, as written by {how})")
    return folder


def weights_sha256(folder: Path) -> str:
    """The SHA-256 (hex) of a ``save_pretrained`` folder's ``model.safetensors``."""
    return hashlib.sha256((Path(folder) / "model.safetensors").read_bytes()).hexdigest()


class LazyPretrained:
    """A ``save_pretrained`` folder whose model loads on first use; subclasses implement :meth:`_load`.

    Attributes:
        folder: the weights' folder.
        name: the zoo name or folder it was made from.
    """

    def __init__(self, folder: Path, name: str) -> None:
        self.folder = Path(folder)
        self.name = str(name)
        self._model = None
        self._lock = threading.Lock()  # one forward pass at a time

    def _load(self, folder: Path):
        raise NotImplementedError

    @property
    def digest(self) -> str:
        """First 12 hex digits of the weights' SHA-256 (names the weights in a cache key or a config)."""
        return weights_sha256(self.folder)[:12]

    @property
    def model(self):
        """The model, in eval mode (loaded on first use)."""
        if self._model is None:
            self._model = self._load(self.folder).eval()
        return self._model
