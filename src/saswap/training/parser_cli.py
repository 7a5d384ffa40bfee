"""LightningCLI over :class:`FaceParserSystem` and :class:`FaceParsingDataModule` (issue 13, part 1).

Example:
    python -m saswap.training.parser_cli fit --config recipes/face-parser.yaml
    python -m saswap.training.parser_cli fit --config recipes/face-parser.yaml --trainer.max_steps 600
    saswap train-parser fit --config recipes/face-parser.yaml --data.root MY_PHOTOS --init_from saswap-face-parser

``--init_from saswap-face-parser`` fine-tunes the shipped weights on your own photos (a new run from them; see
:mod:`saswap.training.lightning_cli`); it also takes a ``.ckpt``, a ``.safetensors`` file or a parser folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from saswap.training.data import check_data_root, check_image_size
from saswap.training.lightning_cli import TrainingCLI
from saswap.training.parser_system import FaceParserSystem
from saswap.training.parsing_data import FaceParsingDataModule

__all__ = ["FaceParserCLI", "train_parser_main"]


class FaceParserCLI(TrainingCLI):
    """``saswap train-parser``: FaceParserSystem has a training and a validation step (``fit``, ``validate``).
    Before building anything, checks ``--data.root`` when given and that the crop size suits the parser: it halves
    the crop once per ``block_out_channels`` entry, so the side must be a multiple of ``2 ** len(block_out_channels)``.
    """

    COMMAND = "train-parser"
    SUBCOMMANDS = ("fit", "validate")
    KIND = "parser"
    MODEL = "parser"
    INIT_FROM_FOLDERS = "a face parser folder 'saswap export' wrote, or saswap-face-parser (the shipped weights)"

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        if config.data.get("root") is not None:
            check_data_root(config.data.root)
        check_image_size(config.data.image_size)
        parser = config.model.get("parser")
        if parser is not None and str(parser.get("class_path", "")).endswith("FaceParser"):
            steps = len(parser.init_args.block_out_channels)
            check_image_size(config.data.image_size, 2**steps, f"the face parser's {steps} halvings")

    def _named_weights(self, name: str) -> Path | None:
        from saswap.face.parsing import DEFAULT_FACE_PARSER, face_parser_path

        return face_parser_path(name) if name == DEFAULT_FACE_PARSER else None


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
