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

    def _check_crop(self, target: np.ndarray) -> None:
        s = self.crop_size
        if target.shape != (s, s, 3) or target.dtype != np.uint8:
            raise ValueError(
                f"{self.name} engine expects an aligned RGB uint8 crop of shape ({s}, {s}, 3), got {target.dtype} {target.shape}"
            )
