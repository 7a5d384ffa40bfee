"""Learning-rate schedules shared by the training systems."""

from __future__ import annotations

import math

import torch

__all__ = ["warmup_cosine"]


def warmup_cosine(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, floor: float = 0.02
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warmup_steps`` (at most half of ``total_steps``), then a cosine decay to ``floor``
    times the base rate at ``total_steps``; stepped once per optimiser step.

    Example:
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        >>> sched = warmup_cosine(opt, 10, 100)
        >>> [round(f(s), 3) for f in sched.lr_lambdas for s in (0, 9, 10, 100)]
        [0.1, 1.0, 1.0, 0.02]
    """
    total = max(int(total_steps), 1)
    warm = max(min(int(warmup_steps), total // 2), 1)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = min((step - warm) / max(total - warm, 1), 1.0)
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
