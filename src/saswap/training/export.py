"""Export a trained :class:`SaSwapSystem` to the zoo format (one ``save_pretrained`` folder per
component plus ``model_index.json``) and the inference path to ONNX."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from saswap import __version__
from saswap.errors import SaSwapError

__all__ = ["export_system", "export_onnx", "SaSwapInference"]

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
    first and renamed, so a failed export leaves nothing behind.
    """
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise SaSwapError(f"{out}: output folder exists and is not empty")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
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
        shareable(tmp)
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


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
