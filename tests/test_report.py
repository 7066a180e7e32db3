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
    cfg_path.write_text('preset = "quick"\nstages = "fake"\nseeds = [0, 1, 2]\n')
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
    assert len(jobs) == 13 * 3 * 2 * 2  # conditions x seeds x test sets x IoU types
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


# ---------------------------------------------------------------------- Figure 1's labels
def _label_layout(points):
    from matplotlib.text import Text

    from twingap.study.report.figures import _plt, place_labels

    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.6, 4.4))
    for x, y, _ in points:
        ax.plot(x, y, "o", ms=7)
    ax.set_xlim(0, 8)
    ax.set_ylim(-14, 1)
    place_labels(fig, ax, points)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    labels = {a.get_text(): a for a in ax.texts}
    # the text's own box (an Annotation's extent includes its leader line)
    boxes = {t: Text.get_window_extent(a, renderer) for t, a in labels.items()}
    marks = {t: _marker_box(ax, x, y, 7) for x, y, t in points}
    plt.close(fig)
    return labels, boxes, marks


def _marker_box(ax, x, y, ms):
    """A marker's box (display pixels) of diameter ``ms`` points at data (x, y)."""
    from matplotlib.transforms import Bbox

    px, py = ax.transData.transform((x, y))
    r = ms / 2 * ax.figure.dpi / 72
    return Bbox.from_extents(px - r, py - r, px + r, py + r)


def _assert_apart(boxes, marks):
    names = sorted(boxes)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not boxes[a].overlaps(boxes[b]), f"labels {a} and {b} overlap"
        for m, mb in marks.items():
            assert not boxes[a].overlaps(mb), f"label {a} overlaps the marker of {m}"


def test_figure1_labels_are_nudged_apart_with_a_leader_line():
    # four conditions with the same artist hours and about the same AP cost, one far from them
    points = [
        (2.0, -5.0, "noise-1"),
        (2.0, -5.1, "holes-2"),
        (2.0, -4.95, "texture-2"),
        (2.0, -5.05, "noise-2"),
        (6.0, -12.0, "texture-3"),
    ]
    labels, boxes, marks = _label_layout(points)
    assert set(labels) == {t for _, _, t in points}
    _assert_apart(boxes, marks)
    # a label left at its place has no leader line; at most one of the crowd stays there, and a
    # label moved more than a line away from its point has one
    assert labels["texture-3"].xyann == (6, 4) and labels["texture-3"].arrow_patch is None
    crowd = [t for _, _, t in points[:4]]
    assert sum(labels[t].xyann == (6, 4) for t in crowd) == 1
    line_px = 1.25 * 8.5 * 110 / 72
    for t in crowd:
        px, py = marks[t].x0 + marks[t].width / 2, marks[t].y0 + marks[t].height / 2
        b = boxes[t]
        gap = (max(b.x0 - px, px - b.x1, 0.0) ** 2 + max(b.y0 - py, py - b.y1, 0.0) ** 2) ** 0.5
        if gap > 1.2 * line_px:
            assert labels[t].arrow_patch is not None, f"{t} moved away without a leader line"
        if labels[t].xyann == (6, 4):
            assert labels[t].arrow_patch is None, f"{t} was not moved but has a leader line"


def test_figure1_labels_far_apart_stay_where_they_are():
    # (far from the axes' right edge too: a label that would cross it goes left of its point)
    labels, _, _ = _label_layout([(1.0, -2.0, "noise-1"), (4.0, -8.0, "holes-2"), (6.0, -12.0, "texture-3")])
    assert all(a.xyann == (6, 4) and a.arrow_patch is None for a in labels.values())


def _crowded_run(tmp_path: Path, **extra: str) -> Path:
    """A fake study whose five cheap conditions (0.5-2 artist hours) cost about the same AP."""
    effects = {
        "ambient-1": -0.050,
        "ambient-2": -0.052,
        "holes-1": -0.049,
        "holes-2": -0.051,
        "texture-1": -0.050,
        "texture-3": 0.0,
        "noise-3": -0.002,
    }
    over = ", ".join(f'"{k}" = {v}' for k, v in effects.items())
    cfg_path = tmp_path / "crowd.toml"
    cfg_path.write_text(
        'preset = "tiny"\nstages = "fake"\nseeds = [0, 1, 2]\n'
        f"conditions = {['clean', *effects]!r}\n".replace("'", '"')
        + f"[train]\noverrides = {{ fake_effects = {{ {over} }}{extra.get('overrides', '')} }}\n"
    )
    run_study(tmp_path / "run", load_study_config(cfg_path), InlineExecutor(), progress=False)
    return tmp_path / "run"


@pytest.fixture(scope="module")
def crowded_run(tmp_path_factory) -> Path:
    return _crowded_run(tmp_path_factory.mktemp("crowd"))


def test_figure1_labels_of_a_crowded_run_touch_no_label_and_no_point(crowded_run):
    from matplotlib.text import Text

    from twingap.study.report import collect
    from twingap.study.report.figures import MARKER_NS, MARKER_SIG, figure1_figure

    res = collect(crowded_run)
    fig = figure1_figure(res)
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        for ax, ts in zip(fig.axes, [t.name for t in res.cfg.test_sets], strict=True):
            labels = {a.get_text(): a for a in ax.texts}
            boxes = {t: Text.get_window_extent(a, renderer) for t, a in labels.items()}
            marks = {}
            for c in res.cfg.conditions[1:]:
                r = res.get(ts, "bbox", c)
                ms = MARKER_SIG if r.significant else MARKER_NS
                marks[c] = _marker_box(ax, res.hours[c], r.delta, ms)
            assert set(boxes) == set(marks)
            # the five cheap conditions are crowded: their markers nearly touch at this size
            cheap = ["ambient-1", "ambient-2", "holes-1", "texture-1"]
            assert (
                max(marks[c].y1 for c in cheap) - min(marks[c].y0 for c in cheap)
                < 6 * marks["holes-1"].height
            )
            _assert_apart(boxes, marks)
            frame = ax.get_window_extent(renderer)
            for t, b in boxes.items():
                assert frame.x0 <= b.x0 and b.x1 <= frame.x1 and frame.y0 <= b.y0 and b.y1 <= frame.y1, t
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)


# ---------------------------------------------------------------------- summary_text
def _stats_row(ts, iou, cond, delta, lo, hi, significant, ap=60.0):
    return {
        "test_set": ts,
        "iou_type": iou,
        "condition": cond,
        "ap": {"AP": ap, "AP50": ap + 10, "AP75": ap - 5},
        "ap_lo": ap - 4,
        "ap_hi": ap + 4,
        "delta": delta,
        "delta_lo": lo,
        "delta_hi": hi,
        "significant": significant,
    }


def _write_stats(run_dir: Path, fake: bool) -> Path:
    results = [
        _stats_row("twinned", "bbox", "clean", 0.0, 0.0, 0.0, False, ap=70.0),
        _stats_row("twinned", "bbox", "noise-3", -9.0, -10.0, -8.0, True),
        _stats_row("twinned", "bbox", "holes-2", -5.0, -6.5, -3.5, True),
        _stats_row("twinned", "bbox", "texture-1", -1.0, -2.0, 0.1, False),
        _stats_row("twinned", "bbox", "ambient-1", 0.5, -0.5, 1.5, False),
        _stats_row("twinned", "bbox", "baked-light", None, None, None, False),  # no paired seed: left out
        _stats_row("twinned", "segm", "noise-1", -30.0, -31.0, -29.0, True),  # segm: not in the headline
        _stats_row("held-out", "bbox", "clean", 0.0, 0.0, 0.0, False, ap=50.0),
    ]
    stats = {"fake": fake, "results": results, "timings": {"wall": 330.0, "sessions": 2, "total": 600.0}}
    (run_dir / "results").mkdir(parents=True)
    (run_dir / "results" / "stats.json").write_text(json.dumps(stats))
    return run_dir


def test_summary_text_headline(tmp_path):
    from twingap.study.report import summary_text

    text = summary_text(_write_stats(tmp_path / "run", fake=False))
    assert text.splitlines() == [
        "twinned: clean bbox AP 70.0 [66.0, 74.0]",
        "  worst:  noise-3 -9.0 [-10.0, -8.0]*; holes-2 -5.0 [-6.5, -3.5]*; texture-1 -1.0 [-2.0, +0.1]",
        "  mildest: ambient-1 +0.5 [-0.5, +1.5]; texture-1 -1.0 [-2.0, +0.1]; holes-2 -5.0 [-6.5, -3.5]*",
        "held-out: clean bbox AP 50.0 [46.0, 54.0]",
        "wall time 5.5 min over 2 session(s); sum of stages 10.0 min  "
        "(* = distinguishable from zero, Holm-corrected; intervals Holm-adjusted)",
    ]


def test_summary_text_flags_fake_numbers(tmp_path):
    from twingap.study.report import summary_text

    text = summary_text(_write_stats(tmp_path / "run", fake=True))
    assert text.splitlines()[0] == "FAKE stages: synthetic numbers (pipeline test), not results"


# ---------------------------------------------------------------------- top_fixes_text
def _fix(rank, cond, hours, rec, lo, hi, significant, verdict):
    per = rec / hours
    return {
        "rank": rank,
        "condition": cond,
        "hours": hours,
        "recovered": rec,
        "recovered_lo": lo,
        "recovered_hi": hi,
        "per_hour": per,
        "per_hour_lo": lo / hours,
        "per_hour_hi": hi / hours,
        "significant": significant,
        "verdict": verdict,
    }


def test_top_fixes_text_rates_only_distinguishable_fixes(tmp_path):
    from twingap.study.report import top_fixes_text

    fixes = [
        _fix(1, "noise-3", 9.0, 14.0, 9.0, 19.0, True, "fix recovers AP"),
        _fix(2, "ambient-2", 0.5, 2.6, -1.2, 6.4, False, "no measurable difference"),
        _fix(3, "holes-1", 2.0, -0.2, -3.0, 2.6, False, "no measurable difference"),
    ]
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "stats.json").write_text(json.dumps({"fixes": fixes}))
    assert top_fixes_text(tmp_path).splitlines() == [
        " 1. noise-3       +14.0 AP [+9.0, +19.0] for 9 h = 1.56 AP/h",
        " 2. ambient-2      +2.6 AP [-1.2, +6.4] for 0.5 h: no measurable difference",
        " 3. holes-1        -0.2 AP [-3.0, +2.6] for 2 h: no measurable difference",
    ]
    assert len(top_fixes_text(tmp_path, n=1).splitlines()) == 1


def test_top_fixes_title_says_what_the_recovery_is_measured_on(tmp_path):
    from twingap.study.config import preset
    from twingap.study.report import top_fixes_title
    from twingap.study.runner import init_run

    cfg = preset("tiny")
    init_run(tmp_path / "mean", cfg)
    assert top_fixes_title(tmp_path / "mean") == (
        "fix these first (bbox AP recovered, mean over the test sets, Holm-adjusted interval):"
    )
    cfg.cost.rank_by = cfg.test_sets[0].name
    init_run(tmp_path / "one", cfg)
    assert f"test set {cfg.test_sets[0].name}," in top_fixes_title(tmp_path / "one")


# ---------------------------------------------------------------------- the fix list's rates
def _html_rows(html_text: str, first_header: str) -> list[list[str]]:
    """The body rows of the HTML table whose header starts with ``first_header``, as cell texts."""
    table = next(t for t in re.findall(r"<table.*?</table>", html_text, flags=re.S) if first_header in t)
    rows = re.findall(r"<tr>(.*?)</tr>", table, flags=re.S)[1:]
    return [
        [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)] for r in rows
    ]


def test_fix_tables_rate_only_distinguishable_fixes(crowded_run):
    html_rows = _html_rows((crowded_run / "report.html").read_text(), "<th>#</th>")
    verdicts = {r[1]: r[-1] for r in html_rows}
    assert verdicts["texture-3"] == verdicts["noise-3"] == "no measurable difference"
    assert verdicts["ambient-2"] == "fix recovers AP"
    for r in html_rows:  # condition, ..., AP per hour, verdict
        rate = r[-2]
        if r[-1] == "fix recovers AP":
            assert float(rate) > 0, r
        else:
            assert rate == "–", f"{r[1]} ({r[-1]}) shows a rate {rate}"
    md = (crowded_run / "report.md").read_text()
    md_rows = [line.split(" | ") for line in md.splitlines() if line.startswith("| ") and "AP/h" not in line]
    fix_rows = {r[1]: r for r in md_rows if len(r) == 6 and r[0].lstrip("| ").isdigit()}
    assert fix_rows["texture-3"][4] == "–" and fix_rows["noise-3"][4] == "–"
    assert float(fix_rows["ambient-2"][4]) > 0
    csv_rows = {r["condition"]: r for r in csv.DictReader((crowded_run / "results" / "fixes.csv").open())}
    assert csv_rows["texture-3"]["per_hour"] != ""  # the data file keeps every rate (the ranking uses it)


def test_headline_names_no_fix_when_none_is_distinguishable(crowded_run):
    from twingap.study.report import collect
    from twingap.study.report.tables import headline_cards

    res = collect(crowded_run)
    res.fixes = [f for f in res.fixes if not f.significant]
    card = next(c for c in headline_cards(res) if c[0] == "fix first")
    assert card[1] == "–" and "AP/h" not in card[2] and "no measurable difference" in card[2]


# ---------------------------------------------------------------------- intervals beside verdicts
def _excludes_zero(cell: str) -> bool:
    lo, hi = (float(v) for v in re.search(r"\[([-+0-9.]+), ([-+0-9.]+)\]", cell).groups())
    return lo > 0 or hi < 0


def test_intervals_beside_verdicts_agree_with_them(crowded_run):
    text = (crowded_run / "report.html").read_text()
    assert "Which intervals are which" in text and text.count("Which intervals are which") == 1
    for r in _html_rows(text, "<th>#</th>"):
        assert _excludes_zero(r[4]) == (r[-1] != "no measurable difference"), r
    cells = re.findall(r"<td class='(neg|pos|ns)'>([-+0-9.]+ <span[^>]*>\[[^\]]+\])</span></td>", text)
    assert len(cells) >= 7 * 2 * 2  # conditions x test sets x IoU types
    for cls, cell in cells:
        assert _excludes_zero(re.sub(r"<[^>]+>", "", cell)) == (cls != "ns"), cell
    md = (crowded_run / "report.md").read_text()
    for line in md.splitlines():
        for cell in re.findall(r"\| ([-+0-9.]+ \[[^\]]+\](?: \*)?) ", line):
            if line.split(" | ")[-1].strip(" |") in ("no measurable difference", "fix recovers AP"):
                continue  # the fix list: checked above
            assert _excludes_zero(cell) == cell.endswith("*"), line
    summary = list(csv.DictReader((crowded_run / "results" / "summary.csv").open()))
    for row in summary:
        if row["condition"] != "clean":
            lo, hi = float(row["delta_adj_lo"]), float(row["delta_adj_hi"])
            assert (lo > 0 or hi < 0) == (row["significant"] == "True"), row
            assert lo <= float(row["delta_lo"]) and float(row["delta_hi"]) <= hi  # wider than 95%


# ---------------------------------------------------------------------- a partial run's header
def test_partial_run_header_says_seeds_per_condition(tmp_path):
    run = _crowded_run(tmp_path, overrides=', fake_fail = ["holes-1__s1", "holes-1__s2", "texture-1__s2"]')
    text = (run / "report.html").read_text()
    header = re.search(r"<header>.*?</header>", text, re.S).group(0)
    assert "8 conditions × 3 seed(s)" not in header
    assert "21 of 24 jobs done" in header
    assert "3 of 3 (clean, ambient-1, ambient-2, holes-2, texture-3, noise-3)" in header
    assert "2 of 3 (texture-1)" in header and "1 of 3 (holes-1)" in header
    banner = re.search(r"<div class='banner err'>(.*?)</div>", text, re.S).group(1)  # kept
    assert all(j in banner for j in ("holes-1__s1", "holes-1__s2", "texture-1__s2"))
    md = (run / "report.md").read_text()
    assert "seeds per condition: 3 of 3" in md and "1 of 3 (holes-1)" in md
    assert "8 conditions x 3 seed(s)" not in md
    card = re.search(
        r"<div class='k'>jobs</div><div class='v'>([^<]*)</div><div class='s'>([^<]*)</div>", text
    )
    assert card.group(1) == "21/24" and "1-3 seeds each" in card.group(2)
