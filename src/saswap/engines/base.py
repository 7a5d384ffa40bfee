"""The swap engine interface: an aligned target crop and a prepared source in, a swapped crop and a
soft mask out. Engines never decode files or video and never paste back; pipelines do."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from saswap.face.alignment import ffhq_transform, transform_face, warp_face
from saswap.face.types import Face

__all__ = ["SourceFace", "EngineOutput", "SwapEngine"]


@dataclass
class SourceFace:
    """A source face prepared once by an engine and reused for every target (and every video frame).

    Attributes:
        image: the aligned source crop, RGB uint8 (S, S, 3).
        face: the source face in crop coordinates.
        transform: the image -> crop similarity, shape (2, 3).
        embedding: the identity embedding the engine uses, if any.
        extras: engine-specific precomputed data (texture, 3D fit, ...).
    """

    image: np.ndarray
    face: Face
    transform: np.ndarray
    embedding: np.ndarray | None = None
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass
class EngineOutput:
    """The result of one swap in crop coordinates.

    Attributes:
        image: swapped crop, RGB uint8 (S, S, 3).
        mask: where the crop differs from the target crop, float32 (S, S) in [0, 1], soft-edged:
            the pipeline pastes ``image`` back with this mask and leaves every other pixel alone.
    """

    image: np.ndarray
    mask: np.ndarray


class SwapEngine(ABC):
    """Base class of swap engines.

    Subclasses set ``name`` and ``crop_size`` and implement :meth:`prepare_source` and :meth:`swap`.
    The default alignment is the FFHQ-style similarity of :func:`~saswap.face.alignment.ffhq_transform`;
    an engine with another template (e.g. 128x128 ArcFace-style) overrides :meth:`alignment`.
    """

    name: str = "engine"
    crop_size: int = 256

    def alignment(self, face: Face) -> np.ndarray:
        """The image -> crop similarity for a face, shape (2, 3)."""
        return ffhq_transform(face.keypoints, self.crop_size)

    def align(self, image: np.ndarray, face: Face) -> tuple[np.ndarray, Face, np.ndarray]:
        """Crop a face: (crop RGB uint8, the face in crop coordinates, image -> crop transform)."""
        M = self.alignment(face)
        return warp_face(image, M, self.crop_size), transform_face(face, M), M

    @abstractmethod
    def prepare_source(self, image: np.ndarray, face: Face) -> SourceFace:
        """Precompute everything the engine needs from the source image and its face."""

    @abstractmethod
    def swap(
        self, target: np.ndarray, target_face: Face, source: SourceFace, shape_strength: float = 1.0
    ) -> EngineOutput:
        """Swap the source's face into an aligned target crop.

        Args:
            target: aligned target crop, RGB uint8 (S, S, 3).
            target_face: the target face in crop coordinates.
            source: from :meth:`prepare_source`.
            shape_strength: 0 keeps the target's face shape, 1 adopts the source's.
        """

    def _check_crop(self, target: np.ndarray, shape_strength: float | None = None) -> None:
        s = self.crop_size
        if target.shape != (s, s, 3) or target.dtype != np.uint8:
            raise ValueError(
                f"{self.name} engine expects an aligned RGB uint8 crop of shape ({s}, {s}, 3), got {target.dtype} {target.shape}"
            )
        if shape_strength is not None and not 0.0 <= shape_strength <= 1.0:
            raise ValueError(f"shape_strength must lie in [0, 1], got {shape_strength}")

    @staticmethod
    def paste_face(
        target: np.ndarray, target_face: Face, generated: np.ndarray, occlusion: bool = True
    ) -> EngineOutput:
        """Blend a generated face crop into the target crop over the target's (occlusion-aware) face region.

        For engines whose model outputs a whole crop: the mask is the target's visible face minus what
        covers it (when ``occlusion``), feathered; outside it the target crop is kept bit-exact.
        """
        from saswap.face.masks import face_region_masks, feather, skin_occlusion_mask

        regions = face_region_masks(target_face.landmarks, target.shape[:2])
        face = regions["face"]
        if occlusion:
            face = face * (1.0 - skin_occlusion_mask(target, regions))
        mask = feather(face, max(1.0, 0.06 * target_face.eye_distance))
        if not mask.any():  # landmarks outside the crop: fall back to the crop's inner area
            h, w = target.shape[:2]
            mask = feather(np.pad(np.ones((h - 16, w - 16), np.float32), 8), 6)
        blended = target.astype(np.float32) * (1 - mask[..., None]) + generated.astype(np.float32) * mask[..., None]
        blended = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
        blended[mask == 0] = target[mask == 0]
        return EngineOutput(image=blended, mask=mask)
