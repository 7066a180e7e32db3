"""Wall time of a study per stage and in total.

Usage:
    python benchmarks/study_time.py RUN_DIR            # read the timings of a finished (or partial) run
    python benchmarks/study_time.py --preset tiny      # run a preset into a temporary folder, then print

Prints the once-per-study stages (twin environments, calibration, scene sampling, test-set ground
truth), every job's stages (render, train, predict, evaluate), the total, and, for runs with fewer
finished jobs than planned, the projected total for the whole plan. The baseline ratio is the
render cost a naive design would pay (rendering the training set once per job instead of once per
condition), measured from the same run.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path


def _load(run_dir: Path) -> tuple[dict, list[dict], dict, int]:
    scenes = json.loads((run_dir / "scenes" / "manifest.json").read_text())
    testsets = {
        p.parent.name: json.loads(p.read_text()) for p in (run_dir / "testsets").glob("*/manifest.json")
    }
    jobs = [json.loads(p.read_text()) for p in sorted((run_dir / "jobs").glob("*/manifest.json"))]
    plan = json.loads((run_dir / "plan.json").read_text())["jobs"]
    return scenes, jobs, testsets, len(plan)


def report(run_dir: Path) -> None:
    scenes, jobs, testsets, n_plan = _load(run_dir)
    rows: list[tuple[str, float]] = [(f"once: {k}", v) for k, v in scenes.get("timings", {}).items()]
    rows.append(("once: test-set ground truth", sum(t.get("seconds", 0.0) for t in testsets.values())))
    render_once: dict[str, float] = {}
    per_stage = {"train": 0.0, "predict": 0.0, "evaluate": 0.0}
    for j in jobs:
        render_once[j["condition"]] = max(render_once.get(j["condition"], 0.0), j.get("render_seconds", 0.0))
        for k in per_stage:
            per_stage[k] += j["timings"].get(k, 0.0)
    rows.append((f"jobs: render ({len(render_once)} conditions, once each)", sum(render_once.values())))
    rows += [(f"jobs: {k} ({len(jobs)} jobs)", v) for k, v in per_stage.items()]
    total = sum(v for _, v in rows)
    once = sum(v for k, v in rows if k.startswith("once"))
    print(f"study {run_dir}  ({len(jobs)}/{n_plan} jobs finished)")
    print(f"{'stage':<48}{'seconds':>10}{'minutes':>9}{'share':>8}")
    for k, v in rows:
        print(f"{k:<48}{v:>10.1f}{v / 60:>9.1f}{100 * v / max(total, 1e-9):>7.0f}%")
    print(f"{'total':<48}{total:>10.1f}{total / 60:>9.1f}")
    if jobs:
        per_job = (total - once) / len(jobs)
        print(f"per job (mean): {per_job:.1f} s = {per_job / 60:.1f} min")
        workers = json.loads((run_dir / "study.json").read_text())["executor"]["workers"]
        proj = once + per_job * n_plan / workers
        print(f"projected wall for all {n_plan} jobs, {workers} in parallel: {proj / 60:.1f} min")
        sessions = run_dir / "results" / "sessions.json"
        if sessions.is_file():
            wall = sum(s.get("seconds", 0.0) for s in json.loads(sessions.read_text()))
            print(f"measured wall time (all sessions): {wall:.1f} s = {wall / 60:.1f} min")
        naive = sum(render_once.get(j["condition"], 0.0) for j in jobs)  # rendering in every job
        shared = sum(render_once.values())
        if shared > 0:
            print(
                f"render once per condition: {shared:.1f} s vs once per job (baseline): {naive:.1f} s "
                f"-> ratio {naive / shared:.2f}x"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", nargs="?", type=Path)
    ap.add_argument("--preset", default=None, help="run this preset first (e.g. tiny)")
    args = ap.parse_args()
    if args.preset:
        from twingap.study.config import load_study_config
        from twingap.study.executors import InlineExecutor
        from twingap.study.runner import run_study

        run_dir = args.run_dir or Path(tempfile.mkdtemp(prefix=f"study_{args.preset}_"))
        run_study(run_dir, load_study_config(None, args.preset), InlineExecutor(), report=False)
        report(run_dir)
    elif args.run_dir:
        report(args.run_dir)
    else:
        ap.error("give RUN_DIR or --preset")


if __name__ == "__main__":
    main()
