"""The report's figures (Figure 1, the AP-difference bars) and the images it shows.

Figures are PNG files written with matplotlib's Agg backend; AP values are in points (AP x 100).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from twingap.io import read_json
from twingap.study.report.analysis import PRIMARY_IOU, StudyResults
from twingap.study.report.style import color
from twingap.study.runner import IOU_TYPES


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


def place_labels(fig: Any, ax: Any, points: list[tuple[float, float, str]], fontsize: float = 8.5) -> None:
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
                color=color(cond),
                ms=7 if r.significant else 5,
                mfc=color(cond) if r.significant else "white",
                capsize=3,
                lw=1.3,
            )
            points.append((h, r.delta, cond))
        max_h = max([h for c, h in res.hours.items() if c in res.cfg.conditions] + [1.0])
        ax.set_xlim(0, max_h * 1.18 + 0.3)
        place_labels(fig, ax, points)
        ax.set_title(f"{ts}  ({res.cfg.test_sets[names.index(ts)].kind})")
        ax.set_xlabel("artist hours to fix")
        if ax is axes[0][0]:
            ax.set_ylabel(f"{PRIMARY_IOU} AP difference to clean (AP points)")
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
                cols.append(color(c))
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


def real_frames(res: StudyResults, n: int = 3) -> list[Path]:
    """Up to ``n`` real frames of the first test set that has any, evenly spaced."""
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


def training_samples(res: StudyResults, cond: str) -> list[Path]:
    """The sample training images the first seed's job of a condition saved (empty if none)."""
    sdir = res.run_dir / "jobs" / f"{cond}__s{res.cfg.seeds[0]}" / "samples"
    return sorted(sdir.glob("train_*")) if sdir.is_dir() else []
