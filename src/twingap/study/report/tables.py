"""Every table of the report, built once as plain data from a :class:`StudyResults`.

A :class:`Table` holds rows of plain values (str, int, float, bool, None, :class:`Diff`, lists of
floats) under named columns. The writers (:mod:`.html_page`, :mod:`.markdown`, :mod:`.csv_files`)
choose which columns to show and how to format them; they compute nothing.

AP values are in points (AP x 100); differences are condition minus clean.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from twingap.study.cost import FixItem
from twingap.study.report.analysis import PRIMARY_IOU, StudyResults
from twingap.study.report.style import fmt
from twingap.study.runner import IOU_TYPES, STAGES
from twingap.study.stats import ConditionResult


@dataclass(frozen=True)
class Diff:
    """A difference to clean (AP points) with its interval, and whether it is distinguishable from 0.

    The interval is the Holm-adjusted one (``ConditionResult.adj_lo``, ``adj_hi``): it stands beside
    the Holm-corrected verdict and excludes 0 exactly when ``significant``.
    """

    value: float
    lo: float
    hi: float
    significant: bool

    @classmethod
    def of(cls, r: ConditionResult) -> Diff:
        """The difference to clean of one condition result."""
        return cls(r.delta, r.adj_lo, r.adj_hi, r.significant)


@dataclass
class Table:
    """A table as plain data.

    Attributes:
        columns: Column keys in order (the header of its CSV file).
        rows: One dict per row, column key -> value. A row may carry extra keys a writer uses
            (e.g. ``scope`` of a timing row); the CSV writer writes only ``columns``.
        title: What the table shows (e.g. its test set).
        meta: Facts about the whole table a writer prints around it (e.g. a test set's size).
    """

    columns: list[str]
    rows: list[dict[str, Any]]
    title: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


def _from_rows(rows: list[dict[str, Any]], title: str = "") -> Table:
    """A table whose columns are the keys of its first row."""
    return Table(list(rows[0]) if rows else [], rows, title)


# ---------------------------------------------------------------------- the CSV tables
def jobs_table(res: StudyResults) -> Table:
    """One row per job, test set and IoU type: AP, AP50, AP75 of that job's model (``jobs.csv``)."""
    rows = []
    for j in sorted(res.jobs, key=lambda j: j["id"]):
        for ts, m in res.metrics[j["id"]].items():
            for iou in IOU_TYPES:
                rows.append(
                    {
                        "condition": j["condition"],
                        "seed": j["seed"],
                        "test_set": ts,
                        "iou_type": iou,
                        **{k: 100 * m[iou][k] for k in ("AP", "AP50", "AP75")},
                    }
                )
    return _from_rows(rows, "jobs")


def summary_table(res: StudyResults) -> Table:
    """Per condition, test set and IoU type: AP, its interval, the difference to clean (``summary.csv``).

    ``delta_lo``, ``delta_hi``: the per-comparison interval of the difference; ``delta_adj_lo``,
    ``delta_adj_hi``: the Holm-adjusted one at level ``adj_level`` (what the report shows beside the
    verdict ``significant``).
    """
    rows = [
        {
            "condition": r.condition,
            "test_set": r.test_set,
            "iou_type": r.iou_type,
            "seeds": len(r.seeds),
            **r.ap,
            "AP_lo": r.ap_lo,
            "AP_hi": r.ap_hi,
            "delta_AP": r.delta,
            "delta_lo": r.delta_lo,
            "delta_hi": r.delta_hi,
            "se": r.se,
            "se_seed": r.se_seed,
            "se_scene": r.se_scene,
            "seed_sd": r.seed_sd,
            "p_holm": r.p_holm,
            "significant": r.significant,
            "delta_adj_lo": r.adj_lo,
            "delta_adj_hi": r.adj_hi,
            "adj_level": r.adj_level,
            "interval": r.interval,
            "hours": res.hours.get(r.condition, math.nan),
        }
        for r in res.results
    ]
    return _from_rows(rows, "summary")


def fix_rate(item: dict[str, Any]) -> float | None:
    """The rate (AP recovered per artist hour) a fix list shows for a row, or None to show its verdict.

    Only a fix whose recovery is distinguishable from zero gets a rate: a cheap fix of an
    indistinguishable gain would otherwise show the largest rate of the list. The one rule for the
    HTML and markdown tables (``rate`` of :func:`fixes_table`'s rows) and the terminal list.
    """
    return item.get("per_hour") if item.get("significant") else None


def fixes_table(res: StudyResults) -> Table:
    """The ranked fix list, one row per condition (``fixes.csv``).

    Columns: every :class:`FixItem` field (``recovered_lo``, ``recovered_hi``: the Holm-adjusted
    interval). Each row also carries ``rate``: the AP per hour to show, None where the recovery is
    not distinguishable from zero (:func:`fix_rate`; the writers print the verdict instead).
    """
    rows = [asdict(f) for f in res.fixes]
    for row in rows:
        row["rate"] = fix_rate(row)
    return Table([f.name for f in fields(FixItem)], rows, "fixes")


def timings_table(res: StudyResults) -> Table:
    """Seconds per stage (``timings.csv``).

    Each row's ``scope`` says what it counts: ``once`` (shared inputs), ``stage`` (summed over
    jobs) or ``total``. ``meta`` holds the wall-clock seconds and the number of sessions.
    """
    t = res.timings
    rows = [
        {"stage": "scenes (once)", "seconds": t["scenes"], "scope": "once"},
        {"stage": "test sets (once)", "seconds": t["testsets"], "scope": "once"},
    ]
    rows += [{"stage": k, "seconds": v, "scope": "stage"} for k, v in t["stages"].items()]
    rows.append({"stage": "total", "seconds": t["total"], "scope": "total"})
    meta = {"wall": t.get("wall", 0.0), "sessions": t.get("sessions", 0)}
    return Table(["stage", "seconds"], rows, "timings", meta)


def per_category_table(res: StudyResults) -> Table:
    """Per test set, IoU type, condition and category: AP points of the first seed (``per_category.csv``)."""
    from twingap.study.byod import name_of

    rows = [
        {
            "test_set": ts,
            "iou_type": iou,
            "condition": cond,
            "seed": res.cfg.seeds[0],
            "category_id": cid,
            "category": name_of(cid, res.category_names),
            "AP_points": ap,
        }
        for ts, per_iou in res.per_category.items()
        for iou, per_cond in per_iou.items()
        for cond, per_c in per_cond.items()
        for cid, ap in per_c.items()
    ]
    return _from_rows(rows, "per_category")


# ---------------------------------------------------------------------- the report's tables
def results_grids(res: StudyResults) -> list[Table]:
    """Per test set: one row per condition with its hours and, per IoU type, AP, AP50, AP75 and Δ.

    Columns ``condition``, ``hours``, then ``{iou}:AP``, ``{iou}:AP50``, ``{iou}:AP75`` (floats)
    and ``{iou}:delta`` (a :class:`Diff`, ``"reference"`` for clean); all four are None where the
    condition has no result. ``meta``: ``kind``, ``n_images``, ``n_instances``, ``categories``.
    """
    keys = [f"{iou}:{k}" for iou in IOU_TYPES for k in ("AP", "AP50", "AP75", "delta")]
    tables = []
    for ts in res.cfg.test_sets:
        rows = []
        for cond in res.cfg.conditions:
            row: dict[str, Any] = {"condition": cond, "hours": res.hours.get(cond, 0)}
            for iou in IOU_TYPES:
                r = res.get(ts.name, iou, cond)
                row.update({f"{iou}:{k}": None if r is None else r.ap[k] for k in ("AP", "AP50", "AP75")})
                row[f"{iou}:delta"] = None if r is None else "reference" if cond == "clean" else Diff.of(r)
            rows.append(row)
        tsm = res.shared["testsets"][ts.name]
        meta = {
            "kind": ts.kind,
            "n_images": tsm.get("n_images"),
            "n_instances": tsm.get("n_instances"),
            "categories": res.categories[ts.name],
            "category_names": res.category_names,
            "not_scored": res.not_scored.get(ts.name, []),
        }
        tables.append(Table(["condition", "hours", *keys], rows, ts.name, meta))
    return tables


def noise_table(res: StudyResults) -> Table:
    """Training noise per test set and IoU type.

    Clean AP per seed and its sd, and the pooled seed sd of a paired difference to clean (what a
    condition's difference carries) with Bartlett's test of equal seed variances over conditions.
    """
    rows = [
        {
            "test_set": s.test_set,
            "iou_type": s.iou_type,
            "seeds": len(s.seeds),
            "ap_per_seed": s.ap_per_seed,
            "std": s.std,
            "range": s.range,
            "diff_sd": s.diff_sd,
            "diff_df": s.diff_df,
            "bartlett_p": s.bartlett_p,
        }
        for s in res.spreads
    ]
    cols = [
        "test_set",
        "iou_type",
        "seeds",
        "ap_per_seed",
        "std",
        "range",
        "diff_sd",
        "diff_df",
        "bartlett_p",
    ]
    return Table(cols, rows, "noise")


def seed_table(res: StudyResults) -> Table:
    """Per condition and test set (primary IoU type): each seed's paired difference and its spread.

    Columns: the seeds, the difference per seed, its sd over seeds, and the correlation of the
    condition's AP with clean's over seeds (what pairing by seed buys).
    """
    rows = [
        {
            "condition": r.condition,
            "test_set": r.test_set,
            "seeds": r.paired_seeds,
            "delta_per_seed": r.delta_per_seed,
            "seed_sd": r.seed_sd,
            "corr_with_clean": r.corr_with_clean,
        }
        for r in res.results
        if r.iou_type == PRIMARY_IOU and r.condition != "clean" and r.delta_per_seed
    ]
    cols = ["condition", "test_set", "seeds", "delta_per_seed", "seed_sd", "corr_with_clean"]
    return Table(cols, rows, "seed_spread")


def replication_table(res: StudyResults) -> Table:
    """Split-half replication per IoU type and test set: share of agreeing conditions, Kendall tau.

    Also the projected ranking replicability (:func:`twingap.study.replication.rerun_projection`): the
    expected tau between this study and a rerun with as many seeds, and the seeds per run for tau 0.7
    (None: more than ``max_seeds``, a row key outside the CSV columns).

    ``meta``: ``seeds_a``, ``seeds_b`` (the halves); empty with fewer than 3 seeds.
    """
    rows: list[dict[str, Any]] = []
    meta: dict[str, Any] = {}
    for iou, rep in (res.replication or {}).items():
        if rep is None:
            continue
        meta = {"seeds_a": rep["seeds_a"], "seeds_b": rep["seeds_b"]}
        rerun = {p["test_set"]: p for p in rep.get("rerun", [])}
        for t in rep["tau"]:
            checked = [r for r in rep["rows"] if r.test_set == t["test_set"] and r.agree is not None]
            proj = rerun.get(t["test_set"])
            rows.append(
                {
                    "iou_type": iou,
                    "test_set": t["test_set"],
                    "n": len(checked),
                    "agree": sum(bool(r.agree) for r in checked),
                    "tau": t["tau"],
                    "p_value": t["p_value"],
                    "rerun_seeds": proj["seeds_now"] if proj else None,
                    "rerun_tau": proj["tau_at"][proj["seeds_now"]] if proj else math.nan,
                    "seeds_for_tau_07": proj["seeds_for_target"] if proj else None,
                    "max_seeds": proj["max_seeds"] if proj else None,
                }
            )
    cols = [
        "iou_type",
        "test_set",
        "n",
        "agree",
        "tau",
        "p_value",
        "rerun_seeds",
        "rerun_tau",
        "seeds_for_tau_07",
    ]
    return Table(cols, rows, "split_half", meta)


def tau_table(res: StudyResults) -> Table:
    """Kendall tau of the conditions' differences for each pair of test sets and IoU type."""
    return Table(["iou_type", "a", "b", "tau", "p_value", "n"], res.taus, "kendall_tau")


def per_category_grids(res: StudyResults) -> list[Table]:
    """Per test set: the clean model's AP per category and each condition's difference (first seed).

    Columns ``category_id``, ``category``, ``clean`` (AP points), then one per condition shown
    (``meta["conditions"]``): its AP minus clean on that category, None where either is missing.
    Only the primary IoU type; test sets without a clean result are left out.
    """
    from twingap.study.byod import name_of

    tables = []
    for ts, per_iou in res.per_category.items():
        per_cond = per_iou.get(PRIMARY_IOU, {})
        clean = per_cond.get("clean")
        if not clean:
            continue
        conds = [c for c in res.cfg.conditions if c != "clean" and c in per_cond]
        rows = []
        for cid, ap in clean.items():
            row: dict[str, Any] = {
                "category_id": cid,
                "category": name_of(cid, res.category_names),
                "clean": ap,
            }
            for c in conds:
                v = per_cond[c].get(cid)
                row[c] = None if v is None or math.isnan(v) or math.isnan(ap) else v - ap
            rows.append(row)
        tables.append(Table(["category_id", "category", "clean", *conds], rows, ts, {"conditions": conds}))
    return tables


def per_job_timings(res: StudyResults) -> Table:
    """Seconds of each stage per job."""
    rows = [
        {"job": jid, **{s: t.get(s, 0) for s in STAGES}} for jid, t in sorted(res.timings["per_job"].items())
    ]
    return Table(["job", *STAGES], rows, "per_job")


def headline_cards(res: StudyResults) -> list[tuple[str, str, str]]:
    """The report's headline as (label, value, detail) strings: clean AP, top fix, rank agreement, jobs."""
    cards = []
    for ts in res.cfg.test_sets:
        c = res.get(ts.name, PRIMARY_IOU, "clean")
        if c:
            cards.append(
                (
                    f"clean {PRIMARY_IOU} AP · {ts.name}",
                    fmt(c.ap["AP"]),
                    f"95% CI [{fmt(c.ap_lo)}, {fmt(c.ap_hi)}] · AP50 {fmt(c.ap['AP50'])}",
                )
            )
    if res.fixes:
        top = res.fixes[0]
        rate = fix_rate(asdict(top))
        if rate is None:
            cards.append(
                ("fix first", "–", f"no fix recovers measurable AP ({top.condition}: {top.verdict})")
            )
        else:
            cards.append(
                (
                    "fix first",
                    top.condition,
                    f"{fmt(top.recovered, sign=True)} AP for {top.hours:g} h · {fmt(rate, 2)} AP/h",
                )
            )
    for t in res.taus:
        if t["iou_type"] == PRIMARY_IOU:
            cards.append(
                (
                    "rank agreement (Kendall τ)",
                    fmt(t["tau"], 2),
                    f"{t['a']} vs {t['b']} · {t['n']} conditions · p={fmt(t['p_value'], 3)}",
                )
            )
            break
    done = sum(s == "done" for s in res.states.values())
    wall_min = res.timings.get("wall", 0.0) / 60
    per_cond = seeds_per_condition(res)
    n_seeds = sorted({len(v) for v in per_cond.values()})
    seeds = f"{n_seeds[0]} seed(s)" if len(n_seeds) == 1 else f"{n_seeds[0]}-{n_seeds[-1]} seeds each"
    cards.append(
        (
            "jobs",
            f"{done}/{len(res.states)}",
            f"{len(per_cond)} conditions × {seeds} · {wall_min:.1f} min wall",
        )
    )
    return cards


def seeds_per_condition(res: StudyResults) -> dict[str, list[int]]:
    """Condition -> the seeds whose job is finished and comparable (what its numbers rest on)."""
    return {
        c: sorted(j["seed"] for j in res.jobs if j["condition"] == c and j["id"] not in res.failed)
        for c in res.cfg.conditions
    }


def design_line(res: StudyResults, times: str = "×") -> str:
    """The study's shape for a report's header: conditions and seeds, per condition when a run is partial.

    ``"13 conditions × 3 seed(s) [0, 1, 2]"`` when every condition has every seed; otherwise
    ``"13 conditions, 24 of 39 jobs done; seeds per condition: 3 of 3 (clean, noise-1); 1 of 3
    (holes-2); 0 of 3 (texture-1)"`` (conditions grouped by how many seeds they have, most first).
    """
    planned = res.cfg.seeds
    per_cond = seeds_per_condition(res)
    if all(v == sorted(planned) for v in per_cond.values()):
        return f"{len(per_cond)} conditions {times} {len(planned)} seed(s) {planned}"
    groups: dict[int, list[str]] = {}
    for c, v in per_cond.items():
        groups.setdefault(len(v), []).append(c)
    n_done = sum(len(v) for v in per_cond.values())
    parts = [f"{k} of {len(planned)} ({', '.join(cs)})" for k, cs in sorted(groups.items(), reverse=True)]
    return (
        f"{len(per_cond)} conditions, {n_done} of {len(per_cond) * len(planned)} jobs done; "
        f"seeds per condition: {'; '.join(parts)}"
    )
