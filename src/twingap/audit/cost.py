"""From audited levels to AP cost and a ranked fix list, using a study run's measured differences.

A study measured, per condition (``noise-2``, ``holes-1``, ...), the AP difference to clean when
every object had that flaw (``RUN_DIR/results/summary.csv``: ``condition, test_set, iou_type,
delta_AP, delta_lo, delta_hi``), and the run's configuration holds the artist hours to fix each
condition on one object. An audited level maps to the study's condition of that family and level;
the fix list ranks each (model, flaw) by AP recovered per artist hour, ``-delta_AP / hours``, with the
study's interval divided by the same hours. Caveat printed with it: the study's difference is for all
objects flawed at once, so it ranks fixes; it is not the AP this one model's fix will return.
"""

from __future__ import annotations

import csv
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from twingap.audit.levels import FAMILIES
from twingap.errors import TwingapError

SUMMARY_COLUMNS = ("condition", "test_set", "iou_type", "delta_AP", "delta_lo", "delta_hi")


@dataclass(frozen=True)
class StudyCost:
    """The study's measured cost of one condition.

    Attributes:
        condition: Condition name.
        delta: AP difference to clean (AP points; negative = the flaw hurts).
        lo: Lower end of its interval.
        hi: Upper end.
        hours: Artist hours to fix it on one object.
    """

    condition: str
    delta: float
    lo: float
    hi: float
    hours: float


@dataclass(frozen=True)
class Study:
    """What the audit reads from a study run."""

    run_dir: str
    test_set: str
    iou_type: str
    costs: dict[str, StudyCost]
    fake: bool


def condition_of(family: str, level: int) -> str | None:
    """The study condition of a family at a level (None for level 0 or an unknown level)."""
    return FAMILIES.get(family, {}).get(level)


def _hours(run_dir: Path) -> dict[str, float]:
    from twingap.artifacts.base import load_artist_hours

    if (run_dir / "study.json").is_file():
        from twingap.study.cost import artist_hours
        from twingap.study.runner import load_run_config

        return artist_hours(load_run_config(run_dir))
    return load_artist_hours()


def _is_fake(run_dir: Path) -> bool:
    if not (run_dir / "study.json").is_file():
        return False
    from twingap.study.runner import load_run_config

    return getattr(load_run_config(run_dir), "stages", "real") == "fake"


def load_study(run_dir: str | Path, test_set: str | None = None, iou_type: str = "bbox") -> Study:
    """Read a study run's summary and hours.

    Args:
        run_dir: The study's run folder.
        test_set: Which test set's differences to use (default: the first in ``summary.csv``).
        iou_type: ``"bbox"`` or ``"segm"``.

    Raises:
        TwingapError: If ``results/summary.csv`` is missing or lacks a column, or the test set /
            IoU type is not in it.
    """
    run_dir = Path(run_dir)
    path = run_dir / "results" / "summary.csv"
    if not path.is_file():
        raise TwingapError("no results/summary.csv: run `twingap report` on the study first", run_dir)
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in SUMMARY_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise TwingapError(f"summary.csv lacks column(s) {', '.join(missing)}", path)
        rows = list(reader)
    sets = list(dict.fromkeys(r["test_set"] for r in rows))
    chosen = test_set or (sets[0] if sets else None)
    if chosen not in sets:
        raise TwingapError(f"test set {chosen!r} not in the study (have: {', '.join(sets)})", path)
    ious = sorted({r["iou_type"] for r in rows})
    if iou_type not in ious:
        raise TwingapError(f"IoU type {iou_type!r} not in the study (have: {', '.join(ious)})", path)
    hours = _hours(run_dir)
    costs: dict[str, StudyCost] = {}
    for r in rows:
        if r["test_set"] != chosen or r["iou_type"] != iou_type or r["condition"] == "clean":
            continue
        try:
            vals = [float(r[k]) for k in ("delta_AP", "delta_lo", "delta_hi")]
        except ValueError as exc:
            raise TwingapError(f"summary.csv: not a number in row {r['condition']!r} ({exc})", path) from exc
        if r["condition"] in hours and all(math.isfinite(v) for v in vals):
            costs[r["condition"]] = StudyCost(r["condition"], *vals, hours[r["condition"]])
    return Study(str(run_dir), chosen, iou_type, costs, _is_fake(run_dir))


def cost_of(family: str, level: int | None, study: Study) -> dict | None:
    """The study's cost of a family at a level.

    Returns:
        ``{"condition", "measured": True, "delta_AP", "delta_lo", "delta_hi", "hours",
        "ap_per_hour", "ap_per_hour_lo", "ap_per_hour_hi", "harmful"}``; None at level 0 or None;
        ``{"condition", "measured": False}`` when the study did not run that condition.
    """
    if not level:
        return None
    cond = condition_of(family, level)
    c = study.costs.get(cond or "")
    if c is None:
        return {"condition": cond, "measured": False}
    per_hour = -c.delta / c.hours if c.hours > 0 else math.inf
    return {
        "condition": cond,
        "measured": True,
        "delta_AP": c.delta,
        "delta_lo": c.lo,
        "delta_hi": c.hi,
        "hours": c.hours,
        "ap_per_hour": per_hour,
        "ap_per_hour_lo": -c.hi / c.hours if c.hours > 0 else math.inf,
        "ap_per_hour_hi": -c.lo / c.hours if c.hours > 0 else math.inf,
        "harmful": c.hi < 0,
    }


@dataclass(frozen=True)
class Fix:
    """One fix: a model's flaw, what the study says it costs, and the hours to fix it."""

    model: str
    family: str
    level: int
    condition: str
    delta_AP: float
    delta_lo: float
    delta_hi: float
    hours: float
    ap_per_hour: float
    harmful: bool


def fix_list(records: dict[str, dict], study: Study) -> list[Fix]:
    """Every graded flaw with a measured cost, ranked.

    Flaws whose interval lies below 0 come first, by AP recovered per hour (descending), then the
    rest; ties by model and family name.
    """
    fixes = []
    for stem in sorted(records):
        for fam in FAMILIES:
            c = cost_of(fam, records[stem][fam].get("level"), study)
            if c and c["measured"]:
                fixes.append(
                    Fix(
                        stem,
                        fam,
                        records[stem][fam]["level"],
                        c["condition"],
                        c["delta_AP"],
                        c["delta_lo"],
                        c["delta_hi"],
                        c["hours"],
                        c["ap_per_hour"],
                        c["harmful"],
                    )
                )
    return sorted(fixes, key=lambda f: (not f.harmful, -f.ap_per_hour, f.model, f.family))


def fixes_as_dicts(fixes: list[Fix]) -> list[dict]:
    """JSON-ready fix list (rank from 1)."""
    return [{"rank": i + 1, **asdict(f)} for i, f in enumerate(fixes)]
