"""The report's plain-text summaries for the terminal, read back from ``results/stats.json``."""

from __future__ import annotations

from pathlib import Path

from twingap.io import read_json
from twingap.study.report.analysis import PRIMARY_IOU
from twingap.study.report.style import fmt


def top_fixes_title(run_dir: str | Path) -> str:
    """The line above :func:`top_fixes_text`: what the recovered AP is measured on."""
    from twingap.study.runner import load_run_config

    rank_by = load_run_config(run_dir).cost.rank_by
    basis = "mean over the test sets" if rank_by == "mean" else f"test set {rank_by}"
    return f"fix these first ({PRIMARY_IOU} AP recovered, {basis}, Holm-adjusted interval):"


def top_fixes_text(run_dir: str | Path, n: int = 5) -> str:
    """The top of the ranked fix list as plain text (for the end of ``twingap study``).

    Each line gives the AP recovered with its Holm-adjusted interval and the artist hours. Only a fix
    whose recovery is distinguishable from zero gets a rate (AP per hour,
    :func:`twingap.study.report.tables.fix_rate`, the rule of the HTML and markdown tables too); the
    others say their verdict instead, so that a cheap fix of an indistinguishable gain never shows
    the largest rate.
    """
    from twingap.study.report.tables import fix_rate

    rows = read_json(Path(run_dir) / "results" / "stats.json")["fixes"][:n]
    out = []
    for f in rows:
        gain = f"{f['rank']:>2}. {f['condition']:<12} {fmt(f['recovered'], sign=True):>6} AP"
        if f.get("recovered_lo") is not None and f.get("recovered_hi") is not None:
            gain += f" [{fmt(f['recovered_lo'], sign=True)}, {fmt(f['recovered_hi'], sign=True)}]"
        gain += f" for {f['hours']:g} h"
        rate = fix_rate(f)
        if rate is not None:
            out.append(f"{gain} = {rate:.2f} AP/h")
        else:
            out.append(f"{gain}: {f.get('verdict') or 'not distinguishable from 0'}")
    return "\n".join(out)


def summary_text(run_dir: str | Path) -> str:
    """Headline numbers as plain text: clean AP, the three worst and three mildest conditions, time.

    Per test set, bbox AP points; differences are condition minus clean with their Holm-adjusted
    interval (the per-comparison one in a ``stats.json`` written before it was recorded), beside the
    verdict ``*``.
    """
    stats = read_json(Path(run_dir) / "results" / "stats.json")
    lines = []
    if stats.get("fake"):
        lines.append("FAKE stages: synthetic numbers (pipeline test), not results")
    by_ts: dict[str, list[dict]] = {}
    for r in stats["results"]:
        if r["iou_type"] == PRIMARY_IOU:
            by_ts.setdefault(r["test_set"], []).append(r)
    for ts, rows in by_ts.items():
        clean = next((r for r in rows if r["condition"] == "clean"), None)
        if clean:
            lines.append(
                f"{ts}: clean {PRIMARY_IOU} AP {fmt(clean['ap']['AP'])} "
                f"[{fmt(clean['ap_lo'])}, {fmt(clean['ap_hi'])}]"
            )
        others = sorted(
            (r for r in rows if r["condition"] != "clean" and r["delta"] is not None),
            key=lambda r: r["delta"],
        )

        def diff(r: dict) -> str:
            star = "*" if r["significant"] else ""
            lo, hi = (r["adj_lo"], r["adj_hi"]) if "adj_lo" in r else (r["delta_lo"], r["delta_hi"])
            lo, hi = fmt(lo, sign=True), fmt(hi, sign=True)
            return f"{r['condition']} {fmt(r['delta'], sign=True)} [{lo}, {hi}]{star}"

        if others:
            lines.append("  worst:  " + "; ".join(diff(r) for r in others[:3]))
            lines.append("  mildest: " + "; ".join(diff(r) for r in others[-3:][::-1]))
    t = stats["timings"]
    lines.append(
        f"wall time {t.get('wall', 0.0) / 60:.1f} min over {t.get('sessions', 0)} session(s); "
        f"sum of stages {t['total'] / 60:.1f} min  "
        "(* = distinguishable from zero, Holm-corrected; intervals Holm-adjusted)"
    )
    return "\n".join(lines)
