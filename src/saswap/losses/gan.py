"""Hinge GAN losses over a multi-scale discriminator's outputs."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["hinge_d_loss", "hinge_g_loss", "HingeDLoss", "HingeGLoss"]


def hinge_d_loss(real_logits: Sequence[torch.Tensor], fake_logits: Sequence[torch.Tensor]) -> torch.Tensor:
    """Discriminator hinge loss ``mean(relu(1 - D(real))) + mean(relu(1 + D(fake)))``, averaged over scales.

    Example:
        >>> float(hinge_d_loss([torch.ones(1, 1, 2, 2)], [-torch.ones(1, 1, 2, 2)]))
        0.0
    """
    if len(real_logits) != len(fake_logits) or not real_logits:
        raise ValueError("expected the same non-zero number of scales for real and fake logits")
    losses = [torch.relu(1 - r).mean() + torch.relu(1 + f).mean() for r, f in zip(real_logits, fake_logits)]
    return torch.stack(losses).mean()


def hinge_g_loss(fake_logits: Sequence[torch.Tensor]) -> torch.Tensor:
    """Generator hinge loss ``-mean(D(fake))``, averaged over scales.

    Example:
        >>> float(hinge_g_loss([torch.ones(1, 1, 2, 2)]))
        -1.0
    """
    if not fake_logits:
        raise ValueError("expected at least one scale of logits")
    return torch.stack([-f.mean() for f in fake_logits]).mean()


class HingeDLoss(nn.Module):
    """Module twin of :func:`hinge_d_loss`."""

    def forward(self, real_logits: Sequence[torch.Tensor], fake_logits: Sequence[torch.Tensor]) -> torch.Tensor:
        return hinge_d_loss(real_logits, fake_logits)


class HingeGLoss(nn.Module):
    """Module twin of :func:`hinge_g_loss`."""

    def forward(self, fake_logits: Sequence[torch.Tensor]) -> torch.Tensor:
        return hinge_g_loss(fake_logits)
