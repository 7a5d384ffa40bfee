"""Identity embeddings for choosing faces by a reference photo (not for judging results).

Two backends: an ArcFace ONNX model (e.g. the recognition model of a local insightface pack, or
any 112x112 ArcFace export) and dlib's 128-D network from ``face_recognition_models`` (installed
with the ``eval`` extra). Whichever is present is used; neither is downloaded.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

from saswap.errors import ModelNotFoundError
from saswap.face.alignment import arcface_transform, warp_face
from saswap.face.types import Face

__all__ = ["ArcFaceOnnxEmbedder", "DlibEmbedder", "default_embedder", "cosine_similarity"]


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of the angle between two embeddings.

    Example:
        >>> cosine_similarity(np.array([1.0, 0.0]), np.array([1.0, 1.0]))  # doctest: +ELLIPSIS
        0.7071...
    """
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


class ArcFaceOnnxEmbedder:
    """ArcFace-style embedding from an ONNX file: 112x112 crop aligned to the ArcFace template,
    RGB scaled to [-1, 1], output L2-normalised.

    Args:
        path: the .onnx file.
        providers: onnxruntime execution providers.
    """

    name = "arcface-onnx"
    #: Cosine similarity above which two faces count as one person (insightface's ArcFace models: ~0.3).
    same_person_cosine = 0.3

    def __init__(self, path: str | os.PathLike, providers: list[str] | None = None) -> None:
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise ModelNotFoundError(f"{path}: ArcFace ONNX model not found")
        self.session = ort.InferenceSession(str(path), providers=providers or ["CPUExecutionProvider"])
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.size = int(inp.shape[2]) if isinstance(inp.shape[2], int) else 112

    def crop(self, image: np.ndarray, face: Face) -> np.ndarray:
        return warp_face(image, arcface_transform(face.keypoints, self.size), self.size)

    def embed_crop(self, crop: np.ndarray) -> np.ndarray:
        x = (crop.astype(np.float32) - 127.5) / 127.5
        out = self.session.run(None, {self.input_name: x.transpose(2, 0, 1)[None]})[0].reshape(-1)
        return (out / (np.linalg.norm(out) + 1e-12)).astype(np.float32)

    def __call__(self, image: np.ndarray, face: Face) -> np.ndarray:
        return self.embed_crop(self.crop(image, face))


class DlibEmbedder:
    """dlib's 128-D face descriptor (``face_recognition_models``), L2-normalised; different people
    are usually more than 0.6 apart before normalisation."""

    name = "dlib"
    #: Cosine similarity (of the normalised descriptors) above which two faces count as one person: dlib's
    #: own rule, distance < 0.6 between raw descriptors, at their typical norm of ~1.45 (cos = 1 - 0.6^2 / (2 * 1.45^2)).
    same_person_cosine = 0.91

    def __init__(self) -> None:
        spec = importlib.util.find_spec("face_recognition_models")
        if spec is None or spec.origin is None or importlib.util.find_spec("dlib") is None:
            raise ModelNotFoundError("dlib face descriptors need the 'eval' extra: pip install 'saswap[eval]'")
        import dlib

        models = Path(spec.origin).parent / "models"
        self._predictor = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
        self._net = dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat"))
        self._dlib = dlib

    def raw(self, image: np.ndarray, face: Face) -> np.ndarray:
        """The unnormalised 128-D descriptor (dlib's own distance scale)."""
        x1, y1, x2, y2 = (int(round(v)) for v in face.box)
        shape = self._predictor(np.ascontiguousarray(image), self._dlib.rectangle(x1, y1, x2, y2))
        return np.array(self._net.compute_face_descriptor(np.ascontiguousarray(image), shape), np.float32)

    def __call__(self, image: np.ndarray, face: Face) -> np.ndarray:
        v = self.raw(image, face)
        return v / (np.linalg.norm(v) + 1e-12)


def default_embedder():
    """An ArcFace model of a local insightface pack if one is present, else dlib's, else a clear error."""
    root = Path(os.environ.get("INSIGHTFACE_HOME", "~/.insightface")).expanduser() / "models"
    for candidate in sorted(root.glob("*/w600k_*.onnx")) + sorted(root.glob("*/glintr100.onnx")):
        return ArcFaceOnnxEmbedder(candidate)
    try:
        return DlibEmbedder()
    except ModelNotFoundError:
        raise ModelNotFoundError(
            "choosing faces by a reference photo needs an identity model: an insightface pack in "
            f"{root} (non-commercial) or the 'eval' extra (pip install 'saswap[eval]')"
        ) from None
