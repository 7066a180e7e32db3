"""GPU study benchmark: one run, one device call (<= 8 minutes), one compact table.

Prints, measured in the same run on the same machine (read the ratios, not absolute numbers across runs):

1. ``study``: a short quick study (``--study quick``: conditions clean + noise-3, seed 0, 40 twin views
   + 40 composed layouts besides the 40 twins, ``--study-steps`` training steps; ``--study tiny``: the
   tiny preset) run by ``twingap study`` (local executor, ``--study-workers`` jobs), and its wall time
   by stage: scenes, test sets, and per job stage (render counted once per condition, train, predict,
   evaluate) summed over jobs, from the job manifests (as the report's timings); killed after
   ``--study-max-s`` (then only its finished jobs count).
2. ``quick old``: the quick preset as a study trains it today, one process per training: ``--jobs``
   processes side by side on ``--device``, ``--quick-steps`` steps each on the study's clean render
   (or a synthetic set when the study did not render one). Aggregate steps/s = the sum over processes of
   steps / seconds (steady state: the log's seconds after the first ``SKIP`` steps).
3. ``quick group``: ``measure_group_speed(device, k=--jobs, steps=--quick-steps)`` of
   ``benchmarks/group_speed.py`` (the group trainer; "not available" when that module is missing).
4. ``quick CPU``: the same machine's CPUs only: one single-threaded quick training per core
   (``--cpu-jobs``, default all cores), CUDA hidden; the GPU rows' ratio is against this one.
5. ``paper``: the paper recipe (ResNet-50-FPN, ``--paper-size``, batch ``--paper-batch``, weights none)
   trained ``--paper-steps`` steps, images/s in steady state (after the first ``PAPER_SKIP`` steps),
   as the preset stands (bfloat16 autocast where native + channels-last + data-loading workers on CUDA),
   in float32 NCHW with inline data (the recipe before, as at 5ed331a) and in bfloat16 inline; the
   ratio is against float32. Peak GPU memory (``torch.cuda.max_memory_allocated``) per run.

``--budget-s`` bounds the whole run: a section that no longer fits its minimum estimate is skipped
("skipped: budget") and every subprocess is killed at the budget's end. ``--device cpu`` runs every
section on the CPU (a smoke run: the ``quick old`` row is then the CPU row).

Usage (here, a CPU smoke run):
    PYTHONPATH=src nice .venv/bin/python benchmarks/gpu_study.py --device cpu --budget-s 480 \
        --study tiny --jobs 2 --quick-steps 12 --paper-size 128x96 --paper-batch 1 --paper-steps 4

On the GPU machine (kit: ``../shared/tools/device/README.md``): from the project root run
``bash ../shared/tools/device/prepare.sh``; device ``run`` call 1 with carry
``[".dev/sample/ycbv_real_frames"]`` and command
``mkdir -p /tmp/sample && cp -a .dev/sample/ycbv_real_frames /tmp/sample/ && du -sh /tmp/sample``;
at once device ``run`` call 2 with carry ``[".dev/sample/models", ".dev/whl", ".gl", ".dev/env.sh"]``,
``timeout_s`` 480 and command::

    source .dev/env.sh && python3 benchmarks/gpu_study.py --device cuda --budget-s 420 \
        --workdir /tmp/gpu_study --out $OUT/gpu_study.json

then ``bash ../shared/tools/device/restore.sh`` (``git status`` must show no deleted file).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SKIP = 5  # quick steps left out of the steady-state rate (warm-up: allocator, kernel choice)
PAPER_SKIP = 10  # paper steps left out (one block of the CUDA loss log, which reads every 10 steps)
#: Minimum seconds a section needs to be started (device "cuda" / "cpu").
MIN_S = {
    "study": {"cuda": 120, "cpu": 120},
    "quick": {"cuda": 40, "cpu": 60},
    "group": {"cuda": 40, "cpu": 60},
    "cpu": {"cuda": 40, "cpu": 60},
    "paper": {"cuda": 35, "cpu": 60},
}
#: The paper variants: name -> (TrainConfig overrides, data workers; None = the engine's choice).
PAPER_VARIANTS: dict[str, tuple[dict[str, Any], int | None]] = {
    "preset": ({}, None),
    "fp32": ({"amp_dtype": "none", "channels_last": False}, 0),
    "bf16 inline": ({}, 0),
}


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class Budget:
    """Seconds left of ``--budget-s`` since the start."""

    def __init__(self, seconds: float) -> None:
        self.end = time.perf_counter() + seconds

    def left(self) -> float:
        return self.end - time.perf_counter()

    def fits(self, section: str, device: str) -> bool:
        return self.left() >= MIN_S[section]["cuda" if device == "cuda" else "cpu"]


# ---------------------------------------------------------------------- worker processes
def _steady(run: Path, skip: int) -> tuple[int, float]:
    """(steps, seconds) of a run's log after its first ``skip`` steps."""
    with open(run / "train_log.csv") as f:
        secs = [float(r["seconds"]) for r in csv.DictReader(f)]
    secs = secs[min(skip, len(secs) - 1) :]
    return len(secs), sum(secs)


def worker(args: argparse.Namespace) -> None:
    """One training (``quick`` or ``paper``) or the group measurement; prints one JSON line."""
    import torch

    out: dict[str, Any]
    if args.worker == "group":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        try:
            from group_speed import measure_group_speed
        except ImportError as exc:  # the group trainer's benchmark is not there (yet)
            print(json.dumps({"unavailable": f"{type(exc).__name__}: {exc}"}), flush=True)
            return
        out = dict(measure_group_speed(args.device, args.jobs, args.quick_steps, preset="quick"))
        print(json.dumps(out, default=str), flush=True)
        return
    from twingap.train.config import load_config
    from twingap.train.engine import train

    run = Path(args.run)
    shutil.rmtree(run, ignore_errors=True)
    common = {"checkpoint_every": 0, "max_loss_ratio": 0, "device": args.device}
    if args.worker == "quick":
        cfg = load_config("quick", iterations=args.quick_steps, threads=1, **common)
        workers, skip = 0, SKIP
    else:
        over, workers = PAPER_VARIANTS[args.variant]
        w, h = (int(v) for v in args.paper_size.split("x"))
        cfg = load_config(
            "paper",
            weights="none",
            image_size=(w, h),
            batch_size=args.paper_batch,
            iterations=args.paper_steps,
            **common,
            **over,
        )
        skip = min(PAPER_SKIP, args.paper_steps // 2)
    t0 = time.perf_counter()
    train(args.data, run, cfg, progress=False, data_workers=workers)
    wall = time.perf_counter() - t0
    steps, secs = _steady(run, skip)
    meta = json.loads((run / "meta.json").read_text())
    cuda = args.device == "cuda" and torch.cuda.is_available()
    out = {
        "steps": steps,
        "seconds": secs,
        "steps_s": steps / secs if secs > 0 else float("nan"),
        "images_s": steps * cfg.batch_size / secs if secs > 0 else float("nan"),
        "cpu_s_step": meta["cpu_seconds_loop"] / cfg.iterations,
        "wall": wall,
        "amp": meta.get("amp_dtype_used"),
        "data_workers": meta.get("data_workers"),
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
    }
    print(json.dumps(out), flush=True)


def _spawn(args: argparse.Namespace, kind: str, extra: list[str], env: dict[str, str] | None = None):
    cmd = [
        sys.executable,
        "-u",
        __file__,
        "--worker",
        kind,
        "--device",
        args.device,
        "--data",
        str(args.data),
    ]
    cmd += [
        "--jobs",
        str(args.jobs),
        "--quick-steps",
        str(args.quick_steps),
        "--paper-size",
        args.paper_size,
        "--paper-batch",
        str(args.paper_batch),
        "--paper-steps",
        str(args.paper_steps),
        *extra,
    ]
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}
    )


def _collect(procs: list[subprocess.Popen], budget: Budget) -> list[dict[str, Any] | str]:
    """Each process's JSON line, or a one-line reason (killed at the budget, failed)."""
    out: list[dict[str, Any] | str] = []
    for p in procs:
        try:
            stdout, stderr = p.communicate(timeout=max(1.0, budget.left()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            out.append("killed: budget")
            continue
        lines = [x for x in stdout.splitlines() if x.startswith("{")]
        if p.returncode != 0 or not lines:
            tail = (stderr.strip().splitlines() or ["no output"])[-1]
            out.append(f"failed ({p.returncode}): {tail[:150]}")
        else:
            out.append(json.loads(lines[-1]))
    return out


# ---------------------------------------------------------------------- sections
def study_section(args: argparse.Namespace, budget: Budget) -> dict[str, Any]:
    """Run the short study in a subprocess; returns its timings (and the clean render's folder)."""
    from twingap.study.config import config_to_toml, preset

    run_dir = args.workdir / "study"
    shutil.rmtree(run_dir, ignore_errors=True)
    cfg = preset(args.study)
    if args.study == "quick":
        cfg.conditions, cfg.seeds = ["clean", "noise-3"], [0]
        cfg.scenes.twin_views, cfg.scenes.composed = 40, 40
        steps = args.study_steps
        cfg.train.overrides = {"iterations": steps, "warmup_iters": min(60, steps // 4), "max_loss_ratio": 0}
    cfg.train.overrides = {**cfg.train.overrides, "device": args.device}
    cfg.executor.workers = args.study_workers
    toml = args.workdir / "study.toml"
    toml.write_text(config_to_toml(cfg))
    cmd = [sys.executable, "-m", "twingap", "study", "--config", str(toml), "-o", str(run_dir), "--no-report"]
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        limit = min(args.study_max_s, budget.left() - 4 * MIN_S["paper"]["cuda"])
        log, _ = p.communicate(timeout=max(1.0, limit))
        status = "done" if p.returncode == 0 else f"exit {p.returncode}: {log.strip().splitlines()[-1][:120]}"
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        status = "killed: budget"
    out = {"status": status, "wall": time.perf_counter() - t0, **study_timings(run_dir)}
    clean = run_dir / "datasets" / "clean"
    out["clean"] = str(clean) if (clean / "coco.json").is_file() else None
    return out


def study_timings(run_dir: Path) -> dict[str, Any]:
    """Seconds by stage from the manifests (as the report's timings: render once per condition)."""

    def read(p: Path) -> dict[str, Any]:
        return json.loads(p.read_text()) if p.is_file() else {}

    stages = {"render": 0.0, "train": 0.0, "predict": 0.0, "evaluate": 0.0}
    render: dict[str, float] = {}
    jobs = [read(p) for p in sorted((run_dir / "jobs").glob("*/manifest.json"))]
    for j in jobs:
        for k in ("train", "predict", "evaluate"):
            stages[k] += j.get("timings", {}).get(k, 0.0)
        render[j["condition"]] = max(render.get(j["condition"], 0.0), j.get("render_seconds", 0.0))
    stages["render"] = sum(render.values())
    tests = sum(read(p).get("seconds", 0.0) for p in (run_dir / "testsets").glob("*/manifest.json"))
    return {
        "jobs_done": len(jobs),
        "scenes": read(run_dir / "scenes" / "manifest.json").get("seconds", 0.0),
        "testsets": tests,
        **stages,
    }


def _synthetic(workdir: Path) -> Path:
    """A synthetic training set at the quick size (when the study rendered none)."""
    from twingap.train.paste import toy_dataset

    root = workdir / "synthetic"
    if not (root / "coco.json").is_file():
        toy_dataset(root, n_images=64, size=(320, 240))
    return root


def _aggregate(results: list[dict[str, Any] | str]) -> tuple[float, str]:
    ok = [r for r in results if isinstance(r, dict)]
    bad = [r for r in results if isinstance(r, str)]
    note = f"{len(ok)}/{len(results)} procs" + (f"; {bad[0]}" if bad else "")
    if ok:
        note += f"; {ok[0]['amp']}; {sum(r['cpu_s_step'] for r in ok) / len(ok):.3f} CPU s/step"
    return (sum(r["steps_s"] for r in ok) if ok else float("nan")), note


def _quick_trainings(
    args: argparse.Namespace, budget: Budget, root: Path, n: int, extra: list[str], env: dict[str, str]
) -> tuple[list[dict[str, Any] | str], tuple[float, str]]:
    """``n`` quick trainings side by side (runs in ``root/<i>``); their results and aggregate steps/s."""
    procs = [_spawn(args, "quick", ["--run", str(root / f"{i}"), *extra], env) for i in range(n)]
    res = _collect(procs, budget)
    return res, _aggregate(res)


def _group_rate(res: dict[str, Any]) -> float:
    """Aggregate steps/s of the group path in :func:`group_speed.measure_group_speed`'s result."""
    for key in ("group_steps_per_s",):
        if isinstance(res.get(key), (int, float)):
            return float(res[key])
    return float("nan")


def run(args: argparse.Namespace) -> dict[str, Any]:
    budget = Budget(args.budget_s)
    args.workdir.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, str, str, str]] = []  # measure, value, ratio, note
    report: dict[str, Any] = {"device": args.device, "args": {k: str(v) for k, v in vars(args).items()}}
    import torch

    gpu = torch.cuda.get_device_name(0) if args.device == "cuda" and torch.cuda.is_available() else None
    print(
        f"device {args.device} ({gpu or 'no GPU'}), {_cores()} cores, torch {torch.__version__}", flush=True
    )

    study: dict[str, Any] | None = None
    if args.study != "none" and budget.fits("study", args.device):
        study = study_section(args, budget)
        report["study"] = study
        print(f"study: {study['status']} in {study['wall']:.0f} s", flush=True)
    args.data = Path(study["clean"]) if study and study.get("clean") else _synthetic(args.workdir)

    cpu_env = {"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    old = float("nan")
    if budget.fits("quick", args.device):
        env = cpu_env if args.device == "cpu" else {"OMP_NUM_THREADS": "1"}
        res, (old, note) = _quick_trainings(args, budget, args.workdir / "quick", args.jobs, [], env)
        report["quick_old"] = res
        rows.append((f"quick old path ({args.jobs} procs, {args.device})", f"{old:.3g} steps/s", "", note))
    else:
        rows.append(("quick old path", "skipped: budget", "", ""))

    group = float("nan")
    if budget.fits("group", args.device):
        res = _collect([_spawn(args, "group", [])], budget)[0]
        report["quick_group"] = res
        if isinstance(res, dict) and "unavailable" in res:
            print(f"the group path is not available ({res['unavailable']}); continuing", flush=True)
            rows.append((f"quick group path (k={args.jobs})", "not available", "", res["unavailable"]))
        elif isinstance(res, str):
            rows.append((f"quick group path (k={args.jobs})", "failed", "", res))
        else:
            group = _group_rate(res)
            note = ", ".join(f"{k} {v}" for k, v in res.items())[:90]
            rows.append((f"quick group path (k={args.jobs})", f"{group:.3g} steps/s", "", note))
    else:
        rows.append(("quick group path", "skipped: budget", "", ""))

    cpu = old if args.device == "cpu" else float("nan")
    if args.device != "cpu":
        if budget.fits("cpu", args.device):
            n = args.cpu_jobs or _cores()
            cpu_only = ["--device-override", "cpu"]
            res, (cpu, note) = _quick_trainings(args, budget, args.workdir / "cpu", n, cpu_only, cpu_env)
            report["quick_cpu"] = res
            rows.append((f"quick CPU only ({n} procs x 1 thread)", f"{cpu:.3g} steps/s", "1.00", note))
        else:
            rows.append(("quick CPU only", "skipped: budget", "", ""))
    for i, rate in enumerate((old, group)):
        if args.device != "cpu" and rate == rate and cpu == cpu and cpu > 0:  # not NaN
            m, v, _, note = rows[i]
            rows[i] = (m, v, f"{rate / cpu:.2f}", note + "; ratio vs CPU only")
    if group == group and old == old and old > 0:
        rows.append(("quick group / old path", "", f"{group / old:.2f}", ""))

    paper: dict[str, Any] = {}
    for variant in PAPER_VARIANTS:
        if not budget.fits("paper", args.device):
            rows.append((f"paper {variant}", "skipped: budget", "", ""))
            continue
        run_dir = args.workdir / "paper" / variant.replace(" ", "_")
        res = _collect([_spawn(args, "paper", ["--run", str(run_dir), "--variant", variant])], budget)[0]
        paper[variant] = res
        label = f"paper {variant} ({args.paper_size}, batch {args.paper_batch})"
        if isinstance(res, str):
            rows.append((label, res, "", ""))
            continue
        peak = f"; peak {res['peak_gib']:.2f} GiB" if res["peak_gib"] is not None else ""
        note = f"{res['amp']}, {res['data_workers']} data workers, {res['steps']} steps{peak}"
        rows.append((label, f"{res['images_s']:.3g} img/s", "", note))
    report["paper"] = paper
    fp32 = paper.get("fp32")
    if isinstance(fp32, dict) and fp32["images_s"] > 0:
        for i, (m, v, _, note) in enumerate(rows):
            res = paper.get(m.removeprefix("paper ").split(" (")[0])
            if m.startswith("paper ") and isinstance(res, dict):
                rows[i] = (m, v, f"{res['images_s'] / fp32['images_s']:.2f}", note + " (ratio vs fp32)")

    if study is not None:
        keys = ("scenes", "testsets", "render", "train", "predict", "evaluate")
        parts = ", ".join(f"{k} {study[k]:.0f}" for k in keys)
        rows.append(
            (f"study {args.study} ({study['jobs_done']} jobs)", f"{study['wall']:.0f} s wall", "", parts)
        )
        rows.append(("", study["status"], "", "stage seconds summed over jobs"))
    else:
        rows.append(("study", "skipped" if args.study == "none" else "skipped: budget", "", ""))

    width, vw = max(len(r[0]) for r in rows), max(len(r[1]) for r in rows)
    print(f"\n{'measure':<{width}}  {'value':>{vw}}  {'ratio':>6}  note")
    for m, v, r, note in rows:
        print(f"{m:<{width}}  {v:>{vw}}  {r:>6}  {note}")
    print(f"(budget {args.budget_s:.0f} s, {budget.left():.0f} s left)")
    report["rows"] = rows
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1, default=str))
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--budget-s", type=float, default=420.0, help="seconds for the whole run")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/twingap_gpu_study"))
    ap.add_argument("--out", type=Path, default=None, help="write every measurement as JSON here")
    ap.add_argument("--study", default="quick", choices=("quick", "tiny", "none"))
    ap.add_argument("--study-steps", type=int, default=150, help="training steps of the short quick study")
    ap.add_argument("--study-workers", type=int, default=2, help="study jobs side by side")
    ap.add_argument("--study-max-s", type=float, default=200.0, help="the study is killed after this")
    ap.add_argument("--jobs", type=int, default=12, help="quick trainings side by side (old path) / group k")
    ap.add_argument("--quick-steps", type=int, default=60)
    ap.add_argument("--cpu-jobs", type=int, default=0, help="CPU-only trainings side by side (0: all cores)")
    ap.add_argument("--paper-size", default="640x480", help="paper training size WxH")
    ap.add_argument("--paper-batch", type=int, default=8)
    ap.add_argument("--paper-steps", type=int, default=40)
    # worker mode (internal)
    ap.add_argument("--worker", choices=("quick", "paper", "group"), help=argparse.SUPPRESS)
    ap.add_argument("--device-override", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--run", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--variant", default="preset", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        args.device = args.device_override or args.device
        worker(args)
    else:
        run(args)


if __name__ == "__main__":
    main()
