"""Training speed: options of the ``quick`` recipe as ratios against today's, and the clean AP they reach.

Both parts use the clean training set of the quick study (scenes + clean render, built once into
``--workdir``, or an existing quick study run folder); its ``ycb-real`` test set is the 40 twinned
real frames of videos 0000 + 0001.

* ``speed`` (default): every option trains ``--steps`` steps on a subset of ``--images`` images
  (single-threaded, like a study job), in ``--rounds`` interleaved rounds (option order shuffled per
  round); prints the median wall seconds per step and the loop's process CPU seconds per step,
  each with its ratio to ``today`` measured in the same rounds. ``--jobs 2`` runs two copies
  side by side, as the quick study runs its trainings.
* ``ap``: full trainings of ``--candidates`` x ``--seeds``, ``--jobs`` side by side (list
  ``today`` among the candidates to pair it with them in time), each followed by prediction on
  the twinned frames and COCO bbox / segm AP. Prints per run the wall and CPU seconds per step,
  the training seconds (feature cache included), AP; then per candidate the mean and sd of the
  clean bbox AP over seeds and the ratios of s/step, CPU s/step, training wall and CPU time to
  ``today``. Rows are appended to ``WORKDIR/ap_results.jsonl``; ``summary`` prints the table
  again from it.

Options are overrides (``OPTIONS``) of ``TODAY``, the ``quick`` recipe before the speed options;
``quick`` is the preset as it stands. The process CPU time of a one-thread job is inflated less
than wall time by other load on a shared machine, but neither is stable there: read the ratios of
runs made side by side, never absolute numbers across runs.

Usage:
    nice .venv/bin/python benchmarks/train_speed.py speed --workdir /tmp/tspeed --jobs 1 --steps 40
    nice .venv/bin/python benchmarks/train_speed.py ap --workdir /tmp/tspeed --candidates quick today \
        --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

#: The recipe of the ``quick`` preset before the speed options (fp32, 550 steps): the baseline.
TODAY: dict[str, Any] = {
    "amp_dtype": "none",
    "channels_last": False,
    "fast_kernels": False,
    "iterations": 550,
    "warmup_iters": 60,
    "ema_decay": 0.98,
    "ema_start": 0.5,
    "rpn_pre_nms_train": 600,
    "rpn_post_nms_train": 300,
    "box_batch_per_image": 48,
}
_FAST = {"amp_dtype": "bfloat16", "channels_last": True}
_QUICK = {**_FAST, "fast_kernels": True}
_FEWER = {"rpn_pre_nms_train": 300, "rpn_post_nms_train": 150, "box_batch_per_image": 32}

#: Options measured against ``today`` (each a set of overrides on top of ``TODAY``; None = the
#: ``quick`` preset as it stands).
OPTIONS: dict[str, dict[str, Any] | None] = {
    "today": {},
    "bf16": {"amp_dtype": "bfloat16"},
    "channels_last": {"channels_last": True},
    "bf16+cl": _FAST,
    "rpn300/150": {"rpn_pre_nms_train": 300, "rpn_post_nms_train": 150},
    "rois32": {"box_batch_per_image": 32},
    "bf16+cl+rpn+rois32": {**_FAST, **_FEWER},
    "fast_kernels": {"fast_kernels": True},
    "bf16+cl+fk": {**_FAST, "fast_kernels": True},
    "bf16+cl+fk+rpn300/150": {
        **_FAST,
        "fast_kernels": True,
        "rpn_pre_nms_train": 300,
        "rpn_post_nms_train": 150,
    },
    # full-length candidates (the speed part measures per step; these differ in steps)
    "fast-300": {**_FAST, **_FEWER, "iterations": 300, "warmup_iters": 40},
    "fast-400": {**_FAST, **_FEWER, "iterations": 400, "warmup_iters": 50},
    "today-400": {"iterations": 400, "warmup_iters": 50},
    "bf16+cl-400": {**_FAST, "iterations": 400, "warmup_iters": 50},
    "bf16+cl-330": {**_FAST, "iterations": 330, "warmup_iters": 40},
    # towards a cheaper training at the same AP (550 -> 450 steps with fewer proposals / ROIs,
    # a longer weight average), and what a longer average or more augmentation variants buy alone
    "fp32+cl+fk": {"channels_last": True, "fast_kernels": True},  # the quick preset where bf16 is not native
    "ema99": {**_QUICK, "ema_decay": 0.99},
    "aug4": {**_QUICK, "aug_variants": 4},
    "fast450": {**_QUICK, **_FEWER, "iterations": 450, "warmup_iters": 50, "ema_decay": 0.99},
    "fast450+aug4": {**_QUICK, **_FEWER, "iterations": 450, "warmup_iters": 50, "aug_variants": 4},
    "aug1": {**_QUICK, "aug_variants": 1},
    "fast450+aug1": {**_QUICK, **_FEWER, "iterations": 450, "warmup_iters": 50, "aug_variants": 1},
    "quick": None,
}
SPEED_DEFAULT = ["today", "bf16+cl", "fast_kernels", "bf16+cl+fk", "rpn300/150", "bf16+cl+fk+rpn300/150"]


def _py() -> list[str]:
    return [sys.executable, "-u"]


def option_config(name: str, **kw: Any):
    """The TrainConfig of an option (``quick`` = the preset unchanged)."""
    from twingap.train.config import load_config

    if name not in OPTIONS:
        raise SystemExit(f"unknown option {name!r} (have: {', '.join(OPTIONS)})")
    over = {} if OPTIONS[name] is None else {**TODAY, **OPTIONS[name]}
    return load_config("quick", **{**over, **kw})


# ---------------------------------------------------------------------- shared inputs
def prepare(workdir: Path) -> dict[str, Path]:
    """Build the quick study's scenes, its ycb-real test set and the clean render (once)."""
    from twingap.io import write_json_atomic
    from twingap.study.config import preset
    from twingap.study.runner import prepare_shared
    from twingap.study.stages import load_stages

    cfg = preset("quick")
    cfg.test_sets = [t for t in cfg.test_sets if t.name == "ycb-real"]
    stages = load_stages("real")
    t0 = time.perf_counter()
    shared = prepare_shared(workdir, cfg, stages)
    clean = workdir / "datasets" / "clean"
    if not (clean / "study_dataset.json").is_file():  # the runner's marker: a quick study's folder works too
        t1 = time.perf_counter()
        stages.render(cfg, workdir / "scenes", "clean", clean)
        write_json_atomic(clean / "study_dataset.json", {"seconds": time.perf_counter() - t1})
    from twingap.study.runner import scored_categories

    write_json_atomic(workdir / "cats.json", scored_categories(shared, "ycb-real"))
    print(f"inputs ready in {workdir} ({time.perf_counter() - t0:.0f} s)", flush=True)
    return {"clean": clean, "test": workdir / "testsets" / "ycb-real"}


def subset(clean: Path, out: Path, n: int) -> Path:
    """A dataset folder with the first ``n`` images of ``clean`` (images linked, not copied)."""
    if (out / "coco.json").is_file():
        return out
    coco = json.loads((clean / "coco.json").read_text())
    ids = {im["id"] for im in coco["images"][:n]}
    coco["images"] = coco["images"][:n]
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] in ids]
    out.mkdir(parents=True, exist_ok=True)
    for entry in clean.iterdir():
        if entry.is_dir():
            (out / entry.name).symlink_to(entry.resolve())
    (out / "coco.json").write_text(json.dumps(coco))
    return out


# ---------------------------------------------------------------------- speed
def speed_worker(args: argparse.Namespace) -> None:
    """One copy of the speed rounds; prints one JSON line per (round, option)."""
    from twingap.train.engine import train

    ds = subset(args.workdir / "datasets" / "clean", args.workdir / f"subset{args.images}", args.images)
    rng = random.Random(args.worker)
    for r in range(args.rounds):
        names = list(args.options)
        rng.shuffle(names)
        for name in names:
            cfg = option_config(
                name, iterations=args.steps, warmup_iters=5, checkpoint_every=0, threads=1, max_loss_ratio=0
            )
            run = args.workdir / "speed" / f"w{args.worker}_r{r}_{name.replace('/', '_')}_{time.time_ns()}"
            train(ds, run, cfg, progress=False)
            with open(run / "train_log.csv") as f:
                secs = [float(row["seconds"]) for row in csv.DictReader(f)][3:]  # skip warm-up steps
            meta = json.loads((run / "meta.json").read_text())
            print(
                json.dumps(
                    {
                        "round": r,
                        "option": name,
                        "s_step": statistics.median(secs),
                        "cpu_step": meta["cpu_seconds_loop"] / args.steps,
                        "amp": meta.get("amp_dtype_used"),
                    }
                ),
                flush=True,
            )


def speed(args: argparse.Namespace) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        *_py(),
        __file__,
        "_speed_worker",
        "--workdir",
        str(args.workdir),
        "--steps",
        str(args.steps),
        "--rounds",
        str(args.rounds),
        "--images",
        str(args.images),
        "--options",
        *args.options,
    ]
    procs = [
        subprocess.Popen([*cmd, "--worker", str(w)], stdout=subprocess.PIPE, text=True, env=env)
        for w in range(args.jobs)
    ]
    rows = []
    for p in procs:
        out, _ = p.communicate()
        if p.returncode:
            raise SystemExit(f"speed worker failed ({p.returncode})")
        rows += [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    by: dict[str, list[dict]] = {}
    for row in rows:
        by.setdefault(row["option"], []).append(row)

    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in by[name])

    print(
        f"\n{args.jobs} single-threaded job(s) side by side, {args.steps} steps per run,"
        f" {args.rounds} rounds, batch {option_config('today').batch_size}, {args.images}-image subset;"
        " wall s/step is the median step, CPU s/step the loop's process time per step"
        " (shared machine: read the ratios)"
    )
    print(f"{'option':<22} {'s/step':>7} {'ratio':>6} {'CPU s/step':>10} {'ratio':>6}  runs")
    for name in args.options:
        w, c = med(name, "s_step"), med(name, "cpu_step")
        print(
            f"{name:<22} {w:7.3f} {med('today', 's_step') / w:5.2f}x {c:10.3f}"
            f" {med('today', 'cpu_step') / c:5.2f}x  {len(by[name])}"
        )


# ---------------------------------------------------------------------- ap
def ap_job(args: argparse.Namespace) -> None:
    """Train one (candidate, seed), predict on ycb-real, print one JSON line of results."""
    from twingap.study.real import RealStages
    from twingap.study.runner import scored_categories
    from twingap.train.engine import train

    name, seed = args.candidate, args.seed
    cfg = option_config(name, seed=seed, threads=1, checkpoint_every=0)
    run = args.workdir / "ap" / f"{name.replace('/', '_')}_s{seed}_{time.time_ns()}"
    t0 = time.perf_counter()
    train(args.workdir / "datasets" / "clean", run, cfg, progress=False)
    t_train = time.perf_counter() - t0
    stages = RealStages()
    test = args.workdir / "testsets" / "ycb-real"
    t1 = time.perf_counter()
    stages.predict(None, run, test, run / "preds.json")
    t_pred = time.perf_counter() - t1
    cats = json.loads((args.workdir / "cats.json").read_text())
    ap = {
        iou: stages.per_image_eval(test / "gt.json", run / "preds.json", iou, cats).metrics()["AP"]
        for iou in ("bbox", "segm")
    }
    held_out = {}  # the other test sets of the workdir (a quick study's held-out video): generalisation
    others = sorted(p for p in (args.workdir / "testsets").iterdir() if p.name != "ycb-real")
    shared = {
        "scenes": json.loads((args.workdir / "scenes" / "manifest.json").read_text()),
        "testsets": {p.name: json.loads((p / "manifest.json").read_text()) for p in others},
    }
    for other in others:
        stages.predict(None, run, other, run / f"preds_{other.name}.json")
        cats_other = scored_categories(shared, other.name)
        ev = stages.per_image_eval(other / "gt.json", run / f"preds_{other.name}.json", "bbox", cats_other)
        held_out[other.name] = ev.metrics()["AP"]
    meta = json.loads((run / "meta.json").read_text())
    print(
        json.dumps(
            {
                "held_out_bbox": held_out,
                "candidate": name,
                "seed": seed,
                "iterations": cfg.iterations,
                "s_step": meta["seconds_loop"] / cfg.iterations,
                "cpu_step": meta["cpu_seconds_loop"] / cfg.iterations,
                "cpu_train": meta["cpu_seconds_cache"] + meta["cpu_seconds_loop"],
                "cpu_cache": meta["cpu_seconds_cache"],
                "train_s": t_train,
                "cache_s": meta["seconds_cache"],
                "predict_s": t_pred,
                "amp": meta.get("amp_dtype_used"),
                "bbox": ap["bbox"],
                "segm": ap["segm"],
            }
        ),
        flush=True,
    )


def ap(args: argparse.Namespace) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # pairs side by side: today next to each candidate, seed by seed
    queue = [(c, s) for s in args.seeds for c in args.candidates]
    running: list[tuple[subprocess.Popen, tuple[str, int]]] = []
    rows = []
    log = open(args.workdir / "ap_results.jsonl", "a")

    def report(p: subprocess.Popen, job: tuple[str, int]) -> None:
        out, _ = p.communicate()
        got = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        if p.returncode or not got:
            print(f"{job}: failed ({p.returncode})", flush=True)
            return
        r = got[-1]
        rows.append(r)
        log.write(json.dumps(r) + "\n")
        log.flush()
        print(
            f"{r['candidate']:<20} seed {r['seed']}: {r['s_step']:.3f} s/step ({r['cpu_step']:.3f} CPU)"
            f" x {r['iterations']}, train {r['train_s']:.0f} s ({r['cpu_train']:.0f} CPU, cache"
            f" {r['cpu_cache']:.0f} CPU), predict {r['predict_s']:.0f} s,"
            f" bbox AP {100 * r['bbox']:.1f} segm {100 * r['segm']:.1f} [{r['amp']}]"
            + "".join(f", {k} bbox {100 * v:.1f}" for k, v in r.get("held_out_bbox", {}).items()),
            flush=True,
        )

    while queue or running:
        while queue and len(running) < args.jobs:
            c, s = queue.pop(0)
            cmd = [
                *_py(),
                __file__,
                "_ap_job",
                "--workdir",
                str(args.workdir),
                "--candidate",
                c,
                "--seed",
                str(s),
            ]
            running.append((subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env), (c, s)))
        time.sleep(2)
        for p, job in [x for x in running if x[0].poll() is not None]:
            running.remove((p, job))
            report(p, job)
    summarize(rows)


def summarize(rows: list[dict]) -> None:
    """Per candidate: mean / sd of bbox and segm AP over seeds, per-step and training-time ratios to today.

    Times are given as wall seconds and as process CPU seconds (the job's one thread), which a
    loaded machine inflates less; the ratios divide today's mean by the candidate's.
    """
    by: dict[str, list[dict]] = {}
    for r in rows:
        by.setdefault(r["candidate"], []).append(r)
    base = by.get("today")
    keys = ("s_step", "cpu_step", "train_s", "cpu_train")
    print(
        f"\n{'candidate':<20} {'runs':>4} {'bbox AP':>13} {'segm AP':>8} {'s/step':>7} {'CPU/step':>8}"
        f" {'train s':>8} {'CPU s':>6}   ratios to today: s/step CPU/step train CPU"
    )
    for name, rs in by.items():
        b = [100 * r["bbox"] for r in rs]
        sd = f"+-{statistics.stdev(b):.1f}" if len(b) > 1 else ""
        m = {k: statistics.mean(r[k] for r in rs) for k in keys}
        ratios = ""
        if base:
            ratios = "   " + " ".join(f"{statistics.mean(r[k] for r in base) / m[k]:5.2f}x" for k in keys)
        print(
            f"{name:<20} {len(rs):4d} {statistics.mean(b):6.1f} {sd:>6} "
            f"{statistics.mean(100 * r['segm'] for r in rs):8.1f} {m['s_step']:7.3f} {m['cpu_step']:8.3f}"
            f" {m['train_s']:8.0f} {m['cpu_train']:6.0f}{ratios}"
        )


def main() -> None:
    ap_ = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap_.add_argument(
        "mode", nargs="?", default="speed", choices=["speed", "ap", "summary", "_speed_worker", "_ap_job"]
    )
    ap_.add_argument("--workdir", type=Path, default=Path("/tmp/twingap_train_speed"))
    ap_.add_argument("--jobs", type=int, default=2, help="trainings side by side")
    ap_.add_argument("--steps", type=int, default=30, help="speed: steps per run")
    ap_.add_argument("--rounds", type=int, default=2, help="speed: interleaved rounds")
    ap_.add_argument("--images", type=int, default=40, help="speed: training images (subset)")
    ap_.add_argument("--options", nargs="+", default=SPEED_DEFAULT)
    ap_.add_argument("--candidates", nargs="+", default=["today", "quick"])
    ap_.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap_.add_argument("--worker", type=int, default=0)
    ap_.add_argument("--candidate", default="today")
    ap_.add_argument("--seed", type=int, default=0)
    args = ap_.parse_args()
    args.workdir = args.workdir.resolve()
    if args.mode == "_speed_worker":
        import torch

        torch.set_num_threads(1)
        return speed_worker(args)
    if args.mode == "_ap_job":
        import torch

        torch.set_num_threads(1)
        return ap_job(args)
    if args.mode == "summary":
        rows = [json.loads(x) for x in (args.workdir / "ap_results.jsonl").read_text().splitlines() if x]
        return summarize(rows)
    prepare(args.workdir)
    speed(args) if args.mode == "speed" else ap(args)


if __name__ == "__main__":
    main()
