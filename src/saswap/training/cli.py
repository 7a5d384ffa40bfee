"""``saswap train``: LightningCLI over :class:`SaSwapSystem` and :class:`FacePairsDataModule`.

Example:
    saswap train fit --config recipes/debug-tiny.yaml
    saswap train fit --config recipes/saswap-256.yaml --data.root /data/faces --trainer.devices 8
    saswap train fit --config recipes/debug-tiny.yaml --ckpt_path last   # resume
    saswap train fit --config recipes/debug-tiny.yaml --init_from RUN/checkpoints/last.ckpt --model.lr_g 1e-4

``--ckpt_path last`` resumes from the newest ``last.ckpt`` of the earlier runs logged under the same
``save_dir/name`` (any ``version_N``); without one it is an error (see :mod:`saswap.training.lightning_cli`).
``--init_from`` fine-tunes: a new run from a checkpoint's weights, a ``.safetensors`` file of the system's
weights or a model folder ``saswap export`` wrote (that folder holds no discriminator: it starts as built).
The system has only a training step: ``fit`` is the one subcommand.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from saswap.training.data import FacePairsDataModule, check_data_root, check_image_size
from saswap.training.lightning_cli import TrainingCLI
from saswap.training.system import SaSwapSystem

__all__ = ["SaSwapCLI", "train_main"]


class SaSwapCLI(TrainingCLI):
    """Links values that must agree: the data's crop size is the flow estimator's output size. Before building
    anything, checks the data folder and that the crop size suits the model (:func:`model_size_multiple`)."""

    COMMAND = "train"
    SUBCOMMANDS = ("fit",)
    LINKS = {"data.image_size": "model.flow_estimator.init_args.image_size"}
    KIND = "saswap"
    INIT_FROM_FOLDERS = "a model folder 'saswap export' wrote (its discriminator starts as built: the folder has none)"

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        check_data_root(config.data.root)
        check_image_size(config.data.image_size, *model_size_multiple(config.model))

    def _folder_weights(self, folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
        """The networks of a model folder ``saswap export`` wrote (:func:`saswap.engines.neural.load_components`):
        its generator (the EMA's weights where the run kept an EMA) starts the generator and its EMA."""
        from saswap.engines.neural import load_components

        loaded, _ = load_components(folder)
        weights, options = {}, {}
        for name, module in loaded.items():
            weights.update({f"{name}.{k}": v for k, v in module.state_dict().items()})
            options[name] = {"init_args": json.loads((folder / name / "config.json").read_text(encoding="utf-8"))}
        if getattr(self.model, "generator_ema", None) is not None:
            weights.update({f"generator_ema.{k}": v for k, v in loaded["generator"].state_dict().items()})
        return weights, options


def model_size_multiple(model) -> tuple[int, str]:
    """What the crop side of a :class:`SaSwapSystem` config must divide by, and why.

    The attribute encoder halves the crop once per ``block_out_channels`` entry (its forward needs a multiple of
    ``2 ** len(block_out_channels)``: 128 for the default 7 steps), and the flow estimator upsamples its
    ``feature_size`` map to the crop side by a whole factor. Other classes given by ``class_path`` are not checked.

    Args:
        model: the parsed ``model`` namespace of a recipe.

    Returns:
        (the least common multiple, a phrase naming what needs it).
    """
    multiple, needs = 1, []
    attrs, flow = model.get("attribute_encoder"), model.get("flow_estimator")
    if attrs is not None and str(attrs.get("class_path", "")).endswith("AttributeEncoder"):
        steps = len(attrs.init_args.block_out_channels)
        multiple = math.lcm(multiple, 2**steps)
        needs.append(f"the attribute encoder's {steps} halvings")
    if flow is not None and str(flow.get("class_path", "")).endswith("FlowEstimator"):
        multiple = math.lcm(multiple, int(flow.init_args.feature_size))
        needs.append(f"the flow estimator's feature_size {flow.init_args.feature_size}")
    return multiple, " and ".join(needs)


def train_main(args: Sequence[str] | None = None) -> SaSwapCLI:
    """Run the training CLI with ``args`` (``fit`` and its options)."""
    return SaSwapCLI(
        SaSwapSystem,
        FacePairsDataModule,
        args=list(args) if args is not None else None,
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
    )
