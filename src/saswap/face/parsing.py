"""Face parsing at run time: the project's :class:`~saswap.models.FaceParser` on any aligned face crop.

The parser works on FFHQ-aligned crops (:func:`~saswap.face.alignment.ffhq_transform`) of
``image_size`` pixels. :class:`FaceParsing` takes a crop in any alignment (the engine's), the face's
keypoints in it, re-aligns it for the parser and brings the class probabilities back into the crop.

The default weights, ``saswap-face-parser``, ship inside the package (``saswap/weights/face-parser``,
Apache-2.0, trained by ``recipes/face-parser.yaml``; model card beside them).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from saswap.shipped import LazyPretrained, model_setting, weights_folder

__all__ = [
    "COVER_CLASSES",
    "DEFAULT_FACE_PARSER",
    "FaceParsing",
    "default_face_parsing",
    "face_parser_path",
    "occlusion_method",
]

#: Zoo name of the face parser shipped inside the package.
DEFAULT_FACE_PARSER = "saswap-face-parser"

#: The classes in front of a face or around it that a source brings along unless cleaned (background aside).
COVER_CLASSES = ("glasses", "hair", "occluder")


def occlusion_method(value: bool | str | os.PathLike | None) -> str:
    """Normalise an occlusion setting: ``"off"``, ``"rules"`` (the colour and texture rules of
    :mod:`saswap.face.masks`) or a face parser (:data:`DEFAULT_FACE_PARSER` or a folder).

    ``True`` and ``"parser"`` mean the shipped parser; ``False``, ``None`` and ``"off"`` mean off.

    Example:
        >>> occlusion_method(True), occlusion_method(False), occlusion_method("rules")
        ('saswap-face-parser', 'off', 'rules')
    """
    if isinstance(value, str) and value.lower() == "rules":
        return "rules"
    return model_setting(value, DEFAULT_FACE_PARSER, ("parser",))


def face_parser_path(name_or_path: str | os.PathLike = DEFAULT_FACE_PARSER) -> Path:
    """The local folder of a face parser: the shipped one for :data:`DEFAULT_FACE_PARSER`, else a folder
    written by ``FaceParser.save_pretrained`` (``saswap train-parser`` + :func:`export_parser`).

    Raises:
        ModelNotFoundError: the folder or its weights are missing.
    """
    return weights_folder(
        name_or_path,
        {DEFAULT_FACE_PARSER: "face-parser"},
        "face parser",
        "'saswap train-parser' and saswap.training.parser_system.export_parser",
    )


class FaceParsing(LazyPretrained):
    """A face parser applied to aligned face crops.

    Args:
        name_or_path: :data:`DEFAULT_FACE_PARSER` (shipped) or a ``save_pretrained`` folder.
        image_size: side of the parser's FFHQ-aligned input (default: the size it was trained at, from
            its config).

    The weights load on first use. Calls are thread-safe (one forward pass at a time).
    """

    def __init__(self, name_or_path: str | os.PathLike = DEFAULT_FACE_PARSER, image_size: int | None = None) -> None:
        super().__init__(face_parser_path(name_or_path), str(name_or_path))
        self._image_size = image_size

    def _load(self, folder: Path):
        import torch

        from saswap.models import FaceParser

        # channels-last convolutions: ~25% faster on a CPU for this network (same outputs within 1e-5)
        return FaceParser.from_pretrained(folder).to(memory_format=torch.channels_last)

    @property
    def image_size(self) -> int:
        if self._image_size is None:
            self._image_size = self.model.image_size
        return self._image_size

    @property
    def classes(self) -> tuple[str, ...]:
        return self.model.classes

    def _parse(self, crop: np.ndarray, keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Softmax probabilities (S, S, K) on the parser's aligned crop, and the crop -> parser transform."""
        import torch

        from saswap.face.alignment import ffhq_transform, warp_face

        size = self.image_size
        M = ffhq_transform(np.asarray(keypoints, np.float64), size)
        x = warp_face(crop, M, size, border=cv2.BORDER_CONSTANT)  # black beyond the edge, as in training
        with self._lock, torch.inference_mode():
            t = torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1)[None].float() / 255.0  # channels-last memory
            probs = self.model(t).softmax(1)[0].permute(1, 2, 0).numpy()
        return probs, M

    def _back(self, maps: np.ndarray, M: np.ndarray, shape: tuple[int, int], border: list[float]) -> np.ndarray:
        """Maps (S, S, C) on the parser's crop carried back into a crop of ``shape`` (H, W), C channels."""
        h, w = shape
        out = np.empty((h, w, maps.shape[-1]), np.float32)
        for start in range(0, maps.shape[-1], 4):  # warpAffine takes up to 4 channels
            chunk = np.ascontiguousarray(maps[..., start : start + 4])
            values = border[start : start + 4]
            back = cv2.warpAffine(
                chunk, M, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderValue=values + [0.0] * (4 - len(values))
            )
            out[..., start : start + 4] = back.reshape(h, w, -1)
        return out

    def probabilities(self, crop: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
        """Class probabilities of every pixel of a face crop.

        Args:
            crop: RGB uint8 (H, W, 3).
            keypoints: the face's five keypoints in the crop, (5, 2).

        Returns:
            float32 (H, W, K) over :attr:`classes`; pixels the parser's crop does not reach get
            ``background``.
        """
        probs, M = self._parse(crop, keypoints)
        border = [1.0 if c == "background" else 0.0 for c in self.classes]
        return self._back(probs, M, crop.shape[:2], border)

    def group_probabilities(
        self, crop: np.ndarray, keypoints: np.ndarray, groups: dict[str, tuple[str, ...]]
    ) -> dict[str, np.ndarray]:
        """Summed probabilities of groups of classes, carried back into the crop (cheaper than
        :meth:`probabilities`: only one map per group is resampled).

        Args:
            crop, keypoints: see :meth:`probabilities`.
            groups: name -> class names summed into it.

        Returns:
            name -> float32 (H, W) in [0, 1]; beyond the parser's crop a group is 1 when it holds
            ``background``, else 0.
        """
        probs, M = self._parse(crop, keypoints)
        index = {c: i for i, c in enumerate(self.classes)}
        names = list(groups)
        maps = np.stack([probs[..., [index[c] for c in groups[n]]].sum(-1) for n in names], axis=-1)
        border = [1.0 if "background" in groups[n] else 0.0 for n in names]
        back = self._back(maps, M, crop.shape[:2], border)
        return {n: np.clip(back[..., i], 0.0, 1.0) for i, n in enumerate(names)}

    def covered(self, crop: np.ndarray, keypoints: np.ndarray, background: bool = True) -> np.ndarray:
        """Probability that each pixel is *not* visible face (what a swap must leave alone).

        Args:
            crop, keypoints: see :meth:`probabilities`.
            background: count background as not-face (True: for the target, where whatever the parser
                does not call face stays; False: only glasses, hair and occluders, :data:`COVER_CLASSES`).

        Returns:
            float32 (H, W) in [0, 1].
        """
        names = COVER_CLASSES + (("background",) if background else ())
        return self.group_probabilities(crop, keypoints, {"covered": names})["covered"]


@lru_cache(maxsize=4)
def default_face_parsing(name_or_path: str = DEFAULT_FACE_PARSER) -> FaceParsing:
    """One shared :class:`FaceParsing` per parser (its weights load once per process)."""
    return FaceParsing(name_or_path)
