"""The report's machine-readable files: ``results/*.csv`` and ``results/stats.json``."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from twingap.io import write_json_atomic, write_text_atomic
from twingap.study.report.analysis import StudyResults
from twingap.study.report.tables import (
    Table,
    fixes_table,
    jobs_table,
    per_category_table,
    summary_table,
    timings_table,
)


def write_csv(path: Path, table: Table) -> None:
    """Write a table's columns as CSV (floats with 4 decimals); an empty table writes an empty file."""
    buf = io.StringIO()
    if table.rows:
        w = csv.DictWriter(buf, fieldnames=table.columns, lineterminator="\n", extrasaction="ignore")
        w.writeheader()
        for r in table.rows:
            w.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})
    write_text_atomic(path, buf.getvalue())


def write_csvs(res: StudyResults) -> dict[str, Path]:
    """Write ``results/*.csv`` and ``results/stats.json``; return their paths."""
    out_dir = res.run_dir / "results"
    fixes = fixes_table(res)
    tables = {
        "jobs": jobs_table(res),
        "summary": summary_table(res),
        "fixes": fixes,
        "timings": timings_table(res),
    }
    per_category = per_category_table(res)
    if per_category.rows:
        tables["per_category"] = per_category
    paths = {}
    for name, table in tables.items():
        paths[name] = out_dir / f"{name}.csv"
        write_csv(paths[name], table)
    stats = {
        "fake": res.fake,
        "results": [r.to_dict() for r in res.results],
        "seed_spread": [asdict(s) for s in res.spreads],
        "kendall_tau": res.taus,
        "fixes": fixes.rows,
        "hours": res.hours,
        "categories": res.categories,
        "timings": res.timings,
        "failed": res.failed,
    }
    paths["stats"] = out_dir / "stats.json"
    write_json_atomic(paths["stats"], json_safe(stats))
    return paths


def json_safe(obj: Any) -> Any:
    """Replace NaN / inf floats by None (strict JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    return obj
