"""Audit time per model on the 21 sample models, against the time to render and train one condition.

Usage:
    python benchmarks/audit_speed.py --study RUN_DIR     # render + train figures of a finished study run
    python benchmarks/audit_speed.py --preset tiny       # run the tiny study first (a lower bound: tiny
                                                          # images, a few iterations) and use its figures
    python benchmarks/audit_speed.py --condition-seconds 342 --source "README: make demo, study_time.py"
                                                          # compare with a figure measured elsewhere

Prints, per model, the time to load it, to audit it (every family's measure and the grading), and to
draw its pictures as the report does (every picture at full size, its inlined thumbnail and its linked
full-size file, not written); then the mean audit time per model against one condition's measured render and
train seconds (the study's job manifests: ``render_seconds`` and ``timings.train``), as a ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def _condition_cost(run_dir: Path) -> tuple[float, float, str]:
    jobs = [json.loads(p.read_text()) for p in sorted((run_dir / "jobs").glob("*/manifest.json"))]
    jobs = [j for j in jobs if "train" in j.get("timings", {})]
    if not jobs:
        raise SystemExit(f"{run_dir}: no finished job with timings")
    render = float(np.mean([j.get("render_seconds", 0.0) for j in jobs]))
    train = float(np.mean([j["timings"]["train"] for j in jobs]))
    return render, train, f"{run_dir} (mean of {len(jobs)} job(s))"


def main() -> None:
    from twingap.assets.asset import ModelLibrary, default_sample_root
    from twingap.audit import pictures
    from twingap.audit.core import audit_asset
    from twingap.audit.levels import load_calibration
    from twingap.audit.report import model_pictures

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", type=Path, default=None, help="a study run folder with finished jobs")
    ap.add_argument("--preset", default=None, help="run this study preset first (e.g. tiny)")
    ap.add_argument("--condition-seconds", type=float, default=None, help="render + train s of one condition")
    ap.add_argument(
        "--source", default="given on the command line", help="where --condition-seconds comes from"
    )
    args = ap.parse_args()

    lib = ModelLibrary(default_sample_root() / "models")
    cal = load_calibration()
    print(f"cpu cores visible: {len(os.sched_getaffinity(0))}, load average: {os.getloadavg()[0]:.1f}")
    print(f"{'model':24s}{'load s':>8s}{'audit s':>9s}{'pictures s':>12s}")
    audits = []
    for name in lib.names:
        t0 = time.perf_counter()
        asset = lib.load(name)
        t1 = time.perf_counter()
        res = audit_asset(asset, cal)
        t2 = time.perf_counter()
        for _, png in model_pictures(res):
            pictures.thumbnail(png)
            pictures.encode(png)
        t3 = time.perf_counter()
        audits.append(t2 - t1)
        print(f"{name:24s}{t1 - t0:8.2f}{t2 - t1:9.2f}{t3 - t2:12.2f}")
    mean = float(np.mean(audits))
    print(
        f"audit per model: mean {mean:.2f} s, median {np.median(audits):.2f} s, max {max(audits):.2f} s "
        f"({len(audits)} models, all {sum(audits):.1f} s)"
    )
    if args.preset:
        from twingap.study.config import load_study_config
        from twingap.study.executors import InlineExecutor
        from twingap.study.runner import run_study

        run_dir = Path(tempfile.mkdtemp(prefix=f"study_{args.preset}_"))
        run_study(run_dir, load_study_config(None, args.preset), InlineExecutor(), report=False)
        args.study = run_dir
    compared = []
    if args.study:
        render, train, source = _condition_cost(args.study)
        print(
            f"one condition, render + train: {render:.1f} s + {train:.1f} s = {render + train:.1f} s "
            f"from {source}"
        )
        compared.append((render + train, source))
    if args.condition_seconds:
        compared.append((args.condition_seconds, args.source))
    for total, source in compared:
        print(
            f"vs {source}: {total:.1f} s per condition = {total / mean:.0f}x the audit of one model; "
            f"auditing all {len(audits)} models takes {100 * sum(audits) / total:.1f}% of one condition"
        )
    if not compared:
        print("no --study / --preset / --condition-seconds: nothing to compare with")
    print(f"load average after: {os.getloadavg()[0]:.1f} (shared-machine wall clock)")


if __name__ == "__main__":
    main()
