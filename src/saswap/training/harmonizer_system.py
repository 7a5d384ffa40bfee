"""``ToneHarmonizerSystem``: the LightningModule that trains a :class:`~saswap.models.ToneHarmonizer` to restore the
colour and light of a face from what surrounds it (issue 13, part 2): an L1 loss in CIELAB inside the mask plus
a small smoothness penalty on the colour grid, AdamW and a cosine schedule; validation logs the ΔE of the
restored skin, of the changed input's skin, and the colour step across the mask's border."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from kornia.color import rgb_to_lab
from torch.nn import functional as F

from saswap.models.tone_harmonizer import ToneHarmonizer, apply_colour_grid
from saswap.training.schedules import warmup_cosine

__all__ = [
    "ToneHarmonizerSystem",
    "border_colour_step",
    "export_harmonizer",
    "grid_smoothness",
    "lab_l1_loss",
    "mean_delta_e",
    "tone_delta_e",
]


def _check_pair(a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor) -> None:
    if a.ndim != 4 or a.shape[1] != 3 or a.shape != b.shape:
        raise ValueError(
            f"expected two RGB images of one shape (B, 3, H, W), got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if weight.shape != (a.shape[0], 1, *a.shape[2:]):
        raise ValueError(
            f"expected a weight of shape ({a.shape[0]}, 1, {a.shape[2]}, {a.shape[3]}), got {tuple(weight.shape)}"
        )


def lab_l1_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mask-weighted mean of the L1 distance in CIELAB (sum over L*, a*, b*: ΔE-like units).

    Args:
        pred: RGB (sRGB) in [0, 1], shape (B, 3, H, W).
        target: RGB in [0, 1], shape (B, 3, H, W).
        mask: weight in [0, 1], shape (B, 1, H, W).

    Returns:
        scalar.

    Example:
        >>> x = torch.rand(1, 3, 8, 8)
        >>> float(lab_l1_loss(x, x, torch.ones(1, 1, 8, 8)))
        0.0
        >>> round(float(lab_l1_loss(torch.ones(1, 3, 2, 2), torch.zeros(1, 3, 2, 2), torch.ones(1, 1, 2, 2))))
        100
    """
    _check_pair(pred, target, mask)
    diff = (rgb_to_lab(pred.clamp(0, 1)) - rgb_to_lab(target.clamp(0, 1))).abs().sum(1, keepdim=True)
    return (diff * mask).sum() / mask.sum().clamp(min=1.0)


def grid_smoothness(grid: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between neighbouring cells of a colour grid (along x, y and the brightness bins).

    Args:
        grid: shape (B, 12, D, G, G).

    Returns:
        scalar (0 for a constant grid).

    Example:
        >>> float(grid_smoothness(torch.ones(1, 12, 2, 4, 4)))
        0.0
    """
    if grid.ndim != 5:
        raise ValueError(f"expected a colour grid of shape (B, 12, D, G, G), got {tuple(grid.shape)}")
    terms = [grid.diff(dim=d).square().mean() for d in (2, 3, 4) if grid.shape[d] > 1]
    return torch.stack(terms).sum() if terms else grid.sum() * 0


def mean_delta_e(a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Per image, the weighted mean over pixels of the CIE76 ΔE between two images.

    Args:
        a: RGB in [0, 1], shape (B, 3, H, W).
        b: RGB in [0, 1], shape (B, 3, H, W).
        weight: pixel weights, shape (B, 1, H, W) (an image without weight gives NaN).

    Returns:
        shape (B,).

    Example:
        >>> x = torch.rand(2, 3, 4, 4)
        >>> mean_delta_e(x, x, torch.ones(2, 1, 4, 4)).tolist()
        [0.0, 0.0]
    """
    _check_pair(a, b, weight)
    de = (rgb_to_lab(a.clamp(0, 1)) - rgb_to_lab(b.clamp(0, 1))).square().sum(1, keepdim=True).sqrt()
    total = weight.sum((1, 2, 3))
    mean = (de * weight).sum((1, 2, 3)) / total.clamp(min=1e-6)
    return torch.where(total > 0, mean, torch.full_like(total, float("nan")))


def _mean_lab(image: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    lab = rgb_to_lab(image.clamp(0, 1))
    return (lab * weight).sum((2, 3)) / weight.sum((2, 3)).clamp(min=1e-6)


def tone_delta_e(a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Per image, the CIE76 ΔE between the weighted mean CIELAB colours of two images (a tone difference).

    Args:
        a: RGB in [0, 1], shape (B, 3, H, W).
        b: RGB in [0, 1], shape (B, 3, H, W).
        weight: pixel weights, shape (B, 1, H, W).

    Returns:
        shape (B,).

    Example:
        >>> a, b = torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2, 2); b[..., 0] = 1  # black vs half white
        >>> round(float(tone_delta_e(a, b, torch.ones(1, 1, 2, 2))))
        50
    """
    _check_pair(a, b, weight)
    return (_mean_lab(a, weight) - _mean_lab(b, weight)).norm(dim=1)


def border_colour_step(image: torch.Tensor, mask: torch.Tensor, width: int = 4) -> torch.Tensor:
    """Per image, the CIE76 ΔE between the mean colour of a band just inside the mask's edge and one just outside.

    Args:
        image: RGB in [0, 1], shape (B, 3, H, W).
        mask: in [0, 1], shape (B, 1, H, W) (its edge is where it crosses 0.5).
        width: band width in pixels.

    Returns:
        shape (B,) (NaN for an image whose mask has no edge).

    Example:
        >>> m = torch.zeros(1, 1, 16, 16); m[..., 4:12, 4:12] = 1
        >>> round(float(border_colour_step(torch.full((1, 3, 16, 16), 0.5), m)), 3)
        0.0
        >>> float(border_colour_step(m.expand(1, 3, 16, 16), m)) > 99
        True
    """
    _check_pair(image, image, mask)
    hard = (mask > 0.5).to(image.dtype)
    k = 2 * width + 1
    grown = F.max_pool2d(hard, k, 1, width)
    shrunk = 1 - F.max_pool2d(1 - hard, k, 1, width)
    inner, outer = hard - shrunk, grown - hard
    step = (_mean_lab(image, inner) - _mean_lab(image, outer)).norm(dim=1)
    ok = (inner.sum((1, 2, 3)) > 0) & (outer.sum((1, 2, 3)) > 0)
    return torch.where(ok, step, torch.full_like(step, float("nan")))


class ToneHarmonizerSystem(L.LightningModule):
    """Training system of the tone harmoniser.

    Loss: :func:`lab_l1_loss` between the restored crop (:func:`apply_colour_grid` inside the mask) and the
    original, weighted by the mask, plus ``lambda_smooth`` x :func:`grid_smoothness` of the predicted grid.

    Validation logs (each a mean over the held-out samples): ``val/skin_delta_e`` (per-pixel ΔE76 between the
    restored and the original skin inside the mask) and ``val/skin_delta_e_input`` (the same for the changed
    input, before restoring); ``val/tone_delta_e`` and ``val/tone_delta_e_input`` (ΔE of the mean skin
    colours: the benchmark's skin-tone measure); ``val/border_step``, ``val/border_step_input`` and
    ``val/border_step_target`` (:func:`border_colour_step` of the restored, changed and original crops) and
    ``val/border_step_excess`` (restored minus original).

    Args:
        harmonizer: the network (injected, e.g. by LightningCLI).
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        lambda_smooth: weight of the grid's smoothness penalty.
        warmup_steps: linear warm-up steps before the cosine decay over ``trainer.max_steps``.
        border_width: width in pixels of the bands of ``val/border_step``.
    """

    def __init__(
        self,
        harmonizer: ToneHarmonizer,
        lr: float = 2e-3,
        weight_decay: float = 1e-4,
        lambda_smooth: float = 1.0,
        warmup_steps: int = 50,
        border_width: int = 4,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.harmonizer = harmonizer

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.harmonizer.harmonize(image, mask)

    def _losses(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        grid = self.harmonizer(batch["image"], batch["mask"])
        restored = apply_colour_grid(batch["image"], grid, batch["mask"])
        l1 = lab_l1_loss(restored, batch["target"], batch["mask"])
        smooth = grid_smoothness(grid)
        loss = l1 + self.hparams.lambda_smooth * smooth
        return loss, restored, {"lab_l1": l1.detach(), "smooth": smooth.detach()}

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, _, parts = self._losses(batch)
        self.log("train/loss", loss, prog_bar=True)
        self.log_dict({f"train/{k}": v for k, v in parts.items()})
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        loss, restored, parts = self._losses(batch)
        n = batch["image"].shape[0]
        self.log("val/loss", loss, prog_bar=True, batch_size=n)
        self.log("val/lab_l1", parts["lab_l1"], batch_size=n)
        image, target, mask = batch["image"], batch["target"], batch["mask"]
        skin = (batch["skin"].unsqueeze(1) & (mask > 0.5)).to(image.dtype)
        w = self.hparams.border_width
        step_target = border_colour_step(target, mask, w)
        values = {
            "skin_delta_e": mean_delta_e(restored, target, skin),
            "skin_delta_e_input": mean_delta_e(image, target, skin),
            "tone_delta_e": tone_delta_e(restored, target, skin),
            "tone_delta_e_input": tone_delta_e(image, target, skin),
            "border_step": border_colour_step(restored, mask, w),
            "border_step_input": border_colour_step(image, mask, w),
            "border_step_target": step_target,
            "border_step_excess": border_colour_step(restored, mask, w) - step_target,
        }
        for name, v in values.items():
            v = v[~v.isnan()]
            if len(v):
                self.log(f"val/{name}", v.mean(), batch_size=len(v), prog_bar=name == "skin_delta_e")

    def configure_optimizers(self):
        hp = self.hparams
        opt = torch.optim.AdamW(self.harmonizer.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        total = int(self.trainer.max_steps) if self.trainer and self.trainer.max_steps > 0 else 1000
        sched = warmup_cosine(opt, self.hparams.warmup_steps, total)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def export_harmonizer(checkpoint: str | Path | dict, out_dir: str | Path, name: str | None = None) -> Path:
    """Write a trained system's harmoniser as a ``save_pretrained`` folder (config.json + model.safetensors), whole or
    not at all.

    Args:
        checkpoint: a ``.ckpt`` (or its contents) written by training this project's :class:`ToneHarmonizerSystem`
            (through LightningCLI its hyper-parameters hold the harmoniser's ``class_path`` and ``init_args``; a
            system built in Python pickles the harmoniser itself, so load only checkpoints you made).
        out_dir: the folder to write; it must not exist or be empty.
        name: what messages call the checkpoint (default: its path).

    Returns:
        ``out_dir``.
    """
    from saswap.training.checkpoints import export_submodule

    return export_submodule(checkpoint, out_dir, "harmonizer", ToneHarmonizer, "ToneHarmonizerSystem", name)
