"""What the jaw-contour acceptance measure can reach: the geometric engine's shape plan, realised exactly.

Usage:  python benchmarks/bench_shape.py [--data ../shared/data]

The acceptance measure (``jaw_distance``) compares the output's 17 jaw points with the source's after
a 2D similarity on the inner face, and asks strength 1 to halve the distance of strength 0. This script
separates what the engine's *plan* can reach from how well the warp realises it: for every near-frontal
target (|yaw| < 20 degrees, as in ``bench_swap.py``) and source it computes, without any image analysis
of an output,

- ``plan``: the ratio a perfect realisation of the engine's keypoint plan would get (the target's 68
  points moved by the engine's dense flow, the jaw put exactly where the plan puts it) over the target's;
- ``pose-blind 2D``: the same for a jaw that is the source's 2D jaw, similarity-aligned on the moved inner
  face (what a 2D transfer that ignores the heads' pose and expression would draw);

and prints both with the two heads' pose gap. Copy the printed figures into ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        default=os.environ.get("SASWAP_TEST_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data")),
    )
    args = parser.parse_args()

    from saswap import SaSwapPipeline
    from saswap.eval.swap_benchmark import SOURCES, TARGETS
    from saswap.eval.swap_metrics import jaw_distance
    from saswap.face.alignment import transform_face, transform_points, umeyama_similarity
    from saswap.face.deform import keypoint_flow, limit_flow_folds, sample_flow
    from saswap.face.landmarks import IBUG68_FROM_MESH
    from saswap.io import load_image

    pipe = SaSwapPipeline.from_pretrained("saswap-geometric")
    engine = pipe.engine
    images = Path(args.data) / "images"
    faces = {n: (load_image(images / n), pipe.analyzer(load_image(images / n))[0]) for n in SOURCES + TARGETS}
    prepared = {s: engine.prepare_source(*faces[s]) for s in SOURCES}
    mesh68 = np.array(IBUG68_FROM_MESH)
    rows = []
    for tgt in [t for t in TARGETS if abs(faces[t][1].pose[0]) < 20]:
        t_face = faces[tgt][1]
        M = engine.alignment(t_face)
        back = np.linalg.inv(np.vstack([M, [0.0, 0.0, 1.0]]))[:2]
        crop_face = transform_face(t_face, M)
        mesh = crop_face.landmarks[:468, :2].astype(np.float64)
        size = (engine.crop_size, engine.crop_size)
        for src in SOURCES:
            s_face = faces[src][1]
            points, motion = engine.sparse_motion(crop_face, prepared[src], 1.0)
            flow = limit_flow_folds(
                keypoint_flow(points, motion, size, support=engine.flow_support * crop_face.eye_distance)
            )
            moved = (mesh + sample_flow(flow, mesh))[mesh68]

            def distance(jaw, moved=moved, back=back, s_face=s_face):
                pts = moved.copy()
                pts[:17] = jaw
                return jaw_distance(dataclasses.replace(t_face, landmarks_68=transform_points(back, pts)), s_face)

            base = jaw_distance(t_face, s_face)
            plan = distance(points[-17:] + motion[-17:]) / base
            # the moved inner face and the source's inner face, both in the original image's pixels
            inner = transform_points(back, moved[17:48])
            sim = umeyama_similarity(s_face.landmarks_68[17:48], inner)
            blind = distance(transform_points(M, transform_points(sim, s_face.landmarks_68[:17]))) / base
            gap = np.abs(np.asarray(t_face.pose[:2]) - np.asarray(s_face.pose[:2]))
            rows.append((src, tgt, plan, blind, float(gap.max())))
            print(f"{src:28s} {tgt:36s} plan {plan:.2f}  pose-blind 2D {blind:.2f}  pose gap {gap.max():5.1f} deg")
    plan = np.array([r[2] for r in rows])
    blind = np.array([r[3] for r in rows])
    near = np.array([r[4] <= 8.0 for r in rows])
    print(f"median ratio, all {len(rows)} pairs: plan {np.median(plan):.2f}, pose-blind 2D {np.median(blind):.2f}")
    if near.any():
        print(
            f"median ratio, {int(near.sum())} pairs with yaw and pitch within 8 degrees: plan "
            f"{np.median(plan[near]):.2f}, pose-blind 2D {np.median(blind[near]):.2f}"
        )


if __name__ == "__main__":
    main()
