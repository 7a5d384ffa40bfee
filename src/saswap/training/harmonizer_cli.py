"""LightningCLI over :class:`ToneHarmonizerSystem` and :class:`ToneHarmonizationDataModule` (issue 13, part 2).

Example:
    python -m saswap.training.harmonizer_cli fit --config recipes/tone-harmonizer.yaml
    python -m saswap.training.harmonizer_cli fit --config recipes/tone-harmonizer.yaml --trainer.max_steps 600
"""

from __future__ import annotations

from collections.abc import Sequence

from saswap.training.harmonize_data import ToneHarmonizationDataModule
from saswap.training.harmonizer_system import ToneHarmonizerSystem
from saswap.training.lightning_cli import TrainingCLI

__all__ = ["ToneHarmonizerCLI", "train_harmonizer_main"]


class ToneHarmonizerCLI(TrainingCLI):
    """``saswap train-harmonizer``: ToneHarmonizerSystem has a training and a validation step (``fit``,
    ``validate``)."""

    COMMAND = "train-harmonizer"
    SUBCOMMANDS = ("fit", "validate")


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
