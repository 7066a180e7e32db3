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


#: Figure 1's marker diameters (points): distinguishable conditions are drawn larger.
MARKER_SIG, MARKER_NS = 7.0, 5.0

#: Where a label sits when nothing is in its way: offset (points) of its lower-left corner from its point.
LABEL_OFFSET = (6.0, 4.0)

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in display pixels


def _overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _crosses(box: Box, bar: tuple[float, float, float]) -> bool:
    """Whether a vertical segment (x, y0, y1) in pixels passes through a box."""
    x, y0, y1 = bar
    return box[0] < x < box[2] and min(y0, y1) < box[3] and box[1] < max(y0, y1)


def _hits(p0: tuple[float, float], p1: tuple[float, float], box: Box) -> bool:
    """Whether the segment p0 -> p1 passes through a box (Liang-Barsky clipping)."""
    t0, t1 = 0.0, 1.0
    dx, dy = p1[0] - p0[0], p1[1] - p0[1]
    for p, q in ((-dx, p0[0] - box[0]), (dx, box[2] - p0[0]), (-dy, p0[1] - box[1]), (dy, box[3] - p0[1])):
        if p == 0:
            if q < 0:
                return False
            continue
        t = q / p
        if p < 0:
            t0 = max(t0, t)
        else:
            t1 = min(t1, t)
        if t0 > t1:
            return False
    return True


def _candidates(w: float, h: float, pt: float) -> list[tuple[float, float]]:
    """Offsets (pixels) of a w x h label's lower-left corner from its point, nearest first.

    The first is :data:`LABEL_OFFSET` (right of the point, a little up); then right, left, above and
    below the point at growing distances, in half-line steps.
    """
    gap = LABEL_OFFSET[0] * pt
    default = (LABEL_OFFSET[0] * pt, LABEL_OFFSET[1] * pt)
    out = []
    for j in range(-30, 31):
        oy = default[1] + j * h / 2
        for ox, pref in (
            (gap, 0.0),
            (-gap - w, 2.0),
            (-w / 2, 4.0),
            (gap + 3 * h, 6.0),
            (-gap - w - 3 * h, 8.0),
        ):
            # distance from the point to the nearest point of the box
            dx = max(ox, 0.0, -(ox + w))
            dy = max(oy, 0.0, -(oy + h))
            out.append(((dx * dx + dy * dy) ** 0.5 + pref, (ox, oy)))
    out.sort(key=lambda c: c[0])
    return [default] + [o for _, o in out if o != default]


def place_labels(
    fig: Any,
    ax: Any,
    points: list[tuple[float, float, str]],
    fontsize: float = 8.5,
    marker_size: float | list[float] = MARKER_SIG,
    bars: list[tuple[float, float, float]] | None = None,
) -> None:
    """Label each (x, y, text) point so that no label overlaps another label or any point's marker.

    Call it once the axes' size and limits are final (after ``tight_layout``): it works in display
    pixels, measured with the figure's renderer. Each label takes the first free place of
    :func:`_candidates`: right of its point, else nudged up or down, else left of, above or below
    it, inside the axes, avoiding the error bars where it can. A label moved away from its point
    gets a thin leader line to it.

    Args:
        fig: The figure (drawn here to fix the data -> pixel transform).
        ax: The axes of the points.
        points: (x, y, text) in data coordinates.
        fontsize: Label font size (points).
        marker_size: Marker diameter (points) of every point, or one per point.
        bars: Vertical error bars (x, y_lo, y_hi) in data coordinates, avoided where possible.
    """
    fig.canvas.draw()  # fixes the axes' data -> pixel transform
    renderer = fig.canvas.get_renderer()
    pt = fig.dpi / 72  # pixels per point
    sizes = marker_size if isinstance(marker_size, list) else [marker_size] * len(points)
    markers: list[Box] = []
    for (x, y, _), ms in zip(points, sizes, strict=True):
        px, py = ax.transData.transform((x, y))
        r = (ms / 2 + 1.0) * pt
        markers.append((px - r, py - r, px + r, py + r))
    segs = []
    for x, lo, hi in bars or []:
        (bx, by0), (_, by1) = ax.transData.transform([(x, lo), (x, hi)])
        segs.append((bx, by0, by1))
    frame = ax.get_window_extent(renderer)
    inside = (frame.x0, frame.y0, frame.x1, frame.y1)
    placed: list[Box] = []
    leaders: list[tuple[tuple[float, float], tuple[float, float]]] = []
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    for i in order:
        x, y, text = points[i]
        px, py = ax.transData.transform((x, y))
        ann = ax.annotate(
            text,
            (x, y),
            textcoords="offset points",
            xytext=LABEL_OFFSET,
            fontsize=fontsize,
            ha="left",
            va="bottom",
        )
        ext = ann.get_window_extent(renderer)
        w, h = ext.width, ext.height
        boxes = [(ox, oy, (px + ox, py + oy, px + ox + w, py + oy + h)) for ox, oy in _candidates(w, h, pt)]

        def needs_leader(box: Box, px: float = px, py: float = py, h: float = h) -> bool:
            near = max(box[0] - px, px - box[2], 0.0) ** 2 + max(box[1] - py, py - box[3], 0.0) ** 2
            return near > (h * 0.9) ** 2

        def free(box: Box, tier: int, px: float = px, py: float = py, i: int = i) -> bool:
            """Tier 0: every wish; 1: error bars may cross it; 2: only no overlap with labels, markers."""
            if any(_overlaps(box, b) for b in placed + markers):
                return False
            if tier >= 2:
                return True
            if not (
                inside[0] <= box[0] and box[2] <= inside[2] and inside[1] <= box[1] and box[3] <= inside[3]
            ):
                return False
            if any(_hits(a, b, box) for a, b in leaders):
                return False
            if needs_leader(box):  # its leader line (box centre -> point) must pass no other marker or label
                c = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
                others = [m for k, m in enumerate(markers) if k != i] + placed
                if any(_hits(c, (px, py), b) for b in others):
                    return False
            return tier >= 1 or not any(_crosses(box, s) for s in segs)

        pick = next((c for tier in range(3) for c in boxes if free(c[2], tier)), boxes[0])
        ox, oy, box = pick
        placed.append(box)
        # a leader line when the label no longer touches its point's neighbourhood
        leader = None
        if needs_leader(box):
            leader = {"arrowstyle": "-", "lw": 0.6, "color": "#888888", "shrinkA": 1, "shrinkB": 4}
            leaders.append((((box[0] + box[2]) / 2, (box[1] + box[3]) / 2), (px, py)))
        ann.remove()
        ax.annotate(
            text,
            (x, y),
            textcoords="offset points",
            xytext=(ox / pt, oy / pt),
            fontsize=fontsize,
            ha="left",
            va="bottom",
            arrowprops=leader,
        )


def figure1_figure(res: StudyResults) -> Any:
    """Figure 1 as a matplotlib figure: artist hours (x) against the AP difference to clean (y).

    One panel per test set; the bars are the Holm-adjusted intervals (they exclude 0 exactly when
    the point is filled: distinguishable). Labels are placed last, on the final layout
    (:func:`place_labels`). The caller closes the figure.
    """
    plt = _plt()
    names = [ts.name for ts in res.cfg.test_sets]
    fig, axes = plt.subplots(1, len(names), figsize=(5.6 * len(names), 4.4), sharey=True, squeeze=False)
    panels = []
    for ax, ts in zip(axes[0], names, strict=True):
        ax.axhline(0, color="#444444", lw=0.8)
        points: list[tuple[float, float, str]] = []
        sizes: list[float] = []
        bars: list[tuple[float, float, float]] = []
        for cond in res.cfg.conditions:
            r = res.get(ts, PRIMARY_IOU, cond)
            if r is None or cond == "clean" or math.isnan(r.delta):
                continue
            h = res.hours.get(cond, math.nan)
            ms = MARKER_SIG if r.significant else MARKER_NS
            ax.errorbar(
                h,
                r.delta,
                yerr=[[r.delta - r.adj_lo], [r.adj_hi - r.delta]],
                fmt="o",
                color=color(cond),
                ms=ms,
                mfc=color(cond) if r.significant else "white",
                capsize=3,
                lw=1.3,
            )
            points.append((h, r.delta, cond))
            sizes.append(ms)
            if not math.isnan(r.adj_lo):
                bars.append((h, r.adj_lo, r.adj_hi))
        max_h = max([h for c, h in res.hours.items() if c in res.cfg.conditions] + [1.0])
        ax.set_xlim(0, max_h * 1.18 + 0.3)
        ax.margins(y=0.12)
        ax.set_title(f"{ts}  ({res.cfg.test_sets[names.index(ts)].kind})")
        ax.set_xlabel("artist hours to fix")
        if ax is axes[0][0]:
            ax.set_ylabel(f"{PRIMARY_IOU} AP difference to clean (AP points)")
        panels.append((ax, points, sizes, bars))
    fig.suptitle("Cost of each artifact: what it takes to fix vs. what it costs the detector", fontsize=11)
    fig.tight_layout()
    for ax, *_ in panels:  # the shared y range is final now: freeze it before placing labels
        ax.set_xlim(ax.get_xlim())
        ax.set_ylim(ax.get_ylim())
    for ax, points, sizes, bars in panels:
        place_labels(fig, ax, points, marker_size=sizes, bars=bars)
    return fig


def figure1(res: StudyResults, path: Path) -> Path:
    """Write Figure 1 (:func:`figure1_figure`) as a PNG."""
    plt = _plt()
    fig = figure1_figure(res)
    fig.savefig(path)
    plt.close(fig)
    return path


def bar_chart(res: StudyResults, path: Path) -> Path:
    """AP difference per condition with Holm-adjusted intervals: one panel per test set, bbox and segm."""
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
                los.append(d - r.adj_lo if r else 0)
                his.append(r.adj_hi - d if r else 0)
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
        ax.set_xlabel("AP difference to clean (AP points), Holm-adjusted interval")
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
