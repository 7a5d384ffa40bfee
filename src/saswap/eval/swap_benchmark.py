"""The image-swap acceptance benchmark: many sources x targets from the shared photos, judged by an
independent identity network (dlib's, never used to build or tune an engine) and by measurements.

Used by ``benchmarks/bench_swap.py`` (full run, figures for RESULTS.md) and by the tests (a subset).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from saswap.eval.occluders import face_mask_occluder, hand_occluder, microphone_occluder, paste_occluder
from saswap.eval.swap_metrics import (
    BROWS,
    EYES,
    MOUTH,
    angle_error,
    boundary_colour_step,
    changed_share,
    chroma_mottling,
    expression_distance,
    expression_keypoints,
    face_blur,
    glasses_band_darkness,
    glasses_frames_changed,
    jaw_distance,
    jaw_distance_3d,
    landmark_error,
    outside_difference,
    seam_energy,
    skin_grain,
    skin_tone_difference,
)
from saswap.face.geometry import box_iou
from saswap.face.types import Face
from saswap.io import load_image

__all__ = [
    "SOURCES",
    "TARGETS",
    "HELDOUT_SOURCES",
    "HELDOUT_TARGETS",
    "GLASSES_SOURCES",
    "SwapBenchmark",
    "BenchmarkResult",
    "output_face",
]

logger = logging.getLogger(__name__)


def output_face(analyzer, image: np.ndarray, like, min_iou: float = 0.3):
    """The face of a swapped ``image`` where the target face ``like`` was: the detected face whose box overlaps
    ``like``'s most, or None when none overlaps it by more than ``min_iou`` (intersection over union)."""
    faces = analyzer(image)
    if not faces:
        return None
    iou = box_iou(like.box[None], np.stack([f.box for f in faces]))[0]
    return faces[int(np.argmax(iou))] if iou.max() > min_iou else None

#: Ten sources of different people (varied sex, age, skin tone, facial hair).
SOURCES = [
    "sberswap__beckham.jpg", "deepface__img2.jpg", "deepface__img41.jpg", "sberswap__mark.jpg",
    "simswap__Iron_man.jpg", "liveportrait__d19.jpg", "simswap__6.jpg", "insightface__sad.png",
    "simswap__james.jpg", "sberswap__target2.png",
]  # fmt: skip
#: Targets: dark-skinned, glasses, profile, masked (occluded), frontal, three-quarter, roll.
TARGETS = [
    "face_recognition__obama.jpg", "liveportrait__d8.jpg", "insightface__left_face.jpeg", "insightface__mask.png",
    "sadtalker__happy.png", "face_recognition__alex-lacamoire.png", "simswap__zhoujielun.jpg",
]  # fmt: skip
#: Held out of every tuning since 2026-12-03 (``bench_swap.py --pairs heldout``): ten sources and seven targets of other
#: people (none of them in :data:`SOURCES` or :data:`TARGETS`): old degraded photos, black-and-white, side light,
#: closed eyes, children, a dark-skinned target in dim light. Figures on them tell how a change carries over to faces
#: nobody tuned for; keep them out of any choice of rule or threshold.
HELDOUT_SOURCES = [
    "sberswap__murakami.jpg", "gfpgan__00.jpg", "insightface__1561.jpg", "liveportrait__d38.jpg", "sberswap__source2.png",
    "sberswap__source4.png", "face_recognition__john2.jpeg", "insightface__anger.png", "gfpgan__10045.png",
    "liveportrait__s12.jpg",
]  # fmt: skip
HELDOUT_TARGETS = [
    "sberswap__target5.png", "insightface__close_eyes.jpeg", "simswap__dnl.jpg", "liveportrait__d9.jpg",
    "gfpgan__Adele_crop.png", "insightface__7242.jpg", "insightface__2963.jpg",
]  # fmt: skip
GLASSES_TARGETS = ["liveportrait__d8.jpg"]
GLASSES_SOURCES = ["liveportrait__d8.jpg"]


@dataclass
class BenchmarkResult:
    """Per-pair records and the summary figures."""

    pairs: list[dict] = field(default_factory=list)
    occlusion: list[dict] = field(default_factory=list)
    glasses: list[dict] = field(default_factory=list)
    shape: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)


def _expression_kept(output: Face, target: Face, source: Face) -> dict[str, float]:
    """How far the output's expression is from the target's, on the mouth and the brows
    (:func:`~saswap.eval.swap_metrics.expression_distance`), and how far the source's was (``*_gap``)."""
    ko, kt, ks = (expression_keypoints(f.landmarks_68) for f in (output, target, source))
    return {
        "expression_error": expression_distance(ko, kt), "expression_gap": expression_distance(ks, kt),
        "brows_error": expression_distance(ko, kt, part=BROWS), "brows_gap": expression_distance(ks, kt, part=BROWS),
    }  # fmt: skip


def _carried(pair: dict, part: str) -> float:
    """The share of the source's expression difference from the target that a pair's output carried over."""
    return pair[f"{part}_error"] / max(pair[f"{part}_gap"], 1e-6)


def _median(values: list[float]) -> float | None:
    return float(np.median(values)) if values else None


class SwapBenchmark:
    """Runs swaps and measures them.

    Args:
        pipeline: the :class:`~saswap.pipelines.image.SaSwapPipeline` under test.
        data_dir: the shared data folder (with ``images/``).
        judge: identity judge with ``raw(image, face) -> embedding`` (default: dlib's network).
    """

    def __init__(self, pipeline, data_dir: str | Path, judge=None) -> None:
        from saswap.face.identity import DlibEmbedder

        self.pipe = pipeline
        self.images = Path(data_dir) / "images"
        self.judge = judge if judge is not None else DlibEmbedder()
        self._cache: dict[str, tuple] = {}

    def _load(self, name: str):
        if name not in self._cache:
            img = load_image(self.images / name)
            faces = self.pipe.analyzer(img)
            if not faces:
                raise ValueError(f"{name}: no face")
            self._cache[name] = (img, faces[0], self.judge.raw(img, faces[0]))
        return self._cache[name]

    def _output_face(self, image: np.ndarray, like) -> object | None:
        return output_face(self.pipe.analyzer, image, like)

    def run(
        self, sources=SOURCES, targets=TARGETS, shape_strength: float = 1.0, occluders: bool = True
    ) -> BenchmarkResult:
        res = BenchmarkResult()
        src_emb = {s: self._load(s)[2] for s in sources}
        prepared = {s: self.pipe.engine.prepare_source(self._load(s)[0], self._load(s)[1]) for s in sources}
        for tgt in targets:
            t_img, t_face, t_emb = self._load(tgt)
            # the target's own border steps, read once for all its pairs
            t_steps = {"boundary_step_target": boundary_colour_step(t_img, t_face)}
            t_steps["upper_step_target"] = boundary_colour_step(t_img, t_face, upper=True)
            for src in sources:
                rec = {"source": src, "target": tgt, "target_yaw": float(t_face.pose[0])}
                out = self.pipe(prepared[src], t_img, shape_strength=shape_strength)
                o_face = self._output_face(out.image, t_face)
                rec["found"] = o_face is not None
                mask = out.masks[0]
                rec["outside_diff"] = outside_difference(out.image, t_img, t_face)
                if o_face is None:
                    res.pairs.append(rec)
                    continue
                emb = self.judge.raw(out.image, o_face)
                d_src, d_tgt = float(np.linalg.norm(emb - src_emb[src])), float(np.linalg.norm(emb - t_emb))
                nearest = min(sources, key=lambda s: np.linalg.norm(emb - src_emb[s]))
                rec.update(
                    d_source=d_src,
                    d_target=d_tgt,
                    closer_to_source=d_src < d_tgt,
                    retrieved=nearest == src,
                    **_expression_kept(o_face, t_face, self._load(src)[1]),
                    pose_error=angle_error(o_face, t_face).tolist(),
                    boundary_step=boundary_colour_step(out.image, o_face),
                    upper_step=boundary_colour_step(out.image, o_face, upper=True),
                    **t_steps,
                    skin_tone_de=skin_tone_difference(out.image, o_face, t_img, t_face),
                    seam=seam_energy(out.image, mask),
                    seam_target=seam_energy(t_img, mask),
                    mottling=chroma_mottling(out.image, o_face),
                    mottling_target=chroma_mottling(t_img, t_face),
                    blur=face_blur(out.image, t_face),
                    blur_target=face_blur(t_img, t_face),
                    grain=skin_grain(out.image, t_face),
                    grain_target=skin_grain(t_img, t_face),
                )
                res.pairs.append(rec)
        # Expression with shape_strength 0 (the mouth and eyes must stay the target's).
        for tgt in targets:
            t_img, t_face, _ = self._load(tgt)
            for src in sources[:3]:
                out = self.pipe(prepared[src], t_img, shape_strength=0.0)
                o_face = self._output_face(out.image, t_face)
                if o_face is None:
                    continue
                res.shape.append(
                    {
                        "source": src,
                        "target": tgt,
                        "mouth_error": landmark_error(o_face, t_face, MOUTH),
                        "eye_error": landmark_error(o_face, t_face, EYES),
                    }
                )
        # Shape: jaw contour closer to the source's with strength 1 than with 0 (near-frontal targets).
        for tgt in [t for t in targets if abs(self._load(t)[1].pose[0]) < 20]:
            t_img, t_face, _ = self._load(tgt)
            for src in sources:
                s_face = self._load(src)[1]
                faces = []
                for strength in (0.0, 1.0):
                    out = self.pipe(prepared[src], t_img, shape_strength=strength)
                    faces.append(self._output_face(out.image, t_face))
                if None in faces:
                    continue
                d0, d1 = jaw_distance(faces[0], s_face), jaw_distance(faces[1], s_face)
                base = jaw_distance(t_face, s_face)
                self._append_shape(
                    res,
                    src,
                    tgt,
                    jaw0=d0,
                    jaw1=d1,
                    jaw_target=base,
                    # the same in 3D (pose factored out), and how differently the two heads are turned
                    jaw3d0=jaw_distance_3d(faces[0], s_face),
                    jaw3d1=jaw_distance_3d(faces[1], s_face),
                    pose_gap=np.abs(np.asarray(t_face.pose[:2]) - np.asarray(s_face.pose[:2])).tolist(),
                )
        # Glasses: a target's glasses stay; a source's glasses do not come along.
        jobs = [("target", src, tgt, prepared[src]) for tgt in GLASSES_TARGETS if tgt in targets for src in sources[:5]]
        for src in GLASSES_SOURCES:
            prep = self.pipe.engine.prepare_source(*self._load(src)[:2])
            jobs += [("source", src, tgt, prep) for tgt in [t for t in targets if t not in GLASSES_TARGETS][:4]]
        for kind, src, tgt, prep in jobs:
            t_img, t_face, _ = self._load(tgt)
            out = self.pipe(prep, t_img)
            o_face = self._output_face(out.image, t_face)
            if o_face is not None:
                before, after = glasses_band_darkness(t_img, t_face), glasses_band_darkness(out.image, o_face)
                rec = {"kind": kind, "source": src, "target": tgt, "before": before, "after": after}
                if kind == "target":  # the band's darkness reads a darker new eye socket as kept frames
                    rec["frames_changed"] = glasses_frames_changed(out.image, t_img, t_face)
                res.glasses.append(rec)
        # Occlusion: an occluder pasted over the lower third stays in front.
        if occluders:
            kinds = {
                "mask_white": face_mask_occluder("white"),
                "mask_black": face_mask_occluder("black"),
                "microphone": microphone_occluder(),
                "hand": hand_occluder(),
            }
            for tgt in [t for t in targets if abs(self._load(t)[1].pose[0]) < 35 and t != "insightface__mask.png"]:
                t_img, t_face, _ = self._load(tgt)
                for kind, occ in kinds.items():
                    occluded, occ_mask = paste_occluder(t_img, t_face, occ)
                    try:
                        out = self.pipe(prepared[sources[0]], occluded)
                    except Exception as err:  # noqa: BLE001 - a face may no longer be found under a big occluder
                        res.occlusion.append({"target": tgt, "kind": kind, "error": str(err)})
                        continue
                    changed = changed_share(occluded, out.image, occ_mask)
                    res.occlusion.append({"target": tgt, "kind": kind, "changed": changed})
        res.summary = self.summarise(res)
        return res

    @staticmethod
    def _append_shape(res, src, tgt, **values):
        for rec in res.shape:
            if rec.get("source") == src and rec.get("target") == tgt and "jaw0" not in rec:
                rec.update(values)
                return
        res.shape.append({"source": src, "target": tgt, **values})

    @staticmethod
    def summarise(res: BenchmarkResult) -> dict:
        found = [p for p in res.pairs if p.get("found") and "d_source" in p]
        profile = [p for p in found if abs(p["target_yaw"]) > 40]
        mottled = [p["mottling"] / p["mottling_target"] for p in found if p.get("mottling_target", 0.0) > 0.1]
        # sharpness: the output face's edge blur over the target's (both through the target's landmarks)
        blurs = [p["blur"] / p["blur_target"] for p in found if p.get("blur") and p.get("blur_target")]
        # fine skin texture: the output's over the target's (both through the target's landmarks)
        grains = [p["grain"] / p["grain_target"] for p in found if p.get("grain") and p.get("grain_target")]
        frames = [g["frames_changed"] for g in res.glasses if g.get("frames_changed") is not None]
        pose = np.array([p["pose_error"] for p in found]) if found else np.zeros((0, 3))
        by_target: dict[str, list[dict]] = {}
        for p in found:
            by_target.setdefault(p["target"], []).append(p)
        jaws = [r for r in res.shape if "jaw0" in r]
        expr = [r for r in res.shape if "mouth_error" in r]
        # The jaw ratio again on the pairs whose heads are turned alike (yaw and pitch within 8 degrees),
        # and pose-free (meshes aligned in 3D, :func:`~saswap.eval.swap_metrics.jaw_distance_3d`).
        matched = [r["jaw1"] / max(r["jaw0"], 1e-9) for r in jaws if max(r.get("pose_gap", [99.0])) <= 8.0]
        jaw3d = [r["jaw3d1"] / max(r["jaw3d0"], 1e-9) for r in jaws if "jaw3d0" in r]
        s = {
            "pairs": len(res.pairs),
            "faces_found": len(found) / max(len(res.pairs), 1),
            "closer_to_source": float(np.mean([p["closer_to_source"] for p in found])) if found else 0.0,
            "retrieval": float(np.mean([p["retrieved"] for p in found])) if found else 0.0,
            "profile_closer_to_source": float(np.mean([p["closer_to_source"] for p in profile])) if profile else None,
            # How far the output moved towards the source (dlib distance to the target minus to the
            # source): the thresholded rates above flip on pairs within a few hundredths of zero.
            "dlib_margin_mean": float(np.mean([p["d_target"] - p["d_source"] for p in found])) if found else None,
            "per_target": {
                t: {
                    "closer_to_source": float(np.mean([p["closer_to_source"] for p in group])),
                    "retrieval": float(np.mean([p["retrieved"] for p in group])),
                    "dlib_margin_mean": float(np.mean([p["d_target"] - p["d_source"] for p in group])),
                }
                for t, group in by_target.items()
            },
            "pose_error_median": np.median(pose, axis=0).tolist() if len(pose) else None,
            # Expression kept at the benchmark's strength (3DMM expression of the output against the target's;
            # :func:`_expression_kept`), and the share of the source's difference from it the output carried over.
            "expression_error_median": _median([p["expression_error"] for p in found if "expression_error" in p]),
            "expression_carried_median": _median([_carried(p, "expression") for p in found if "expression_error" in p]),
            "brows_carried_median": _median([_carried(p, "brows") for p in found if "brows_error" in p]),
            "mouth_error_median": float(np.median([r["mouth_error"] for r in expr])) if expr else None,
            "eye_error_median": float(np.median([r["eye_error"] for r in expr])) if expr else None,
            "jaw_ratio_median": float(np.median([r["jaw1"] / max(r["jaw0"], 1e-9) for r in jaws])) if jaws else None,
            "jaw_ratio_pose_matched_median": float(np.median(matched)) if matched else None,
            "jaw_ratio_pose_matched_pairs": len(matched),
            "jaw3d_ratio_median": float(np.median(jaw3d)) if jaw3d else None,
            "boundary_step_excess_max": max(
                (p["boundary_step"] - p["boundary_step_target"] for p in found), default=None
            ),
            "boundary_step_excess_median": float(
                np.median([p["boundary_step"] - p["boundary_step_target"] for p in found])
            )
            if found
            else None,
            # the same over the border's upper part only (forehead and temples: issue 13's "upper face border")
            "upper_step_excess_max": max((p["upper_step"] - p["upper_step_target"] for p in found), default=None),
            "upper_step_excess_median": float(np.median([p["upper_step"] - p["upper_step_target"] for p in found]))
            if found
            else None,
            "skin_tone_de_median": float(np.median([p["skin_tone_de"] for p in found])) if found else None,
            "skin_tone_de_max": max((p["skin_tone_de"] for p in found), default=None),
            "seam_ratio_median": float(np.median([p["seam"] / max(p["seam_target"], 1e-6) for p in found]))
            if found
            else None,
            "seam_ratio_max": max((p["seam"] / max(p["seam_target"], 1e-6) for p in found), default=None),
            # over the targets that have colour (a black-and-white target's output stays grey: 0 over 0)
            "mottling_ratio_median": float(np.median(mottled)) if mottled else None,
            "mottling_ratio_max": max(mottled, default=None),
            "blur_ratio_median": float(np.median(blurs)) if blurs else None,
            "blur_log_ratio_mean": float(np.mean(np.abs(np.log(blurs)))) if blurs else None,
            # pairs whose face is under 2/3 as blurred as its target's (a crisp face on a soft head)
            "sharper_than_target": float(np.mean([b < 2 / 3 for b in blurs])) if blurs else None,
            "softer_than_target": float(np.mean([b > 3 / 2 for b in blurs])) if blurs else None,
            "grain_ratio_median": float(np.median(grains)) if grains else None,
            # pairs whose skin shows under 2/3 of its target's finest texture (a smooth face in a sharp picture)
            "smoother_than_target": float(np.mean([g < 2 / 3 for g in grains])) if grains else None,
            "outside_diff_max": max((p["outside_diff"] for p in res.pairs), default=None),
            "occluder_changed_max": max((o["changed"] for o in res.occlusion if "changed" in o), default=None),
            "occluder_changed": {f"{o['target']}/{o['kind']}": round(o.get("changed", -1), 3) for o in res.occlusion},
            "glasses": [
                (g["kind"], g["source"], g["target"], round(g["before"], 3), round(g["after"], 3)) for g in res.glasses
            ],
            # a target's real frames painted over (pixels changed by > 20 levels; pasted occluders' bar: 20%)
            "glasses_frames_changed_max": max(frames, default=None),
        }
        return s


def time_swap(pipeline, source: np.ndarray, target: np.ndarray, repeats: int = 20) -> dict:
    """Median seconds of a full image swap (target analysis, swap, paste) with a prepared source."""
    src_faces = pipeline.analyzer(source)
    prepared = pipeline.engine.prepare_source(source, src_faces[0])
    pipeline(prepared, target)
    times = []
    stages: dict[str, list[float]] = {}
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = pipeline(prepared, target)
        times.append(time.perf_counter() - t0)
        for k, v in out.timings.items():
            stages.setdefault(k, []).append(v)
    return {
        "total_ms": float(np.median(times) * 1000),
        **{f"{k}_ms": float(np.median(v) * 1000) for k, v in stages.items()},
    }
