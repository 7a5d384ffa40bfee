"""The project's hub mixin: ``save_pretrained`` / ``from_pretrained`` / ``push_to_hub`` from
``huggingface_hub.PyTorchModelHubMixin``, with strict loading (missing or unexpected keys are an error)."""

from __future__ import annotations

import contextlib
import io

from huggingface_hub import PyTorchModelHubMixin

__all__ = ["SaSwapModelMixin"]


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
