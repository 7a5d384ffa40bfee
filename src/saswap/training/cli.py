"""``saswap train``: LightningCLI over :class:`SaSwapSystem` and :class:`FacePairsDataModule`.

Example:
    saswap train fit --config recipes/debug-tiny.yaml
    saswap train fit --config recipes/saswap-256.yaml --data.root /data/faces --trainer.devices 8
    saswap train fit --config recipes/debug-tiny.yaml --ckpt_path last   # resume

``--ckpt_path last`` resumes from the newest ``last.ckpt`` of the earlier runs logged under the same
``save_dir/name`` (any ``version_N``); without one it is an error (see :mod:`saswap.training.lightning_cli`).
The system has only a training step: ``fit`` is the one subcommand.
"""

from __future__ import annotations

from collections.abc import Sequence

from saswap.training.data import FacePairsDataModule
from saswap.training.lightning_cli import TrainingCLI
from saswap.training.system import SaSwapSystem

__all__ = ["SaSwapCLI", "train_main"]


class SaSwapCLI(TrainingCLI):
    """Links values that must agree: the data's crop size is the flow estimator's output size."""

    COMMAND = "train"
    SUBCOMMANDS = ("fit",)

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.image_size", "model.flow_estimator.init_args.image_size")


def train_main(args: Sequence[str] | None = None) -> SaSwapCLI:
    """Run the training CLI with ``args`` (``fit`` and its options)."""
    return SaSwapCLI(
        SaSwapSystem,
        FacePairsDataModule,
        args=list(args) if args is not None else None,
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
    )
