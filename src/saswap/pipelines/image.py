"""``SaSwapPipeline``: swap faces in images and videos with any engine.

One data flow for both: decode -> analyse the target (:class:`~saswap.pipelines.analysis.TargetAnalyzer`,
or read its analysis from a template cache) -> the engine makes the face -> the compositor composes it
and pastes it back -> encode. A still image is a one-frame video."""

from __future__ import annotations

import copy
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from saswap.compose.compositor import (
    FINE_DETAIL_SCALE,
    ComposedFace,
    Compositor,
    Placed,
    blend_placed,
    place_back,
)
from saswap.engines.base import SourceFace, SwapEngine
from saswap.errors import ModelNotFoundError, NoFaceError, SaSwapError
from saswap.face.alignment import transform_scale, warp_face
from saswap.face.analyzer import FaceAnalyzer
from saswap.face.masks import face_region_masks
from saswap.face.types import Face
from saswap.io import ImageInput, load_image, load_image_alpha, picture_header
from saswap.pipelines.analysis import FrameAnalysis, TargetAnalyzer, TargetFace

__all__ = ["SaSwapPipeline", "SaSwapOutput"]

logger = logging.getLogger(__name__)


@dataclass
class SaSwapOutput:
    """Result of :meth:`SaSwapPipeline.__call__`.

    Attributes:
        image: the target with the swapped face(s), RGB uint8 (H, W, 3).
        faces: the target faces that were swapped (target image coordinates).
        masks: for each swapped face, where the image changed, float32 (H, W) in [0, 1]; pixels
            where every mask is 0 are exactly the target's.
        source_face: the source face used (source image coordinates); with several sources, the first one's.
        timings: seconds per stage ("analyze_source", "analyze_target", "swap" (the engine), "paste" (compose
            and paste-back), "total").
        provenance: what :meth:`save` writes into the file's synthetic-media tag besides the standard
            fields (the engine, the shape strength, the number of faces; with several sources, their number).
        alpha: the target's transparency, uint8 (H, W), or None when it has none (every pixel opaque). :attr:`image`
            is composited on black, as the target was read; :meth:`save` puts the transparency back.
        source_faces: each source's face (source image coordinates), in the order of the sources: one source's
            face alone, or with several sources, the face of each (``faces[k]`` was swapped with ``source_faces[k]``).
    """

    image: np.ndarray
    faces: list[Face]
    masks: list[np.ndarray]
    source_face: Face
    timings: dict[str, float] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    alpha: np.ndarray | None = None
    source_faces: list[Face] = field(default_factory=list)

    def __repr__(self) -> str:
        h, w = self.image.shape[:2]
        clear = ", transparent" if self.alpha is not None else ""
        total = self.timings.get("total")
        took = f", {total * 1000:.0f} ms" if total is not None else ""
        return f"SaSwapOutput(image={w}x{h}{clear}, faces={self.faces!r}{took})"

    def save(self, path: str | os.PathLike, quality: int = 95, **tag: Any) -> Path:
        """Write :attr:`image` to ``path`` (.png, .jpg or .webp), atomically, tagged as synthetic.

        Convention:
            The tag is the JSON object :func:`saswap.provenance.make_tag` makes, with :attr:`provenance` and
            ``tag``'s fields; ``saswap inspect`` and :func:`saswap.provenance.read_tag` read it back.

        A transparent target's :attr:`alpha` is kept in a .png or .webp (a sticker keeps its transparent
        background); a .jpg has none, and is written composited on black, with a warning. Missing folders on the
        way are made (as ``saswap swap -o`` makes them).

        Returns:
            the path written.
        """
        from saswap.io import restore_alpha
        from saswap.provenance import make_tag, save_tagged

        path = Path(path)
        pixels = self.image
        if self.alpha is not None:
            if path.suffix.lower() in (".png", ".webp"):
                pixels = restore_alpha(self.image, self.alpha)
            elif path.suffix.lower() in (".jpg", ".jpeg"):  # (any other extension is refused by save_tagged)
                logger.warning(
                    "%s: the target is transparent, and a %s has no transparency; written on black (use .png or "
                    ".webp to keep it)", path, path.suffix.lower(),
                )  # fmt: skip
        path.parent.mkdir(parents=True, exist_ok=True)
        save_tagged(pixels, path, make_tag(**self.provenance, **tag), quality=quality)
        return path


#: Source turn (degrees from facing the camera, yaw and pitch together) above which a warning is given, and
#: above which preparing the source is an error unless forced. Measured by ``benchmarks/bench_source_pose.py``
#: (57 sources into 6 frontal targets, dlib as judge): the output is closer to the source than to the target
#: in 97% of pairs up to 15 degrees, 94% at 15-25, 71% at 25-35 (both the tuning and the held-out half drop
#: at 25); beyond 45 every output on the contact sheet is torn.
SOURCE_TURN_WARN = 25.0
SOURCE_TURN_LIMIT = 45.0

#: Target yaw (degrees, either side) above which a swap warns that the face is turned too far to swap well. Measured by
#: ``benchmarks/bench_target_pose.py`` (the six frontal faces of the source benchmark into 123 target faces of the
#: shared photos and clips, dlib as judge): the mean margin (the output's distance to the target minus its distance to
#: the source) falls from 0.21 (yaw under 15) to 0.11 at 25-35, 0.09 at 35-45 and 0.05 at 45-55; the skin tone's
#: distance from the target's (ΔE, median) rises from 2.5-3.2 under 35 to 4.5-5.9 beyond; and from about 35 degrees the
#: contact sheets show patches and a broken far side. Only the yaw counts: the analyzer reads most frontal faces with a
#: pitch of -10 to -15.
TARGET_YAW_WARN = 35.0

#: How many times a source face may be enlarged to the engine's working crop before a warning: beyond 2x the crop
#: holds less than half the detail along each axis that it could (a quarter by pixel count: a small face in a group
#: photo, a thumbnail), and compression blocks and noise grow with it.
SOURCE_UPSCALE_WARN = 2.0
#: The share of a source face's 468 mesh points that may lie outside its photo before a warning: a face cut by the
#: photo's edge has its missing part filled by the crop's mirrored border, a fold and a smeared eye in every swap
#: (`face_recognition__obama_partial_face`: 11%; the other faces of the shared photos at most 1%).
SOURCE_CUT_WARN = 0.05
#: The share of a source face's region that the engine's source cleaning may find covered before a warning: what covers
#: the face (a face mask, a hand, hair, thick frames) is filled with smooth skin and comes out flat in every swap, a
#: mannequin's face when a mask covers the lower half (`insightface__mask`: 64%). A quarter of the face, chosen by
#: reasoning; the other shared photos read at most 13% (`liveportrait__d8`'s glasses) but for a dim, green-lit film
#: frame whose shadows the parser takes partly for cover (`simswap__lcw`, 29%).
SOURCE_COVER_WARN = 0.25

#: ``crop_size="auto"``: a face the engine's own crop would shrink below this many crop pixels per picture pixel is
#: swapped in a crop sized to it (a face shrunk to half its size keeps a quarter of its pixels: soft eyes, brows and
#: lips beside a sharp picture), up to :data:`AUTO_CROP_MAX` pixels a side. The compose stage's own threshold for a reduced
#: crop (:data:`~saswap.compose.compositor.FINE_DETAIL_SCALE`), so faces near the crop's size keep the engine's crop.
AUTO_CROP_BELOW = FINE_DETAIL_SCALE
#: The largest crop ``crop_size="auto"`` chooses (about 7 times the pixels of a 384-px crop).
AUTO_CROP_MAX = 1024
#: The smallest crop ``crop_size="auto"`` chooses for a small face (a group photo, a wide shot): the face parser's
#: input (:class:`~saswap.face.parsing.FaceParsing`, 256 px), so the parser never reads an enlarged crop.
AUTO_CROP_MIN = 256
#: The crop sizes a number may set (``crop_size=N``, ``--crop-size N``): from the face parser's input (a smaller crop
#: only loses detail) to twice the largest "auto" chooses (a side of 5,000 px took minutes and gigabytes for one face).
CROP_SIZE_RANGE = (AUTO_CROP_MIN, 2 * AUTO_CROP_MAX)


def auto_crop_size(own: int, scale: float) -> int:
    """The crop ``crop_size="auto"`` chooses for a face that the engine's own ``own``-px crop holds at ``scale`` crop
    pixels per picture pixel: the crop in which the face keeps its resolution (one crop pixel per picture pixel or
    more), rounded up to 64 pixels. A large face (``scale`` below :data:`AUTO_CROP_BELOW`) gets a larger crop, at most
    :data:`AUTO_CROP_MAX`; a small one a smaller crop, not below :data:`AUTO_CROP_MIN` (the same output resolution
    for less work); any other keeps ``own``.

    Example:
        >>> auto_crop_size(384, 0.9), auto_crop_size(384, 0.5), auto_crop_size(384, 0.1)
        (384, 768, 1024)
        >>> auto_crop_size(384, 1.1), auto_crop_size(384, 1.3), auto_crop_size(384, 4.0)
        (384, 320, 256)
    """
    fit = int(64 * np.ceil(own / scale / 64.0))
    if scale < AUTO_CROP_BELOW:
        return int(min(AUTO_CROP_MAX, max(own, fit)))
    return int(max(min(own, AUTO_CROP_MIN), min(own, fit)))


def check_crop_size(crop_size: int | str | None) -> int | str | None:
    """A ``crop_size`` setting as the pipelines take it: None (the engine's own), ``"auto"``, or a whole number of
    pixels within :data:`CROP_SIZE_RANGE` (a number written as text too). Whether an engine can work on that size is
    :meth:`SaSwapPipeline.crop_size_for`'s check.

    Raises:
        SaSwapError: a value that is no crop size.

    Example:
        >>> check_crop_size("auto"), check_crop_size("512"), check_crop_size(None)
        ('auto', 512, None)
    """
    if crop_size is None or crop_size == "auto":
        return crop_size
    if isinstance(crop_size, bool) or not isinstance(crop_size, (int, str, np.integer)):
        raise SaSwapError(f"crop size must be 'auto' or a number of pixels, got {crop_size!r}")
    try:
        size = int(crop_size)
    except ValueError:
        raise SaSwapError(f"crop size must be 'auto' or a number of pixels, got {crop_size!r}") from None
    low, high = CROP_SIZE_RANGE
    if not low <= size <= high:
        raise SaSwapError(f"crop size must be 'auto' or from {low} to {high} pixels, got {size}")
    return size


def compose_options(
    tone_lock: float = 0.0, occlusion: str | None = None, harmonize: str | None = None
) -> dict[str, Any] | None:
    """The compose stage's options (:class:`~saswap.compose.Compositor` keyword arguments) that ``saswap swap``,
    ``precompute``, ``batch`` and ``app`` set: ``tone_lock`` when not 0, ``occlusion`` and ``harmonize`` when given;
    None when none is (the engine's own). :meth:`SaSwapPipeline.from_pretrained` takes them as ``compose``.

    Example:
        >>> compose_options(0.5, "rules"), compose_options()
        ({'tone_lock': 0.5, 'occlusion': 'rules'}, None)
    """
    options: dict[str, Any] = {"tone_lock": tone_lock} if tone_lock else {}
    options.update({k: v for k, v in (("occlusion", occlusion), ("harmonize", harmonize)) if v is not None})
    return options or None


def check_compose(options: dict[str, Any] | None) -> None:
    """Check compose options (:func:`compose_options`) before any work: a face parser's folder given as
    ``occlusion`` and a tone harmoniser's given as ``harmonize`` must be there (the harmoniser's is otherwise read
    at its first face), and every value in range.

    Raises:
        SaSwapError: which option, which folder, what is wrong (a missing folder: what writes one).

    Example:
        >>> check_compose({"occlusion": "rules", "harmonize": "off"})
    """
    try:
        compositor = Compositor(**(options or {}))  # the parser's folder is read here
    except (TypeError, ValueError) as err:
        raise SaSwapError(str(err)) from None
    if compositor.harmonize != "off":
        from saswap.compose.harmonizer import tone_harmonizer_path

        tone_harmonizer_path(compositor.harmonize)


def covered_share(prepared: SourceFace) -> float:
    """The share of a prepared source's face region (:func:`~saswap.face.masks.face_region_masks`) that the engine's
    source cleaning found covered (its ``occluded`` mask, above 0.5); 0 for an engine that cleans no source."""
    occluded = prepared.extras.get("occluded") if isinstance(prepared.extras, dict) else None
    if occluded is None:
        return 0.0
    inside = face_region_masks(prepared.face.landmarks, np.shape(occluded)[:2])["face"] > 0.5
    return float((np.asarray(occluded) > 0.5)[inside].mean()) if inside.any() else 0.0


def warn_weak_reference(name: str, best: float, threshold: float) -> None:
    """Warn that no face of ``name`` (a photo or a template) matches the reference photo closely: the closest, swapped,
    is below the embedder's same-person cosine ``threshold``."""
    if best < threshold:
        logger.warning(
            "no face of %s matches the reference closely (best cosine %.2f < %.2f); swapping the closest",
            name, best, threshold,
        )  # fmt: skip


def kept_crop_size(crop_size: int | str | None, source: SourceFace) -> int | str | None:
    """``crop_size`` as asked, except that under ``"auto"`` a prepared source that keeps no photo to prepare it again
    (:attr:`~saswap.engines.base.SourceFace.origin`) keeps its own size (photos and videos alike)."""
    if crop_size == "auto" and source.origin is None:
        return int(source.image.shape[0])
    return crop_size


def source_turn(face: Face) -> float:
    """How far a face is turned from facing the camera, in degrees: ``arccos(cos(yaw) * cos(pitch))``."""
    yaw, pitch = np.radians(face.pose[0]), np.radians(face.pose[1])
    return float(np.degrees(np.arccos(np.clip(np.cos(yaw) * np.cos(pitch), -1.0, 1.0))))


def target_turned(face: Face) -> bool:
    """Whether a target face is turned more than :data:`TARGET_YAW_WARN` degrees to the side (yaw, either way)."""
    return abs(float(face.pose[0])) > TARGET_YAW_WARN


def warn_turned_targets(name: str, faces: Sequence[Face]) -> None:
    """Warn (log) about the target faces turned too far to the side (:func:`target_turned`), which swap badly (less
    of the source's identity, patches on the far side)."""
    turned = [f for f in faces if target_turned(f)]
    if turned:
        yaws = ", ".join(f"{float(f.pose[0]):+.0f}" for f in turned)
        if len(faces) == 1:
            which = "the target face is"
        else:
            which = f"{len(turned)} of the {len(faces)} target faces {'is' if len(turned) == 1 else 'are'}"
        logger.warning(
            "%s: %s turned %s degrees to the side (yaw); beyond %.0f a swap keeps less of the source's identity and its "
            "far side may show patches. A target facing the camera gives better results",
            name, which, yaws, TARGET_YAW_WARN,
        )  # fmt: skip


def _is_video_path(path: str | os.PathLike) -> bool:
    """Whether a source path is a video (judged by content; a photo's first bytes settle it without PyAV)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError:
        return False  # loading it as a photo says what is wrong
    if picture_header(head):  # a photo (an animated GIF source too: its first frame)
        return False
    from saswap.videoio import is_video_file

    return is_video_file(path)


def _with_compose(kwargs: dict[str, Any], own: dict[str, Any], compose: dict[str, Any] | None) -> dict[str, Any]:
    """``kwargs`` with a compositor made of a model's own compose options (``own``) and the caller's over them,
    unless the caller gave a compositor or neither has any."""
    if "compositor" in kwargs or not (own or compose):
        return kwargs
    return {**kwargs, "compositor": Compositor(**{**own, **(compose or {})})}


def _source_cleaning(compose: dict[str, Any] | None) -> dict[str, Any]:
    """The geometric engine's ``clean_source`` for a face parser folder given as the compose stage's ``occlusion``
    (a parser the user trained serves both; the shipped parser, the rules and "off" leave the engine's own)."""
    from saswap.face.parsing import DEFAULT_FACE_PARSER, occlusion_method

    chosen = occlusion_method((compose or {}).get("occlusion", DEFAULT_FACE_PARSER))
    return {} if chosen in (DEFAULT_FACE_PARSER, "rules", "off") else {"clean_source": chosen}


def engine_provenance(engine: SwapEngine) -> dict[str, Any]:
    """What an output's synthetic-media tag records of the engine: its kind and, when it was loaded from one, the model
    (:attr:`~saswap.engines.base.SwapEngine.model_id`: a zoo name, a Hub id, a local folder by its name alone)."""
    tag: dict[str, Any] = {"engine": engine.name}
    if engine.model_id is not None:
        tag["model"] = engine.model_id
    return tag


def compose_provenance(compositor: Compositor) -> dict[str, Any]:
    """What an output's synthetic-media tag records of the compose stage: the options a user sets that change the
    picture where they are not at their default (``tone_lock``; ``occlusion`` and ``harmonize``, a model folder by its
    name alone: a tag travels with the picture, the user's own paths do not)."""
    from saswap.face.parsing import DEFAULT_FACE_PARSER

    tag: dict[str, Any] = {"tone_lock": compositor.tone_lock} if compositor.tone_lock > 0 else {}
    for key, value, default in (
        ("occlusion", compositor.occlusion, DEFAULT_FACE_PARSER), ("harmonize", compositor.harmonize, "off"),
    ):  # fmt: skip
        if value != default:
            tag[key] = Path(value).name  # "off", "rules", a zoo name: themselves
    return tag


def _out_of_range(name: str, index: int, faces: list[Face]) -> SaSwapError:
    """The error for a face index a photo does not have."""
    found = f"{len(faces)} face{'s' if len(faces) != 1 else ''} found"
    return SaSwapError(f"{name}: face index {index} out of range ({found}; the first is 0)")


def _name(x: ImageInput, role: str) -> str:
    """What messages call an input: its path, a file object's name, else "the source image" and the like."""
    if isinstance(x, (str, os.PathLike)):
        return str(x)
    own = getattr(x, "name", None) if callable(getattr(x, "read", None)) else None
    return own if isinstance(own, str) and own else f"the {role} image"


class SourcePairing(NamedTuple):
    """Several sources, each paired with the face or person it replaces (:func:`pair_sources`).

    Attributes:
        sources: the sources, in order (paths, arrays, PIL images or prepared :class:`SourceFace`).
        by: how each one's face is chosen: ``"face_index"`` or ``"reference"``.
        selectors: per source, its face index or its reference photo (the same order).
    """

    sources: list
    by: str
    selectors: list


def _several(x: Any) -> bool:
    return isinstance(x, (list, tuple))


def pair_sources(source: Any, face_index: Any, all_faces: bool, reference: Any) -> SourcePairing | None:
    """How the sources of a swap pair with the faces they replace: None for one source and at most one selector (a
    face index, ``all_faces`` or a reference photo: one source, as ever), else a :class:`SourcePairing` of a list of
    sources with a list of face indices or of reference photos of the same length, paired by order.

    Raises:
        SaSwapError: a list of sources without a list of face indices or references of its length, ``all_faces`` with
            a list, both kinds of list, a list of selectors with one source, or a face index given twice.

    Example:
        >>> pair_sources("me.jpg", 1, False, None) is None
        True
        >>> pair_sources(["me.jpg", "you.jpg"], [1, 0], False, None)
        SourcePairing(sources=['me.jpg', 'you.jpg'], by='face_index', selectors=[1, 0])
    """
    if not (_several(source) or _several(face_index) or _several(reference)):
        return None
    sources = list(source) if _several(source) else [source]
    n = len(sources)
    if n == 0:
        raise SaSwapError("no source given (an empty list)")
    what = f"{n} source{'s' if n != 1 else ''}"
    one_each = "give face_index=[...] or reference=[...] with one entry per source, in the same order"
    if all_faces:
        raise SaSwapError(f"all_faces swaps one source into every face; for {what} {one_each}")
    if face_index is not None and reference is not None:
        raise SaSwapError("choose one of face_index and reference")
    if face_index is None and reference is None:
        raise SaSwapError(f"{what} but no face chosen for each; {one_each}")
    by, selectors = ("face_index", face_index) if face_index is not None else ("reference", reference)
    kind = "face indices" if by == "face_index" else "references"
    if not _several(selectors):
        raise SaSwapError(f"{what} but a single {by.replace('_', ' ')}; {one_each}")
    if len(selectors) != n:
        raise SaSwapError(f"{what} but {len(selectors)} {kind}; {one_each}")
    if by == "face_index":
        for k, index in enumerate(selectors):
            if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
                raise SaSwapError(f"face index {index!r} (for source {k + 1}) is not a whole number")
            if int(index) in [int(i) for i in selectors[:k]]:
                raise SaSwapError(f"face index {int(index)} is given twice; each source replaces a face of its own")
        selectors = [int(i) for i in selectors]
    elif any(r is None for r in selectors):
        raise SaSwapError("a reference of the list is None; give a photo for each source")
    return SourcePairing(sources, by, list(selectors))


def kept_crop_size_of(crop_size: int | str | None, sources: Sequence[SourceFace]) -> int | str | None:
    """:func:`kept_crop_size` for several prepared sources: under ``"auto"``, the size of the first that keeps no photo
    (the others are prepared again at it), else ``crop_size`` as asked."""
    for source in sources:
        kept = kept_crop_size(crop_size, source)
        if kept != crop_size:
            return kept
    return crop_size


class SaSwapPipeline:
    """Face swapping for images and videos: analysis, face selection, the engine, the compose stage.

    Args:
        engine: a :class:`~saswap.engines.base.SwapEngine` (default: the geometric engine).
        analyzer: a :class:`~saswap.face.FaceAnalyzer` (default: MediaPipe backend, loaded on first use).
        compositor: the compose stage shared by every engine (default: :class:`~saswap.compose.Compositor`).

    Example:
        >>> pipe = SaSwapPipeline.from_pretrained("saswap-geometric")  # doctest: +SKIP
        >>> out = pipe("source.jpg", "target.jpg", shape_strength=1.0)  # doctest: +SKIP
        >>> out.image.shape  # doctest: +SKIP
    """

    def __init__(
        self, engine: SwapEngine | None = None, analyzer: FaceAnalyzer | None = None, compositor: Compositor | None = None
    ) -> None:
        if engine is None:
            from saswap.engines.geometric import GeometricEngine

            engine = GeometricEngine()
        self.engine = engine
        self.compositor = compositor if compositor is not None else Compositor()
        self.target_analyzer = TargetAnalyzer(engine, self.compositor, analyzer if analyzer is not None else FaceAnalyzer)
        self._embedder = None
        self._embedder_error: SaSwapError | None = None  # why no embedder could be made (asked once)
        self._enhancers: dict[str, object] = {}
        self._by_size: dict[int, SaSwapPipeline] = {}  # this pipeline at other crop sizes (crop_size="auto")
        self._sources_at: list[tuple[SourceFace, dict[int, SourceFace]]] = []  # prepared sources at those sizes

    def to(self, device: str) -> SaSwapPipeline:
        """Move the engine to ``device`` (``"cuda"``, ``"cuda:1"``, ``"mps"``, ``"cpu"``), as in diffusers; returns the
        pipeline. Face analysis and the compose stage stay on the CPU. A video swap with the engine on a GPU keeps it in
        its own process (one copy on the device) and runs the compose stage in worker processes.

        Raises:
            SaSwapError: the engine cannot compute there (the geometric engine computes on the CPU alone; no GPU).

        Example:
            >>> SaSwapPipeline.from_pretrained("saswap-geometric").to("cpu").device
            'cpu'
        """
        self.engine.to(device)
        return self

    @property
    def device(self) -> str:
        """Where the engine computes."""
        return self.engine.device

    @property
    def analyzer(self) -> FaceAnalyzer:
        """The face analyzer (loaded on first use: a swap from a template cache never needs it for the frames)."""
        return self.target_analyzer.analyzer

    # -- loading --------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls, name_or_path: str | os.PathLike = "saswap-geometric", compose: dict[str, Any] | None = None, **kwargs
    ) -> SaSwapPipeline:
        """Load a pipeline from a zoo name, a local folder, or a Hub / ModelScope id.

        The geometric engine needs no weights. Other engines are loaded from a folder holding a
        ``model_index.json``: ``{"engine": "geometric", "config": {...}}``, or ``{"engine": "onnx",
        "model": "inswapper_128.onnx", "arcface": "w600k_r50.onnx"}`` for an inswapper-style ONNX
        swapper, ``{"engine": "saswap", ...}`` for an exported neural model (``saswap export``). A
        Hugging Face Hub id (``owner/name`` or ``hf:owner/name``) or ``modelscope:owner/name`` is
        first resolved to a local snapshot; with ``HF_HUB_OFFLINE=1`` only the local cache is used.
        Unpublished zoo names fail at once with a message saying how to train them.

        ``compose`` holds :class:`~saswap.compose.Compositor` keyword arguments laid over the model's own
        (``{"tone_lock": 1.0}``: the face's middle takes the target's median skin tone; ``{"occlusion": FOLDER}``: a
        face parser you trained, which the geometric engine's source cleaning then uses too); a ``compositor``
        given too is refused.

        Raises:
            SaSwapError: ``compose`` names an option the compositor does not have, or a value out of its range.

        Example:
            >>> pipe = SaSwapPipeline.from_pretrained("saswap-geometric", compose={"tone_lock": 0.5})
            >>> pipe.compositor.tone_lock
            0.5
        """
        pipe = cls._load(name_or_path, compose, **kwargs)
        key = str(name_or_path)
        if Path(key).is_dir():  # a local folder by its name alone (also when a zoo name is the name of a folder here)
            pipe.engine.model_id = Path(key).resolve().name
        else:  # a zoo name or a Hub id: public names
            pipe.engine.model_id = key
        return pipe

    @classmethod
    def _load(
        cls, name_or_path: str | os.PathLike, compose: dict[str, Any] | None = None, **kwargs
    ) -> SaSwapPipeline:
        from saswap.zoo import COMPONENTS, get_entry

        if compose:
            if "compositor" in kwargs:
                raise SaSwapError("give either compose options or a compositor, not both")
            try:
                Compositor(**compose)  # checked before any model loads
            except (TypeError, ValueError) as err:
                raise SaSwapError(f"compose options {compose}: {err}") from None
        key = str(name_or_path)
        entry = get_entry(key)
        if entry is not None and entry.engine in COMPONENTS:
            raise ModelNotFoundError(f"{key} is {COMPONENTS[entry.engine]}; it is not a swap engine")
        if entry is not None and entry.engine == "geometric":
            from saswap.engines.geometric import GeometricEngine

            engine = GeometricEngine(crop_size=entry.image_size, **_source_cleaning(compose))
            return cls(engine, **_with_compose(kwargs, {}, compose))
        if key in ("geometric",):
            from saswap.engines.geometric import GeometricEngine

            return cls(GeometricEngine(**_source_cleaning(compose)), **_with_compose(kwargs, {}, compose))
        folder = Path(key)
        if not folder.is_dir() and entry is None and _looks_like_repo_id(key):
            folder = _snapshot(key)
        if not folder.is_dir():
            if entry is not None and not entry.published:
                raise ModelNotFoundError(
                    f"the weights of {entry.name!r} are not published yet; train them with "
                    f"'saswap train fit --config {entry.recipe}', export with 'saswap export', and pass the folder "
                    "(or use 'saswap-geometric', which needs no weights)"
                )
            raise ModelNotFoundError(f"{key}: not a zoo name ({', '.join(_zoo_names())}) nor a local model folder")
        index_path = folder / "model_index.json"
        if not index_path.is_file():
            raise ModelNotFoundError(f"{folder}: no model_index.json (expected a folder written by 'saswap export')")
        index = read_model_index(index_path)
        engine_type = index.get("engine")
        if engine_type == "geometric":
            from saswap.engines.geometric import GeometricEngine

            config, own = Compositor.split_config(index.get("config", {}))
            try:
                Compositor(**own)
                engine = GeometricEngine(**{**config, **_source_cleaning(compose)})
            except (TypeError, ValueError) as err:
                raise ModelNotFoundError(f"{index_path}: the geometric engine's config is not valid ({err})") from None
            return cls(engine, **_with_compose(kwargs, own, compose))
        kwargs = _with_compose(kwargs, {}, compose)
        if engine_type == "saswap":
            from saswap.engines.neural import SaSwapEngine

            return cls(SaSwapEngine(folder), **kwargs)
        if engine_type == "onnx":
            from saswap.engines.onnx_swapper import OnnxSwapEngine
            from saswap.face.identity import ArcFaceOnnxEmbedder

            try:
                model, arcface = folder / index["model"], folder / index["arcface"]
            except KeyError as err:
                raise ModelNotFoundError(
                    f"{index_path}: an 'onnx' engine needs the keys 'model' and 'arcface' ({err} missing)"
                ) from None
            return cls(OnnxSwapEngine(model, ArcFaceOnnxEmbedder(arcface)), **kwargs)
        raise ModelNotFoundError(f"{index_path}: engine {engine_type!r} is not available in this version of saswap")

    # -- helpers --------------------------------------------------------------------------------
    def identity_embedder(self, required: bool = True):
        """The identity embedder of ``reference`` selection and video tracking: the pipeline's own, else the default
        (OpenCV Zoo's SFace, installed with SaSwap), made once per pipeline (and tried once: callers may ask for it
        whenever they need it).

        Args:
            required: raise when no embedder can be made (else log it and return None: tracks are then not told
                apart by identity).

        Raises:
            SaSwapError: ``required`` and no embedder is installed.
        """
        if self._embedder is None and self._embedder_error is None:
            from saswap.face.identity import default_embedder

            try:
                self._embedder = default_embedder()
            except SaSwapError as err:
                self._embedder_error = err
                logger.info("no identity embedder (%s): tracks are not told apart by identity", err)
        if self._embedder is None and required:
            raise self._embedder_error
        return self._embedder

    def _faces(self, image: np.ndarray, name: str, role: str) -> list[Face]:
        # a photo turned without its orientation metadata is read the right way up (the faces' landmarks stay in it)
        faces = self.target_analyzer.faces(image, turn="auto")
        if not faces:
            raise NoFaceError(f"{name}: no face found in the {role}")
        return faces

    def source_frame(
        self, video: str | os.PathLike, every: int | None = None, after: float = 0.0, most: int = 40
    ) -> tuple[int, float, np.ndarray]:
        """The frame of a video that makes the best source photo: of the sampled frames' largest faces, those whose
        mouth is at most as open as their median (a photo's face, not a shout: a wide-open source's lips come out pale
        and thin on a mouth of another shape), and of those the most frontal (the smallest ``|yaw| + |pitch|``).

        Args:
            video: a video file (a selfie clip).
            every: sample every ``every``-th frame (None: five a second, at most ``most`` samples over the video).
            after: prefer the frames from this time on (seconds) when faces are found there.
            most: with ``every`` None, the most frames sampled.

        Returns:
            (the frame's index, its time in seconds, its picture RGB uint8).

        Raises:
            NoFaceError: no sampled frame shows a face.
        """
        from saswap.engines.geometric import mouth_openness
        from saswap.videoio import VideoReader, probe_video

        if every is None:
            info = probe_video(video)
            every = max(1, round(info.fps / 5), -(-int(info.frame_count or 0) // max(1, most)))
        seen: dict[bool, list[tuple[float, float, int, float]]] = {True: [], False: []}
        with VideoReader(video) as reader:
            for frame in reader:
                if frame.index % every:
                    continue
                faces = self.analyzer(frame.image)
                if not faces:
                    continue
                face = max(faces, key=lambda f: f.eye_distance)
                turn = abs(float(face.pose[0])) + abs(float(face.pose[1]))
                seen[frame.time >= after].append((turn, mouth_openness(face.landmarks), frame.index, frame.time))
        candidates = seen[True] or seen[False]
        if not candidates:
            raise NoFaceError(f"{video}: no face found in the video's sampled frames")
        median = float(np.median([c[1] for c in candidates]))
        _, _, index, time_ = min((c for c in candidates if c[1] <= median), key=lambda c: c[0])
        with VideoReader(video) as reader:  # read again for that one picture (not every sampled one held)
            image = next(frame.image for frame in reader if frame.index == index)
        return index, time_, image

    def prepare_source(self, source: ImageInput, face_index: int = 0, *, force: bool = False) -> tuple[SourceFace, Face]:
        """Analyse the source once and let the engine precompute what it needs (reuse it for many targets).

        A video as the source (a selfie clip) gives its best frame (:meth:`source_frame`).

        A source face turned away from the camera by more than :data:`SOURCE_TURN_WARN` degrees (yaw and
        pitch together) gets a warning; beyond :data:`SOURCE_TURN_LIMIT` it is an error unless ``force``. A face
        the engine must enlarge more than :data:`SOURCE_UPSCALE_WARN` times gets a warning too, and so does a face cut
        by the photo's edge (more than :data:`SOURCE_CUT_WARN` of it outside) and a face the engine's source cleaning finds
        covered (more than :data:`SOURCE_COVER_WARN`, :func:`covered_share`).
        """
        name = _name(source, "source")
        if isinstance(source, (str, os.PathLike)) and _is_video_path(source):
            index, time_, image = self.source_frame(source)
            logger.info("%s: the source is frame %d (%.2f s), the most frontal with a closed mouth", name, index, time_)
        else:
            image = load_image(source, name=name)
        faces = self._faces(image, name, "source")
        if not 0 <= face_index < len(faces):
            raise _out_of_range(name, face_index, faces)
        face = faces[face_index]
        turn = source_turn(face)
        if turn > SOURCE_TURN_LIMIT and not force:
            raise SaSwapError(
                f"{name}: the source face is turned {turn:.0f} degrees from the camera (yaw {face.pose[0]:+.0f}, pitch "
                f"{face.pose[1]:+.0f}); beyond {SOURCE_TURN_LIMIT:.0f} the swap breaks into torn patches. Use a frontal "
                "photo (or force it: --force, force=True)"
            )
        if turn > SOURCE_TURN_WARN:
            logger.warning(
                "%s: the source face is turned %.0f degrees from the camera (yaw %+.0f, pitch %+.0f); beyond %.0f the "
                "swap loses identity and may tear. A frontal photo gives better results",
                name, turn, face.pose[0], face.pose[1], SOURCE_TURN_WARN,
            )  # fmt: skip
        mesh = face.landmarks[:468, :2]
        h, w = image.shape[:2]
        cut = float(np.mean((mesh[:, 0] < 0) | (mesh[:, 0] >= w) | (mesh[:, 1] < 0) | (mesh[:, 1] >= h)))
        if cut > SOURCE_CUT_WARN:
            logger.warning(
                "%s: %.0f%% of the source face lies outside the photo (cut by its edge); that part is made up from the "
                "photo's border and shows as a fold or a smear in the swap. A photo that shows the whole face gives "
                "better results",
                name, 100 * cut,
            )  # fmt: skip
        prepared = self.engine.prepare_source(image, face)
        covered = covered_share(prepared)
        if covered > SOURCE_COVER_WARN:
            logger.warning(
                "%s: %.0f%% of the source face is covered (a face mask, a hand, hair, or shadows read so); the swap fills "
                "that part with smooth skin and it comes out flat. A photo of the face uncovered gives better results",
                name, 100 * covered,
            )  # fmt: skip
        upscale = transform_scale(prepared.transform)
        if upscale > SOURCE_UPSCALE_WARN:
            logger.warning(
                "%s: the source face is small (%.0f px between the eyes' outer corners); the engine works on it enlarged "
                "%.1fx, so its detail comes out soft and its noise and compression blocks grow. A photo with a larger "
                "face gives sharper results",
                name, face.eye_distance, upscale,
            )  # fmt: skip
        return prepared, face

    def crop_size_for(self, faces: list[Face], crop_size: int | str | None = "auto") -> int:
        """The side of the aligned crop the engine swaps these target faces in.

        Args:
            faces: the target faces to swap (in picture coordinates).
            crop_size: ``"auto"``: the engine's own crop unless it would shrink the largest of ``faces`` below
                :data:`AUTO_CROP_BELOW` crop pixels per picture pixel, or a smaller crop would hold it at one crop
                pixel per picture pixel or more; then a crop in which that face keeps its resolution, rounded up to
                64 pixels, from :data:`AUTO_CROP_MIN` to :data:`AUTO_CROP_MAX` (:func:`auto_crop_size`; an engine
                that works on one crop size only keeps it). None: the engine's own. A number: that size (within
                :data:`CROP_SIZE_RANGE`; an engine that works on one crop size only accepts its own).

        Raises:
            SaSwapError: a size the engine cannot work on, or a value that is no size.

        Example:
            >>> pipe = SaSwapPipeline.from_pretrained("saswap-geometric")
            >>> pipe.crop_size_for([], "auto"), pipe.crop_size_for([], 512)
            (384, 512)
        """
        own = int(self.engine.crop_size)
        crop_size = check_crop_size(crop_size)
        if crop_size is None:
            return own
        if crop_size != "auto":
            size = int(crop_size)
            if size != own and not self.engine.resizable:
                raise SaSwapError(f"the {self.engine.name} engine works on {own}-px crops only, not {size}")
            return size
        if not self.engine.resizable or not faces:
            return own
        return auto_crop_size(own, min(transform_scale(self.engine.alignment(f)) for f in faces))

    def at_crop_size(self, size: int) -> SaSwapPipeline:
        """This pipeline with its engine working on ``size``-px crops (:meth:`~saswap.engines.base.SwapEngine.resized`),
        sharing its face analyzer, compose stage and identity embedder; made once per size (the pipeline itself at its
        engine's size)."""
        size = int(size)
        if size == self.engine.crop_size:
            return self
        pipe = self._by_size.get(size)
        if pipe is None:
            pipe = copy.copy(self)
            pipe.target_analyzer = self.target_analyzer.resized(size)
            pipe.engine = pipe.target_analyzer.engine
            pipe._by_size = {}
            self._by_size[size] = pipe
        return pipe

    def source_at(self, source: SourceFace, size: int) -> SourceFace:
        """``source`` prepared for ``size``-px crops: itself when it already is, else prepared again from the photo it
        keeps (:attr:`~saswap.engines.base.SourceFace.origin`).

        Raises:
            SaSwapError: it has no photo to prepare it again from.
        """
        if source.image.shape[0] == size:
            return source
        if source.origin is None:
            raise SaSwapError(
                f"the prepared source is {source.image.shape[0]} px and keeps no photo to prepare it at {size} px"
            )
        sized = next((sized for kept, sized in self._sources_at if kept is source), None)
        if sized is None:  # a source prepared once swaps many targets: the last four sources are kept
            sized = {}
            self._sources_at = [*self._sources_at[-3:], (source, sized)]
        if size not in sized:
            sized[size] = self.at_crop_size(size).engine.prepare_source(*source.origin)
        return sized[size]

    def reference_face(self, reference: ImageInput) -> tuple[np.ndarray, Face]:
        """A reference photo and the face in it that names the person to swap: its largest (a warning when it holds
        several faces)."""
        name = _name(reference, "reference")
        image = load_image(reference, name=name)
        faces = self._faces(image, name, "reference")
        if len(faces) > 1:
            logger.warning(
                "%s: the reference photo shows %d faces; the largest is the person to swap", name, len(faces)
            )
        return image, faces[0]

    def _select(self, image: np.ndarray, faces: list[Face], name: str, face_index, all_faces, reference) -> list[Face]:
        if sum(x is not None and x is not False for x in (face_index, reference)) + bool(all_faces) > 1:
            raise SaSwapError("choose one of face_index, all_faces and reference")
        if all_faces:
            return faces
        if reference is not None:  # one source's selector: what a list of one selects
            return self._select_each(image, faces, name, SourcePairing([None], "reference", [reference]))
        index = 0 if face_index is None else int(face_index)
        return self._select_each(image, faces, name, SourcePairing([None], "face_index", [index]))

    def _select_each(self, image: np.ndarray, faces: list[Face], name: str, pairing: SourcePairing) -> list[Face]:
        """The target face of each source of ``pairing``, in its order: by face index, or the face most like each
        reference photo (two references whose best match is one face are an error)."""
        if pairing.by == "face_index":
            for index in pairing.selectors:
                if not 0 <= index < len(faces):
                    raise _out_of_range(name, index, faces)
            return [faces[index] for index in pairing.selectors]
        from saswap.face.identity import cosine_similarity

        embedder = self.identity_embedder()
        found = [embedder(image, f) for f in faces]
        threshold = getattr(embedder, "same_person_cosine", 0.5)
        chosen: list[int] = []
        for k, reference in enumerate(pairing.selectors):
            ref_img, ref_face = self.reference_face(reference)
            ref = embedder(ref_img, ref_face)
            scores = [cosine_similarity(ref, e) for e in found]
            best = int(np.argmax(scores))
            if best in chosen:
                first = chosen.index(best)
                raise SaSwapError(
                    f"{name}: references {first + 1} ({_name(pairing.selectors[first], 'reference')}) and {k + 1} "
                    f"({_name(reference, 'reference')}) both match face {best} best; give a reference of a different "
                    "person for each source"
                )
            warn_weak_reference(name, scores[best], threshold)
            logger.info("reference %d match: face %d (cosine %.3f)", k + 1, best, scores[best])
            chosen.append(best)
        return [faces[i] for i in chosen]

    # -- main -----------------------------------------------------------------------------------
    def __call__(
        self,
        source: ImageInput | SourceFace | Sequence[ImageInput | SourceFace],
        target: ImageInput,
        *,
        shape_strength: float = 1.0,
        face_index: int | Sequence[int] | None = None,
        all_faces: bool = False,
        reference: ImageInput | Sequence[ImageInput] | None = None,
        enhance: str | None = None,
        crop_size: int | str | None = None,
    ) -> SaSwapOutput:
        """Swap the source's face into the target.

        Several people, each with a source of their own (a couple template): a list of sources, paired by order with
        a list of as many face indices or reference photos (``face_index=[0, 1]``, ``reference=[ref_a, ref_b]``);
        each chosen face is swapped with its own source, every other face is left as it is (:func:`pair_sources`).

        Args:
            source: path, PIL image or RGB array of the source, or a prepared :class:`SourceFace`; or a list of them.
            target: path, PIL image or RGB array of the target.
            shape_strength: 0 keeps the target's face shape, 1 adopts the source's.
            face_index: swap the target's face with this index (faces are sorted largest first); with a list of
                sources, a list of indices, one per source.
            all_faces: swap every face of the target (one source only).
            reference: swap the target face that looks most like this photo's face; with a list of sources, a list
                of photos, one per source (two of them matching the same face best is an error).
            enhance: name or path of a face enhancer to run on the swapped faces (off by default).
            crop_size: side of the aligned crop the engine swaps in: None keeps the engine's own (384 px for the
                geometric engine), ``"auto"`` sizes it to the face (a high-resolution photo keeps the detail of its
                eyes, brows and lips; a small face is swapped in a smaller crop at its own resolution, for less
                time; :meth:`crop_size_for`), a number sets it. A prepared source that keeps no
                photo (:attr:`~saswap.engines.base.SourceFace.origin`) keeps its own size under ``"auto"``.

        Returns:
            :class:`SaSwapOutput`.

        Raises:
            SaSwapError: sources and selectors that do not pair (:func:`pair_sources`), a face index out of range, two
                references matching the same face best.
        """
        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        pairing = pair_sources(source, face_index, all_faces, reference)  # checked before any work
        prepared_all, source_faces = [], []
        for one in [source] if pairing is None else pairing.sources:
            if isinstance(one, SourceFace):
                prepared, source_face = one, one.face
            else:
                prepared, source_face = self.prepare_source(one)
            prepared_all.append(prepared)
            source_faces.append(source_face)
        timings["analyze_source"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        name = _name(target, "target")
        target_img, alpha = load_image_alpha(target, name=name)
        found = self._faces(target_img, name, "target")
        if pairing is None:
            faces = self._select(target_img, found, name, face_index, all_faces, reference)
        else:
            faces = self._select_each(target_img, found, name, pairing)
        warn_turned_targets(name, faces)
        size = self.crop_size_for(faces, kept_crop_size_of(crop_size, prepared_all))
        pipe = self.at_crop_size(size)
        ts = time.perf_counter()
        prepared_all = [self.source_at(prepared, size) for prepared in prepared_all]
        again = time.perf_counter() - ts  # the sources prepared again at this size
        timings["analyze_source"] += again
        analysis = pipe.target_analyzer(target_img, faces)
        timings["analyze_target"] = time.perf_counter() - t1 - again
        result_img = target_img.copy()
        timings["swap"] = timings["paste"] = 0.0
        # one source: itself; several: face k is swapped with source k
        sources = prepared_all[0] if pairing is None else prepared_all
        masks = pipe.swap_frame(result_img, target_img, analysis, sources, shape_strength, enhance, timings)
        timings["total"] = time.perf_counter() - t0
        provenance = {
            **engine_provenance(self.engine), "shape_strength": shape_strength, **compose_provenance(self.compositor),
            "faces": len(faces), "crop_size": size, **({} if pairing is None else {"sources": len(prepared_all)}),
        }  # fmt: skip
        return SaSwapOutput(
            result_img, faces, masks, source_faces[0], timings, provenance, alpha, source_faces=source_faces
        )

    def swap_crop(
        self,
        crop: np.ndarray,
        face: Face,
        source: SourceFace,
        shape_strength: float = 1.0,
        analysis: dict[str, np.ndarray] | None = None,
    ) -> ComposedFace:
        """The engine and the compose stage on one aligned target crop (analysed here when ``analysis`` is None).

        Returns:
            :class:`~saswap.compose.ComposedFace`: the crop with the new face and where it changed.
        """
        self.engine._check_crop(crop, shape_strength)
        if analysis is None:
            analysis = {**self.engine.analyze_target(crop, face), **self.compositor.analyze_target(crop, face)}
        result = self.engine.swap(crop, face, source, shape_strength=shape_strength, analysis=analysis)
        return self.compositor(crop, face, analysis, result)

    def swap_frame(
        self,
        out: np.ndarray,
        frame: np.ndarray,
        analysis: FrameAnalysis | list[TargetFace],
        source: SourceFace | Sequence[SourceFace],
        shape_strength: float = 1.0,
        enhance: str | None = None,
        timings: dict[str, float] | None = None,
        weights: list[float] | None = None,
        make_faces: Callable[[list[tuple]], list[tuple]] | None = None,
        boundaries: list | None = None,
        source_index: Sequence[int] | None = None,
    ) -> list[np.ndarray]:
        """Swap the source into the analysed faces of one frame, writing into ``out`` in place.

        Args:
            out: the output frame, RGB uint8 (H, W, 3) (a copy of ``frame``), modified in place.
            frame: the decoded target frame.
            analysis: the frame's analysis (or the faces of it to swap).
            source: the prepared source, or several (a list: each face is swapped with the one ``source_index``
                names).
            shape_strength: 0 keeps the target's face shape, 1 adopts the source's.
            enhance: face enhancer name or path (off when None).
            timings: accumulates seconds under "swap" (engine) and "paste" (compose + paste-back).
            weights: per face, how much of the swap shows (fades in video), 1 by default.
            make_faces: makes the faces elsewhere (a frame worker process): called with one :class:`FaceJob`
                ``(crop, crop_face, data, transform, frame_size, weight, source)`` per face, returns what
                :func:`make_face` returns for each (with this pipeline's engine, compositor, ``source``,
                ``shape_strength`` and ``enhance``).
            boundaries: when a list, each face's boundary membrane offset is appended to it
                (:attr:`~saswap.compose.ComposedFace.boundary`, None without one): a video swap smooths it over time.
            source_index: per face, which of several sources it is swapped with (its position in ``source``;
                :attr:`FaceJob.source`); None: face ``k`` with source ``k`` (one source: 0 for every face).

        Returns:
            per face, the full-size mask of where ``out`` changed.
        """
        faces = analysis.faces if isinstance(analysis, FrameAnalysis) else analysis
        tw = time.perf_counter()
        jobs = [
            FaceJob(
                warp_face(frame, tf.transform, self.engine.crop_size), tf.crop_face, tf.data, tf.transform,
                frame.shape[:2], 1.0 if weights is None else float(weights[k]),
                0 if not _several(source) else k if source_index is None else int(source_index[k]),
            )  # fmt: skip
            for k, tf in enumerate(faces)
        ]
        if timings is not None and faces:
            timings["swap"] = timings.get("swap", 0.0) + time.perf_counter() - tw
        if make_faces is None:
            enhancer = self._get_enhancer(enhance) if enhance else None
            made = [make_face(self.engine, self.compositor, enhancer, job, source, shape_strength) for job in jobs]
        else:
            made = make_faces(jobs)
        masks = []
        for placed, swap_s, compose_s, boundary in made:
            tp = time.perf_counter()
            masks.append(blend_placed(out, placed))
            if boundaries is not None:
                boundaries.append(boundary)
            if timings is not None:
                timings["swap"] = timings.get("swap", 0.0) + swap_s
                timings["paste"] = timings.get("paste", 0.0) + compose_s + time.perf_counter() - tp
        return masks

    # -- video ----------------------------------------------------------------------------------
    def precompute(
        self, template: str | os.PathLike, cache_dir: str | os.PathLike | None = None, *, progress: bool | Callable = True,
        force: bool = False, workers: int | None = None, crop_size: int | str | None = None,
    ):  # fmt: skip
        """Analyse a template video once into its template cache (see :mod:`saswap.pipelines.cache`).

        ``workers``: processes that detect and describe the faces beside this one (the cache does not depend on it;
        0: none); None: for a video of 300 frames or more, 2 on 2 cores, else one per core but one, at most 8, and none
        on one core (:func:`~saswap.pipelines.video.default_analysis_workers`). ``crop_size``: the crop the cache is
        made for, as :meth:`swap_video` takes it (a swap uses the cache made with its own ``crop_size``).

        Returns:
            (the opened :class:`~saswap.pipelines.cache.TemplateCache`, whether a valid one already existed).
        """
        from saswap.pipelines.video import precompute_template

        return precompute_template(
            self, template, cache_dir, progress=progress, force=force, workers=workers, crop_size=crop_size
        )

    def swap_video(
        self,
        source: ImageInput | SourceFace | Sequence[ImageInput | SourceFace],
        template: str | os.PathLike,
        output: str | os.PathLike,
        *,
        shape_strength: float = 1.0,
        face_index: int | Sequence[int] | None = None,
        all_faces: bool = False,
        reference: ImageInput | Sequence[ImageInput] | None = None,
        enhance: str | None = None,
        cache: bool = True,
        cache_dir: str | os.PathLike | None = None,
        start: float | None = None,
        end: float | None = None,
        codec: str | None = None,
        crf: int | None = 14,  # saswap.videoio.DEFAULT_CRF
        preset: str | None = "veryfast",
        fade_frames: int = 5,
        progress: bool | Callable[[str, int, int | None], None] = True,
        workers: int | None = None,
        processes: bool | None = None,
        analysis_workers: int | None = None,
        skin_sigma: float = 0.0,
        crop_size: int | str | None = None,
        tag: dict[str, Any] | None = None,
    ):
        """Swap the source's face into a template video, streamed frame by frame.

        The template's analysis comes from its template cache, built on first use (``cache=False``: in a
        temporary folder, removed afterwards). The chosen person is tracked through the video, across shot cuts:
        by default the person with the largest summed face area in the whole template (tracks matched by identity:
        a face lost and found again, or seen in another shot), or the ``face_index``-th, every face, or the person
        most like ``reference``; no one else is swapped. Several people, each with a source of their own (a couple
        template): a list of sources and a list of as many face indices or reference photos, paired by order
        (:func:`pair_sources`); each person is tracked as one is, and swapped with their own source. Frames where a
        face is lost pass through unchanged, and the swap fades out and in over ``fade_frames`` frames there (not at
        shot cuts). Resolution, frame rate, timestamps, rotation and audio (copied) are kept; the output carries the
        synthetic-media tag.

        Args:
            source: the source photo (path, PIL image, array) or a prepared :class:`SourceFace`; or a list of them.
            template: the template video file.
            output: the output video file (.mp4 by default; written atomically).
            shape_strength: 0 keeps the target's face shape, 1 adopts the source's.
            face_index, all_faces, reference: which faces to swap (one of them); with a list of sources, a list of
                face indices (people, by summed face area) or of reference photos, one per source.
            enhance: face enhancer name or path (off by default).
            cache: use (and build) the persistent template cache.
            cache_dir: its folder (default: ``$SASWAP_CACHE`` or the platform's cache folder).
            start, end: trim the template to this span, in seconds. The whole template's cache is used where one
                exists (``precompute``); otherwise only the span is analysed (and cached for that span).
            codec, crf, preset: the video encoder (None: libx264, libvpx-vp9 for a .webm output) and its quality
                settings.
            fade_frames: length of the fades where a face is lost or found within a shot.
            progress: show a progress bar (frames per second, ETA), or a callable called as
                ``progress(stage, done, total)`` after every frame of each stage instead (an exception it raises
                stops the swap, and no output is left; see :data:`saswap.pipelines.video.ProgressCallback`).
            workers: frame workers beside decoding and encoding (results do not depend on it); 0 makes the frames
                on the calling thread, decoding and encoding them in turn. None (default): 2 on a machine with up to
                2 cores, else one per core but one, at most 8 (:func:`~saswap.pipelines.video.default_workers`).
            processes: the workers are separate processes (:class:`~saswap.pipelines.workers.FrameWorkers`, each
                with a copy of the engine; for machines with many cores) rather than threads, whose gain stops at
                about two; None (default): processes for more than 2 workers, and for 2 on a video of 300 frames
                or more (a process takes about a second to start), where the engine can be sent to them.
            analysis_workers: processes that analyse a template not yet cached (see :meth:`precompute`).
            skin_sigma: smooth the new face's skin over time, a Gaussian of this many frames along each track, in the
                face's aligned crop (:class:`~saswap.pipelines.video.SkinStabiliser`); 0 (default): off. At 1 frame the
                stability benchmark's skin-tone flicker falls (median 0.75 -> 0.62 of the template's, all 54 swaps
                within the bar) while MediaPipe reads the landmarks of two swaps above the jitter bar (51 of 54
                within, 53 without), and a cached swap takes about 1.5x as long on 2 cores (``benchmarks/RESULTS.md``,
                stop 41).
            crop_size: side of the aligned crop the engine swaps in, for the whole video: None keeps the engine's own
                (384 px for the geometric engine), ``"auto"`` sizes it to the template's faces (their median size over
                the frames, as :meth:`crop_size_for` sizes it to a photo's face: a large face keeps the detail of its
                eyes, brows and lips, at the cost of time; a small one takes less time), a number sets it. The
                template cache is made for that crop; a prepared source that keeps no photo
                (:attr:`~saswap.engines.base.SourceFace.origin`) keeps its own size under ``"auto"``.
            tag: fields added to the output's synthetic-media tag (container metadata, read by ``saswap inspect``),
                beside those SaSwap writes (``synthetic``, ``generator``, ``version``, ``engine``, ...); e.g.
                ``{"app": "my-app"}``.

        Returns:
            :class:`~saswap.pipelines.video.SaSwapVideoOutput`.
        """
        from saswap.pipelines.video import swap_video

        return swap_video(
            self, source, template, output, shape_strength=shape_strength, face_index=face_index,
            all_faces=all_faces, reference=reference, enhance=enhance, cache=cache, cache_dir=cache_dir,
            start=start, end=end, codec=codec, crf=crf, preset=preset, fade_frames=fade_frames, progress=progress,
            workers=workers, processes=processes, analysis_workers=analysis_workers, skin_sigma=skin_sigma,
            crop_size=crop_size, tag=tag,
        )  # fmt: skip

    def _get_enhancer(self, name: str):
        if name not in self._enhancers:
            from saswap.enhance import FaceEnhancer

            self._enhancers[name] = FaceEnhancer.from_pretrained(name)
        return self._enhancers[name]


class FaceJob(NamedTuple):
    """One aligned target face to swap, as a frame's owner hands it to the engine and compose stage (a tuple, so it
    travels to a frame worker process as it is).

    Attributes:
        crop: the target's aligned crop, RGB uint8.
        crop_face: its face in crop coordinates.
        data: its target-only arrays (:attr:`TargetFace.data`).
        transform: the frame -> crop similarity.
        frame_size: (H, W) of the frame.
        weight: how much of the swap shows (a fade in video), in [0, 1].
        source: which source the face is swapped with, its position in the list of sources that the face's maker
            holds (:func:`make_face`; a frame worker holds them all, sent once): 0 with one source.
    """

    crop: np.ndarray
    crop_face: Face
    data: dict[str, np.ndarray]
    transform: np.ndarray
    frame_size: tuple[int, int]
    weight: float
    source: int = 0


def job_source(source: SourceFace | Sequence[SourceFace], job: FaceJob) -> SourceFace:
    """The source a face job is swapped with: ``source`` itself, or of several, the one :attr:`FaceJob.source` names."""
    return source[job.source] if _several(source) else source


def make_face(
    engine: SwapEngine,
    compositor: Compositor,
    enhancer,
    job: FaceJob,
    source: SourceFace | Sequence[SourceFace],
    shape_strength: float,
) -> tuple[Placed | None, float, float]:
    """The engine and compose stage of one aligned target face, up to its placing back into the frame (what a frame
    worker runs; the frame's owner blends it in with :func:`~saswap.compose.compositor.blend_placed`).

    Args:
        enhancer: a :class:`~saswap.enhance.FaceEnhancer` or None.
        source: the prepared source, or several (a list: the job's :attr:`FaceJob.source` says which).

    Returns:
        (what :func:`~saswap.compose.compositor.place_back` returns, the engine's seconds, the compose stage's, the
        boundary membrane's offset on its grid: :attr:`~saswap.compose.ComposedFace.boundary`).
    """
    result, engine_s = engine_face(engine, job, source, shape_strength)
    placed, _, compose_s, boundary = compose_face(compositor, enhancer, job, result)
    return placed, engine_s, compose_s, boundary


def engine_face(engine: SwapEngine, job: FaceJob, source: SourceFace | Sequence[SourceFace], shape_strength: float):
    """The engine's face for one job (its :class:`~saswap.engines.base.EngineOutput`) and the seconds it took: the
    first half of :func:`make_face`, which a frame's owner runs itself when the engine computes on a GPU (``source``:
    one, or several, of which the job's :attr:`FaceJob.source` is used)."""
    ts = time.perf_counter()
    chosen = job_source(source, job)
    result = engine.swap(job.crop, job.crop_face, chosen, shape_strength=shape_strength, analysis=job.data)
    return result, time.perf_counter() - ts


def compose_face(compositor: Compositor, enhancer, job: FaceJob, result) -> tuple[Placed | None, float, float, Any]:
    """The compose stage of one face the engine made (``result``, its :class:`~saswap.engines.base.EngineOutput`), up
    to its placing back into the frame: what a frame worker runs when the engine computes elsewhere (on a GPU, in the
    frame's owner). Returns what :func:`make_face` returns, with 0 engine seconds."""
    tp = time.perf_counter()
    composed = compositor(job.crop, job.crop_face, job.data, result, scale=transform_scale(job.transform))
    image, mask = composed.image, composed.mask
    if enhancer is not None:
        image = enhancer.enhance_crop(image, mask)
    if job.weight < 1.0:
        mask = mask * np.float32(max(job.weight, 0.0))
    placed = place_back(image, mask, job.transform, job.frame_size, composed.fine)
    return placed, 0.0, time.perf_counter() - tp, composed.boundary


def read_model_index(path: Path) -> dict[str, Any]:
    """A model folder's ``model_index.json`` as a dict, or a :class:`ModelNotFoundError` naming the file."""
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ModelNotFoundError(f"{path}: not a readable JSON file ({err}); export the model again") from None
    if not isinstance(index, dict):
        raise ModelNotFoundError(f"{path}: expected a JSON object, got {type(index).__name__}")
    return index


def _looks_like_repo_id(key: str) -> bool:
    name = key.split(":", 1)[1] if key.startswith(("hf:", "modelscope:")) else key
    return name.count("/") == 1 and not name.startswith((".", "/")) and not Path(name).exists()


def _snapshot(key: str) -> Path:
    """Resolve a Hub id (``owner/name`` or ``hf:owner/name``) or ``modelscope:owner/name`` to a local
    folder. Offline (``HF_HUB_OFFLINE=1`` / ``MODELSCOPE_OFFLINE=1``) only the local cache is used, and
    a miss fails at once with a clear message."""
    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    if key.startswith("modelscope:"):
        repo = key.split(":", 1)[1]
        try:
            from modelscope import snapshot_download as ms_snapshot
        except ImportError:
            raise ModelNotFoundError(
                f"{key}: ModelScope ids need the 'modelscope' extra (pip install 'saswap[modelscope]')"
            ) from None
        if offline or os.environ.get("MODELSCOPE_OFFLINE", "0").lower() in ("1", "true", "yes"):
            raise ModelNotFoundError(
                f"{key}: offline mode; download the model on a machine with internet and pass its folder"
            )
        try:
            return Path(ms_snapshot(repo))
        except Exception as err:  # noqa: BLE001
            raise ModelNotFoundError(f"{key}: ModelScope download failed ({type(err).__name__})") from None
    repo = key.split(":", 1)[1] if key.startswith("hf:") else key
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled, RepositoryNotFoundError

    try:
        return Path(snapshot_download(repo, local_files_only=offline))
    except Exception as err:  # noqa: BLE001 - any failure to resolve is "model not found"
        # a mistyped local folder ("outputs/my-modle") reads as a Hub id too: say both
        if offline:
            why = "and with HF_HUB_OFFLINE set it is not in the local Hugging Face cache"
        elif isinstance(err, (LocalEntryNotFoundError, OfflineModeIsEnabled, ConnectionError)):
            why = f"and the Hugging Face Hub could not be reached to download it ({type(err).__name__})"
        elif isinstance(err, RepositoryNotFoundError):  # a gated one too
            why = f"nor a model the Hugging Face Hub gives ({type(err).__name__}: check the name, or log in)"
        else:
            why = f"and downloading it from the Hugging Face Hub failed ({type(err).__name__})"
        raise ModelNotFoundError(
            f"{key}: no such local model folder, {why}; check the path, or download the model on a machine with "
            "internet and pass its folder"
        ) from None


def _zoo_names() -> list[str]:
    """Zoo names of swap engines (not of components such as the face parser)."""
    from saswap.zoo import COMPONENTS, get_entry, list_models

    return [name for name in list_models() if get_entry(name).engine not in COMPONENTS]
