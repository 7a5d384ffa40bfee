"""``SaSwapPipeline``: swap faces in images with any engine."""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from saswap.engines.base import SourceFace, SwapEngine
from saswap.errors import ModelNotFoundError, NoFaceError, SaSwapError
from saswap.face.alignment import invert_affine, transform_points, warp_back
from saswap.face.analyzer import FaceAnalyzer
from saswap.face.types import Face
from saswap.io import ImageInput, load_image

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
        source_face: the source face used (source image coordinates).
        timings: seconds per stage ("analyze_source", "analyze_target", "swap", "paste", "total").
    """

    image: np.ndarray
    faces: list[Face]
    masks: list[np.ndarray]
    source_face: Face
    timings: dict[str, float] = field(default_factory=dict)


def _name(x: ImageInput, role: str) -> str:
    return str(x) if isinstance(x, (str, os.PathLike)) else f"the {role} image"


class SaSwapPipeline:
    """Face swapping for images: analysis, face selection, the engine, paste-back.

    Args:
        engine: a :class:`~saswap.engines.base.SwapEngine` (default: the geometric engine).
        analyzer: a :class:`~saswap.face.FaceAnalyzer` (default: MediaPipe backend).

    Example:
        >>> pipe = SaSwapPipeline.from_pretrained("saswap-geometric")  # doctest: +SKIP
        >>> out = pipe("source.jpg", "target.jpg", shape_strength=1.0)  # doctest: +SKIP
        >>> out.image.shape  # doctest: +SKIP
    """

    def __init__(self, engine: SwapEngine | None = None, analyzer: FaceAnalyzer | None = None) -> None:
        if engine is None:
            from saswap.engines.geometric import GeometricEngine

            engine = GeometricEngine()
        self.engine = engine
        self.analyzer = analyzer if analyzer is not None else FaceAnalyzer()
        self._embedder = None
        self._enhancers: dict[str, object] = {}

    # -- loading --------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike = "saswap-geometric", **kwargs) -> SaSwapPipeline:
        """Load a pipeline from a zoo name, a local folder, or a Hub / ModelScope id.

        The geometric engine needs no weights. Other engines are loaded from a folder holding a
        ``model_index.json``: ``{"engine": "geometric", "config": {...}}``, or ``{"engine": "onnx",
        "model": "inswapper_128.onnx", "arcface": "w600k_r50.onnx"}`` for an inswapper-style ONNX
        swapper, ``{"engine": "saswap", ...}`` for an exported neural model (``saswap export``). A
        Hugging Face Hub id (``owner/name`` or ``hf:owner/name``) or ``modelscope:owner/name`` is
        first resolved to a local snapshot; with ``HF_HUB_OFFLINE=1`` only the local cache is used.
        Unpublished zoo names fail at once with a message saying how to train them.
        """
        from saswap.zoo import get_entry

        key = str(name_or_path)
        entry = get_entry(key)
        if entry is not None and entry.engine == "geometric":
            from saswap.engines.geometric import GeometricEngine

            return cls(GeometricEngine(crop_size=entry.image_size), **kwargs)
        if key in ("geometric",):
            from saswap.engines.geometric import GeometricEngine

            return cls(GeometricEngine(), **kwargs)
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
        index = json.loads(index_path.read_text())
        engine_type = index.get("engine")
        if engine_type == "geometric":
            from saswap.engines.geometric import GeometricEngine

            return cls(GeometricEngine(**index.get("config", {})), **kwargs)
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
    def _faces(self, image: np.ndarray, name: str, role: str) -> list[Face]:
        faces = self.analyzer(image)
        if not faces:
            raise NoFaceError(f"{name}: no face found in the {role}")
        return faces

    def prepare_source(self, source: ImageInput, face_index: int = 0) -> tuple[SourceFace, Face]:
        """Analyse the source once and let the engine precompute what it needs (reuse it for many targets)."""
        image = load_image(source)
        faces = self._faces(image, _name(source, "source"), "source")
        if not 0 <= face_index < len(faces):
            raise SaSwapError(f"{_name(source, 'source')}: face index {face_index} out of range ({len(faces)} faces)")
        return self.engine.prepare_source(image, faces[face_index]), faces[face_index]

    def _select(self, image: np.ndarray, faces: list[Face], name: str, face_index, all_faces, reference) -> list[Face]:
        if sum(x is not None and x is not False for x in (face_index, reference)) + bool(all_faces) > 1:
            raise SaSwapError("choose one of face_index, all_faces and reference")
        if all_faces:
            return faces
        if reference is not None:
            from saswap.face.identity import cosine_similarity, default_embedder

            if self._embedder is None:
                self._embedder = default_embedder()
            ref_img = load_image(reference)
            ref_faces = self._faces(ref_img, _name(reference, "reference"), "reference")
            ref = self._embedder(ref_img, ref_faces[0])
            scores = [cosine_similarity(ref, self._embedder(image, f)) for f in faces]
            best = int(np.argmax(scores))
            logger.info("reference match: face %d (cosine %.3f)", best, scores[best])
            return [faces[best]]
        index = 0 if face_index is None else int(face_index)
        if not 0 <= index < len(faces):
            raise SaSwapError(f"{name}: face index {index} out of range ({len(faces)} faces found)")
        return [faces[index]]

    # -- main -----------------------------------------------------------------------------------
    def __call__(
        self,
        source: ImageInput | SourceFace,
        target: ImageInput,
        *,
        shape_strength: float = 1.0,
        face_index: int | None = None,
        all_faces: bool = False,
        reference: ImageInput | None = None,
        enhance: str | None = None,
    ) -> SaSwapOutput:
        """Swap the source's face into the target.

        Args:
            source: path, PIL image or RGB array of the source, or a prepared :class:`SourceFace`.
            target: path, PIL image or RGB array of the target.
            shape_strength: 0 keeps the target's face shape, 1 adopts the source's.
            face_index: swap the target's face with this index (faces are sorted largest first).
            all_faces: swap every face of the target.
            reference: swap the target face that looks most like this photo's face.
            enhance: name or path of a face enhancer to run on the swapped faces (off by default).

        Returns:
            :class:`SaSwapOutput`.
        """
        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        if isinstance(source, SourceFace):
            prepared, source_face = source, source.face
        else:
            prepared, source_face = self.prepare_source(source)
        timings["analyze_source"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        target_img = load_image(target)
        name = _name(target, "target")
        faces = self._select(
            target_img, self._faces(target_img, name, "target"), name, face_index, all_faces, reference
        )
        timings["analyze_target"] = time.perf_counter() - t1
        result_img = target_img.copy()
        masks: list[np.ndarray] = []
        t_swap = t_paste = 0.0
        enhancer = self._get_enhancer(enhance) if enhance else None
        for face in faces:
            ts = time.perf_counter()
            crop, face_c, M = self.engine.align(target_img, face)
            result = self.engine.swap(crop, face_c, prepared, shape_strength=shape_strength)
            swapped = result.image
            if enhancer is not None:
                swapped = enhancer.enhance_crop(swapped, result.mask)
            tp = time.perf_counter()
            t_swap += tp - ts
            masks.append(self._paste(result_img, swapped, result.mask, M))
            t_paste += time.perf_counter() - tp
        timings["swap"] = t_swap
        timings["paste"] = t_paste
        timings["total"] = time.perf_counter() - t0
        return SaSwapOutput(image=result_img, faces=faces, masks=masks, source_face=source_face, timings=timings)

    @staticmethod
    def _paste(image: np.ndarray, crop: np.ndarray, crop_mask: np.ndarray, M: np.ndarray) -> np.ndarray:
        """Blend a swapped crop back into ``image`` in place, only where its mask is non-zero.

        Works inside the bounding box of the crop's footprint only, and leaves every pixel whose mask
        is zero bit-for-bit unchanged. Returns the full-size mask.
        """
        h, w = image.shape[:2]
        full = np.zeros((h, w), np.float32)
        ys, xs = np.nonzero(crop_mask > 1e-3)
        if not len(xs):
            return full
        inv = invert_affine(M)
        corners = transform_points(
            inv,
            np.array(
                [[xs.min(), ys.min()], [xs.max(), ys.min()], [xs.max(), ys.max()], [xs.min(), ys.max()]], np.float64
            ),
        )
        x0, y0 = np.maximum(np.floor(corners.min(0)).astype(int) - 2, 0)
        x1, y1 = np.minimum(np.ceil(corners.max(0)).astype(int) + 3, [w, h])
        if x1 <= x0 or y1 <= y0:
            return full
        shift = np.array([[0, 0, x0], [0, 0, y0]], np.float64)
        M_box = np.asarray(M, np.float64) + np.asarray(M, np.float64)[:, :2] @ shift[:, 2:3] * np.array([[0, 0, 1]])
        mask = np.clip(warp_back(crop_mask.astype(np.float32), M_box, (y1 - y0, x1 - x0)), 0.0, 1.0)
        mask[mask < 1e-3] = 0.0
        back = warp_back(crop, M_box, (y1 - y0, x1 - x0)).astype(np.float32)
        patch = image[y0:y1, x0:x1]
        blended = patch.astype(np.float32) * (1 - mask[..., None]) + back * mask[..., None]
        region = mask > 0
        patch[region] = np.clip(blended[region] + 0.5, 0, 255).astype(np.uint8)
        full[y0:y1, x0:x1] = mask
        return full

    def _get_enhancer(self, name: str):
        if name not in self._enhancers:
            from saswap.enhance import FaceEnhancer

            self._enhancers[name] = FaceEnhancer.from_pretrained(name)
        return self._enhancers[name]


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

    try:
        return Path(snapshot_download(repo, local_files_only=offline))
    except Exception as err:  # noqa: BLE001 - any failure to resolve is "model not found"
        mode = (
            "offline mode: not in the local Hugging Face cache"
            if offline
            else f"download failed ({type(err).__name__})"
        )
        raise ModelNotFoundError(f"{key}: {mode}") from None


def _zoo_names() -> list[str]:
    from saswap.zoo import list_models

    return list_models()
