"""``FaceParserSystem``: the LightningModule that trains a :class:`~saswap.models.FaceParser` with
cross-entropy + soft dice, AdamW and a cosine schedule, logging per-class IoU and the occluder-kept rate."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import torch
from torch.nn import functional as F

from saswap.models.face_parser import FACE_PARSER_CLASSES, SWAPPABLE_CLASSES, FaceParser
from saswap.training.parsing_data import IGNORE_INDEX
from saswap.training.schedules import warmup_cosine

logger = logging.getLogger(__name__)

__all__ = ["FaceParserSystem", "dice_loss", "export_parser", "label_boundary"]


def dice_loss(logits: torch.Tensor, label: torch.Tensor, ignore_index: int = IGNORE_INDEX, eps: float = 1.0) -> torch.Tensor:
    """Soft dice loss averaged over the classes present in the batch.

    Args:
        logits: shape (B, K, H, W).
        label: class indices, shape (B, H, W) (``ignore_index`` pixels are left out).
        ignore_index: label of ignored pixels.
        eps: smoothing.

    Returns:
        scalar in [0, 1].

    Example:
        >>> label = torch.zeros(1, 4, 4, dtype=torch.long)
        >>> float(dice_loss(torch.tensor([10.0, -10.0]).view(1, 2, 1, 1).expand(1, 2, 4, 4), label)) < 0.01
        True
    """
    if logits.ndim != 4 or label.shape != logits.shape[:1] + logits.shape[2:]:
        raise ValueError(f"expected logits (B, K, H, W) and labels (B, H, W), got {tuple(logits.shape)} and {tuple(label.shape)}")
    valid = (label != ignore_index).unsqueeze(1).float()
    probs = logits.softmax(1) * valid
    onehot = F.one_hot(label.clamp(0, logits.shape[1] - 1), logits.shape[1]).permute(0, 3, 1, 2).float() * valid
    inter = (probs * onehot).sum((0, 2, 3))
    denom = probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    present = onehot.sum((0, 2, 3)) > 0
    dice = (2 * inter + eps) / (denom + eps)
    return 1 - dice[present].mean() if present.any() else logits.sum() * 0


def label_boundary(label: torch.Tensor, radius: int, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Pixels within ``radius`` of a change of class (float 0/1, shape of ``label``); ignored pixels make no edge.

    Args:
        label: class indices, shape (B, H, W).
        radius: reach of the band in pixels (a square window of side ``2 * radius + 1``).
        ignore_index: label of ignored pixels (never in the band, and they mark none).

    Example:
        >>> label = torch.zeros(1, 1, 8, dtype=torch.long); label[..., 4:] = 1
        >>> label_boundary(label, 1)[0, 0].tolist()
        [0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    """
    valid = label != ignore_index
    lab = label.float().unsqueeze(1)
    big = torch.where(valid.unsqueeze(1), lab, torch.full_like(lab, -1.0))  # ignored: below every class
    small = torch.where(valid.unsqueeze(1), lab, torch.full_like(lab, 1e6))  # ...and above every class
    k = 2 * int(radius) + 1
    hi = F.max_pool2d(big, k, stride=1, padding=radius)
    lo = -F.max_pool2d(-small, k, stride=1, padding=radius)
    return ((hi > lab) | (lo < lab)).squeeze(1).float() * valid


class FaceParserSystem(L.LightningModule):
    """Training system of the face parser.

    Args:
        parser: the network (injected, e.g. by LightningCLI).
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        lambda_dice: weight of the dice loss next to cross-entropy.
        occluder_weight: cross-entropy weight of the occluder, glasses and hair classes (the costly
            mistake is swapping over them).
        warmup_steps: linear warm-up steps before the cosine decay over ``trainer.max_steps``.
        boundary_weight: extra cross-entropy weight of the pixels within ``boundary_radius`` of a change of label
            (an occluder's or the hair's outline over the skin, the face's own outline); 0 (off) weighs every pixel
            alike. Where the parser draws an outline wide, it keeps visible skin the swap should change.
        boundary_radius: reach of that band, in label pixels.
    """

    def __init__(
        self,
        parser: FaceParser,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        lambda_dice: float = 1.0,
        occluder_weight: float = 2.0,
        warmup_steps: int = 50,
        boundary_weight: float = 0.0,
        boundary_radius: int = 3,
    ) -> None:
        if boundary_weight < 0 or boundary_radius < 1:
            raise ValueError(
                f"boundary_weight must be 0 or above and boundary_radius at least 1, got {boundary_weight}, "
                f"{boundary_radius}"
            )
        super().__init__()
        self.save_hyperparameters()
        self.parser = parser
        weight = torch.ones(parser.num_classes)
        for name in ("occluder", "glasses", "hair"):
            if name in parser.classes:
                weight[parser.classes.index(name)] = occluder_weight
        self.register_buffer("class_weight", weight, persistent=False)
        self._reset_counts()

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.parser(image)

    def _losses(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        logits = self.parser(batch["image"])
        label = batch["label"]
        if self.hparams.boundary_weight > 0:
            pixel = 1.0 + self.hparams.boundary_weight * label_boundary(label, self.hparams.boundary_radius)
            each = F.cross_entropy(logits, label, weight=self.class_weight, ignore_index=IGNORE_INDEX, reduction="none")
            valid = label != IGNORE_INDEX
            norm = (self.class_weight[label.clamp(max=len(self.class_weight) - 1)] * pixel * valid).sum()
            ce = (each * pixel).sum() / norm.clamp(min=1e-6)
        else:
            ce = F.cross_entropy(logits, label, weight=self.class_weight, ignore_index=IGNORE_INDEX)
        dice = dice_loss(logits, label)
        loss = ce + self.hparams.lambda_dice * dice
        return loss, logits, {"ce": ce.detach(), "dice": dice.detach()}

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, _, parts = self._losses(batch)
        self.log("train/loss", loss, prog_bar=True)
        self.log_dict({f"train/{k}": v for k, v in parts.items()})
        return loss

    def _reset_counts(self) -> None:
        k = self.parser.num_classes
        self._inter = torch.zeros(k, dtype=torch.float64)
        self._union = torch.zeros(k, dtype=torch.float64)
        self._area = torch.zeros(k, dtype=torch.float64)
        self._occ_kept = [0, 0]

    def on_validation_epoch_start(self) -> None:
        self._reset_counts()

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        from saswap.eval.parsing import confusion_counts, occluder_kept_by_mask

        loss, logits, _ = self._losses(batch)
        self.log("val/loss", loss, prog_bar=True)
        pred = logits.argmax(1).cpu()
        inter, union = confusion_counts(pred, batch["label"].cpu(), self.parser.num_classes)
        self._inter += inter
        self._union += union
        labels = batch["label"].cpu()
        self._area += torch.bincount(labels[labels != IGNORE_INDEX].flatten(), minlength=self.parser.num_classes)[
            : self.parser.num_classes
        ].double()
        swappable = torch.zeros_like(pred, dtype=torch.bool)
        for name in SWAPPABLE_CLASSES:
            if name in self.parser.classes:
                swappable |= pred == self.parser.classes.index(name)
        for sw, occ in zip(swappable.numpy(), batch["occluded"].cpu().numpy()):
            if occ.any():
                self._occ_kept[0] += int(occluder_kept_by_mask(~sw, occ))
                self._occ_kept[1] += 1

    def on_validation_epoch_end(self) -> None:
        iou = self._inter / self._union.clamp(min=1)
        names = self.parser.classes if self.parser.num_classes == len(FACE_PARSER_CLASSES) else None
        present = self._area > 0  # classes absent from the labels (e.g. glasses in the held-out kinds) are not scored
        for i in range(self.parser.num_classes):
            if present[i]:
                self.log(f"val/iou_{names[i] if names else i}", float(iou[i]))
        if present.any():
            self.log("val/miou", float(iou[present].mean()), prog_bar=True)
        if self._occ_kept[1]:
            self.log("val/occluder_kept", self._occ_kept[0] / self._occ_kept[1], prog_bar=True)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parser.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        total = int(self.trainer.max_steps) if self.trainer and self.trainer.max_steps > 0 else 1000
        sched = warmup_cosine(opt, self.hparams.warmup_steps, total)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def export_parser(
    checkpoint: str | Path | dict,
    out_dir: str | Path,
    covered_threshold: float | None = None,
    onnx: bool = True,
    name: str | None = None,
) -> Path:
    """Write a trained system's parser as a ``save_pretrained`` folder (config.json + model.safetensors, and its ONNX
    copy model.onnx, :func:`saswap.face.parsing.write_onnx`), whole or not at all.

    Args:
        checkpoint: a ``.ckpt`` (or its contents) written by training this project's :class:`FaceParserSystem`
            (through LightningCLI its hyper-parameters hold the parser's ``class_path`` and ``init_args``; a
            system built in Python pickles the parser itself, so load only checkpoints you made).
        out_dir: the folder to write; it must not exist or be empty.
        covered_threshold: the weights' operating point to record in their config (``FaceParser(covered_threshold=)``,
            what the compose stage and the source cleaning read; choose it on the training files with
            :func:`saswap.eval.parsing.calibrate_threshold`); None keeps the checkpoint's (0.5 unless set).
        onnx: also write the ONNX copy (what the compose stage runs; without it the parser runs on torch).
        name: what messages call the checkpoint (default: its path).

    Returns:
        ``out_dir``.
    """
    import json

    from saswap.face.parsing import write_onnx
    from saswap.training.checkpoints import load_submodule
    from saswap.training.export import new_model_folder

    if covered_threshold is not None and not 0.0 < covered_threshold < 1.0:
        raise ValueError(f"covered_threshold must lie in (0, 1), got {covered_threshold}")
    parser = load_submodule(checkpoint, "parser", FaceParser, "FaceParserSystem", name)
    with new_model_folder(out_dir) as tmp:
        parser.save_pretrained(tmp)
        if covered_threshold is not None:  # a config value beside the weights (the network does not use it)
            config_path = tmp / "config.json"
            config = json.loads(config_path.read_text())
            config["covered_threshold"] = float(covered_threshold)
            config_path.write_text(json.dumps(config, indent=2, sort_keys=True))
        if onnx:
            try:
                write_onnx(tmp)  # what FaceParsing runs (ONNX Runtime), made from these weights
            except Exception as err:  # noqa: BLE001 - the folder works without it (on torch)
                logger.warning(
                    "%s: the parser's ONNX copy could not be written (%s); it runs on torch. Retry with "
                    "saswap.face.parsing.write_onnx(%r)", out_dir, err, str(out_dir),
                )  # fmt: skip
    return Path(out_dir)
