"""Collect a study's results and write the report: ``report.html`` (self-contained), ``report.md``, CSVs.

Everything here is computed from the files in the run folder: job manifests, predictions and the
test sets' ground truth. Nothing is typed in by hand.

Outputs (``RUN_DIR/``): ``report.html``, ``report.md``, ``results/jobs.csv`` (one row per job,
test set and IoU type), ``results/summary.csv`` (per condition, test set and IoU type: AP, AP50,
AP75, intervals, difference to clean), ``results/fixes.csv`` (the ranked fix list),
``results/timings.csv``, ``results/stats.json`` and the figures in ``report_files/``.
"""

# ruff: noqa: E501  (HTML / markdown templates read better unwrapped)
from __future__ import annotations

import base64
import csv
import html
import io
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from twingap.io import dumps_json, read_json, write_json_atomic, write_text_atomic
from twingap.study.config import StudyConfig
from twingap.study.cost import FixItem, artist_hours, rank_fixes
from twingap.study.runner import IOU_TYPES, STAGES, job_states, load_run_config, scored_categories
from twingap.study.stages import load_stages
from twingap.study.stats import (
    ConditionResult,
    SeedSpread,
    condition_results,
    kendall_tau,
    mean_over_test_sets,
    with_extra_seeds,
)

PRIMARY_IOU = "bbox"

FAMILY_COLORS = {
    "clean": "#444444",
    "noise": "#d1495b",
    "holes": "#edae49",
    "texture": "#00798c",
    "ambient": "#8e7dbe",
    "baked": "#66a182",
}


def _family(cond: str) -> str:
    return cond.split("-")[0]


def _color(cond: str) -> str:
    return FAMILY_COLORS.get(_family(cond), "#555555")


@dataclass
class StudyResults:
    """Everything the report shows, computed from a run folder."""

    run_dir: Path
    cfg: StudyConfig
    fake: bool
    jobs: list[dict[str, Any]]
    states: dict[str, str]
    shared: dict[str, Any]
    results: list[ConditionResult]
    spreads: list[SeedSpread]
    taus: list[dict[str, Any]]
    hours: dict[str, float]
    fixes: list[FixItem]
    categories: dict[str, list[int]]
    timings: dict[str, Any]
    versions: dict[str, str]
    failed: dict[str, str] = field(default_factory=dict)
    #: test set -> IoU type -> condition -> category id -> AP points of the first seed's model
    #: (real stages only; the fake stages have no categories).
    per_category: dict[str, dict[str, dict[str, dict[int, float]]]] = field(default_factory=dict)

    def get(self, test_set: str, iou: str, cond: str) -> ConditionResult | None:
        """The result of one condition on one test set and IoU type."""
        for r in self.results:
            if r.test_set == test_set and r.iou_type == iou and r.condition == cond:
                return r
        return None


def collect(run_dir: str | Path) -> StudyResults:
    """Read a run folder and compute every statistic of the report.

    Raises:
        TwingapError: If the folder holds no study, or no finished clean job to compare against.
    """
    from twingap.errors import TwingapError

    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    stages = load_stages(cfg.stages)
    states = {s.id: s for s in job_states(run_dir)}
    jobs = [
        read_json(run_dir / "jobs" / jid / "manifest.json") for jid, s in states.items() if s.state == "done"
    ]
    if not any(j["condition"] == "clean" for j in jobs):
        raise TwingapError("no finished clean job yet: nothing to compare against", run_dir)
    # A job trained with other settings than its seed's clean job (e.g. the training code changed
    # between jobs) is not comparable: it is left out of every statistic and listed.
    prints = {j["id"]: train_fingerprint(run_dir, j) for j in jobs}
    inconsistent = {}
    for j in jobs:
        ref = prints.get(f"clean__s{j['seed']}", prints.get(f"clean__s{cfg.seeds[0]}"))
        if prints[j["id"]] != ref:
            inconsistent[j["id"]] = f"trained with other settings ({prints[j['id']]} vs clean {ref})"
    jobs = [j for j in jobs if j["id"] not in inconsistent]
    shared = {
        "scenes": read_json(run_dir / "scenes" / "manifest.json"),
        "testsets": {
            ts.name: read_json(run_dir / "testsets" / ts.name / "manifest.json") for ts in cfg.test_sets
        },
    }
    categories = {ts.name: scored_categories(shared, ts.name) for ts in cfg.test_sets}
    results: list[ConditionResult] = []
    spreads: list[SeedSpread] = []
    order = {c: i for i, c in enumerate(cfg.conditions)}
    per_cat: dict[str, dict[str, dict[str, dict[int, float]]]] = {}
    for ts in cfg.test_sets:
        gt = run_dir / "testsets" / ts.name / "gt.json"
        for iou in IOU_TYPES:
            evals: dict[str, dict[int, Any]] = {}
            for j in sorted(jobs, key=lambda j: (order.get(j["condition"], 99), j["seed"])):
                preds = run_dir / "jobs" / j["id"] / "preds" / f"{ts.name}.json"
                pe = stages.per_image_eval(gt, preds, iou, categories[ts.name])
                evals.setdefault(j["condition"], {})[j["seed"]] = pe
                if j["seed"] == cfg.seeds[0] and hasattr(pe, "per_category"):
                    per_cat.setdefault(ts.name, {}).setdefault(iou, {})[j["condition"]] = {
                        c: 100 * ap for c, ap in pe.per_category().items()
                    }
            # differences pair the study's seeds; extra clean-only seeds measure the seed spread
            main_evals = {c: {s: pe for s, pe in per.items() if s in cfg.seeds} for c, per in evals.items()}
            main_evals = {c: per for c, per in main_evals.items() if per}
            res, spread = condition_results(
                ts.name, iou, main_evals, cfg.stats.n_boot, cfg.stats.ci, cfg.stats.seed
            )
            results.extend(res)
            if spread:
                extra = {s: pe for s, pe in evals.get("clean", {}).items() if s not in cfg.seeds}
                if extra:
                    spread = with_extra_seeds(spread, extra)
                spreads.append(spread)
    taus = []
    names = [ts.name for ts in cfg.test_sets]
    for iou in IOU_TYPES:
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                da = {
                    r.condition: r.delta
                    for r in results
                    if r.test_set == a and r.iou_type == iou and r.condition != "clean"
                }
                db = {
                    r.condition: r.delta
                    for r in results
                    if r.test_set == b and r.iou_type == iou and r.condition != "clean"
                }
                taus.append({"iou_type": iou, "a": a, "b": b, **kendall_tau(da, db)})
    hours = artist_hours(cfg)
    fixes = rank_fixes(_rank_deltas(cfg, results), hours, seed_noise=_rank_seed_noise(cfg, spreads))
    # timings
    scenes_s = shared["scenes"].get("seconds", 0.0)
    test_s = sum(t.get("seconds", 0.0) for t in shared["testsets"].values())
    per_stage = {k: 0.0 for k in STAGES}
    render_once: dict[str, float] = {}
    for j in jobs:
        for k in STAGES:
            if k != "render":
                per_stage[k] += j["timings"].get(k, 0.0)
        render_once[j["condition"]] = max(render_once.get(j["condition"], 0.0), j.get("render_seconds", 0.0))
    per_stage["render"] = sum(render_once.values())
    per_job = {j["id"]: j["timings"] for j in jobs}
    timings = {
        "scenes": scenes_s,
        "scene_parts": shared["scenes"].get("timings", {}),
        "testsets": test_s,
        "stages": per_stage,
        "per_job": per_job,
        "total": scenes_s + test_s + sum(per_stage.values()),
        **_wall_time(run_dir),
    }
    failed = {jid: s.detail for jid, s in states.items() if s.state == "failed"}
    failed.update(inconsistent)
    vers = jobs[0].get("versions", {}) if jobs else {}
    return StudyResults(
        run_dir,
        cfg,
        bool(jobs and jobs[0].get("fake")),
        jobs,
        {k: v.state for k, v in states.items()},
        shared,
        results,
        spreads,
        taus,
        hours,
        fixes,
        categories,
        timings,
        vers,
        failed,
        per_cat,
    )


def train_fingerprint(run_dir: Path, job: dict[str, Any]) -> str | None:
    """Short hash of the training settings a job used (manifest, or its model's config.json)."""
    if job.get("train_config_hash"):
        return str(job["train_config_hash"])
    cfg_path = run_dir / "jobs" / job["id"] / "model" / "config.json"
    if cfg_path.is_file():
        from twingap.io import sha256_bytes

        return sha256_bytes(dumps_json(read_json(cfg_path), indent=None).encode())[:12]
    return None


def _wall_time(run_dir: Path) -> dict[str, Any]:
    """Wall-clock seconds of the study over all its sessions (``twingap study`` invocations)."""
    sessions_path = run_dir / "results" / "sessions.json"
    last_path = run_dir / "results" / "last_session.json"
    sessions = read_json(sessions_path) if sessions_path.is_file() else []
    wall = sum(s.get("seconds", 0.0) for s in sessions)
    n = len(sessions)
    if last_path.is_file():
        last = read_json(last_path)
        if "seconds" not in last:  # the session writing this report: count its jobs so far
            wall += last.get("jobs_seconds", 0.0)
            n += 1
    return {"wall": wall, "sessions": n}


def _rank_deltas(
    cfg: StudyConfig, results: list[ConditionResult]
) -> dict[str, tuple[float, float, float, bool]]:
    """Per condition (delta, lo, hi, significant) on the ranking test set (or the mean over test sets)."""
    out = {}
    for cond in cfg.conditions:
        rows = [r for r in results if r.condition == cond and r.iou_type == PRIMARY_IOU]
        if cfg.cost.rank_by != "mean":
            rows = [r for r in rows if r.test_set == cfg.cost.rank_by]
        rows = [r for r in rows if not math.isnan(r.delta)]
        if not rows:
            continue
        if len(rows) == 1:
            r = rows[0]
            out[cond] = (r.delta, r.delta_lo, r.delta_hi, r.significant)
        else:
            out[cond] = mean_over_test_sets(rows, cfg.stats.ci)
    return out


def _seed_noise_note(res: StudyResults) -> str:
    noise = _rank_seed_noise(res.cfg, res.spreads)
    if noise <= 0:
        return ""
    return (
        f", and so do recoveries no larger than the clean model's seed-to-seed difference ({noise:.1f} AP "
        "points: two clean models that differ only in their seed), marked 'within seed noise'"
    )


def _rank_seed_noise(cfg: StudyConfig, spreads: list[SeedSpread]) -> float:
    """The clean model's seed-to-seed AP range on the ranking metric (0 with a single seed)."""
    ranges = [
        s.range
        for s in spreads
        if s.iou_type == PRIMARY_IOU
        and len(s.seeds) > 1
        and (cfg.cost.rank_by == "mean" or s.test_set == cfg.cost.rank_by)
        and not math.isnan(s.range)
    ]
    return float(np.mean(ranges)) if ranges else 0.0


# ---------------------------------------------------------------------- CSVs
def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})
    write_text_atomic(path, buf.getvalue())


def write_csvs(res: StudyResults) -> dict[str, Path]:
    """Write ``results/*.csv`` and ``results/stats.json``; return their paths."""
    from twingap.study.byod import category_names, name_of

    names = category_names(res.run_dir)

    out_dir = res.run_dir / "results"
    rows = []
    for j in sorted(res.jobs, key=lambda j: j["id"]):
        metrics = read_json(res.run_dir / "jobs" / j["id"] / "metrics.json")
        for ts, m in metrics.items():
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
    summary = [
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
            "significant": r.significant,
            "hours": res.hours.get(r.condition, math.nan),
        }
        for r in res.results
    ]
    fixes = [asdict(f) for f in res.fixes]
    timing_rows = [
        {"stage": "scenes (once)", "seconds": res.timings["scenes"]},
        {"stage": "test sets (once)", "seconds": res.timings["testsets"]},
    ]
    timing_rows += [{"stage": k, "seconds": v} for k, v in res.timings["stages"].items()]
    timing_rows.append({"stage": "total", "seconds": res.timings["total"]})
    paths = {
        "jobs": out_dir / "jobs.csv",
        "summary": out_dir / "summary.csv",
        "fixes": out_dir / "fixes.csv",
        "timings": out_dir / "timings.csv",
    }
    _write_csv(paths["jobs"], rows)
    _write_csv(paths["summary"], summary)
    _write_csv(paths["fixes"], fixes)
    _write_csv(paths["timings"], timing_rows)
    cat_rows = [
        {
            "test_set": ts,
            "iou_type": iou,
            "condition": cond,
            "seed": res.cfg.seeds[0],
            "category_id": cid,
            "category": name_of(cid, names),
            "AP_points": ap,
        }
        for ts, per_iou in res.per_category.items()
        for iou, per_cond in per_iou.items()
        for cond, per_c in per_cond.items()
        for cid, ap in per_c.items()
    ]
    if cat_rows:
        paths["per_category"] = out_dir / "per_category.csv"
        _write_csv(paths["per_category"], cat_rows)
    stats = {
        "fake": res.fake,
        "results": [r.to_dict() for r in res.results],
        "seed_spread": [asdict(s) for s in res.spreads],
        "kendall_tau": res.taus,
        "fixes": fixes,
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


# ---------------------------------------------------------------------- figures
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "font.size": 10,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.titleweight": "bold",
            "axes.grid": True,
            "grid.alpha": 0.25,
            "figure.dpi": 110,
        }
    )
    return plt


def _place_labels(fig: Any, ax: Any, points: list[tuple[float, float, str]], fontsize: float = 8.5) -> None:
    """Label each (x, y, text) point to its right, nudged up or down until no two labels overlap.

    Greedy, in display pixels: conditions that share their artist hours (same x) and cost about
    the same AP would otherwise print on top of each other. A label moved away from its point
    gets a thin leader line to it.
    """
    fig.canvas.draw()  # fixes the axes' data -> pixel transform
    char_w, line_h = 0.62 * fontsize * fig.dpi / 72, 1.25 * fontsize * fig.dpi / 72
    placed: list[tuple[float, float, float, float]] = []  # x0, y0, x1, y1 in pixels
    for x, y, text in sorted(points, key=lambda p: (p[0], -p[1])):
        px, py = ax.transData.transform((x, y))
        w = char_w * len(text)
        for k in range(40):
            dy = (k + 1) // 2 * line_h * 0.5 * (1 if k % 2 == 0 else -1)  # 0, -0.5, +0.5, -1, +1 lines ...
            box = (px + 6, py + 4 + dy, px + 6 + w, py + 4 + dy + line_h)
            if not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed):
                break
        placed.append(box)
        shift = box[1] - py - 4
        offset = (6, 4 + shift * 72 / fig.dpi)
        leader = {"arrowstyle": "-", "lw": 0.6, "color": "#888888"} if abs(shift) > line_h * 0.6 else None
        ax.annotate(
            text, (x, y), textcoords="offset points", xytext=offset, fontsize=fontsize, arrowprops=leader
        )


def figure1(res: StudyResults, path: Path) -> Path:
    """Figure 1: artist hours (x) against AP difference to clean (y), one panel per test set."""
    plt = _plt()
    names = [ts.name for ts in res.cfg.test_sets]
    fig, axes = plt.subplots(1, len(names), figsize=(5.6 * len(names), 4.4), sharey=True, squeeze=False)
    for ax, ts in zip(axes[0], names, strict=True):
        spread = next((s for s in res.spreads if s.test_set == ts and s.iou_type == PRIMARY_IOU), None)
        if spread is not None:
            half = spread.image_ci_half if math.isnan(spread.std) else 2 * spread.std
            ax.axhspan(
                -half,
                half,
                color="#999999",
                alpha=0.15,
                lw=0,
                label="clean noise (±2 sd over seeds)"
                if not math.isnan(spread.std)
                else "clean noise (95% CI over images)",
            )
        ax.axhline(0, color="#444444", lw=0.8)
        points: list[tuple[float, float, str]] = []
        for cond in res.cfg.conditions:
            r = res.get(ts, PRIMARY_IOU, cond)
            if r is None or cond == "clean" or math.isnan(r.delta):
                continue
            h = res.hours.get(cond, math.nan)
            ax.errorbar(
                h,
                r.delta,
                yerr=[[r.delta - r.delta_lo], [r.delta_hi - r.delta]],
                fmt="o",
                color=_color(cond),
                ms=7 if r.significant else 5,
                mfc=_color(cond) if r.significant else "white",
                capsize=3,
                lw=1.3,
            )
            points.append((h, r.delta, cond))
        max_h = max([h for c, h in res.hours.items() if c in res.cfg.conditions] + [1.0])
        ax.set_xlim(0, max_h * 1.18 + 0.3)
        _place_labels(fig, ax, points)
        ax.set_title(f"{ts}  ({res.cfg.test_sets[names.index(ts)].kind})")
        ax.set_xlabel("artist hours to fix")
        if ax is axes[0][0]:
            ax.set_ylabel(f"{PRIMARY_IOU} AP difference to clean (AP points)")
        ax.legend(loc="lower left", fontsize=8, frameon=False)
    fig.suptitle("Cost of each artifact: what it takes to fix vs. what it costs the detector", fontsize=11)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def bar_chart(res: StudyResults, path: Path) -> Path:
    """AP difference per condition with intervals: one panel per test set, bbox and segm bars."""
    plt = _plt()
    names = [ts.name for ts in res.cfg.test_sets]
    conds = [c for c in res.cfg.conditions if c != "clean"]
    fig, axes = plt.subplots(
        1, len(names), figsize=(5.6 * len(names), 0.38 * len(conds) + 1.6), sharey=True, squeeze=False
    )
    y = np.arange(len(conds))
    for ax, ts in zip(axes[0], names, strict=True):
        for k, iou in enumerate(IOU_TYPES):
            vals, los, his, cols = [], [], [], []
            for c in conds:
                r = res.get(ts, iou, c)
                d = r.delta if r else math.nan
                vals.append(d)
                los.append(d - r.delta_lo if r else 0)
                his.append(r.delta_hi - d if r else 0)
                cols.append(_color(c))
            off = (k - 0.5) * 0.38
            ax.barh(
                y + off,
                vals,
                height=0.36,
                color=cols,
                alpha=1.0 if iou == "bbox" else 0.45,
                xerr=[los, his],
                error_kw={"lw": 1, "capsize": 2, "ecolor": "#333333"},
                label=f"{iou} AP",
            )
        ax.axvline(0, color="#444444", lw=0.8)
        ax.set_yticks(y, conds)
        ax.invert_yaxis()
        ax.set_title(ts)
        ax.set_xlabel("AP difference to clean (AP points), 95% CI")
        ax.legend(fontsize=8, frameon=False, loc="lower left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _thumb(path: Path, width: int = 220) -> str:
    """A JPEG thumbnail as a base64 data URI."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        h = max(1, round(im.height * width / im.width))
        im = im.resize((width, h), Image.BILINEAR)
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=82)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def _png_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def _real_frames(res: StudyResults, n: int = 3) -> list[Path]:
    for ts in res.cfg.test_sets:
        fpath = res.run_dir / "testsets" / ts.name / "frames.json"
        if not fpath.is_file():
            continue
        frames = [Path(f["rgb_path"]) for f in read_json(fpath) if f.get("rgb_path")]
        frames = [f for f in frames if f.is_file()]
        if frames:
            step = max(1, len(frames) // n)
            return frames[::step][:n]
    return []


# ---------------------------------------------------------------------- HTML + markdown
CSS = """
:root { --ink:#1d2330; --muted:#6b7385; --line:#e3e6ee; --bg:#f6f7fb; --good:#1a7f4b; --bad:#b3261e; }
* { box-sizing: border-box; }
body { margin:0; font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color:var(--ink); background:var(--bg); }
header { background: linear-gradient(120deg, #1d2330, #2f3d5c); color:#fff; padding:28px 40px 22px; }
header h1 { margin:0 0 4px; font-size:26px; letter-spacing:.2px; }
header p { margin:0; color:#c9d1e4; }
main { max-width: 1320px; margin: 0 auto; padding: 22px 40px 60px; }
section { background:#fff; border:1px solid var(--line); border-radius:12px; padding:18px 22px; margin:18px 0; }
h2 { font-size:19px; margin:0 0 10px; } h3 { font-size:15px; margin:14px 0 6px; }
.cards { display:grid; grid-template-columns: repeat(auto-fit, minmax(210px, 1fr)); gap:14px; }
.card { background:#fff; border:1px solid var(--line); border-radius:12px; padding:14px 16px; }
.card .k { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.6px; }
.card .v { font-size:26px; font-weight:700; margin-top:2px; }
.card .s { color:var(--muted); font-size:13px; }
.banner { background:#fff4e5; border:1px solid #f0c36d; color:#6b4500; padding:12px 16px; border-radius:10px;
          font-weight:600; margin-top:18px; }
.banner.err { background:#fdecea; border-color:#f5a39b; color:#7a1a12; }
table { border-collapse: collapse; width:100%; font-size:13.5px; }
th, td { padding:6px 8px; border-bottom:1px solid var(--line); text-align:right; white-space:nowrap; }
th { background:#fafbfe; color:var(--muted); font-weight:600; position:sticky; top:0; }
td:first-child, th:first-child { text-align:left; }
tr:hover td { background:#fafbff; }
.neg { color:var(--bad); font-weight:600; } .pos { color:var(--good); font-weight:600; } .ns { color:var(--muted); }
.dot { display:inline-block; width:10px; height:10px; border-radius:50%; margin-right:6px; vertical-align:middle; }
img.fig { width:100%; height:auto; }
.strip { display:flex; gap:8px; align-items:center; flex-wrap:wrap; margin:6px 0 12px; }
.strip img { width:170px; border-radius:6px; border:1px solid var(--line); }
.strip .lab { width:110px; font-weight:600; font-size:13px; }
.muted { color:var(--muted); } .small { font-size:12.5px; }
ol.fix li { margin:4px 0; }
code, pre { font-family: ui-monospace, Menlo, Consolas, monospace; font-size:12.5px; }
pre { background:#f4f5f9; padding:10px 12px; border-radius:8px; overflow:auto; max-height:380px; }
.two { display:grid; grid-template-columns: 1fr 1fr; gap:18px; }
"""


def _fmt(x: float, nd: int = 1, sign: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if round(x, nd) == 0:
        x = 0.0  # no "-0.0"
    return f"{x:+.{nd}f}" if sign else f"{x:.{nd}f}"


def _delta_cell(r: ConditionResult | None) -> str:
    if r is None or math.isnan(r.delta):
        return "<td class='ns'>–</td>"
    cls = "ns" if not r.significant else ("neg" if r.delta < 0 else "pos")
    return f"<td class='{cls}'>{_fmt(r.delta, sign=True)} <span class='small muted'>[{_fmt(r.delta_lo, sign=True)}, {_fmt(r.delta_hi, sign=True)}]</span></td>"


def _cat_names(ids: list[int], run_dir: Path) -> str:
    from twingap.study.byod import category_names, name_of

    names = category_names(run_dir)
    return ", ".join(f"{i} {name_of(i, names)}" for i in ids)


def _not_scored_note(run_dir: Path, test_set: str) -> str:
    from twingap.study.byod import not_scored

    missing = not_scored(run_dir, test_set)
    return f"; not scored: {', '.join(missing)}" if missing else ""


def _headline(res: StudyResults) -> list[tuple[str, str, str]]:
    cards = []
    names = [ts.name for ts in res.cfg.test_sets]
    for ts in names:
        c = res.get(ts, PRIMARY_IOU, "clean")
        if c:
            cards.append(
                (
                    f"clean {PRIMARY_IOU} AP · {ts}",
                    _fmt(c.ap["AP"]),
                    f"95% CI [{_fmt(c.ap_lo)}, {_fmt(c.ap_hi)}] · AP50 {_fmt(c.ap['AP50'])}",
                )
            )
    if res.fixes:
        top = res.fixes[0]
        cards.append(
            (
                "fix first",
                top.condition,
                f"{_fmt(top.recovered, sign=True)} AP for {top.hours:g} h · {_fmt(top.per_hour, 2)} AP/h",
            )
        )
    for t in res.taus:
        if t["iou_type"] == PRIMARY_IOU:
            cards.append(
                (
                    "rank agreement (Kendall τ)",
                    _fmt(t["tau"], 2),
                    f"{t['a']} vs {t['b']} · {t['n']} conditions · p={_fmt(t['p_value'], 3)}",
                )
            )
            break
    done = sum(s == "done" for s in res.states.values())
    cards.append(
        (
            "jobs",
            f"{done}/{len(res.states)}",
            f"{len(res.cfg.conditions)} conditions × {len(res.cfg.seeds)} seed(s) · {res.timings.get('wall', 0.0) / 60:.1f} min wall",
        )
    )
    return cards


def _per_category_tables(res: StudyResults) -> list[tuple[str, list[str], list[tuple[int, float, list]]]]:
    """Per test set: the conditions shown, and per category (id, clean AP, [difference or None])."""
    tables = []
    for ts, per_iou in res.per_category.items():
        per_cond = per_iou.get(PRIMARY_IOU, {})
        clean = per_cond.get("clean")
        if not clean:
            continue
        conds = [c for c in res.cfg.conditions if c != "clean" and c in per_cond]
        rows = []
        for cid, ap in clean.items():
            deltas = []
            for c in conds:
                v = per_cond[c].get(cid)
                deltas.append(None if v is None or math.isnan(v) or math.isnan(ap) else v - ap)
            rows.append((cid, ap, deltas))
        tables.append((ts, conds, rows))
    return tables


def _per_category_html(res: StudyResults) -> str:
    """Per-category table: the clean model's AP and each condition's difference, per test set."""
    from twingap.study.byod import category_names, name_of

    names = category_names(res.run_dir)

    tables = _per_category_tables(res)
    if not tables:
        return ""
    e = html.escape
    out = [
        f"<h3>Per category ({PRIMARY_IOU} AP, seed {res.cfg.seeds[0]}): where the clean model fails, and what each flaw costs</h3>"
        "<p class='muted small'>Clean AP per category, then each condition's difference to clean on that category "
        "(red: lower, blue: higher; one seed, no interval: read patterns, not single cells). A category the clean "
        "model cannot detect cannot show an artifact's cost.</p>"
    ]
    for ts, conds, rows in tables:
        out.append(
            f"<h4>{e(ts)}</h4><table class='small'><tr><th>category</th><th>clean</th>"
            + "".join(f"<th>{e(c)}</th>" for c in conds)
            + "</tr>"
        )
        for cid, ap, deltas in rows:
            cells = []
            for d in deltas:
                if d is None:
                    cells.append("<td>–</td>")
                    continue
                a = min(abs(d) / 30.0, 1.0) * 0.6
                bg = f"rgba(200,40,40,{a:.2f})" if d < 0 else f"rgba(40,90,200,{a:.2f})"
                cells.append(f"<td style='background:{bg}'>{_fmt(d, sign=True)}</td>")
            out.append(
                f"<tr><td>{cid} {e(name_of(cid, names))}</td><td><b>{_fmt(ap)}</b></td>"
                + "".join(cells)
                + "</tr>"
            )
        out.append("</table>")
    return "".join(out)


def write_html(res: StudyResults, figs: dict[str, Path], gallery: Path | None) -> Path:
    """Write ``report.html`` with every image embedded."""
    cfg = res.cfg
    names = [ts.name for ts in cfg.test_sets]
    e = html.escape
    parts: list[str] = []
    add = parts.append
    add(
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>twingap study · {e(cfg.name)}</title>"
    )
    add(f"<style>{CSS}</style></head><body>")
    add("<header><h1>How much does each 3D-asset flaw cost a detector trained on digital twins?</h1>")
    add(
        f"<p>twingap study <b>{e(cfg.name)}</b> · {len(cfg.conditions)} conditions × {len(cfg.seeds)} seed(s) · "
        f"Mask R-CNN trained on synthetic twins, scored on real frames · {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}</p></header><main>"
    )
    if res.fake:
        add(
            "<div class='banner'>Made with the FAKE stages (twingap.study.fake): every number below is synthetic, "
            "produced to test the pipeline and the report layout. These are not results.</div>"
        )
    left = [k for k, v in res.states.items() if v != "done" or k in res.failed]
    if left:
        add(
            f"<div class='banner err'>{len(left)} job(s) not finished or not comparable (left out of every number): "
            + ", ".join(
                f"{e(k)} ({e(res.states[k])}{': ' + e(res.failed[k]) if k in res.failed else ''})"
                for k in left
            )
            + "</div>"
        )
    add("<section><div class='cards'>")
    for k, v, s in _headline(res):
        add(
            f"<div class='card'><div class='k'>{e(k)}</div><div class='v'>{e(v)}</div><div class='s'>{e(s)}</div></div>"
        )
    add("</div></section>")

    add("<section><h2>Figure 1 · artist hours vs. AP lost</h2>")
    add(
        "<p class='muted'>One point per condition, bars are 95% bootstrap intervals of the paired difference to clean "
        "(over test images"
        + (" and seeds" if len(cfg.seeds) > 1 else "")
        + "). Filled points are distinguishable from zero. "
        "The grey band is the clean model's own noise. Points low and to the left are cheap fixes that matter.</p>"
    )
    add(f"<img class='fig' src='{_png_uri(figs['fig1'])}' alt='Figure 1'></section>")

    add("<section><h2>Fix these first</h2>")
    rank_note = "mean over test sets" if cfg.cost.rank_by == "mean" else f"test set {cfg.cost.rank_by}"
    add(
        f"<p class='muted'>Benefit per hour = {PRIMARY_IOU} AP recovered by fixing (clean AP − condition AP) ÷ artist hours "
        f"({rank_note}). Conditions whose difference is indistinguishable from zero rank after the others"
        + _seed_noise_note(res)
        + ". Hours are estimates from the artist-hours table; replace them with your team's.</p>"
    )
    add(
        "<table><tr><th>#</th><th>condition</th><th>hours</th><th>AP recovered</th><th>95% CI</th>"
        "<th>AP per hour</th><th>verdict</th></tr>"
    )
    for f in res.fixes:
        cls = "pos" if f.significant else "ns"
        add(
            f"<tr><td>{f.rank}</td><td><span class='dot' style='background:{_color(f.condition)}'></span>{e(f.condition)}</td>"
            f"<td>{f.hours:g}</td><td class='{cls}'>{_fmt(f.recovered, sign=True)}</td>"
            f"<td class='small'>[{_fmt(f.recovered_lo, sign=True)}, {_fmt(f.recovered_hi, sign=True)}]</td>"
            f"<td class='{cls}'>{_fmt(f.per_hour, 2)}</td><td>{e(f.verdict)}</td></tr>"
        )
    add("</table></section>")

    add("<section><h2>AP difference per condition</h2>")
    add(f"<img class='fig' src='{_png_uri(figs['bars'])}' alt='bar chart'></section>")

    add("<section><h2>Results table</h2>")
    add(
        "<p class='muted'>AP points (×100). Differences are condition − clean, paired by seed, with 95% CI; "
        "bold red = worse than clean and distinguishable from zero.</p>"
    )
    for ts in names:
        kind = next(t.kind for t in cfg.test_sets if t.name == ts)
        tsm = res.shared["testsets"][ts]
        add(
            f"<h3>{e(ts)} <span class='muted small'>({kind}; {tsm.get('n_images')} images, {tsm.get('n_instances')} instances; "
            f"scored categories: {e(_cat_names(res.categories[ts], res.run_dir))}"
            f"{e(_not_scored_note(res.run_dir, ts))})</span></h3>"
        )
        add("<table><tr><th>condition</th><th>hours</th>")
        for iou in IOU_TYPES:
            add(f"<th>{iou} AP</th><th>AP50</th><th>AP75</th><th>Δ {iou} AP [95% CI]</th>")
        add("</tr>")
        for cond in cfg.conditions:
            add(
                f"<tr><td><span class='dot' style='background:{_color(cond)}'></span>{e(cond)}</td><td>{res.hours.get(cond, 0):g}</td>"
            )
            for iou in IOU_TYPES:
                r = res.get(ts, iou, cond)
                if r is None:
                    add("<td>–</td><td>–</td><td>–</td><td>–</td>")
                    continue
                add(f"<td>{_fmt(r.ap['AP'])}</td><td>{_fmt(r.ap['AP50'])}</td><td>{_fmt(r.ap['AP75'])}</td>")
                add("<td class='ns'>reference</td>" if cond == "clean" else _delta_cell(r))
            add("</tr>")
        add("</table>")
    add(
        "<h3>Noise level: the clean model against itself</h3><table><tr><th>test set</th><th>IoU</th><th>seeds</th>"
        "<th>clean AP per seed</th><th>sd over seeds</th><th>range</th><th>± half 95% CI over images (1 seed)</th></tr>"
    )
    for s in res.spreads:
        add(
            f"<tr><td>{e(s.test_set)}</td><td>{s.iou_type}</td><td>{len(s.seeds)}</td>"
            f"<td>{', '.join(_fmt(a) for a in s.ap_per_seed)}</td><td>{_fmt(s.std)}</td><td>{_fmt(s.range)}</td>"
            f"<td>±{_fmt(s.image_ci_half)}</td></tr>"
        )
    add("</table>")
    if len(cfg.seeds) == 1:
        add(
            "<p class='muted small'>One seed: the intervals cover test-image sampling only, not training randomness; "
            "run more seeds (the paper preset uses 3) to include it.</p>"
        )
    add(
        "<h3>Do the test sets agree? (Kendall τ of the conditions' AP differences)</h3><table><tr><th>IoU</th><th>test sets</th><th>τ</th><th>p</th><th>conditions</th></tr>"
    )
    for t in res.taus:
        add(
            f"<tr><td>{t['iou_type']}</td><td>{e(t['a'])} vs {e(t['b'])}</td><td>{_fmt(t['tau'], 2)}</td><td>{_fmt(t['p_value'], 3)}</td><td>{t['n']}</td></tr>"
        )
    add("</table>")
    add(_per_category_html(res))
    add("</section>")

    add("<section><h2>What the conditions look like</h2>")
    if gallery is not None and gallery.is_file():
        add(
            f"<p class='muted'>{e(cfg.gallery_object)} under every condition.</p><img class='fig' src='{_png_uri(gallery)}' alt='gallery'>"
        )
    real = _real_frames(res)
    if real:
        add(
            "<h3>Training images next to real frames</h3><div class='strip'><div class='lab'>real</div>"
            + "".join(f"<img src='{_thumb(p)}'>" for p in real)
            + "</div>"
        )
    seed0 = cfg.seeds[0]
    for cond in cfg.conditions:
        sdir = res.run_dir / "jobs" / f"{cond}__s{seed0}" / "samples"
        imgs = sorted(sdir.glob("train_*")) if sdir.is_dir() else []
        if imgs:
            add(
                f"<div class='strip'><div class='lab'><span class='dot' style='background:{_color(cond)}'></span>{e(cond)}</div>"
                + "".join(f"<img src='{_thumb(p)}'>" for p in imgs)
                + "</div>"
            )
    add("</section>")

    add("<section><h2>The run</h2><div class='two'><div>")
    add(
        "<h3>Timings (wall seconds, summed over jobs)</h3><table><tr><th>stage</th><th>seconds</th><th>minutes</th><th>share</th></tr>"
    )
    tot = res.timings["total"] or 1.0
    rows = [("scenes (once)", res.timings["scenes"]), ("test sets (once)", res.timings["testsets"])]
    rows += [(f"{k} (all jobs)", v) for k, v in res.timings["stages"].items()]
    for k, v in rows:
        add(f"<tr><td>{e(k)}</td><td>{v:.1f}</td><td>{v / 60:.1f}</td><td>{100 * v / tot:.0f}%</td></tr>")
    add(
        f"<tr><td><b>total (sum of stages)</b></td><td><b>{tot:.1f}</b></td><td><b>{tot / 60:.1f}</b></td><td></td></tr>"
    )
    wall = res.timings.get("wall", 0.0)
    add(
        f"<tr><td><b>wall clock</b> ({res.timings.get('sessions', 0)} session(s), {res.cfg.executor.workers} parallel job(s))</td>"
        f"<td><b>{wall:.1f}</b></td><td><b>{wall / 60:.1f}</b></td><td></td></tr></table>"
    )
    add("<h3>Per job</h3><table><tr><th>job</th>" + "".join(f"<th>{s}</th>" for s in STAGES) + "</tr>")
    for jid, t in sorted(res.timings["per_job"].items()):
        add(f"<tr><td>{e(jid)}</td>" + "".join(f"<td>{t.get(s, 0):.1f}</td>" for s in STAGES) + "</tr>")
    add("</table></div><div>")
    scenes = res.shared["scenes"]
    add(
        f"<h3>Design</h3><p class='small'>Paired design: {scenes.get('n_scenes')} training scenes built once "
        f"(scene seed {cfg.scenes.seed}; hash <code>{e(str(scenes.get('scenes_hash', ''))[:12])}</code>) and rendered under "
        f"every condition; seeds {cfg.seeds} train every condition (common random numbers). Twinned videos: "
        f"{', '.join(cfg.twin_videos)}. Categories trained: {e(_cat_names(scenes.get('categories', []), res.run_dir))}.</p>"
    )
    kinds = scenes.get("kinds", {})
    add(
        f"<p class='small'>Training scenes: {kinds.get('sampled', 0)} new views sampled around the twins of the real "
        f"frames and {kinds.get('composed', 0)} composed layouts (objects in stable poses on the twins' support planes), "
        f"rendered at {cfg.scenes.width}x{cfg.scenes.height}. Test sets: <b>twinned</b> = the real frames the twins were "
        "built from (the paper's YCB-Real: same rooms, same objects); <b>held-out</b> = real videos no training scene was "
        "built from, whose objects the model only saw in composed layouts (generalisation, as the paper's YCB-Video test). "
        "Each test set scores only the categories the model was trained on that appear in it.</p>"
    )
    add(f"<h3>Versions</h3><pre>{e(dumps_json(res.versions))}</pre>")
    add(
        f"<h3>Configuration</h3><pre>{e((res.run_dir / 'study.toml').read_text() if (res.run_dir / 'study.toml').is_file() else '')}</pre>"
    )
    add("</div></div></section>")
    add(
        "<p class='muted small'>Files: results/summary.csv, results/jobs.csv, results/fixes.csv, results/timings.csv, "
        "results/stats.json, report.md. Generated by twingap from the run folder; no number typed by hand.</p>"
    )
    add("</main></body></html>")
    path = res.run_dir / "report.html"
    write_text_atomic(path, "".join(parts))
    return path


def _per_category_md(res: StudyResults) -> list[str]:
    from twingap.study.byod import category_names, name_of

    names = category_names(res.run_dir)

    lines: list[str] = []
    for ts, conds, rows in _per_category_tables(res):
        lines += [
            "",
            f"## Per category: {ts} ({PRIMARY_IOU} AP of clean, then each condition's difference; seed {res.cfg.seeds[0]})",
            "",
            "| category | clean | " + " | ".join(conds) + " |",
            "|---|---|" + "---|" * len(conds),
        ]
        for cid, ap, deltas in rows:
            cells = ["–" if d is None else _fmt(d, sign=True) for d in deltas]
            lines.append(f"| {cid} {name_of(cid, names)} | {_fmt(ap)} | " + " | ".join(cells) + " |")
    return lines


def write_markdown(res: StudyResults) -> Path:
    """Write ``report.md``: the same numbers as the HTML, as text."""
    cfg = res.cfg
    lines = [f"# twingap study: {cfg.name}", ""]
    if res.fake:
        lines += ["> **FAKE stages: every number below is synthetic (pipeline test). Not results.**", ""]
    lines += [
        f"{len(cfg.conditions)} conditions x {len(cfg.seeds)} seed(s) {cfg.seeds}; AP in points (x100); "
        "differences are condition - clean, paired by seed, 95% bootstrap CI.",
        "",
    ]
    lines += [
        "## Fix these first",
        "",
        "| # | condition | hours | AP recovered [95% CI] | AP per hour | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for f in res.fixes:
        lines.append(
            f"| {f.rank} | {f.condition} | {f.hours:g} | {_fmt(f.recovered, sign=True)} "
            f"[{_fmt(f.recovered_lo, sign=True)}, {_fmt(f.recovered_hi, sign=True)}] | {_fmt(f.per_hour, 2)} | "
            f"{f.verdict} |"
        )
    noise = _rank_seed_noise(cfg, res.spreads)
    if noise > 0:
        lines += [
            "",
            f"Recoveries no larger than the clean model's seed-to-seed difference ({noise:.1f} AP points) "
            "are marked 'within seed noise' and rank after the measured ones.",
        ]
    for ts in cfg.test_sets:
        lines += [
            "",
            f"## {ts.name} ({ts.kind})",
            "",
            f"Scored categories: {_cat_names(res.categories[ts.name], res.run_dir)}"
            f"{_not_scored_note(res.run_dir, ts.name)}",
            "",
            "| condition | hours | bbox AP | AP50 | AP75 | Δ bbox AP [95% CI] | segm AP | Δ segm AP [95% CI] |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for cond in cfg.conditions:
            b, s = res.get(ts.name, "bbox", cond), res.get(ts.name, "segm", cond)
            if b is None or s is None:
                lines.append(f"| {cond} | {res.hours.get(cond, 0):g} | – | – | – | – | – | – |")
                continue

            def d(r: ConditionResult) -> str:
                if r.condition == "clean":
                    return "reference"
                star = " *" if r.significant else ""
                return f"{_fmt(r.delta, sign=True)} [{_fmt(r.delta_lo, sign=True)}, {_fmt(r.delta_hi, sign=True)}]{star}"

            lines.append(
                f"| {cond} | {res.hours.get(cond, 0):g} | {_fmt(b.ap['AP'])} | {_fmt(b.ap['AP50'])} | "
                f"{_fmt(b.ap['AP75'])} | {d(b)} | {_fmt(s.ap['AP'])} | {d(s)} |"
            )
    lines += [
        "",
        "\\* distinguishable from zero.",
        "",
        "## Clean model noise",
        "",
        "| test set | IoU | AP per seed | sd over seeds | ± half CI over images |",
        "|---|---|---|---|---|",
    ]
    for s in res.spreads:
        lines.append(
            f"| {s.test_set} | {s.iou_type} | {', '.join(_fmt(a) for a in s.ap_per_seed)} | {_fmt(s.std)} | "
            f"±{_fmt(s.image_ci_half)} |"
        )
    lines += _per_category_md(res)
    lines += ["", "## Rank agreement (Kendall tau)", ""]
    for t in res.taus:
        lines.append(
            f"- {t['iou_type']}: {t['a']} vs {t['b']}: tau = {_fmt(t['tau'], 2)} (p = {_fmt(t['p_value'], 3)}, n = {t['n']})"
        )
    lines += [
        "",
        "## Timings (seconds)",
        "",
        "| stage | seconds |",
        "|---|---|",
        f"| scenes (once) | {res.timings['scenes']:.1f} |",
        f"| test sets (once) | {res.timings['testsets']:.1f} |",
    ]
    lines += [f"| {k} | {v:.1f} |" for k, v in res.timings["stages"].items()]
    lines += [
        f"| total (sum of stages) | {res.timings['total']:.1f} |",
        f"| wall clock | {res.timings.get('wall', 0.0):.1f} |",
        "",
    ]
    if res.failed:
        lines += ["## Failed jobs", ""] + [f"- {k}: {v}" for k, v in res.failed.items()] + [""]
    path = res.run_dir / "report.md"
    write_text_atomic(path, "\n".join(lines) + "\n")
    return path


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
    gallery = fig_dir / "gallery.png"
    if not gallery.is_file():
        try:
            ok = load_stages(res.cfg.stages).gallery(res.cfg, res.cfg.gallery_object, gallery)
        except Exception:  # the gallery is a nicety; never lose the report over it
            ok = False
        if not ok:
            gallery = None  # type: ignore[assignment]
    write_markdown(res)
    return write_html(res, figs, gallery)


def top_fixes_text(run_dir: str | Path, n: int = 5) -> str:
    """The top of the ranked fix list as plain text (for the end of ``twingap study``)."""
    rows = read_json(Path(run_dir) / "results" / "stats.json")["fixes"][:n]
    out = []
    for f in rows:
        out.append(
            f"{f['rank']:>2}. {f['condition']:<12} {f['recovered']:+6.1f} AP for {f['hours']:g} h "
            f"= {f['per_hour'] if f['per_hour'] is not None else float('nan'):.2f} AP/h"
            f"{'' if f['significant'] else '  (' + f.get('verdict', 'not distinguishable from 0') + ')'}"
        )
    return "\n".join(out)


def summary_text(run_dir: str | Path) -> str:
    """Headline numbers as plain text: clean AP, the three worst and three mildest conditions, time.

    Per test set, bbox AP points; differences are condition minus clean with their 95% interval.
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
                f"{ts}: clean {PRIMARY_IOU} AP {clean['ap']['AP']:.1f} [{clean['ap_lo']:.1f}, {clean['ap_hi']:.1f}]"
            )
        others = sorted(
            (r for r in rows if r["condition"] != "clean" and r["delta"] is not None),
            key=lambda r: r["delta"],
        )

        def fmt(r: dict) -> str:
            star = "*" if r["significant"] else ""
            return f"{r['condition']} {r['delta']:+.1f} [{r['delta_lo']:+.1f}, {r['delta_hi']:+.1f}]{star}"

        if others:
            lines.append("  worst:  " + "; ".join(fmt(r) for r in others[:3]))
            lines.append("  mildest: " + "; ".join(fmt(r) for r in others[-3:][::-1]))
    t = stats["timings"]
    lines.append(
        f"wall time {t.get('wall', 0.0) / 60:.1f} min over {t.get('sessions', 0)} session(s); "
        f"sum of stages {t['total'] / 60:.1f} min  (* = distinguishable from zero)"
    )
    return "\n".join(lines)
