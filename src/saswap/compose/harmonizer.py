"""Learned tone and light harmonisation at run time: the project's :class:`~saswap.models.ToneHarmonizer` on a
composed face crop in any alignment.

The harmoniser was trained on FFHQ-aligned crops (:func:`~saswap.face.alignment.ffhq_transform`) of
``image_size`` pixels. :class:`ToneHarmonization` re-aligns the composed crop and the mask of its new face
for it, predicts its bilateral grid of colour matrices there, and applies that grid to the crop's own pixels
at the crop's own resolution (each pixel reads the grid where it lies on the harmoniser's plane), so nothing
is resampled but the smooth colour transform.

The default weights, ``saswap-tone-harmonizer``, are to ship inside the package (``saswap/weights/tone-harmonizer``,
Apache-2.0, trained by ``recipes/tone-harmonizer.yaml``) once a training run measures better than the compose
stage's relighting and membrane; none has yet (``benchmarks/RESULTS.md``), so today the harmoniser runs from a
folder you trained (``saswap train-harmonizer`` + ``saswap export``) and the compose stage leaves it off.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from saswap.errors import ModelNotFoundError
from saswap.shipped import LazyPretrained, model_setting, weights_folder

__all__ = [
    "DEFAULT_TONE_HARMONIZER",
    "ToneHarmonization",
    "default_tone_harmonization",
    "harmonize_method",
    "tone_harmonizer_path",
]

#: Zoo name of the tone harmoniser shipped inside the package.
DEFAULT_TONE_HARMONIZER = "saswap-tone-harmonizer"


def harmonize_method(value: bool | str | os.PathLike | None) -> str:
    """Normalise a harmonisation setting: ``"off"`` or a harmoniser (:data:`DEFAULT_TONE_HARMONIZER` or a
    folder). ``True`` and ``"harmonizer"`` mean the shipped one; ``False``, ``None`` and ``"off"`` mean off.

    Example:
        >>> harmonize_method(True), harmonize_method(False), harmonize_method("off")
        ('saswap-tone-harmonizer', 'off', 'off')
    """
    return model_setting(value, DEFAULT_TONE_HARMONIZER, ("harmonizer",))


def tone_harmonizer_path(name_or_path: str | os.PathLike = DEFAULT_TONE_HARMONIZER) -> Path:
    """The local folder of a tone harmoniser: the shipped one for :data:`DEFAULT_TONE_HARMONIZER`, else a
    folder written by ``ToneHarmonizer.save_pretrained`` (``saswap train-harmonizer`` + ``saswap export``).

    Raises:
        ModelNotFoundError: the folder or its weights are missing (for the default name today: no weights ship).
    """
    try:
        return weights_folder(
            name_or_path,
            {DEFAULT_TONE_HARMONIZER: "tone-harmonizer"},
            "tone harmoniser",
            "'saswap train-harmonizer' and 'saswap export'",
        )
    except ModelNotFoundError:
        if str(name_or_path) != DEFAULT_TONE_HARMONIZER:
            raise
        raise ModelNotFoundError(
            f"{DEFAULT_TONE_HARMONIZER}: no weights ship yet (no training run has measured better than the compose "
            "stage's own relighting, see benchmarks/RESULTS.md); train one with 'saswap train-harmonizer fit "
            "--config recipes/tone-harmonizer.yaml', export it with 'saswap export CHECKPOINT FOLDER' and pass the "
            "folder (saswap swap --harmonize FOLDER)"
        ) from None


def _plane_coords(M: np.ndarray, shape: tuple[int, int], size: int) -> np.ndarray:
    """Where each pixel of a crop of ``shape`` lies on the harmoniser's ``size`` plane (``M``: crop -> plane),
    normalised as ``F.grid_sample(..., align_corners=False)`` wants: float32 (H, W, 2)."""
    h, w = shape
    ys, xs = np.mgrid[:h, :w].astype(np.float32)
    M = np.asarray(M, np.float32)
    px = M[0, 0] * xs + M[0, 1] * ys + M[0, 2]
    py = M[1, 0] * xs + M[1, 1] * ys + M[1, 2]
    return np.stack([(2 * px + 1) / size - 1, (2 * py + 1) / size - 1], axis=-1)


class ToneHarmonization(LazyPretrained):
    """A tone harmoniser applied to composed face crops.

    Args:
        name_or_path: :data:`DEFAULT_TONE_HARMONIZER` (shipped) or a ``save_pretrained`` folder.

    The weights load on first use. Calls are thread-safe (one forward pass at a time).
    """

    def __init__(self, name_or_path: str | os.PathLike = DEFAULT_TONE_HARMONIZER) -> None:
        super().__init__(tone_harmonizer_path(name_or_path), str(name_or_path))

    def _load(self, folder: Path):
        from saswap.models import ToneHarmonizer

        return ToneHarmonizer.from_pretrained(folder)

    def __call__(self, crop: np.ndarray, mask: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
        """Match the colour and light of the new face in a composed crop to what surrounds it.

        Args:
            crop: the composed crop, RGB uint8 (H, W, 3).
            mask: where the new face is, float (H, W) in [0, 1]: the colour transform applies in proportion to
                it, and pixels where it is 0 are returned unchanged.
            keypoints: the face's five keypoints in the crop, (5, 2).

        Returns:
            RGB uint8 (H, W, 3).
        """
        import torch

        from saswap.face.alignment import ffhq_transform, warp_face
        from saswap.models.tone_harmonizer import apply_colour_grid

        if crop.ndim != 3 or crop.shape[2] != 3 or crop.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 crop (H, W, 3), got {crop.dtype} {crop.shape}")
        if mask.shape != crop.shape[:2]:
            raise ValueError(f"expected a mask of shape {crop.shape[:2]}, got {mask.shape}")
        if not (mask > 0).any():
            return crop.copy()
        model = self.model
        size = model.image_size
        M = ffhq_transform(np.asarray(keypoints, np.float64), size)
        x = warp_face(crop, M, size, border=cv2.BORDER_CONSTANT)  # black beyond the edge, as in training
        m = cv2.warpAffine(mask.astype(np.float32), M, (size, size), flags=cv2.INTER_LINEAR, borderValue=0.0)
        coords = _plane_coords(M, crop.shape[:2], size)
        with self._lock, torch.inference_mode():
            xt = torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1)[None].float() / 255.0
            mt = torch.from_numpy(np.clip(m, 0, 1))[None, None]
            grid = model(xt, mt)
            image = torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1)[None].float() / 255.0
            weight = torch.from_numpy(np.clip(mask, 0, 1).astype(np.float32))[None, None]
            out = apply_colour_grid(image, grid, weight, torch.from_numpy(coords)[None])
            out = (out[0].permute(1, 2, 0).numpy() * 255.0 + 0.5).clip(0, 255).astype(np.uint8)
        untouched = mask <= 0
        out[untouched] = crop[untouched]
        return out


@lru_cache(maxsize=4)
def default_tone_harmonization(name_or_path: str = DEFAULT_TONE_HARMONIZER) -> ToneHarmonization:
    """One shared :class:`ToneHarmonization` per harmoniser (its weights load once per process)."""
    return ToneHarmonization(name_or_path)
