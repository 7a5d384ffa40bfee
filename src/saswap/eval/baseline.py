"""The naive reference swap that the acceptance benchmark compares the product's engines with.

It is the recipe the swap issue names as the bar to beat: the source's face texture warped onto the
target's face mesh triangle by triangle, a CIELAB mean and standard-deviation transfer over the face,
and OpenCV's Poisson ``seamlessClone`` over the face region. It has no shape adaptation, no mouth or eye
rules and no relighting, and by default no occlusion handling; it is for measurement, not for users.
"""

from __future__ import annotations

import cv2
import numpy as np

from saswap.engines.base import EngineOutput, SourceFace, SwapEngine
from saswap.face.alignment import transform_face, warp_face
from saswap.face.masks import face_region_masks, triangle_visibility
from saswap.face.render import rasterize_triangles, texture_map, triangle_affines
from saswap.face.topology import mesh_triangles
from saswap.face.types import Face

__all__ = ["NaiveSwapEngine", "lab_statistics_transfer"]


def lab_statistics_transfer(source: np.ndarray, target: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Give ``source`` the target's CIELAB mean and standard deviation over ``region`` (Reinhard et al.).

    Args:
        source: RGB uint8 (H, W, 3).
        target: RGB uint8 (H, W, 3), same geometry.
        region: where both statistics are taken, bool or float (H, W); at least 2 pixels.

    Returns:
        RGB uint8 (H, W, 3): the whole of ``source`` with the transfer applied.

    Example:
        >>> src = np.full((8, 8, 3), 60, np.uint8); src[:4] = 100; tgt = np.full((8, 8, 3), 150, np.uint8)
        >>> out = lab_statistics_transfer(src, tgt, np.ones((8, 8), bool))
        >>> int(np.abs(out.astype(int) - 150).max()) <= 1
        True
    """
    sel = np.asarray(region) > 0.5
    if sel.sum() < 2:
        raise ValueError(f"the statistics region needs at least 2 pixels, got {int(sel.sum())}")
    lab_s = cv2.cvtColor(source, cv2.COLOR_RGB2LAB).astype(np.float32)
    lab_t = cv2.cvtColor(target, cv2.COLOR_RGB2LAB).astype(np.float32)
    mean_s, std_s = lab_s[sel].mean(axis=0), lab_s[sel].std(axis=0)
    mean_t, std_t = lab_t[sel].mean(axis=0), lab_t[sel].std(axis=0)
    out = (lab_s - mean_s) * (std_t / np.maximum(std_s, 1e-3)) + mean_t
    return cv2.cvtColor(np.clip(out + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


class NaiveSwapEngine(SwapEngine):
    """Mesh texture warp + CIELAB statistics transfer + ``cv2.seamlessClone`` (the benchmark's baseline).

    Args:
        crop_size: side of the aligned crop (the geometric engine's default, so both see the same crop).
        keep_covered: keep the target's pixels where the compose stage's target analysis says something covers
            the face (its ``occlusion`` map: a face mask, a hand, a microphone), cloned over like the rest and
            then put back. False (the recipe as the swap issue names it) paints the source over them. The
            reference measured under the occlusion bar that the product's engines must meet.

    ``shape_strength`` is accepted and has no effect: this baseline keeps the target's face shape.
    """

    name = "naive"

    def __init__(self, crop_size: int = 384, keep_covered: bool = False) -> None:
        if crop_size < 64:
            raise ValueError(f"crop_size must be at least 64, got {crop_size}")
        self.crop_size = int(crop_size)
        self.keep_covered = bool(keep_covered)
        self.triangles = mesh_triangles()

    def prepare_source(self, image: np.ndarray, face: Face) -> SourceFace:
        M = self.alignment(face)
        return SourceFace(image=warp_face(image, M, self.crop_size), face=transform_face(face, M), transform=M)

    def swap(
        self,
        target: np.ndarray,
        target_face: Face,
        source: SourceFace,
        shape_strength: float = 1.0,
        analysis: dict[str, np.ndarray] | None = None,
    ) -> EngineOutput:
        self._check_crop(target, shape_strength)
        shape = target.shape[:2]
        mesh_t = target_face.landmarks[:468].astype(np.float64)
        tris = self.triangles
        front = triangle_visibility(mesh_t, tris) > 0.0
        ids = rasterize_triangles(mesh_t[:, :2], tris, shape, depth=mesh_t[:, 2], subset=front)
        src_pts = source.face.landmarks[:468, :2].astype(np.float64)
        map_x, map_y, cover = texture_map(ids, triangle_affines(mesh_t[tris, :2], src_pts[tris]))
        warped = cv2.remap(source.image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
        region = (face_region_masks(mesh_t, shape)["face"] > 0.5) & cover
        # seamlessClone needs the region off the crop's border; a thin erosion keeps the warp's jagged rim out.
        region = cv2.erode(region.astype(np.uint8), np.ones((3, 3), np.uint8))
        region[:2], region[-2:], region[:, :2], region[:, -2:] = 0, 0, 0, 0
        if region.sum() < 16:
            return EngineOutput(image=target.copy(), mask=np.zeros(shape, np.float32))
        coloured = lab_statistics_transfer(warped, target, region)
        x, y, w, h = cv2.boundingRect(region)
        # The clone is placed by the centre of the mask's bounding box: this centre keeps it in place.
        out = cv2.seamlessClone(coloured, target, region * 255, (x + w // 2, y + h // 2), cv2.NORMAL_CLONE)
        mask = region.astype(np.float32)
        covered = None if not self.keep_covered or analysis is None else analysis.get("occlusion")
        if covered is not None:
            mask[np.asarray(covered) > 0.5] = 0.0
        out[mask == 0] = target[mask == 0]
        return EngineOutput(image=out, mask=mask)
