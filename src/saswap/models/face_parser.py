"""``FaceParser``: a small U-Net that labels every pixel of an aligned face crop with a face part, hair,
glasses, an occluder (anything in front of the face) or background."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from saswap.face.parsing import DEFAULT_COVERED_THRESHOLD, FACE_PARSER_CLASSES, SWAPPABLE_CLASSES
from saswap.models.hub import SaSwapModelMixin
from saswap.models.layers import activation

__all__ = ["FaceParser", "FACE_PARSER_CLASSES", "SWAPPABLE_CLASSES"]


def _conv_bn(cin: int, cout: int, act: str, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), activation(act))


class _Residual(nn.Module):
    """Two 3x3 convolutions with a skip connection (1x1 projection when the width changes)."""

    def __init__(self, cin: int, cout: int, act: str) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cout),
            activation(act),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.skip = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1, bias=False)
        self.act = activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.skip(x))


class FaceParser(nn.Module, SaSwapModelMixin):
    """Face parsing U-Net with occlusion (issue 13, part 1).

    A stride-2 stem takes the crop to half resolution; each encoder stage halves it again
    (stride-2 convolution, then a residual block); the decoder upsamples bilinearly, concatenates
    the encoder's features of the same scale and mixes them with a residual block; a 1x1 head gives
    class logits at half resolution, upsampled bilinearly to the input size.

    Convention:
        Input: RGB in [0, 1], shape (B, in_channels, H, W), H and W multiples of
        ``2 ** len(block_out_channels)`` (the models are trained on aligned 128-256 px crops,
        :func:`saswap.face.alignment.ffhq_transform`). Output: logits over :data:`FACE_PARSER_CLASSES`
        (``num_classes`` of them), shape (B, num_classes, H, W).

    Args:
        in_channels: image channels.
        num_classes: output classes; the names are :data:`FACE_PARSER_CLASSES` when it is 9.
        block_out_channels: widths of the stem and of each encoder stage, from fine to coarse.
        act_fn: activation name (see :func:`saswap.models.layers.activation`).
        image_size: side of the aligned crops it was trained on (recorded in its config; run time
            (:class:`saswap.face.parsing.FaceParsing`) feeds it crops of this size).
        covered_threshold: the weights' operating point, recorded in their config: a pixel is covered (a swap leaves
            it alone) when the summed probability of the classes a swap may not change exceeds it. Two trainings of
            one recipe differ more in where their decision lies than in how well they separate, so a retrained
            parser is calibrated on its *training* files (:func:`saswap.eval.parsing.calibrate_threshold`,
            ``export_parser(..., covered_threshold=)``) and the compose stage and the source cleaning read it
            (:attr:`saswap.face.parsing.FaceParsing.threshold`).

    Example:
        >>> parser = FaceParser(block_out_channels=(8, 16, 32))
        >>> parser(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 9, 32, 32])
        >>> parser.classes[:3]
        ('background', 'skin', 'eyes')
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = len(FACE_PARSER_CLASSES),
        block_out_channels: Sequence[int] = (16, 32, 64, 96, 128),
        act_fn: str = "relu",
        image_size: int = 256,
        covered_threshold: float = DEFAULT_COVERED_THRESHOLD,
    ) -> None:
        super().__init__()
        if not 0.0 < covered_threshold < 1.0:
            raise ValueError(f"covered_threshold must lie in (0, 1), got {covered_threshold}")
        self.image_size = int(image_size)
        self.covered_threshold = float(covered_threshold)
        chans = [int(c) for c in block_out_channels]
        if len(chans) < 2:
            raise ValueError(f"block_out_channels needs at least 2 entries (stem + one stage), got {chans}")
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.scale = 2 ** len(chans)
        self.stem = nn.Sequential(_conv_bn(in_channels, chans[0], act_fn, stride=2), _conv_bn(chans[0], chans[0], act_fn))
        self.downs = nn.ModuleList(
            nn.Sequential(_conv_bn(cin, cout, act_fn, stride=2), _Residual(cout, cout, act_fn))
            for cin, cout in zip(chans[:-1], chans[1:])
        )
        self.ups = nn.ModuleList(
            _Residual(cdeep + cskip, cskip, act_fn) for cdeep, cskip in zip(chans[:0:-1], chans[-2::-1])
        )
        self.head = nn.Conv2d(chans[0], num_classes, 1)
        self.register_buffer("mean", torch.tensor([0.5] * in_channels).view(1, -1, 1, 1), persistent=False)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs) -> FaceParser:
        """Load weights: ``"saswap-face-parser"`` (shipped inside the package), a ``save_pretrained``
        folder, or a Hugging Face Hub id.

        Example:
            >>> FaceParser.from_pretrained("saswap-face-parser").classes[-1]
            'occluder'
        """
        from saswap.face.parsing import DEFAULT_FACE_PARSER, face_parser_path

        if str(pretrained_model_name_or_path) == DEFAULT_FACE_PARSER:
            pretrained_model_name_or_path = face_parser_path(DEFAULT_FACE_PARSER)
        return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)

    @property
    def classes(self) -> tuple[str, ...]:
        """Names of the output channels (``class_0``... when ``num_classes`` is not the default)."""
        if self.num_classes == len(FACE_PARSER_CLASSES):
            return FACE_PARSER_CLASSES
        return tuple(f"class_{i}" for i in range(self.num_classes))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Class logits, shape (B, num_classes, H, W), for images of shape (B, in_channels, H, W) in [0, 1]."""
        if image.ndim != 4 or image.shape[1] != self.in_channels:
            raise ValueError(f"expected images of shape (B, {self.in_channels}, H, W), got {tuple(image.shape)}")
        if image.shape[-1] % self.scale or image.shape[-2] % self.scale:
            raise ValueError(f"image height and width must be multiples of {self.scale}, got {tuple(image.shape[-2:])}")
        if not image.is_floating_point():
            raise TypeError(f"expected a float image in [0, 1], got dtype {image.dtype}")
        x = self.stem((image - self.mean) * 2.0)
        skips = [x]
        for down in self.downs:
            x = down(x)
            skips.append(x)
        for up, skip in zip(self.ups, reversed(skips[:-1])):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = up(torch.cat([x, skip], dim=1))
        return F.interpolate(self.head(x), size=image.shape[-2:], mode="bilinear", align_corners=False)

    @torch.no_grad()
    def parse(self, image: torch.Tensor) -> torch.Tensor:
        """Per-pixel class indices, shape (B, H, W) int64, of images (B, in_channels, H, W) in [0, 1]."""
        return self(image).argmax(1)

    @torch.no_grad()
    def swappable_mask(self, image: torch.Tensor) -> torch.Tensor:
        """Probability that each pixel is visible face a swap may change (:data:`SWAPPABLE_CLASSES`).

        Args:
            image: shape (B, in_channels, H, W) in [0, 1].

        Returns:
            shape (B, H, W), float in [0, 1].
        """
        probs = self(image).softmax(1)
        idx = [self.classes.index(c) for c in SWAPPABLE_CLASSES if c in self.classes]
        if not idx:
            raise ValueError("swappable_mask needs the default class list (num_classes == 9)")
        return probs[:, idx].sum(1)
