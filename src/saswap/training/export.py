"""Export a trained :class:`SaSwapSystem` to the zoo format (one ``save_pretrained`` folder per
component plus ``model_index.json``) and the inference path to ONNX."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from saswap import __version__
from saswap.errors import SaSwapError, first_line

__all__ = ["export_system", "export_checkpoint", "export_onnx", "new_model_folder", "SaSwapInference"]

COMPONENTS = ("identity_encoder", "attribute_encoder", "generator", "flow_estimator")


class SaSwapInference(nn.Module):
    """The inference path as one module: (target, id_embed, keypoints, motion, strength) -> image.

    Inputs: target (B, 3, S, S) in [-1, 1]; id_embed (B, D); keypoints (B, K, 2) in [-1, 1]; motion
    (B, K, 2) in pixels of S; strength (1,). Output: (B, 3, S, S) in [-1, 1].
    """

    def __init__(self, attribute_encoder: nn.Module, generator: nn.Module, flow_estimator: nn.Module) -> None:
        super().__init__()
        self.attribute_encoder, self.generator, self.flow_estimator = attribute_encoder, generator, flow_estimator

    def forward(
        self,
        target: torch.Tensor,
        id_embed: torch.Tensor,
        keypoints: torch.Tensor,
        motion: torch.Tensor,
        strength: torch.Tensor,
    ) -> torch.Tensor:
        attrs = self.attribute_encoder(target)
        flow = self.flow_estimator(keypoints, motion)
        return self.generator(id_embed, attrs, flow, strength.reshape(1, 1, 1, 1))


def export_system(system, out_dir: str | Path, onnx: bool = True) -> Path:
    """Write the zoo folder (components + ``model_index.json``) and, optionally, ``saswap.onnx``.

    The generator's EMA weights are exported when the system has them. Written to a temporary folder
    first and renamed (:func:`new_model_folder`), so a failed export leaves nothing behind.
    """
    with new_model_folder(out_dir) as tmp:
        system = system.eval()
        generator = system.generator_ema if getattr(system, "generator_ema", None) is not None else system.generator
        modules = {
            "identity_encoder": system.identity_encoder,
            "attribute_encoder": system.attribute_encoder,
            "generator": generator,
            "flow_estimator": system.flow_estimator,
        }
        for name, module in modules.items():
            module.save_pretrained(tmp / name)
        size = system.flow_estimator.image_size
        index = {
            "engine": "saswap",
            "saswap_version": __version__,
            "image_size": size,
            "components": {name: type(module).__name__ for name, module in modules.items()},
        }
        if onnx:
            export_onnx(
                SaSwapInference(system.attribute_encoder, generator, system.flow_estimator),
                tmp / "saswap.onnx",
                size,
                generator.stem.in_channels,
                system.flow_estimator.num_keypoints,
            )
            index["onnx"] = "saswap.onnx"
        (tmp / "model_index.json").write_text(json.dumps(index, indent=2))
    return Path(out_dir)


@contextlib.contextmanager
def new_model_folder(out_dir: str | Path) -> Iterator[Path]:
    """A temporary folder beside ``out_dir`` to write a model into, renamed to ``out_dir`` when the block ends
    without an error, with the modes of files the user makes (:func:`shareable`), and removed otherwise: a failed
    or interrupted export leaves nothing behind.

    Raises:
        SaSwapError: ``out_dir`` is a file or a folder that is not empty, or its parent folder cannot be made or
            written to.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise SaSwapError(f"{out}: exists and is not a folder (the export writes a new folder there)")
    if out.is_dir() and any(out.iterdir()):
        raise SaSwapError(f"{out}: output folder exists and is not empty")
    blocker = next((up for up in out.parents if up.exists() and not up.is_dir()), None)
    if blocker is not None:
        raise SaSwapError(f"{out}: cannot write its folder ({blocker} is a file, not a folder)")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as err:
        raise SaSwapError(f"{out}: cannot write its folder ({err.strerror or err})") from None
    try:
        yield tmp
        shareable(tmp)
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def export_checkpoint(
    checkpoint: str | Path, out_dir: str | Path, onnx: bool = True, covered_threshold: float | None = None
) -> tuple[str, Path]:
    """Export whatever a training checkpoint of this project holds, by the system that wrote it
    (:func:`saswap.training.checkpoints.checkpoint_kind`): the swap model (:func:`export_system`, a zoo folder for
    ``SaSwapPipeline.from_pretrained``), the face parser (:func:`~saswap.training.parser_system.export_parser`) or the
    tone harmoniser (:func:`~saswap.training.harmonizer_system.export_harmonizer`).

    Args:
        checkpoint: a ``.ckpt`` written by ``saswap train``, ``train-parser`` or ``train-harmonizer`` (unpickled whole:
            load only checkpoints you made).
        out_dir: the folder to write; it must not exist or be empty.
        onnx: also write the ONNX copy (the swap model's ``saswap.onnx``, the parser's ``model.onnx``).
        covered_threshold: a face parser's operating point to record (see ``export_parser``); refused for the others.

    Returns:
        ``(kind, out_dir)``, ``kind`` one of ``"saswap"``, ``"parser"``, ``"harmonizer"``.

    Raises:
        SaSwapError: not such a checkpoint, the output folder is not new or empty, ``covered_threshold`` given for a
            model that is not a parser.
    """
    from saswap.training.checkpoints import CHECKPOINT_KINDS, checkpoint_kind, read_checkpoint

    ckpt = read_checkpoint(checkpoint, mmap=True)  # the weights are read from the file when used, once
    kind = checkpoint_kind(ckpt, str(checkpoint))
    if covered_threshold is not None and kind != "parser":
        raise SaSwapError(
            f"{checkpoint}: covered_threshold is a face parser's setting; this checkpoint holds "
            f"{CHECKPOINT_KINDS[kind][2]}"
        )
    if covered_threshold is not None and not 0.0 < covered_threshold < 1.0:
        raise SaSwapError(f"covered_threshold must lie between 0 and 1 (both excluded), got {covered_threshold}")
    if kind == "parser":
        from saswap.training.parser_system import export_parser

        return kind, export_parser(ckpt, out_dir, covered_threshold, onnx=onnx, name=str(checkpoint))
    if kind == "harmonizer":
        from saswap.training.harmonizer_system import export_harmonizer

        return kind, export_harmonizer(ckpt, out_dir, str(checkpoint))
    from saswap.training.system import SaSwapSystem

    del ckpt  # the system loads it again, as Lightning does (hyper-parameters, then weights)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*is an instance of `nn.Module` and is already saved.*")
            system = SaSwapSystem.load_from_checkpoint(str(checkpoint), map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - any checkpoint the system cannot be built from is bad input
        first = first_line(err, empty="")
        why = f"{type(err).__name__}: {first}"
        raise SaSwapError(f"{checkpoint}: a SaSwap checkpoint that cannot be loaded ({why})") from None
    return kind, export_system(system, out_dir, onnx=onnx)


def shareable(folder: Path) -> None:
    """Give a written model folder the permissions of files a user makes (what ``open()`` makes under the umask, and
    its folders searchable where readable): a temporary folder is made for its owner alone (0o700), and safetensors
    writes its files 0o600, so another user or a service's account could not load the model."""
    from saswap.io import _create_temporary

    fd, probe = _create_temporary(folder, "mode")  # asks 0o666 as open() does: the umask decides (never changed here)
    try:
        file_mode = os.fstat(fd).st_mode & 0o666
    finally:
        os.close(fd)
        probe.unlink()
    dir_mode = file_mode | (file_mode & 0o444) >> 2
    for path in [folder, *folder.rglob("*")]:
        if not path.is_symlink():
            path.chmod(dir_mode if path.is_dir() else file_mode)


def export_onnx(
    model: nn.Module, path: str | Path, image_size: int, embed_dim: int, num_keypoints: int, opset: int = 17
) -> Path:
    """Export :class:`SaSwapInference` to ONNX (batch size 1)."""
    model = model.eval()
    inputs = (
        torch.zeros(1, 3, image_size, image_size),
        torch.zeros(1, embed_dim),
        torch.zeros(1, num_keypoints, 2),
        torch.zeros(1, num_keypoints, 2),
        torch.ones(1),
    )
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape checks become constants: expected
        torch.onnx.export(
            model, inputs, str(path), input_names=["target", "id_embed", "keypoints", "motion", "strength"],
            output_names=["image"], opset_version=opset, dynamo=False,
        )  # fmt: skip
    return Path(path)
