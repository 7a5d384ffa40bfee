"""Identity loss: ``1 - cos(z_id(output), z_id(source))``."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["identity_loss", "IdentityLoss"]


def identity_loss(output_embed: torch.Tensor, source_embed: torch.Tensor) -> torch.Tensor:
    """Mean ``1 - cosine similarity`` between two batches of embeddings.

    Args:
        output_embed: shape (B, D).
        source_embed: shape (B, D).

    Returns:
        scalar tensor in [0, 2].

    Example:
        >>> float(identity_loss(torch.ones(2, 4), torch.ones(2, 4)))
        0.0
    """
    if output_embed.shape != source_embed.shape or output_embed.ndim != 2:
        raise ValueError(
            f"expected two (B, D) embeddings of one shape, got {tuple(output_embed.shape)} and {tuple(source_embed.shape)}"
        )
    return (1 - nn.functional.cosine_similarity(output_embed, source_embed, dim=1, eps=1e-8)).mean()


class IdentityLoss(nn.Module):
    """Module twin of :func:`identity_loss`."""

    def forward(self, output_embed: torch.Tensor, source_embed: torch.Tensor) -> torch.Tensor:
        return identity_loss(output_embed, source_embed)
