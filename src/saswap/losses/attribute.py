"""Attribute loss: the output's multi-level attributes should equal the target's."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["attribute_loss", "AttributeLoss"]


def attribute_loss(output_attrs: Sequence[torch.Tensor], target_attrs: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean over levels of the mean squared difference of attribute maps (FaceShifter's L_att, halved).

    Args:
        output_attrs: attribute maps of the output, coarse to fine, each (B, C_k, H_k, W_k).
        target_attrs: the target's, same shapes.

    Returns:
        scalar tensor.

    Example:
        >>> a = [torch.ones(1, 2, 4, 4), torch.zeros(1, 1, 8, 8)]
        >>> float(attribute_loss(a, [torch.zeros(1, 2, 4, 4), torch.zeros(1, 1, 8, 8)]))
        0.5
    """
    if len(output_attrs) != len(target_attrs) or not output_attrs:
        raise ValueError(
            f"expected the same non-zero number of levels, got {len(output_attrs)} and {len(target_attrs)}"
        )
    losses = []
    for o, t in zip(output_attrs, target_attrs):
        if o.shape != t.shape:
            raise ValueError(f"attribute level shapes differ: {tuple(o.shape)} vs {tuple(t.shape)}")
        losses.append(((o - t) ** 2).mean())
    return torch.stack(losses).mean()


class AttributeLoss(nn.Module):
    """Module twin of :func:`attribute_loss`."""

    def forward(self, output_attrs: Sequence[torch.Tensor], target_attrs: Sequence[torch.Tensor]) -> torch.Tensor:
        return attribute_loss(output_attrs, target_attrs)
