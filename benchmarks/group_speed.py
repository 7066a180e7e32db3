"""Training steps/s of K models: K separate processes against one group process of K members.

(a) ``separate``: K processes side by side, each training one model with
:func:`twingap.train.engine.train` (what a study runs today with ``--workers K``);
(b) ``group``: one process training the K models together with
:func:`twingap.train.group.train_group` (what a study runs on CUDA).

Each model trains ``steps`` steps of a preset (``quick`` by default) on its own toy dataset
(:func:`twingap.train.paste.toy_dataset` at the preset's image size; the datasets differ as a
study's conditions do, the seeds differ too). Speed is read from each run's ``meta.json``: the
training loop's wall seconds (feature cache and process start excluded). Aggregate steps/s:
(a) the sum over the K processes of steps / loop seconds (they run side by side); (b) K x steps /
the group's loop seconds. ``ratio`` = group / separate, measured in the same run. Wall seconds of
each variant (process start, dataset load and feature cache included) are reported too.

On CPU the separate processes each get ``threads`` (the preset's) threads, and the group process
gets the same, so on a machine with K free cores (a) uses K cores and (b) one: the ratio there
says what one core of grouping costs or gains, not a recommendation. The GPU figures come from
running it on a GPU (``--device cuda``); they are not measured here.

Usage:
    PYTHONPATH=src .venv/bin/python benchmarks/group_speed.py --device cpu --k 2 --steps 30
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parents[1] / "src"

_SEPARATE = """
from pathlib import Path
from twingap.train.config import TrainConfig
from twingap.train.engine import train
train(Path({ds!r}), Path({run!r}), TrainConfig.from_dict({cfg!r}), progress=False)
"""

_GROUP = """
from pathlib import Path
from twingap.train.config import TrainConfig
from twingap.train.group import train_group
members = [(Path(d), Path(r), TrainConfig.from_dict(c), False) for d, r, c in {members!r}]
res = train_group(members, progress=False)
bad = [r.error for r in res if r.status != "done"]
assert not bad, bad
"""


def _env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{path}" if path else str(SRC)}


def _loop_seconds(run: Path) -> float:
    return float(json.loads((run / "meta.json").read_text())["seconds_loop"])


def measure_group_speed(
    device: str,
    k: int,
    steps: int,
    preset: str = "quick",
    images: int = 16,
    workdir: str | Path | None = None,
) -> dict[str, Any]:
    """Aggregate training steps/s of ``k`` models trained in ``k`` processes and in one group.

    Args:
        device: ``"cpu"``, ``"cuda"`` or ``"auto"`` (the training device of every run).
        k: Models (processes in (a), group members in (b)), >= 1.
        steps: Training steps per model.
        preset: The training preset (``quick`` or ``paper``).
        images: Images per toy dataset.
        workdir: Where datasets and runs go (default: a temporary folder, removed afterwards).

    Returns:
        ``{"separate_steps_per_s", "group_steps_per_s", "ratio"`` (group / separate),
        ``"separate_wall_s", "group_wall_s"`` (process start to end, setup included),
        ``"separate_loop_s"`` (per process), ``"group_loop_s", "device", "k", "steps", "preset",
        "amp_dtype_used", "threads"}``.
    """
    from twingap.errors import TwingapError
    from twingap.train.config import load_config
    from twingap.train.paste import toy_dataset

    if k < 1 or steps < 1:
        raise TwingapError("group speed: k and steps must be at least 1")
    with tempfile.TemporaryDirectory(prefix="twingap_group_speed_") as tmp:
        root = Path(workdir) if workdir is not None else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        base = load_config(
            preset, device=device, iterations=steps, checkpoint_every=0, max_loss_ratio=0.0
        ).replace(warmup_iters=min(steps, load_config(preset).warmup_iters))
        size = tuple(base.image_size)
        cfgs = [base.replace(seed=i).to_dict() for i in range(k)]
        dss = [str(toy_dataset(root / f"ds{i}", n_images=images, size=size, seed=i)) for i in range(k)]

        runs = [str(root / "separate" / f"m{i}") for i in range(k)]
        t0 = time.perf_counter()
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _SEPARATE.format(ds=d, run=r, cfg=c)],
                env=_env(),
                stderr=subprocess.PIPE,
            )
            for d, r, c in zip(dss, runs, cfgs, strict=True)
        ]
        errs = [p.communicate()[1] for p in procs]
        separate_wall = time.perf_counter() - t0
        for p, e in zip(procs, errs, strict=True):
            if p.returncode:
                raise TwingapError(f"group speed: a separate run failed: {e.decode()[-500:]}")
        sep_loop = [_loop_seconds(Path(r)) for r in runs]

        group_runs = [str(root / "group" / f"m{i}") for i in range(k)]
        members = list(zip(dss, group_runs, cfgs, strict=True))
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", _GROUP.format(members=members)], env=_env(), capture_output=True
        )
        group_wall = time.perf_counter() - t0
        if proc.returncode:
            raise TwingapError(f"group speed: the group run failed: {proc.stderr.decode()[-500:]}")
        group_loop = _loop_seconds(Path(group_runs[0]))
        meta = json.loads((Path(group_runs[0]) / "meta.json").read_text())

    separate = sum(steps / s for s in sep_loop)
    group = k * steps / group_loop
    return {
        "separate_steps_per_s": round(separate, 3),
        "group_steps_per_s": round(group, 3),
        "ratio": round(group / separate, 3),
        "separate_wall_s": round(separate_wall, 2),
        "group_wall_s": round(group_wall, 2),
        "separate_loop_s": [round(s, 2) for s in sep_loop],
        "group_loop_s": round(group_loop, 2),
        "device": meta["device"],
        "amp_dtype_used": meta["amp_dtype_used"],
        "threads": base.threads,
        "k": k,
        "steps": steps,
        "preset": preset,
    }


def main() -> None:
    """Command line: print the measurement as JSON."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    ap.add_argument("--k", type=int, default=2, help="models")
    ap.add_argument("--steps", type=int, default=30, help="steps per model")
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--images", type=int, default=16, help="images per toy dataset")
    args = ap.parse_args()
    out = measure_group_speed(args.device, args.k, args.steps, args.preset, images=args.images)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
