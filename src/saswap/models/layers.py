"""Standard layers shared by the models (nothing model-specific lives here)."""

from __future__ import annotations

from torch import nn

__all__ = ["activation"]

_ACTS = {"relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(0.2), "silu": nn.SiLU, "gelu": nn.GELU}


def activation(name: str) -> nn.Module:
    """An activation module by name: ``relu``, ``leaky_relu`` (slope 0.2), ``silu``, ``gelu``.

    Example:
        >>> activation("leaky_relu")
        LeakyReLU(negative_slope=0.2)
    """
    if name not in _ACTS:
        raise ValueError(f"unknown act_fn {name!r}; choose one of {sorted(_ACTS)}")
    return _ACTS[name]()
