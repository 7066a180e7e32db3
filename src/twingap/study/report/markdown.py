"""``report.md``: the same numbers as the HTML report, as markdown text (tables from :mod:`.tables`)."""

from __future__ import annotations

from pathlib import Path

from twingap.io import write_text_atomic
from twingap.study.report.analysis import (
    PRIMARY_IOU,
    StudyResults,
    adjusted_note,
    interval_note,
    noise_note,
    stop_note,
)
from twingap.study.report.style import category_names, fmt
from twingap.study.report.tables import (
    Diff,
    Table,
    design_line,
    fixes_table,
    noise_table,
    per_category_grids,
    replication_table,
    results_grids,
    seed_table,
    tau_table,
    timings_table,
)


def _fixes(res: StudyResults, t: Table) -> list[str]:
    lines = [
        "## Fix these first",
        "",
        "| # | condition | hours | AP recovered [Holm-adjusted] | AP per hour | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for f in t.rows:
        lines.append(
            f"| {f['rank']} | {f['condition']} | {f['hours']:g} | {fmt(f['recovered'], sign=True)} "
            f"[{fmt(f['recovered_lo'], sign=True)}, {fmt(f['recovered_hi'], sign=True)}] | "
            f"{fmt(f['rate'], 2)} | {f['verdict']} |"
        )
    return lines


def _delta(d: Diff | str) -> str:
    """A difference with its interval, ``*`` when distinguishable from 0 (``reference`` for clean)."""
    if isinstance(d, str):
        return d
    star = " *" if d.significant else ""
    return f"{fmt(d.value, sign=True)} [{fmt(d.lo, sign=True)}, {fmt(d.hi, sign=True)}]{star}"


def _results_grid(t: Table) -> list[str]:
    lines = [
        "",
        f"## {t.title} ({t.meta['kind']})",
        "",
        f"Scored categories: {category_names(t.meta['categories'], t.meta['category_names'])}"
        + (
            f"; not scored (no trained model): {', '.join(t.meta['not_scored'])}"
            if t.meta["not_scored"]
            else ""
        ),
        "",
        "| condition | hours | bbox AP | AP50 | AP75 | Δ bbox AP [Holm-adj.] | segm AP "
        "| Δ segm AP [Holm-adj.] |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in t.rows:
        head = f"| {r['condition']} | {r['hours']:g} |"
        if r["bbox:AP"] is None or r["segm:AP"] is None:
            lines.append(head + " – | – | – | – | – | – |")
            continue
        lines.append(
            f"{head} {fmt(r['bbox:AP'])} | {fmt(r['bbox:AP50'])} | {fmt(r['bbox:AP75'])} | "
            f"{_delta(r['bbox:delta'])} | {fmt(r['segm:AP'])} | {_delta(r['segm:delta'])} |"
        )
    return lines


def _noise(res: StudyResults, t: Table) -> list[str]:
    lines = [
        "",
        "## Training noise",
        "",
        "| test set | IoU | clean AP per seed | clean sd | sd of a paired difference | df | Bartlett p |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in t.rows:
        lines.append(
            f"| {s['test_set']} | {s['iou_type']} | {', '.join(fmt(a) for a in s['ap_per_seed'])} | "
            f"{fmt(s['std'])} | {fmt(s['diff_sd'])} | {s['diff_df']} | {fmt(s['bartlett_p'], 3)} |"
        )
    return [*lines, "", noise_note(res)]


def _seed_spread(t: Table) -> list[str]:
    if not t.rows:
        return []
    lines = [
        "",
        f"## Each condition's difference per seed ({PRIMARY_IOU})",
        "",
        "| condition | test set | seeds | Δ per seed | sd over seeds | corr. with clean |",
        "|---|---|---|---|---|---|",
    ]
    for r in t.rows:
        lines.append(
            f"| {r['condition']} | {r['test_set']} | {r['seeds']} | "
            f"{', '.join(fmt(d, sign=True) for d in r['delta_per_seed'])} | {fmt(r['seed_sd'])} | "
            f"{fmt(r['corr_with_clean'], 2)} |"
        )
    return lines


def _replication(t: Table) -> list[str]:
    if not t.rows:
        return ["", "## Split-half replication", "", "Needs at least 3 seeds."]
    lines = [
        "",
        f"## Split-half replication: seeds {t.meta['seeds_a']} against seeds {t.meta['seeds_b']}",
        "",
        "| IoU | test set | agree | Kendall tau | p | tau of a rerun (projected) | seeds for tau 0.7 |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in t.rows:
        need = r["seeds_for_tau_07"] or f"over {r['max_seeds']}"
        rerun = f"{fmt(r['rerun_tau'], 2)} ({r['rerun_seeds']} seeds)" if r["rerun_seeds"] else "–"
        lines.append(
            f"| {r['iou_type']} | {r['test_set']} | {r['agree']} of {r['n']} | {fmt(r['tau'], 2)} | "
            f"{fmt(r['p_value'], 3)} | {rerun} | {need} |"
        )
    return lines


def _per_category(res: StudyResults, tables: list[Table]) -> list[str]:
    lines: list[str] = []
    for t in tables:
        conds = t.meta["conditions"]
        lines += [
            "",
            f"## Per category: {t.title} ({PRIMARY_IOU} AP of clean, then each condition's difference; "
            f"seed {res.cfg.seeds[0]})",
            "",
            "| category | clean | " + " | ".join(conds) + " |",
            "|---|---|" + "---|" * len(conds),
        ]
        for row in t.rows:
            cells = ["–" if row[c] is None else fmt(row[c], sign=True) for c in conds]
            lines.append(
                f"| {row['category_id']} {row['category']} | {fmt(row['clean'])} | "
                + " | ".join(cells)
                + " |"
            )
    return lines


def _taus(t: Table) -> list[str]:
    lines = ["", "## Rank agreement (Kendall tau)", ""]
    for r in t.rows:
        lines.append(
            f"- {r['iou_type']}: {r['a']} vs {r['b']}: tau = {fmt(r['tau'], 2)} "
            f"(p = {fmt(r['p_value'], 3)}, n = {r['n']})"
        )
    return lines


def _timings(t: Table) -> list[str]:
    lines = ["", "## Timings (seconds)", "", "| stage | seconds |", "|---|---|"]
    for r in t.rows:
        label = "total (sum of stages)" if r["scope"] == "total" else r["stage"]
        lines.append(f"| {label} | {r['seconds']:.1f} |")
    lines += [f"| wall clock | {t.meta['wall']:.1f} |", ""]
    return lines


def write_markdown(res: StudyResults) -> Path:
    """Write ``report.md``: the same numbers as the HTML, as text."""
    cfg = res.cfg
    lines = [f"# twingap study: {cfg.name}", ""]
    if stop_note(res):
        lines += [f"**{stop_note(res)}**", ""]
    if res.fake:
        lines += ["> **FAKE stages: every number below is synthetic (pipeline test). Not results.**", ""]
    lines += [
        f"{design_line(res, times='x')}; AP in points (x100); "
        "differences are condition - clean, paired by seed.",
        "",
        interval_note(res),
        "",
    ]
    if adjusted_note(res):
        lines += [adjusted_note(res), ""]
    lines += _fixes(res, fixes_table(res))
    for t in results_grids(res):
        lines += _results_grid(t)
    lines += ["", "\\* distinguishable from zero after Holm's correction over the conditions."]
    lines += _noise(res, noise_table(res))
    lines += _seed_spread(seed_table(res))
    lines += _replication(replication_table(res))
    lines += _per_category(res, per_category_grids(res))
    lines += _taus(tau_table(res))
    lines += _timings(timings_table(res))
    if res.failed:
        lines += ["## Failed jobs", ""] + [f"- {k}: {v}" for k, v in res.failed.items()] + [""]
    path = res.run_dir / "report.md"
    write_text_atomic(path, "\n".join(lines) + "\n")
    return path
