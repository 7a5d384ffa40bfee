"""LightningCLI over :class:`FaceParserSystem` and :class:`FaceParsingDataModule` (issue 13, part 1).

Example:
    python -m saswap.training.parser_cli fit --config recipes/face-parser.yaml
    python -m saswap.training.parser_cli fit --config recipes/face-parser.yaml --trainer.max_steps 600
"""

from __future__ import annotations

from collections.abc import Sequence

from saswap.training.lightning_cli import TrainingCLI
from saswap.training.parser_system import FaceParserSystem
from saswap.training.parsing_data import FaceParsingDataModule

__all__ = ["FaceParserCLI", "train_parser_main"]


class FaceParserCLI(TrainingCLI):
    """``saswap train-parser``: FaceParserSystem has a training and a validation step (``fit``, ``validate``)."""

    COMMAND = "train-parser"
    SUBCOMMANDS = ("fit", "validate")


def train_parser_main(args: Sequence[str] | None = None) -> FaceParserCLI:
    """Run the face parser's training CLI with ``args`` (``fit`` or ``validate`` and their options)."""
    return FaceParserCLI(
        FaceParserSystem,
        FaceParsingDataModule,
        args=list(args) if args is not None else None,
        save_config_kwargs={"overwrite": True},
    )


if __name__ == "__main__":  # pragma: no cover
    train_parser_main()
