"""Parameters, FLOPs and CPU forward time of the neural SaSwap components at their default sizes.

Usage:  python benchmarks/bench_models.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch
from torch.utils.flop_counter import FlopCounterMode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from saswap.models import AttributeEncoder, FlowEstimator, FusionGenerator, IdentityEncoder, MultiScaleDiscriminator

    torch.manual_seed(0)
    torch.set_grad_enabled(False)
    enc, gen, flow_net = AttributeEncoder().eval(), FusionGenerator().eval(), FlowEstimator().eval()
    ident, disc = IdentityEncoder().eval(), MultiScaleDiscriminator().eval()
    x = torch.rand(1, 3, 256, 256) * 2 - 1
    attrs = enc(x)
    kp, motion = torch.rand(1, 68, 2) * 2 - 1, torch.randn(1, 68, 2)
    flow = flow_net(kp, motion)
    z = torch.randn(1, 512)
    jobs = {
        "IdentityEncoder (r50, 112x112)": (ident, (torch.rand(1, 3, 112, 112),)),
        "AttributeEncoder (256x256)": (enc, (x,)),
        "FlowEstimator (68 keypoints -> 256x256)": (flow_net, (kp, motion)),
        "FusionGenerator (256x256, with flow)": (gen, (z, attrs, flow)),
        "MultiScaleDiscriminator (3 scales, 256x256)": (disc, (x,)),
    }
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, threads {torch.get_num_threads()}"
    )
    print("| component | parameters (M) | GFLOPs | CPU forward (s, batch 1) |")
    print("| --- | --- | --- | --- |")
    for name, (model, inputs) in jobs.items():
        params = sum(p.numel() for p in model.parameters()) / 1e6
        with FlopCounterMode(display=False) as counter:
            model(*inputs)
        flops = counter.get_total_flops() / 1e9
        model(*inputs)
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            model(*inputs)
            times.append(time.perf_counter() - t0)
        print(f"| {name} | {params:.2f} | {flops:.1f} | {sorted(times)[len(times) // 2]:.3f} |")


if __name__ == "__main__":
    main()
