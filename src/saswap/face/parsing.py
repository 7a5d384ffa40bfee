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

from saswap.shipped import LazyPretrained, model_setting, weights_folder, weights_sha256

__all__ = [
    "COVER_CLASSES",
    "DEFAULT_COVERED_THRESHOLD",
    "DEFAULT_FACE_PARSER",
    "FACE_PARSER_CLASSES",
    "SWAPPABLE_CLASSES",
    "FaceParsing",
    "ONNX_DIGEST_KEY",
    "ONNX_FILE",
    "write_onnx",
    "set_threads",
    "default_face_parsing",
    "face_parser_path",
    "occlusion_method",
]

#: Zoo name of the face parser shipped inside the package.
DEFAULT_FACE_PARSER = "saswap-face-parser"

#: The parser's classes, in the order of its output channels.
FACE_PARSER_CLASSES: tuple[str, ...] = (
    "background",
    "skin",
    "eyes",
    "brows",
    "lips",
    "mouth",
    "glasses",
    "hair",
    "occluder",
)

#: A parser's operating point where its config names none (``FaceParser(covered_threshold=)``): a pixel is covered when
#: the summed probability of the classes a swap may not change exceeds it (0.5: the most likely reading).
DEFAULT_COVERED_THRESHOLD = 0.5

#: The classes a swap may change (the visible face); everything else must stay as it is.
SWAPPABLE_CLASSES: tuple[str, ...] = ("skin", "eyes", "brows", "lips", "mouth")

#: The ONNX copy of a parser's weights beside its ``model.safetensors`` (:func:`write_onnx`). Where it is, the parser
#: runs with ONNX Runtime: no torch import (about a second at start-up), and a 256-px crop in 4.7 ms instead of 7.8
#: (2 threads of this project's 2-core VM).
ONNX_FILE = "model.onnx"
#: The ONNX file's metadata key holding the SHA-256 of the ``model.safetensors`` it was made from.
ONNX_DIGEST_KEY = "saswap_safetensors_sha256"

_THREADS: int | None = None


def set_threads(threads: int | None) -> None:
    """Threads of the ONNX Runtime sessions the parsers create from now on (None: ONNX Runtime's default, one per
    physical core); a batch worker sets its share."""
    global _THREADS
    _THREADS = None if threads is None else max(1, int(threads))

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
    written by ``FaceParser.save_pretrained`` (``saswap train-parser`` + ``saswap export``).

    Raises:
        ModelNotFoundError: the folder or its weights are missing.
    """
    return weights_folder(
        name_or_path,
        {DEFAULT_FACE_PARSER: "face-parser"},
        "face parser",
        "'saswap train-parser' and 'saswap export'",
    )


def _folder_config(folder: Path) -> dict:
    """A parser folder's config.json (what ``save_pretrained`` wrote: the network's arguments)."""
    import json

    return json.loads((Path(folder) / "config.json").read_text())


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

    @property
    def backend(self) -> str:
        """``"onnx"`` where the folder holds :data:`ONNX_FILE`, ONNX Runtime imports and no other ``image_size`` was
        asked for (the ONNX copy takes the size it was made for), else ``"torch"``; once loaded, what was loaded.
        The two agree within 1e-5 in the probabilities; a template cache's key records which one made its masks."""
        if self._model is not None:
            return "onnx" if isinstance(self._model, _OnnxParser) else "torch"
        if not (self.folder / ONNX_FILE).is_file() or not _onnxruntime_imports():
            return "torch"
        if self._image_size is not None and int(_folder_config(self.folder).get("image_size", 256)) != self._image_size:
            return "torch"
        return "onnx"

    def _load(self, folder: Path):
        if self.backend == "onnx":
            return _OnnxParser(folder)
        import torch

        from saswap.models import FaceParser

        # channels-last convolutions: ~25% faster on a CPU for this network (same outputs within 1e-5)
        return FaceParser.from_pretrained(folder).to(memory_format=torch.channels_last)

    @property
    def threshold(self) -> float:
        """The weights' operating point (their config's ``covered_threshold``; :data:`DEFAULT_COVERED_THRESHOLD`
        where it has none): a pixel is covered when :meth:`covered` exceeds it. Read from the folder's config.json,
        without loading the weights."""
        value = _folder_config(self.folder).get("covered_threshold", DEFAULT_COVERED_THRESHOLD)
        if not 0.0 < float(value) < 1.0:
            raise ValueError(f"{self.folder / 'config.json'}: covered_threshold must lie in (0, 1), got {value}")
        return float(value)

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
        from saswap.face.alignment import ffhq_transform, warp_face

        size = self.image_size
        M = ffhq_transform(np.asarray(keypoints, np.float64), size)
        x = warp_face(crop, M, size, border=cv2.BORDER_CONSTANT)  # black beyond the edge, as in training
        if isinstance(self.model, _OnnxParser):
            return self.model.probabilities(x, self._lock), M
        import torch

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


class _OnnxParser:
    """A parser folder's :data:`ONNX_FILE` in ONNX Runtime (what :class:`FaceParsing` runs where it can)."""

    def __init__(self, folder: Path) -> None:
        import onnxruntime as ort

        from saswap.errors import ModelNotFoundError

        config = _folder_config(folder)
        self.image_size = int(config.get("image_size", 256))  # FaceParser's default
        n = int(config.get("num_classes", len(FACE_PARSER_CLASSES)))
        self.classes = FACE_PARSER_CLASSES if n == len(FACE_PARSER_CLASSES) else tuple(f"class_{i}" for i in range(n))
        options = ort.SessionOptions()
        options.inter_op_num_threads = 1
        if _THREADS is not None:  # a share of the cores (a batch worker): its threads sleep between calls, not spin
            options.intra_op_num_threads = _THREADS
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        path = folder / ONNX_FILE
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # noqa: BLE001 - any failure to load names the file
            raise ModelNotFoundError(f"{path}: not a loadable ONNX model ({err}); write it again or remove it") from None
        shape = self.session.get_inputs()[0].shape
        if list(shape[-2:]) != [self.image_size, self.image_size]:
            raise ModelNotFoundError(f"{path} takes {shape}, its config.json says image_size {self.image_size}")
        made_from = self.session.get_modelmeta().custom_metadata_map.get(ONNX_DIGEST_KEY)
        if made_from != weights_sha256(folder):
            raise ModelNotFoundError(
                f"{path} was not made from the {folder / 'model.safetensors'} beside it; write it again "
                "(saswap.face.parsing.write_onnx) or remove it"
            )
        self.input = self.session.get_inputs()[0].name

    def eval(self) -> _OnnxParser:
        return self

    def probabilities(self, x: np.ndarray, lock) -> np.ndarray:
        """Softmax probabilities (S, S, K) of an aligned RGB uint8 crop (S, S, 3), as the torch model gives them
        (the network run under ``lock``: one at a time)."""
        t = np.ascontiguousarray(x.transpose(2, 0, 1)[None], np.float32) / np.float32(255.0)
        with lock:
            logits = self.session.run(None, {self.input: t})[0][0]
        e = np.exp(logits - logits.max(axis=0, keepdims=True))
        return np.ascontiguousarray((e / e.sum(axis=0, keepdims=True)).transpose(1, 2, 0), np.float32)


def write_onnx(folder: str | os.PathLike) -> Path:
    """Write the ONNX copy (:data:`ONNX_FILE`) of a face parser's ``save_pretrained`` folder beside its weights,
    recording the weights' SHA-256 in it (a copy that no longer matches its weights is refused when loaded). Needs
    torch and onnx; written atomically.

    Returns:
        the ONNX file's path.
    """
    import io
    import warnings

    import onnx
    import torch

    from saswap.io import atomic_write_bytes
    from saswap.models import FaceParser

    folder = face_parser_path(folder)
    model = FaceParser.from_pretrained(folder).eval()
    x = torch.zeros(1, 3, model.image_size, model.image_size)
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the tracer's notes on the input-size check, a constant for a fixed size
        warnings.simplefilter("ignore")
        names = {"opset_version": 17, "input_names": ["image"], "output_names": ["logits"]}
        try:
            torch.onnx.export(model, (x,), buffer, dynamo=False, **names)
        except TypeError:  # a torch without the ``dynamo`` choice (before 2.5): the tracing exporter anyway
            torch.onnx.export(model, (x,), buffer, **names)
    proto = onnx.load_from_string(buffer.getvalue())
    entry = proto.metadata_props.add()
    entry.key = ONNX_DIGEST_KEY
    entry.value = weights_sha256(folder)
    target = folder / ONNX_FILE
    atomic_write_bytes(target, proto.SerializeToString())
    return target


@lru_cache(maxsize=1)
def _onnxruntime_imports() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except Exception:  # noqa: BLE001 - a broken install (a missing runtime library) as well as none: torch then
        return False
    return True


@lru_cache(maxsize=4)
def default_face_parsing(name_or_path: str = DEFAULT_FACE_PARSER) -> FaceParsing:
    """One shared :class:`FaceParsing` per parser (its weights load once per process)."""
    return FaceParsing(name_or_path)
