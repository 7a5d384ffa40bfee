"""LightningCLI over :class:`ToneHarmonizerSystem` and :class:`ToneHarmonizationDataModule` (issue 13, part 2).

Example:
    python -m saswap.training.harmonizer_cli fit --config recipes/tone-harmonizer.yaml
    python -m saswap.training.harmonizer_cli fit --config recipes/tone-harmonizer.yaml --trainer.max_steps 600
    saswap train-harmonizer fit --config recipes/tone-harmonizer.yaml --init_from MY_HARMONIZER_FOLDER

``--init_from`` fine-tunes: a new run from a ``.ckpt``'s weights, a ``.safetensors`` file or a harmoniser folder
``saswap export`` wrote (see :mod:`saswap.training.lightning_cli`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from saswap.training.harmonize_data import ToneHarmonizationDataModule
from saswap.training.harmonizer_system import ToneHarmonizerSystem
from saswap.training.lightning_cli import TrainingCLI

__all__ = ["ToneHarmonizerCLI", "train_harmonizer_main"]


class ToneHarmonizerCLI(TrainingCLI):
    """``saswap train-harmonizer``: ToneHarmonizerSystem has a training and a validation step (``fit``,
    ``validate``)."""

    COMMAND = "train-harmonizer"
    SUBCOMMANDS = ("fit", "validate")
    KIND = "harmonizer"
    MODEL = "harmonizer"
    INIT_FROM_FOLDERS = "a tone harmoniser folder 'saswap export' wrote"

    def _named_weights(self, name: str) -> Path | None:
        from saswap.compose.harmonizer import DEFAULT_TONE_HARMONIZER, tone_harmonizer_path

        return tone_harmonizer_path(name) if name == DEFAULT_TONE_HARMONIZER else None  # none ship yet: it says so


def train_harmonizer_main(args: Sequence[str] | None = None) -> ToneHarmonizerCLI:
    """Run the tone harmoniser's training CLI with ``args`` (``fit`` or ``validate`` and their options)."""
    return ToneHarmonizerCLI(
        ToneHarmonizerSystem,
        ToneHarmonizationDataModule,
        args=list(args) if args is not None else None,
        save_config_kwargs={"overwrite": True},
    )


if __name__ == "__main__":  # pragma: no cover
    train_harmonizer_main()
