"""The swap engine interface: an aligned target crop and a prepared source in, the new face out.

Engines only make the face. They never decode files or video, never decide what covers the target's face,
match tone, blend nor paste back: the compose stage (:mod:`saswap.compose`) does that for every engine."""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from saswap.errors import SaSwapError
from saswap.face.alignment import ffhq_transform, transform_face, warp_face
from saswap.face.types import Face

__all__ = ["SourceFace", "EngineOutput", "SwapEngine", "MorphableAnalysis", "TRACK_SIGNAL_SECONDS"]

#: How long (Gaussian sigma, seconds) a track signal is smoothed over when its engine names no reach of its own.
TRACK_SIGNAL_SECONDS = 0.25


@dataclass
class SourceFace:
    """A source face prepared once by an engine and reused for every target (and every video frame).

    Attributes:
        image: the aligned source crop, RGB uint8 (S, S, 3).
        face: the source face in crop coordinates.
        transform: the image -> crop similarity, shape (2, 3).
        embedding: the identity embedding the engine uses, if any.
        extras: engine-specific precomputed data (texture, 3D fit, ...).
        origin: the source photo and its face in it, kept by
            :meth:`~saswap.pipelines.SaSwapPipeline.prepare_source` so the source can be prepared again at another
            crop size (a large target face, ``crop_size="auto"``); None: this crop size only.
    """

    image: np.ndarray
    face: Face
    transform: np.ndarray
    embedding: np.ndarray | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    origin: tuple[np.ndarray, Face] | None = field(default=None, repr=False, compare=False)


@dataclass
class EngineOutput:
    """The face an engine made, in crop coordinates. The compose stage
    (:class:`~saswap.compose.Compositor`) decides what of it shows and how it meets the target.

    An engine gives its face either as ``detail`` (its shading relative to its own skin colour, which the
    compositor multiplies by the target's local skin colour and light) or as pixels in ``image`` (the
    compositor then takes the detail from them). Everything else is optional.

    Attributes:
        image: the generated face crop, RGB uint8 (S, S, 3), or None when ``detail`` is given.
        detail: the face's shading detail, float32 (S, S, 3), about 1 on plain skin
            (:func:`~saswap.face.colour.shading_detail`), or None.
        base: the target crop under the new face shape (the target warped by ``flow``); None: the target crop.
        flow: the shape flow that moved the target (S, S, 2) in pixels, and ``back`` its inverse; None: no motion.
        landmarks: the target's mesh moved by the flow, shape (468+, 3); None: the target's own.
        support: how much of the face each pixel may take, float32 (S, S) in [0, 1]; None: all of the face.
        source_skin: where the mapped face shows skin, float32 (S, S) (boundary samples of the tone
            membrane); None: the face region's skin.
        keep: what must stay the target's for its expression (mouth interior, kept lips, eyes), float32 (S, S).
        regions: :func:`~saswap.face.masks.face_region_masks` of ``landmarks``, when the engine computed
            them already (the compositor needs them too); None: computed there.
        mask: only for reference engines that blend by themselves (the naive baseline): ``image`` is then
            the finished crop and ``mask`` where it differs from the target; the compositor passes it through.
    """

    image: np.ndarray | None = None
    detail: np.ndarray | None = None
    base: np.ndarray | None = None
    flow: np.ndarray | None = None
    back: np.ndarray | None = None
    landmarks: np.ndarray | None = None
    support: np.ndarray | None = None
    source_skin: np.ndarray | None = None
    keep: np.ndarray | None = None
    regions: dict[str, np.ndarray] | None = None
    mask: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.image is None and self.detail is None:
            raise ValueError("an EngineOutput needs the face as image or as detail")


class SwapEngine(ABC):
    """Base class of swap engines.

    Subclasses set ``name`` and ``crop_size`` and implement :meth:`prepare_source` and :meth:`swap`.
    The default alignment is the FFHQ-style similarity of :func:`~saswap.face.alignment.ffhq_transform`;
    an engine with another template (e.g. 128x128 ArcFace-style) overrides :meth:`alignment`.
    """

    name: str = "engine"
    crop_size: int = 256
    #: The model it was loaded from, as outputs' synthetic-media tags record it: a zoo name, a Hub id, or a local
    #: folder by its name alone (a tag travels with the picture, the user's paths do not); None for one built in code.
    model_id: str | None = None
    #: Whether the engine works on a crop of any side (:meth:`resized`): its scales follow the face's size in the
    #: crop, not fixed pixels (a network with a fixed input size is not).
    resizable: bool = False

    @property
    def on_cpu(self) -> bool:
        """Whether the engine computes on the CPU (a video swap then makes frames in worker processes on many
        cores, each with a copy of the engine; an engine on a GPU stays in the swap's process, and the worker processes
        run the compose stage alone)."""
        return True

    @property
    def device(self) -> str:
        """Where the engine computes (``"cpu"``, ``"cuda:0"``, ...)."""
        return "cpu"

    def to(self, device: str) -> SwapEngine:
        """Compute on ``device`` (as torch names it: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``); returns the engine.
        An engine that computes on the CPU alone accepts ``"cpu"`` only.

        Raises:
            SaSwapError: the engine cannot compute there.
        """
        if str(device).split(":", 1)[0] != "cpu":
            raise SaSwapError(f"the {self.name} engine computes on the CPU only; it cannot move to {device!r}")
        return self

    def resized(self, crop_size: int) -> SwapEngine:
        """This engine working on crops of ``crop_size`` pixels a side: a shallow copy sharing its models (the engine
        itself when the size is its own).

        Raises:
            SaSwapError: the engine works on one crop size only (:attr:`resizable` False).
            ValueError: ``crop_size`` below 64.
        """
        crop_size = int(crop_size)
        if crop_size == self.crop_size:
            return self
        if not self.resizable:
            raise SaSwapError(f"the {self.name} engine works on {self.crop_size}-px crops only, not {crop_size}")
        if crop_size < 64:
            raise ValueError(f"crop_size must be at least 64, got {crop_size}")
        engine = copy.copy(self)
        engine.crop_size = crop_size
        return engine

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

    def for_analysis(self):
        """What a template's analysis needs of this engine (``crop_size``, :meth:`alignment`, :meth:`analyze_target`),
        as an object to send to analysis worker processes: the engine itself by default; an engine with large
        networks (or on a GPU) returns a light stand-in that computes the same analysis on the CPU."""
        return self

    def analyze_target(self, crop: np.ndarray, face: Face) -> dict[str, np.ndarray]:
        """What the engine needs from an aligned target crop alone (computed once per template frame and
        cached with the template). Values are arrays; the default needs nothing."""
        return {}

    #: Gaussian sigma, in seconds, over which a video template's :meth:`track_signals` are smoothed: one value for
    #: every signal, or a mapping from a signal's name to its own (signals not named get
    #: :data:`TRACK_SIGNAL_SECONDS`).
    track_signal_seconds: float | Mapping[str, float] = TRACK_SIGNAL_SECONDS

    def track_signals(self, face: Face) -> dict[str, float | np.ndarray]:
        """Numbers the engine reads from a target face that must change smoothly in a video (the default: none).

        A template's analysis (:func:`~saswap.pipelines.video.precompute_template`) measures them on every frame
        of a track, smooths them over time in both directions (a Gaussian of :attr:`track_signal_seconds`, within
        a shot and a run where the track is seen) and hands them to :meth:`swap` in ``analysis`` under the same
        names, as arrays (of one value for a number, of the same length for a vector). A still image has no such
        entry: the engine measures them itself."""
        return {}

    #: Gaussian sigma, in seconds, over which a video swap smooths the geometry the engine draws for a source on
    #: each target face (:meth:`track_motion`) along the face's track; 0: not smoothed (the default).
    motion_seconds: float = 0.0

    def track_motion(
        self, target_face: Face, source: SourceFace, shape_strength: float, analysis: dict[str, np.ndarray]
    ) -> np.ndarray | None:
        """The geometry the engine draws for ``source`` on an aligned target face (e.g. its keypoints' motion), as
        one array of a fixed shape, or None (the default: the engine draws none of its own).

        Unlike :meth:`track_signals` it depends on the source, so a template's cache cannot hold it: a video swap
        (when :attr:`motion_seconds` is above 0) reads it for every frame of a track a little ahead of making the
        frames, smooths it over time in both directions (within a shot and a run where the track is seen) and hands
        it to :meth:`swap` in ``analysis["motion"]``. A still image has no such entry: the engine computes its own.
        """
        return None

    def config(self) -> dict[str, Any]:
        """JSON-able settings that change what :meth:`analyze_target` returns (part of a cache key)."""
        return {"name": self.name, "crop_size": self.crop_size}

    @abstractmethod
    def swap(
        self,
        target: np.ndarray,
        target_face: Face,
        source: SourceFace,
        shape_strength: float = 1.0,
        analysis: dict[str, np.ndarray] | None = None,
    ) -> EngineOutput:
        """Make the source's face for an aligned target crop.

        Args:
            target: aligned target crop, RGB uint8 (S, S, 3).
            target_face: the target face in crop coordinates.
            source: from :meth:`prepare_source`.
            shape_strength: 0 keeps the target's face shape, 1 adopts the source's.
            analysis: from :meth:`analyze_target` for this crop (computed when None).
        """

    def _check_crop(self, target: np.ndarray, shape_strength: float | None = None) -> None:
        s = self.crop_size
        if target.shape != (s, s, 3) or target.dtype != np.uint8:
            raise ValueError(
                f"{self.name} engine expects an aligned RGB uint8 crop of shape ({s}, {s}, 3), got {target.dtype} {target.shape}"
            )
        if shape_strength is not None and not 0.0 <= shape_strength <= 1.0:
            raise ValueError(f"shape_strength must lie in [0, 1], got {shape_strength}")


class MorphableAnalysis:
    """What a template's analysis needs of an engine whose target data is the 3DMM fit alone (the neural engine): its
    crop size, the FFHQ-style alignment and the fit (:func:`~saswap.face.morphable.fit_to_analysis`). Light and free of
    torch, it is what :meth:`SwapEngine.for_analysis` sends to analysis worker processes for such an engine."""

    def __init__(self, name: str, crop_size: int, model) -> None:
        self.name = name
        self.crop_size = int(crop_size)
        self.model = model

    def alignment(self, face: Face) -> np.ndarray:
        return ffhq_transform(face.keypoints, self.crop_size)

    def analyze_target(self, crop: np.ndarray, face: Face) -> dict[str, np.ndarray]:
        from saswap.face.morphable import fit_morphable, fit_to_analysis

        return fit_to_analysis(fit_morphable(self.model, face.landmarks_68))
