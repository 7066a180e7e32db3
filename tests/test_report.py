"""The study report: files present and valid, self-contained HTML, CSVs consistent with stats."""

from __future__ import annotations

import csv
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from twingap.cli import main
from twingap.study.config import load_study_config
from twingap.study.executors import InlineExecutor
from twingap.study.runner import run_study


@pytest.fixture(scope="module")
def fake_run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("report")
    cfg_path = tmp / "fake.toml"
    cfg_path.write_text('preset = "quick"\nstages = "fake"\nseeds = [0, 1]\n[stats]\nn_boot = 200\n')
    run_study(tmp / "run", load_study_config(cfg_path), InlineExecutor(), progress=False)
    return tmp / "run"


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_report_files_present(fake_run):
    for name in (
        "report.html",
        "report.md",
        "results/summary.csv",
        "results/jobs.csv",
        "results/fixes.csv",
        "results/timings.csv",
        "results/stats.json",
        "study.json",
        "study.toml",
        "plan.json",
    ):
        assert (fake_run / name).is_file(), name


def test_html_is_self_contained_and_complete(fake_run):
    text = (fake_run / "report.html").read_text()
    parser = _Collector()
    parser.feed(text)
    imgs = [a for t, a in parser.tags if t == "img"]
    assert len(imgs) >= 2 + 13  # figure 1, bar chart, training samples per condition
    assert all(a["src"].startswith("data:image/") for a in imgs)
    assert not [a for t, a in parser.tags if t in ("link", "script")]
    assert not re.search(r"""(src|href)=['"]https?://""", text)
    assert "FAKE stages" in text  # fake numbers are never presented as results
    for cond in ("clean", "noise-3", "holes-2", "texture-1", "ambient-2", "baked-light"):
        assert cond in text
    for section in ("Figure 1", "Fix these first", "Results table", "Kendall", "Timings", "Configuration"):
        assert section in text


def test_stats_json_is_strict_and_matches_csv(fake_run):
    stats = json.loads((fake_run / "results" / "stats.json").read_text(), parse_constant=_reject)
    assert stats["fake"] is True
    rows = list(csv.DictReader((fake_run / "results" / "summary.csv").open()))
    assert len(rows) == 13 * 2 * 2  # conditions x test sets x IoU types
    by_key = {(r["condition"], r["test_set"], r["iou_type"]): r for r in rows}
    for r in stats["results"]:
        row = by_key[(r["condition"], r["test_set"], r["iou_type"])]
        assert float(row["delta_AP"]) == pytest.approx(r["delta"], abs=1e-3)
    clean = [r for r in rows if r["condition"] == "clean"]
    assert all(float(r["delta_AP"]) == 0 for r in clean)
    fixes = list(csv.DictReader((fake_run / "results" / "fixes.csv").open()))
    assert [int(f["rank"]) for f in fixes] == list(range(1, 13))
    jobs = list(csv.DictReader((fake_run / "results" / "jobs.csv").open()))
    assert len(jobs) == 13 * 2 * 2 * 2  # conditions x seeds x test sets x IoU types
    assert len(stats["kendall_tau"]) == 2  # one pair of test sets, two IoU types


def _reject(name):
    raise ValueError(f"non-strict JSON constant {name}")


def test_markdown_has_every_condition(fake_run):
    md = (fake_run / "report.md").read_text()
    assert "FAKE stages" in md
    for cond in (
        "clean",
        "noise-1",
        "noise-2",
        "noise-3",
        "holes-1",
        "texture-3",
        "ambient-1",
        "baked-light",
    ):
        assert f"| {cond} |" in md


def test_report_command(fake_run, capsys):
    assert main(["report", str(fake_run)]) == 0
    out = capsys.readouterr().out
    assert "report.html" in out and " 1. " in out


def test_report_refuses_folder_without_clean(tmp_path, capsys):
    cfg_path = tmp_path / "fake.toml"
    cfg_path.write_text(
        'preset = "tiny"\nstages = "fake"\n[train]\noverrides = { fake_fail = ["clean__s0"] }\n'
    )
    run_study(tmp_path / "run", load_study_config(cfg_path), InlineExecutor(), progress=False)
    assert main(["report", str(tmp_path / "run")]) == 2
    assert "no finished clean job" in capsys.readouterr().err


def test_jobs_trained_with_other_settings_are_left_out(tmp_path):
    cfg_path = tmp_path / "fake.toml"
    cfg_path.write_text('preset = "tiny"\nstages = "fake"\nconditions = ["clean", "noise-1", "noise-2"]\n')
    run_dir = tmp_path / "run"
    run_study(run_dir, load_study_config(cfg_path), InlineExecutor(), report=False, progress=False)
    for jid, h in (("clean__s0", "aaa"), ("noise-1__s0", "aaa"), ("noise-2__s0", "bbb")):
        path = run_dir / "jobs" / jid / "manifest.json"
        m = json.loads(path.read_text())
        path.write_text(json.dumps({**m, "train_config_hash": h}))
    assert main(["report", str(run_dir)]) == 0
    stats = json.loads((run_dir / "results" / "stats.json").read_text())
    assert {r["condition"] for r in stats["results"]} == {"clean", "noise-1"}
    assert "other settings" in stats["failed"]["noise-2__s0"]
    assert "not comparable" in (run_dir / "report.html").read_text()
