"""Speed of the artifact stage: all 13 conditions applied to all 21 sample models.

Prints wall seconds per condition (summed over models), the process CPU seconds (a figure less
sensitive to other load on a shared machine), the total, and ratios against two baselines
measured in the same run: loading the 21 GLB models, and the target of 60 s for everything.

    .venv/bin/python benchmarks/artifacts_speed.py [--models N] [--threads 2] [--damage]
"""

from __future__ import annotations

import argparse
import os
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=21, help="number of sample models (first N)")
    parser.add_argument("--threads", type=int, default=2, help="threads for BLAS / OpenCV")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--damage", action="store_true", help="also time the damage measures")
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(args.threads))

    import cv2

    cv2.setNumThreads(args.threads)

    from twingap.artifacts import apply_condition, damage, load_catalogue
    from twingap.assets.asset import ModelLibrary, default_sample_root

    lib = ModelLibrary(default_sample_root() / "models")
    names = lib.names[: args.models]
    t0 = time.perf_counter()
    assets = [lib.load(n) for n in names]
    t_load = time.perf_counter() - t0
    catalogue = load_catalogue()

    per_cond: dict[str, float] = {}
    per_cpu: dict[str, float] = {}
    per_damage: dict[str, float] = {}
    for cond in catalogue.values():
        t_apply = 0.0
        t_dmg = 0.0
        cpu0 = time.process_time()
        for asset in assets:
            t = time.perf_counter()
            out = apply_condition(asset, cond, args.seed)
            t_apply += time.perf_counter() - t
            if args.damage:
                t = time.perf_counter()
                damage(asset, out, cond)
                t_dmg += time.perf_counter() - t
        per_cond[cond.name] = t_apply
        per_cpu[cond.name] = time.process_time() - cpu0
        per_damage[cond.name] = t_dmg

    total = sum(per_cond.values())
    print(f"{len(assets)} models, {len(catalogue)} conditions, threads={args.threads}")
    print(f"baseline: load {len(assets)} GLB models: {t_load:.2f} s")
    header = f"{'condition':<12} {'apply s':>8} {'s/model':>8} {'x load':>7} {'cpu s':>7}"
    if args.damage:
        header += f" {'damage s':>9}"
    print(header)
    for name, secs in per_cond.items():
        row = f"{name:<12} {secs:8.2f} {secs / len(assets):8.3f} {secs / t_load:7.2f} {per_cpu[name]:7.2f}"
        if args.damage:
            row += f" {per_damage[name]:9.2f}"
        print(row)
    print(
        f"total apply: {total:.2f} s wall ({total / t_load:.1f} x load; "
        f"{total / 60.0:.2f} of the 60 s target)"
    )
    print(f"total CPU (all threads; includes damage when --damage): {sum(per_cpu.values()):.2f} s")
    if args.damage:
        print(f"total damage: {sum(per_damage.values()):.2f} s")


if __name__ == "__main__":
    main()
