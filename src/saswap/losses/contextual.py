"""Contextual loss (Mechrez et al., 2018) on VGG features: matches the output's feature statistics to
the target's without pixel alignment — here, the target's skin tone and texture."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from saswap.errors import ModelNotFoundError

__all__ = ["contextual_loss", "ContextualLoss", "VGGFeatures", "vgg19_imagenet_state_dict"]


def contextual_loss(x: torch.Tensor, y: torch.Tensor, band_width: float = 0.5) -> torch.Tensor:
    """Contextual loss between two feature maps.

    Each feature vector of ``y`` looks for its most similar vector of ``x`` (cosine distance after
    centring on ``y``'s mean, normalised by the nearest distance, turned into an affinity with
    bandwidth ``band_width``); the loss is ``-log`` of the mean best affinity.

    Args:
        x: features of the output, shape (B, C, H, W).
        y: features of the target, shape (B, C, H', W').
        band_width: ``h`` of the paper.

    Returns:
        scalar tensor (0 when ``x`` and ``y`` hold the same set of vectors).

    Example:
        >>> f = torch.rand(1, 4, 3, 3)
        >>> float(contextual_loss(f, f)) < float(contextual_loss(torch.rand(1, 4, 3, 3), f))
        True
    """
    if x.ndim != 4 or y.ndim != 4 or x.shape[:2] != y.shape[:2]:
        raise ValueError(
            f"expected feature maps (B, C, H, W) with equal B and C, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    mu = y.mean(dim=(0, 2, 3), keepdim=True)
    xc = nn.functional.normalize((x - mu).flatten(2), dim=1)  # (B, C, N)
    yc = nn.functional.normalize((y - mu).flatten(2), dim=1)  # (B, C, M)
    dist = 1 - torch.bmm(xc.transpose(1, 2), yc)  # (B, N, M)
    rel = dist / (dist.min(dim=1, keepdim=True).values + 1e-5)
    w = torch.exp((1 - rel) / band_width)
    cx = w / w.sum(dim=1, keepdim=True)
    best = cx.max(dim=1).values.mean(dim=1)  # (B,)
    return (-torch.log(best + 1e-5)).mean()


def vgg19_imagenet_state_dict() -> dict[str, torch.Tensor]:
    """torchvision's ImageNet VGG19 weights (``IMAGENET1K_V1``), read from torch's hub cache
    (``torch.hub.get_dir()/checkpoints``) or downloaded into it when online.

    Raises:
        ModelNotFoundError: the file is not in the cache and cannot be downloaded; the message names the file,
            the folder, how to fetch it and how to train without it.
    """
    from torchvision.models import VGG19_Weights

    url = VGG19_Weights.IMAGENET1K_V1.url
    name = url.rsplit("/", 1)[-1]
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    try:
        return torch.hub.load_state_dict_from_url(url, progress=False, check_hash=True, weights_only=True)
    except Exception as err:  # noqa: BLE001 - offline, refused, interrupted: the same remedy
        if (folder / name).is_file():
            raise ModelNotFoundError(
                f"{folder / name}: cannot read torchvision's VGG19 weights ({type(err).__name__}: {err}); delete the "
                "file and fetch it again"
            ) from None
        raise ModelNotFoundError(
            f"the contextual loss needs torchvision's ImageNet VGG19 weights {name}, not in {folder} and not "
            f"downloadable here ({type(err).__name__}); on a connected machine download {url} and copy it into that "
            "folder (set TORCH_HOME to use another), or train without the loss: --model.contextual_loss null"
        ) from None


class VGGFeatures(nn.Module):
    """VGG19 features at named ReLU layers (``relu3_2``, ``relu4_2``, ...), frozen.

    Args:
        layers: layer names.
        pretrained: load torchvision's ImageNet weights (:func:`vgg19_imagenet_state_dict`: from the local torch
            hub cache, or downloaded when online); False builds random weights — only for tests of the loss'
            mechanics.
    """

    _INDEX = {"relu1_2": 3, "relu2_2": 8, "relu3_2": 13, "relu3_4": 17, "relu4_2": 22, "relu4_4": 26, "relu5_2": 31}

    def __init__(self, layers: Sequence[str] = ("relu3_2", "relu4_2"), pretrained: bool = True) -> None:
        super().__init__()
        try:
            from torchvision.models import vgg19
        except ImportError as err:  # pragma: no cover
            raise ModelNotFoundError(
                f"the contextual loss needs torchvision (pip install 'saswap[train]'): {err}"
            ) from None
        unknown = [n for n in layers if n not in self._INDEX]
        if unknown:
            raise ValueError(f"unknown VGG layers {unknown}; choose from {sorted(self._INDEX)}")
        if pretrained:
            net = vgg19(weights=None)
            net.load_state_dict(vgg19_imagenet_state_dict())
        else:
            net = vgg19(weights=None)
        self.layers = tuple(layers)
        last = max(self._INDEX[n] for n in layers)
        self.features = net.features[: last + 1].eval()
        for p in self.features.parameters():
            p.requires_grad = False
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        """Features of RGB images in [-1, 1], one map per requested layer."""
        x = ((image + 1) / 2 - self.mean) / self.std
        wanted = {self._INDEX[n]: n for n in self.layers}
        out = {}
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in wanted:
                out[wanted[i]] = x
        return [out[n] for n in self.layers]


class ContextualLoss(nn.Module):
    """Contextual loss on VGG features of images (sum over the layers).

    Args:
        layers: VGG layers (default relu3_2 and relu4_2, as in the SaSwap design).
        band_width: contextual bandwidth.
        pretrained: see :class:`VGGFeatures`.
        max_positions: features are average-pooled to at most this many positions per map, which
            bounds the N x M affinity matrix.
    """

    def __init__(
        self,
        layers: Sequence[str] = ("relu3_2", "relu4_2"),
        band_width: float = 0.5,
        pretrained: bool = True,
        max_positions: int = 1024,
    ) -> None:
        super().__init__()
        self.vgg = VGGFeatures(layers, pretrained)
        self.band_width = float(band_width)
        self.max_positions = int(max_positions)

    def _pool(self, f: torch.Tensor) -> torch.Tensor:
        h, w = f.shape[-2:]
        k = 1
        while (h // k) * (w // k) > self.max_positions:
            k *= 2
        return nn.functional.avg_pool2d(f, k) if k > 1 else f

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        fo, ft = self.vgg(output), self.vgg(target)
        return sum(contextual_loss(self._pool(a), self._pool(b), self.band_width) for a, b in zip(fo, ft))
