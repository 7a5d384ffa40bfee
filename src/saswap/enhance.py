"""Optional face enhancement (GFPGAN / GPEN-style restorers exported to ONNX), applied to swapped
faces only. Off by default; SaSwap ships no enhancer weights.

A restorer takes an aligned face crop, RGB scaled to [-1, 1], shape (1, 3, S, S), and returns the
restored crop in the same form. Weights come from a local ``.onnx`` file or folder, or from the
Hugging Face Hub when online (``HF_HUB_OFFLINE=1`` is respected: then only the local cache is used).
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from saswap.errors import ModelNotFoundError, first_line

__all__ = ["FaceEnhancer", "ENHANCERS"]

#: Known enhancer names -> (Hub repository, file). Their licences are their authors'; check before use.
ENHANCERS: dict[str, tuple[str, str]] = {
    "gfpgan-1.4": ("facefusion/models-3.0.0", "gfpgan_1.4.onnx"),
    "gpen-bfr-512": ("facefusion/models-3.0.0", "gpen_bfr_512.onnx"),
}


def _resolve(name_or_path: str | os.PathLike) -> Path:
    path = Path(name_or_path)
    if path.is_file():
        return path
    if path.is_dir():
        found = sorted(path.glob("*.onnx"))
        if found:
            return found[0]
        raise ModelNotFoundError(f"{path}: no .onnx enhancer file in this folder")
    key = str(name_or_path)
    if key not in ENHANCERS:
        raise ModelNotFoundError(f"{key}: not an enhancer file, folder or known name ({', '.join(sorted(ENHANCERS))})")
    repo, filename = ENHANCERS[key]
    try:
        from huggingface_hub import hf_hub_download

        offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
        return Path(hf_hub_download(repo, filename, local_files_only=offline))
    except Exception as err:
        raise ModelNotFoundError(
            f"enhancer {key!r}: weights not found locally and could not be downloaded ({type(err).__name__}); "
            f"download {filename} from the Hub repository {repo} and pass its path"
        ) from None


class FaceEnhancer:
    """An ONNX face restorer.

    Args:
        path: the .onnx file.
        providers: onnxruntime execution providers.
    """

    def __init__(self, path: str | os.PathLike, providers: list[str] | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        try:
            self.session = ort.InferenceSession(str(self.path), providers=providers or ["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime's own types (InvalidProtobuf, InvalidArgument, Fail, NoSuchFile)
            reason = first_line(err)
            raise ModelNotFoundError(f"{self.path}: not a usable ONNX enhancer model ({reason})") from None
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        shape = inp.shape
        if len(shape) != 4 or shape[1] != 3:
            raise ModelNotFoundError(f"{self.path}: expected an input of shape (1, 3, S, S), got {shape}")
        self.size = int(shape[2]) if isinstance(shape[2], int) else 512

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, providers: list[str] | None = None) -> FaceEnhancer:
        """Load from a local file or folder, or a known name (Hub; offline: local cache only)."""
        return cls(_resolve(name_or_path), providers)

    def __call__(self, crop: np.ndarray) -> np.ndarray:
        """Restore an aligned face crop, RGB uint8 (S', S', 3) -> same shape."""
        h, w = crop.shape[:2]
        x = cv2.resize(crop, (self.size, self.size), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 127.5 - 1.0
        y = self.session.run(None, {self.input_name: x.transpose(2, 0, 1)[None]})[0][0]
        y = np.clip((y.transpose(1, 2, 0) + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)
        return cv2.resize(y, (w, h), interpolation=cv2.INTER_AREA if self.size > w else cv2.INTER_LINEAR)

    def enhance_crop(self, crop: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Restore the crop and keep the result only where ``mask`` (the swapped face) is set."""
        restored = self(crop).astype(np.float32)
        m = np.clip(mask, 0, 1)[..., None]
        return np.clip(crop * (1 - m) + restored * m + 0.5, 0, 255).astype(np.uint8)
