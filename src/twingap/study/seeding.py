"""How many seeds a study runs: a fixed list, or seed blocks until its ranking replicates; a time budget.

A *seed block* is every condition trained with one seed (the study's unit of replication: the
paired differences to clean are taken within a block). Two policies decide which blocks run:

* **Fixed** (``--seeds 0,1,2`` or the preset's list): every listed block.
* **Auto** (``--seeds auto``): blocks one after another (the config's seeds first, then the next
  integers) until the ranking replicates: after each finished block, the ranking's projected
  replication tau is computed as the report's split-half table projects it
  (:func:`twingap.study.replication.rerun_projection`: the expected Kendall tau between this study
  and a rerun with as many seeds) on the ranking basis of the fix list (``cost.rank_by``: one test
  set, or the mean over the test sets), bbox AP. The study stops when that tau reaches the target
  (0.7) with at least :data:`AUTO_MIN_SEEDS` finished blocks, or at ``max_seeds`` blocks. Why 3:
  the projection itself needs 2 seeds (a seed variance), but with 2 it rests on one degree of
  freedom per condition and the report cannot check it (its split-half replication needs 3), so the
  study stops on the same number its report shows.

A **budget** (``--budget 30m``) bounds one invocation's wall time, with either policy, but never
leaves a study without an answer: a run with no finished block finishes its first block whatever
the budget (on a slow CPU that block alone can take longer). After that no job starts once the
budget is spent (jobs in flight finish), and a block does not start when the blocks measured so
far in this invocation say it would end after the budget. Every finished block counts: the run
folder's configuration then lists the finished blocks' seeds only (the report and ``compare`` see a
consistent study), and the unfinished jobs stay in ``jobs/`` to resume (rerun the same command).

Files in the run folder: ``seeds.json`` (:data:`RECORD`: the policy, the seeds asked and run, each
block's time and projected tau, why the study stopped and that reason as one sentence) and, while a
budgeted invocation runs, ``deadline.json`` (:data:`DEADLINE`: the Unix time after which
:func:`twingap.study.runner.run_job` starts no job).
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twingap.errors import TwingapError
from twingap.io import read_json, write_json_atomic

if TYPE_CHECKING:
    from twingap.study.config import StudyConfig
    from twingap.study.stats import ConditionResult

#: Projected replication tau at which ``--seeds auto`` stops.
AUTO_TARGET = 0.7
#: Finished seed blocks before ``--seeds auto`` may stop on the projection (see the module docstring).
AUTO_MIN_SEEDS = 3
#: Default cap on the seed blocks of ``--seeds auto``.
AUTO_MAX_SEEDS = 10
#: The record of how a study's seeds came about (in the run folder).
RECORD = "seeds.json"
#: The deadline of a budgeted invocation (in the run folder, removed when the invocation ends).
DEADLINE = "deadline.json"

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def now() -> float:
    """Unix time in seconds (one clock for the loop and the jobs' deadline check; tests replace it)."""
    return time.time()


def parse_budget(text: str) -> float:
    """Seconds of a duration written ``90s``, ``30m``, ``1h`` or ``1h30m`` (hours, minutes, seconds).

    Raises:
        TwingapError: For anything else, or a zero duration.
    """
    m = _DURATION.match(text.strip().lower())
    if not text.strip() or m is None or not any(m.groups()):
        raise TwingapError(f"--budget must be a duration like 30m, 1h, 90s or 1h30m, got {text!r}")
    h, mi, s = (int(g or 0) for g in m.groups())
    seconds = 3600 * h + 60 * mi + s
    if seconds <= 0:
        raise TwingapError(f"--budget must be longer than 0, got {text!r}")
    return float(seconds)


def minutes(seconds: float) -> str:
    """``"12.3 min"`` (or ``"45 s"`` under a minute)."""
    return f"{seconds:.0f} s" if seconds < 60 else f"{seconds / 60:.1f} min"


@dataclass
class SeedPolicy:
    """Which seed blocks an invocation of the study runs, and within what time.

    Attributes:
        auto: Add seed blocks until the projected tau reaches ``target`` (False: the config's
            list; None: as the run folder recorded, see :func:`twingap.study.runner.run_study`).
        target: Projected replication tau to reach (auto).
        min_seeds: Finished blocks before the projection may stop the study (auto).
        max_seeds: Cap on the study's seed blocks (auto; None: as recorded, else
            :data:`AUTO_MAX_SEEDS`).
        budget_s: Wall-time budget of this invocation in seconds (None: none).
        budget_text: The budget as the user wrote it (for messages).
    """

    auto: bool | None = False
    target: float = AUTO_TARGET
    min_seeds: int = AUTO_MIN_SEEDS
    max_seeds: int | None = None
    budget_s: float | None = None
    budget_text: str | None = None

    def check(self, cfg: StudyConfig) -> None:
        """Refuse a policy the study cannot follow (before any work).

        Raises:
            TwingapError: ``max_seeds`` < 1, or auto with fewer than 3 conditions besides clean
                (Kendall tau of fewer is not projected).
        """
        if self.max_seeds is not None and self.max_seeds < 1:
            raise TwingapError(f"--max-seeds must be at least 1, got {self.max_seeds}")
        others = [c for c in cfg.conditions if c != "clean"]
        if self.auto and len(others) < 3:
            raise TwingapError(
                f"--seeds auto needs at least 3 conditions besides clean to project the ranking's tau; "
                f"this study has {len(others)} ({', '.join(others) or 'none'})"
            )

    @property
    def budget_label(self) -> str:
        """The budget as written, or in minutes."""
        return self.budget_text or (minutes(self.budget_s) if self.budget_s else "")


# ---------------------------------------------------------------------- the projection
def ranking_basis(cfg: StudyConfig) -> str:
    """What the fix list is ranked on (and the projection computed on), in words."""
    basis = "the mean over the test sets" if cfg.cost.rank_by == "mean" else cfg.cost.rank_by
    return f"{basis}, bbox"


def ranking_projection(
    cfg: StudyConfig, results: list[ConditionResult], target: float = AUTO_TARGET
) -> dict[str, Any] | None:
    """Projected replication tau of the fix list's ranking (bbox, on ``cost.rank_by``).

    For one test set, exactly the report's split-half table's projection
    (:func:`twingap.study.replication.rerun_projection`); for ``rank_by = "mean"``, the same
    projection of the conditions' differences averaged over the test sets per seed
    (:func:`twingap.study.stats.mean_over_test_sets`, the estimates that rank the fix list).

    Returns:
        ``{"basis", "tau", "seeds", "seeds_for_target", "target", "max_seeds"}`` (``tau``: the
        expected tau between this study and a rerun with as many seeds, ``seeds``); None when
        there is nothing to project (fewer than 2 paired seeds or 3 conditions).
    """
    from twingap.study.replication import rerun_projection
    from twingap.study.stats import mean_over_test_sets

    rows = [r for r in results if r.iou_type == "bbox" and not math.isnan(r.delta)]
    if cfg.cost.rank_by == "mean":
        combined = mean_over_test_sets(rows, cfg.stats.ci, cfg.stats.pool_seed_variance)
        bbox, rows = rows, []
        first = {r.condition: r for r in bbox}
        for cond, c in combined.items():
            seeds = sorted(set.intersection(*(set(r.paired_seeds) for r in bbox if r.condition == cond)))
            rows.append(
                replace(
                    first[cond],
                    test_set="mean",
                    delta=c.estimate.value,
                    se_seed=c.estimate.se_seed,
                    paired_seeds=seeds,
                )
            )
    else:
        rows = [r for r in rows if r.test_set == cfg.cost.rank_by]
    proj = rerun_projection(rows, target)
    if not proj:
        return None
    p = proj[0]
    return {
        "basis": ranking_basis(cfg),
        "tau": float(p["tau_at"][p["seeds_now"]]),
        "seeds": int(p["seeds_now"]),
        "seeds_for_target": p["seeds_for_target"],
        "target": target,
        "max_seeds": p["max_seeds"],
    }


def projection_of_run(run_dir: Path, target: float = AUTO_TARGET) -> dict[str, Any] | None:
    """:func:`ranking_projection` of a run folder's finished jobs (as its report would compute it)."""
    from twingap.study.report.analysis import collect

    res = collect(run_dir)
    return ranking_projection(res.cfg, res.results, target)


def projection_text(p: dict[str, Any] | None) -> str:
    """``projected tau 0.72 (ycb-real, bbox; tau 0.7 needs 6 seeds per run)``, or why there is none."""
    if p is None:
        return "no projected tau yet (needs 2 paired seeds)"
    need = p["seeds_for_target"]
    reach = f"{need} seed(s) per run" if need else f"more than {p['max_seeds']} seeds per run"
    return f"projected tau {p['tau']:.2f} ({p['basis']}; tau {p['target']} needs {reach})"


# ---------------------------------------------------------------------- files
def read_record(run_dir: str | Path) -> dict[str, Any] | None:
    """The run folder's ``seeds.json`` (None if it has none)."""
    path = Path(run_dir) / RECORD
    return read_json(path) if path.is_file() else None


def write_record(run_dir: str | Path, record: dict[str, Any]) -> None:
    """Write ``seeds.json``."""
    write_json_atomic(Path(run_dir) / RECORD, record)


def set_deadline(run_dir: str | Path, deadline: float | None, label: str = "") -> None:
    """Write (or, with None, remove) the deadline after which no job of the run folder starts."""
    path = Path(run_dir) / DEADLINE
    if deadline is None:
        path.unlink(missing_ok=True)
    else:
        write_json_atomic(path, {"deadline": deadline, "budget": label})


def deadline_passed(run_dir: str | Path) -> bool:
    """Whether a budgeted invocation's deadline has passed (no job may start)."""
    path = Path(run_dir) / DEADLINE
    if not path.is_file():
        return False
    try:
        return now() >= float(read_json(path)["deadline"])
    except (TwingapError, KeyError, TypeError, ValueError):
        return False
