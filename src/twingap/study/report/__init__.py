"""Collect a study's results and write the report: ``report.html`` (self-contained), ``report.md``, CSVs.

Everything here is computed from the files in the run folder: job manifests, predictions and the
test sets' ground truth. Nothing is typed in by hand.

Outputs (``RUN_DIR/``): ``report.html``, ``report.md``, ``results/jobs.csv`` (one row per job,
test set and IoU type), ``results/summary.csv`` (per condition, test set and IoU type: AP, AP50,
AP75, intervals, difference to clean), ``results/fixes.csv`` (the ranked fix list),
``results/timings.csv``, ``results/stats.json`` and the figures in ``report_files/``.

The package, in the order data flows through it:

* :mod:`.analysis`: the run folder -> :class:`StudyResults` (statistics, ranking, timings; pure data).
* :mod:`.tables`: every table, built once from a :class:`StudyResults` as plain rows and columns.
* :mod:`.figures`: Figure 1 (with its label placement), the AP-difference bars, images shown.
* :mod:`.csv_files`, :mod:`.markdown`, :mod:`.html_page`: thin writers of the tables.
* :mod:`.text`: the terminal summaries, read back from ``results/stats.json``.
"""

from __future__ import annotations

from pathlib import Path

from twingap.study.report.analysis import PRIMARY_IOU, StudyResults, collect, train_fingerprint
from twingap.study.report.csv_files import json_safe, write_csvs
from twingap.study.report.figures import bar_chart, figure1
from twingap.study.report.html_page import CSS, write_html
from twingap.study.report.markdown import write_markdown
from twingap.study.report.style import FAMILY_COLORS
from twingap.study.report.text import summary_text, top_fixes_text, top_fixes_title
from twingap.study.stages import load_stages

__all__ = [
    "CSS",
    "FAMILY_COLORS",
    "PRIMARY_IOU",
    "StudyResults",
    "bar_chart",
    "collect",
    "figure1",
    "json_safe",
    "summary_text",
    "top_fixes_text",
    "top_fixes_title",
    "train_fingerprint",
    "write_csvs",
    "write_html",
    "write_markdown",
    "write_report",
]


def write_report(run_dir: str | Path) -> Path:
    """Collect a run folder and write every report file; returns the path of ``report.html``."""
    res = collect(run_dir)
    write_csvs(res)
    fig_dir = res.run_dir / "report_files"
    fig_dir.mkdir(exist_ok=True)
    figs = {
        "fig1": figure1(res, fig_dir / "figure1.png"),
        "bars": bar_chart(res, fig_dir / "ap_difference.png"),
    }
    gallery: Path | None = fig_dir / "gallery.png"
    if not gallery.is_file():
        try:
            ok = load_stages(res.cfg.stages).gallery(res.cfg, res.cfg.gallery_object, gallery)
        except Exception:  # the gallery is a nicety; never lose the report over it
            ok = False
        if not ok:
            gallery = None
    write_markdown(res)
    return write_html(res, figs, gallery)
