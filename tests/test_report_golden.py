"""Golden regression of the report: a fake-stages study's CSVs and report tables, kept as readable text.

The study is the ``tiny`` preset on the fake stages (seconds, deterministic), widened to every
artifact family and three seeds, with one failed job. Everything that measures time (timing
tables, wall clock) is masked; everything else must match ``tests/golden/report/`` byte for byte.
After an intended change of the report, rewrite the golden files with ``TWINGAP_UPDATE_GOLDEN=1``
and review ``git diff tests/golden``.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path

import pytest

from twingap.study.config import load_study_config
from twingap.study.executors import InlineExecutor
from twingap.study.runner import run_study

GOLDEN = Path(__file__).parent / "golden" / "report"
CONFIG = """\
preset = "tiny"
stages = "fake"
seeds = [0, 1, 2]
conditions = [
  "clean", "noise-1", "noise-3", "holes-2", "texture-1", "texture-3", "baked-light", "ambient-1", "ambient-2"
]
[train]
overrides = { fake_fail = ["noise-3__s1"] }
"""


@pytest.fixture(scope="module")
def golden_run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("golden")
    (tmp / "golden.toml").write_text(CONFIG)
    out = run_study(tmp / "run", load_study_config(tmp / "golden.toml"), InlineExecutor(), progress=False)
    assert out["failed"] == ["noise-3__s1"] and out["report"]
    return tmp / "run"


def _markdown(run: Path) -> str:
    """``report.md`` with the seconds of its timing table masked."""
    text = (run / "report.md").read_text()
    head, sep, timings = text.partition("## Timings (seconds)")
    assert sep, "report.md has no timing table"
    return head + sep + re.sub(r"\| [0-9.]+ \|", "| <seconds> |", timings)


def _html_tables(run: Path) -> str:
    """Every table of ``report.html``, one row per line; timings and the machine's name masked."""
    text = (run / "report.html").read_text()
    tables = re.findall(r"<table.*?</table>", text, flags=re.S)
    assert len(tables) >= 6, "report.html lost tables"
    out = []
    for t in tables:
        if "what computes the floats" in t:  # the machine the test runs on
            t = re.sub(r"<td>[^<]*</td><td>(\d+)</td>", r"<td><machine></td><td>\1</td>", t)
        if "<th>stage</th>" in t or "<th>job</th>" in t:
            t = re.sub(r"<td>(<b>)?[0-9.]+%?(</b>)?</td>", "<td>#</td>", t)
            t = re.sub(r"\(\d+ session\(s\), \d+ parallel job\(s\)\)", "(# sessions)", t)
        out.append(t.replace("<tr>", "\n<tr>").replace("</table>", "\n</table>\n"))
    return "".join(out)


CASES = {
    "summary.csv": lambda run: (run / "results" / "summary.csv").read_text(),
    "fixes.csv": lambda run: (run / "results" / "fixes.csv").read_text(),
    "jobs.csv": lambda run: (run / "results" / "jobs.csv").read_text(),
    "report.md": _markdown,
    "report_tables.html": _html_tables,
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_report_matches_golden(golden_run, name):
    got = CASES[name](golden_run)
    path = GOLDEN / name
    if os.environ.get("TWINGAP_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(got)
        pytest.skip(f"rewrote {path}: review `git diff tests/golden` before committing")
    want = path.read_text()
    if got != want:
        diff = "".join(
            difflib.unified_diff(
                want.splitlines(keepends=True),
                got.splitlines(keepends=True),
                f"tests/golden/report/{name}",
                f"this run's {name}",
                n=1,
            )
        )
        pytest.fail(
            f"{name} differs from its golden copy (if the change is intended, rerun with "
            f"TWINGAP_UPDATE_GOLDEN=1 and review the diff):\n{diff}",
            pytrace=False,
        )
