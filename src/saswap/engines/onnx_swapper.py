"""Engines for ONNX swappers with the inswapper_128 interface.

The interface: an ArcFace-aligned 128x128 target crop (1x3x128x128 RGB in [0, 1]) and a source latent
(1x512: the L2-normalised ArcFace embedding of the source, multiplied by the model's last 512x512
initializer, L2-normalised again) go in; the swapped 128x128 crop (RGB in [0, 1]) comes out.
SaSwap ships no such model (insightface's inswapper_128 is non-commercial); pass a local file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from saswap.engines.base import EngineOutput, SourceFace, SwapEngine
from saswap.errors import ModelNotFoundError, SaSwapError
from saswap.face.alignment import ARCFACE_TEMPLATE_112, umeyama_similarity
from saswap.face.types import Face

__all__ = ["OnnxSwapEngine", "latent_from_embedding"]


def latent_from_embedding(embedding: np.ndarray, emap: np.ndarray) -> np.ndarray:
    """The inswapper source latent: ``normalise(normalise(embedding) @ emap)``, shape (1, 512).

    Example:
        >>> latent_from_embedding(np.ones(512), np.eye(512)).shape
        (1, 512)
    """
    e = np.asarray(embedding, np.float64).reshape(1, -1)
    e = e / (np.linalg.norm(e) + 1e-12)
    latent = e @ np.asarray(emap, np.float64)
    return (latent / (np.linalg.norm(latent) + 1e-12)).astype(np.float32)


class OnnxSwapEngine(SwapEngine):
    """An inswapper_128-style ONNX swapper behind the engine interface.

    Args:
        model: the swapper's .onnx file.
        embedder: an identity embedder for the source (e.g.
            :class:`~saswap.face.identity.ArcFaceOnnxEmbedder` of the ArcFace model the swapper
            was trained with).
        providers: onnxruntime execution providers.
    """

    name = "onnx"

    def __init__(
        self, model: str | os.PathLike, embedder, providers: list[str] | None = None
    ) -> None:
        import onnx
        import onnxruntime as ort
        from onnx import numpy_helper

        path = Path(model)
        if not path.is_file():
            raise ModelNotFoundError(f"{path}: ONNX swapper not found")
        graph = onnx.load(str(path)).graph
        if not graph.initializer:
            raise ModelNotFoundError(f"{path}: no initializers; not an inswapper-style model")
        self.emap = numpy_helper.to_array(graph.initializer[-1])
        if self.emap.shape != (512, 512):
            raise ModelNotFoundError(f"{path}: last initializer has shape {self.emap.shape}, expected (512, 512)")
        self.path = path
        self.session = ort.InferenceSession(str(path), providers=providers or ["CPUExecutionProvider"])
        inputs = self.session.get_inputs()
        if len(inputs) != 2:
            raise ModelNotFoundError(f"{path}: expected two inputs (target, source), got {len(inputs)}")
        self.target_name, self.source_name = inputs[0].name, inputs[1].name
        size = inputs[0].shape[2]
        self.crop_size = int(size) if isinstance(size, int) else 128
        self.embedder = embedder

    @property
    def on_cpu(self) -> bool:
        return self.session.get_providers()[0] == "CPUExecutionProvider"

    @property
    def device(self) -> str:
        provider = self.session.get_providers()[0]
        if provider == "CUDAExecutionProvider":
            options = self.session.get_provider_options().get(provider, {})
            return f"cuda:{options.get('device_id', 0)}"
        return "cpu" if provider == "CPUExecutionProvider" else provider

    def to(self, device: str) -> OnnxSwapEngine:
        """Run the swapper on ``device``: ``"cpu"``, or ``"cuda"`` / ``"cuda:N"`` with ONNX Runtime's CUDA provider
        (the ``onnxruntime-gpu`` package); returns the engine.

        Raises:
            SaSwapError: that provider is not available here.
        """
        import onnxruntime as ort

        kind, _, index = str(device).partition(":")
        available = ort.get_available_providers()
        if kind == "cpu":
            providers: list = ["CPUExecutionProvider"]
        elif kind == "cuda" and "CUDAExecutionProvider" in available and (index == "" or index.isdigit()):
            providers = [("CUDAExecutionProvider", {"device_id": int(index or 0)}), "CPUExecutionProvider"]
        else:
            raise SaSwapError(f"the ONNX engine cannot run on {device!r} here (providers available: {available})")
        try:
            session = ort.InferenceSession(str(self.path), providers=providers)
        except Exception as err:  # noqa: BLE001 - ONNX Runtime's own errors (no such GPU, a broken CUDA install)
            raise SaSwapError(f"the ONNX engine cannot run on {device!r}: {err}") from err
        if kind == "cuda" and session.get_providers()[0] != "CUDAExecutionProvider":
            # ONNX Runtime falls back to the CPU when the CUDA libraries do not load: say so, keep the old session
            raise SaSwapError(f"the ONNX engine cannot run on {device!r}: ONNX Runtime's CUDA provider did not load")
        self.session = session
        return self

    def alignment(self, face: Face) -> np.ndarray:
        # insightface's norm_crop for sizes divisible by 128: the ArcFace template scaled, shifted 8 px per 128.
        ratio = self.crop_size / 128.0
        template = ARCFACE_TEMPLATE_112 * ratio + np.array([8.0 * ratio, 0.0])
        return umeyama_similarity(face.keypoints.astype(np.float64), template)

    def prepare_source(self, image: np.ndarray, face: Face) -> SourceFace:
        crop, face_c, M = self.align(image, face)
        embedding = self.embedder(image, face)
        return SourceFace(image=crop, face=face_c, transform=M, embedding=latent_from_embedding(embedding, self.emap))

    def swap(
        self,
        target: np.ndarray,
        target_face: Face,
        source: SourceFace,
        shape_strength: float = 1.0,
        analysis: dict[str, np.ndarray] | None = None,
    ) -> EngineOutput:
        self._check_crop(target)
        x = (target.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
        y = self.session.run(None, {self.target_name: x, self.source_name: source.embedding})[0][0]
        out = np.clip(y.transpose(1, 2, 0) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return EngineOutput(image=out)
