"""Training regression: the quick recipe at an earlier commit against the working tree, side by side.

Checks out ``--base`` (default ``5ed331a``, before the group trainer and the deferred loss log) into a
temporary git worktree and trains the same quick configuration (``--steps`` steps, one thread, no
checkpoints) on the same clean render with both sources at once: two processes side by side, as a
study runs its jobs, in ``--rounds`` rounds with the sides swapped every round. Prints the loop's
process CPU seconds per step of each side and their ratio (working tree / base; the issue's bar is
1.05), and whether the two final weights are bit-identical (a refactor of the step must not change
the function: same machine, same thread count, same weights).

Usage:
    nice .venv/bin/python benchmarks/train_regression.py --dataset runs/demo/datasets/clean --steps 120
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: One training in a fresh process with the given source tree first on the path.
_TRAIN = """
import sys, torch
sys.path.insert(0, {src!r})
import twingap.train.engine as e
from twingap.train.config import load_config
torch.set_num_threads(1)
cfg = load_config("quick", iterations={steps}, checkpoint_every=0, max_loss_ratio=0.0, threads=1)
assert e.__file__.startswith({src!r}), e.__file__
e.train({dataset!r}, {run!r}, cfg, progress=False)
"""


def _train_pair(srcs: dict[str, Path], dataset: Path, steps: int, out: Path) -> dict[str, dict]:
    """Train with each source at once; returns each side's meta.json and weights path."""
    procs = {}
    for name, src in srcs.items():
        code = _TRAIN.format(src=str(src), steps=steps, dataset=str(dataset), run=str(out / name))
        procs[name] = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE)
    res = {}
    for name, p in procs.items():
        err = p.communicate()[1]
        if p.returncode:
            raise SystemExit(f"{name} training failed: {err.decode()[-800:]}")
        meta = json.loads((out / name / "meta.json").read_text())
        res[name] = {"meta": meta, "weights": out / name / "model_final.pt"}
    return res


def _same_weights(a: Path, b: Path) -> bool:
    import torch

    wa, wb = torch.load(a, weights_only=False)["model"], torch.load(b, weights_only=False)["model"]
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def main() -> None:
    """Command line: print CPU seconds per step of base and working tree, their ratio, weights equal."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--dataset", type=Path, required=True, help="a rendered training set (coco.json + images)"
    )
    ap.add_argument("--base", default="5ed331a", help="the commit to compare with")
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="twingap_regress_") as tmp:
        base_tree = Path(tmp) / "base"
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "-q", "--detach", str(base_tree), args.base],
            check=True,
        )
        try:
            per_step: dict[str, list[float]] = {"base": [], "tree": []}
            same = []
            for r in range(args.rounds):
                order = ["base", "tree"] if r % 2 == 0 else ["tree", "base"]
                srcs = {n: (base_tree if n == "base" else REPO) / "src" for n in order}
                res = _train_pair(srcs, args.dataset.resolve(), args.steps, Path(tmp) / f"r{r}")
                for n in order:
                    m = res[n]["meta"]
                    per_step[n].append(m["cpu_seconds_loop"] / m["steps_this_session"])
                same.append(_same_weights(res["base"]["weights"], res["tree"]["weights"]))
                b, t = per_step["base"][-1], per_step["tree"][-1]
                verdict = "identical" if same[-1] else "DIFFER"
                print(f"round {r}: CPU s/step base {b:.4f}, tree {t:.4f}; weights {verdict}", flush=True)
        finally:
            subprocess.run(
                ["git", "-C", str(REPO), "worktree", "remove", "--force", str(base_tree)], check=False
            )
    b, t = statistics.median(per_step["base"]), statistics.median(per_step["tree"])
    print(f"quick recipe, {args.steps} steps, 2 side by side, {args.rounds} rounds (median):")
    print(f"  base {args.base}: {b:.4f} CPU s/step")
    print(f"  working tree:   {t:.4f} CPU s/step   ratio {t / b:.3f} (bar: <= 1.05)")
    print(f"  final weights bit-identical in {sum(same)} of {len(same)} rounds")


if __name__ == "__main__":
    main()
