"""Reconstruction losses: pixels when source == target, 3D keypoints, flow that must vanish."""

from __future__ import annotations

import torch
from torch import nn

__all__ = [
    "reconstruction_loss",
    "keypoint_loss",
    "flow_identity_loss",
    "ReconstructionLoss",
    "KeypointLoss",
    "FlowIdentityLoss",
]


def _same_weights(same: torch.Tensor, batch: int) -> torch.Tensor:
    if same.shape != (batch,):
        raise ValueError(f"expected a same-identity flag per sample, shape ({batch},), got {tuple(same.shape)}")
    return same.to(torch.float64 if same.dtype == torch.float64 else torch.float32)


def reconstruction_loss(output: torch.Tensor, target: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
    """Half the mean squared pixel error, counted only for samples whose source is the target.

    Args:
        output: shape (B, C, H, W).
        target: shape (B, C, H, W).
        same: 1 where the sample's source and target are the same identity, shape (B,).

    Returns:
        scalar tensor (0 when no sample is a same-identity pair).

    Example:
        >>> float(reconstruction_loss(torch.ones(2, 1, 2, 2), torch.zeros(2, 1, 2, 2), torch.tensor([1.0, 0.0])))
        0.5
    """
    if output.shape != target.shape:
        raise ValueError(f"output {tuple(output.shape)} and target {tuple(target.shape)} differ")
    w = _same_weights(same, output.shape[0]).to(output.dtype)
    per = 0.5 * ((output - target) ** 2).flatten(1).mean(1)
    return (per * w).sum() / w.sum().clamp(min=1.0)


def keypoint_loss(output_keypoints: torch.Tensor, fused_keypoints: torch.Tensor) -> torch.Tensor:
    """L1 distance between the 3DMM keypoints fitted to the output and the fused ones.

    Args:
        output_keypoints: shape (B, K, D).
        fused_keypoints: shape (B, K, D).

    Example:
        >>> float(keypoint_loss(torch.zeros(1, 2, 3), torch.ones(1, 2, 3)))
        1.0
    """
    if output_keypoints.shape != fused_keypoints.shape:
        raise ValueError(f"keypoint shapes differ: {tuple(output_keypoints.shape)} vs {tuple(fused_keypoints.shape)}")
    return (output_keypoints - fused_keypoints).abs().mean()


def flow_identity_loss(flow: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
    """L1 norm of the flow for same-identity samples (there is no shape to adapt: it must vanish).

    Args:
        flow: shape (B, 2, H, W).
        same: shape (B,).

    Example:
        >>> float(flow_identity_loss(torch.ones(2, 2, 4, 4), torch.tensor([1.0, 0.0])))
        1.0
    """
    w = _same_weights(same, flow.shape[0]).to(flow.dtype)
    per = flow.abs().flatten(1).mean(1)
    return (per * w).sum() / w.sum().clamp(min=1.0)


class ReconstructionLoss(nn.Module):
    """Module twin of :func:`reconstruction_loss`."""

    def forward(self, output: torch.Tensor, target: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
        return reconstruction_loss(output, target, same)


class KeypointLoss(nn.Module):
    """Module twin of :func:`keypoint_loss`."""

    def forward(self, output_keypoints: torch.Tensor, fused_keypoints: torch.Tensor) -> torch.Tensor:
        return keypoint_loss(output_keypoints, fused_keypoints)


class FlowIdentityLoss(nn.Module):
    """Module twin of :func:`flow_identity_loss`."""

    def forward(self, flow: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
        return flow_identity_loss(flow, same)
