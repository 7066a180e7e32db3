"""``report.html``: the report as one self-contained page (every image embedded as a data URI).

Each section is one function returning its HTML; the tables come from :mod:`.tables`.
"""

# ruff: noqa: E501  (HTML templates read better unwrapped)
from __future__ import annotations

import base64
import html
import io
import math
import time
from pathlib import Path

from twingap.io import dumps_json, write_text_atomic
from twingap.provenance import float_fingerprint
from twingap.study.report.analysis import (
    PRIMARY_IOU,
    StudyResults,
    adjusted_note,
    interval_note,
    noise_note,
    stop_note,
)
from twingap.study.report.figures import real_frames, training_samples
from twingap.study.report.style import category_names, color, fmt
from twingap.study.report.tables import (
    Diff,
    Table,
    design_line,
    fixes_table,
    headline_cards,
    noise_table,
    per_category_grids,
    per_job_timings,
    replication_table,
    results_grids,
    seed_table,
    tau_table,
    timings_table,
)
from twingap.study.runner import IOU_TYPES

e = html.escape

CSS = """
:root { --ink:#1d2330; --muted:#6b7385; --line:#e3e6ee; --bg:#f6f7fb; --good:#1a7f4b; --bad:#b3261e; }
* { box-sizing: border-box; }
body { margin:0; font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color:var(--ink); background:var(--bg); }
header { background: linear-gradient(120deg, #1d2330, #2f3d5c); color:#fff; padding:28px 40px 22px; }
header h1 { margin:0 0 4px; font-size:26px; letter-spacing:.2px; }
header p { margin:0; color:#c9d1e4; }
header p.status { margin-top:6px; color:#ffd58a; }
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


# ---------------------------------------------------------------------- embedding and cells
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


def _cond_label(cond: str) -> str:
    """A condition's name after a dot of its family's colour."""
    return f"<span class='dot' style='background:{color(cond)}'></span>{e(cond)}"


def _delta_cell(d: Diff | str | None) -> str:
    """A difference to clean with its interval: red / green when distinguishable from 0, grey when not."""
    if d is None:
        return "<td>–</td>"
    if isinstance(d, str):  # "reference"
        return f"<td class='ns'>{e(d)}</td>"
    if math.isnan(d.value):
        return "<td class='ns'>–</td>"
    cls = "ns" if not d.significant else ("neg" if d.value < 0 else "pos")
    return f"<td class='{cls}'>{fmt(d.value, sign=True)} <span class='small muted'>[{fmt(d.lo, sign=True)}, {fmt(d.hi, sign=True)}]</span></td>"


# ---------------------------------------------------------------------- sections
def _head(res: StudyResults) -> str:
    cfg = res.cfg
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>twingap study · {e(cfg.name)}</title>"
        f"<style>{CSS}</style></head><body>"
        "<header><h1>How much does each 3D-asset flaw cost a detector trained on digital twins?</h1>"
        f"<p>twingap study <b>{e(cfg.name)}</b> · {e(design_line(res))} · "
        f"Mask R-CNN trained on synthetic twins, scored on real frames · {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}</p>"
        + (f"<p class='status'><b>{e(stop_note(res))}</b></p>" if stop_note(res) else "")
        + "</header><main>"
    )


def _banners(res: StudyResults) -> str:
    out = ""
    if res.fake:
        out += (
            "<div class='banner'>Made with the FAKE stages (twingap.study.fake): every number below is synthetic, "
            "produced to test the pipeline and the report layout. These are not results.</div>"
        )
    left = [k for k, v in res.states.items() if v != "done" or k in res.failed]
    if left:
        out += (
            f"<div class='banner err'>{len(left)} job(s) not finished or not comparable (left out of every number): "
            + ", ".join(
                f"{e(k)} ({e(res.states[k])}{': ' + e(res.failed[k]) if k in res.failed else ''})"
                for k in left
            )
            + "</div>"
        )
    return out


def _cards(res: StudyResults) -> str:
    cards = "".join(
        f"<div class='card'><div class='k'>{e(k)}</div><div class='v'>{e(v)}</div><div class='s'>{e(s)}</div></div>"
        for k, v, s in headline_cards(res)
    )
    note = adjusted_note(res)
    note_html = f"<p class='muted small' id='intervals'>{e(note)}</p>" if note else ""
    return f"<section><div class='cards'>{cards}</div>{note_html}</section>"


def _figure1(res: StudyResults, fig1: Path) -> str:
    return (
        "<section><h2>Figure 1 · artist hours vs. AP lost</h2>"
        "<p class='muted'>One point per condition, bars are Holm-adjusted intervals of the paired difference to clean. "
        + e(interval_note(res))
        + " Filled points are distinguishable from zero after Holm's correction over the conditions. "
        "Points low and to the left are cheap fixes that matter.</p>"
        f"<img class='fig' src='{_png_uri(fig1)}' alt='Figure 1'></section>"
    )


def _fixes(res: StudyResults, table: Table) -> str:
    cfg = res.cfg
    rank_note = "mean over test sets" if cfg.cost.rank_by == "mean" else f"test set {cfg.cost.rank_by}"
    out = [
        "<section><h2>Fix these first</h2>",
        f"<p class='muted'>Benefit per hour = {PRIMARY_IOU} AP recovered by fixing (clean AP − condition AP) ÷ artist hours "
        f"({rank_note}). Conditions whose difference is indistinguishable from zero (Holm-corrected) rank after "
        "the others and get no rate. Hours are estimates from the artist-hours table; replace them with your team's.</p>",
        "<table><tr><th>#</th><th>condition</th><th>hours</th><th>AP recovered</th><th>Holm-adjusted interval</th>"
        "<th>AP per hour</th><th>verdict</th></tr>",
    ]
    for f in table.rows:
        cls = "pos" if f["significant"] else "ns"
        rate = "<td class='ns'>–</td>" if f["rate"] is None else f"<td class='{cls}'>{fmt(f['rate'], 2)}</td>"
        out.append(
            f"<tr><td>{f['rank']}</td><td>{_cond_label(f['condition'])}</td>"
            f"<td>{f['hours']:g}</td><td class='{cls}'>{fmt(f['recovered'], sign=True)}</td>"
            f"<td class='small'>[{fmt(f['recovered_lo'], sign=True)}, {fmt(f['recovered_hi'], sign=True)}]</td>"
            f"{rate}<td>{e(f['verdict'])}</td></tr>"
        )
    out.append("</table></section>")
    return "".join(out)


def _not_scored(missing: list[str]) -> str:
    return f"; not scored (no trained model): {', '.join(missing)}" if missing else ""


def _results_grid(t: Table) -> str:
    m = t.meta
    out = [
        f"<h3>{e(t.title)} <span class='muted small'>({m['kind']}; {m['n_images']} images, {m['n_instances']} instances; "
        f"scored categories: {e(category_names(m['categories'], m['category_names']))}"
        f"{e(_not_scored(m['not_scored']))})</span></h3>",
        "<table><tr><th>condition</th><th>hours</th>",
    ]
    out += [
        f"<th>{iou} AP</th><th>AP50</th><th>AP75</th><th>Δ {iou} AP [Holm-adj.]</th>" for iou in IOU_TYPES
    ]
    out.append("</tr>")
    for row in t.rows:
        out.append(f"<tr><td>{_cond_label(row['condition'])}</td><td>{row['hours']:g}</td>")
        for iou in IOU_TYPES:
            out.append("".join(f"<td>{fmt(row[f'{iou}:{k}'])}</td>" for k in ("AP", "AP50", "AP75")))
            out.append(_delta_cell(row[f"{iou}:delta"]))
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)


def _noise(res: StudyResults, t: Table) -> str:
    out = [
        "<h3>Training noise</h3><table><tr><th>test set</th><th>IoU</th><th>seeds</th>"
        "<th>clean AP per seed</th><th>clean sd</th><th>range</th><th>sd of a paired difference (pooled)</th>"
        "<th>df</th><th>equal-variance test p</th></tr>"
    ]
    for s in t.rows:
        out.append(
            f"<tr><td>{e(s['test_set'])}</td><td>{s['iou_type']}</td><td>{s['seeds']}</td>"
            f"<td>{', '.join(fmt(a) for a in s['ap_per_seed'])}</td><td>{fmt(s['std'])}</td><td>{fmt(s['range'])}</td>"
            f"<td>{fmt(s['diff_sd'])}</td><td>{s['diff_df']}</td><td>{fmt(s['bartlett_p'], 3)}</td></tr>"
        )
    out.append("</table>")
    out.append(f"<p class='muted small'>{e(noise_note(res))}</p>")
    return "".join(out)


def _seed_spread(t: Table) -> str:
    if not t.rows:
        return ""
    out = [
        f"<h3>Each condition's difference per seed ({PRIMARY_IOU})</h3><table class='small'><tr><th>condition</th>"
        "<th>test set</th><th>seeds</th><th>Δ per seed</th><th>sd over seeds</th><th>corr. with clean</th></tr>"
    ]
    for r in t.rows:
        out.append(
            f"<tr><td>{_cond_label(r['condition'])}</td><td>{e(r['test_set'])}</td><td>{r['seeds']}</td>"
            f"<td>{', '.join(fmt(d, sign=True) for d in r['delta_per_seed'])}</td><td>{fmt(r['seed_sd'])}</td>"
            f"<td>{fmt(r['corr_with_clean'], 2)}</td></tr>"
        )
    out.append("</table>")
    return "".join(out)


def _replication(t: Table) -> str:
    if not t.rows:
        return (
            "<h3>Split-half replication</h3><p class='muted small'>Needs at least 3 seeds: with fewer, the study "
            "cannot check itself. Run more seeds, or compare two runs with <code>twingap compare</code>.</p>"
        )
    out = [
        f"<h3>Split-half replication: seeds {t.meta['seeds_a']} against seeds {t.meta['seeds_b']}</h3>"
        "<p class='muted small'>Would a rerun give the same answers? Each half's difference to clean is compared "
        "with the other's, within t × their combined training-noise standard error; Kendall τ compares the two "
        "rankings of the conditions. <code>twingap compare RUN_A RUN_B</code> does the same for two runs. "
        "The last two columns project from the whole study (its effects, shrunk for noise, and its seed sd): the "
        "expected τ between this run and a rerun with as many seeds, and the seeds per run for which two runs "
        "would rank the conditions with τ 0.7 on average (conditions with near-equal effects never rank alike).</p>"
        "<table><tr><th>IoU</th><th>test set</th><th>agree</th><th>Kendall τ</th><th>p</th>"
        "<th>τ of a rerun (projected)</th><th>seeds for τ 0.7</th></tr>"
    ]
    for r in t.rows:
        share = f"{r['agree']} of {r['n']}" if r["n"] else "–"
        need = r["seeds_for_tau_07"] or f"over {r['max_seeds']}"
        rerun = f"{fmt(r['rerun_tau'], 2)} ({r['rerun_seeds']} seeds)" if r["rerun_seeds"] else "–"
        out.append(
            f"<tr><td>{r['iou_type']}</td><td>{e(r['test_set'])}</td><td>{share}</td>"
            f"<td>{fmt(r['tau'], 2)}</td><td>{fmt(r['p_value'], 3)}</td><td>{rerun}</td><td>{need}</td></tr>"
        )
    out.append("</table>")
    return "".join(out)


def _taus(t: Table) -> str:
    out = [
        "<h3>Do the test sets agree? (Kendall τ of the conditions' AP differences)</h3><table><tr><th>IoU</th><th>test sets</th><th>τ</th><th>p</th><th>conditions</th></tr>"
    ]
    for r in t.rows:
        out.append(
            f"<tr><td>{r['iou_type']}</td><td>{e(r['a'])} vs {e(r['b'])}</td><td>{fmt(r['tau'], 2)}</td><td>{fmt(r['p_value'], 3)}</td><td>{r['n']}</td></tr>"
        )
    out.append("</table>")
    return "".join(out)


def _per_category(res: StudyResults, tables: list[Table]) -> str:
    """Per-category tables: the clean model's AP and each condition's difference, per test set."""
    if not tables:
        return ""
    out = [
        f"<h3>Per category ({PRIMARY_IOU} AP, seed {res.cfg.seeds[0]}): where the clean model fails, and what each flaw costs</h3>"
        "<p class='muted small'>Clean AP per category, then each condition's difference to clean on that category "
        "(red: lower, blue: higher; one seed, no interval: read patterns, not single cells). A category the clean "
        "model cannot detect cannot show an artifact's cost.</p>"
    ]
    for t in tables:
        conds = t.meta["conditions"]
        out.append(
            f"<h4>{e(t.title)}</h4><table class='small'><tr><th>category</th><th>clean</th>"
            + "".join(f"<th>{e(c)}</th>" for c in conds)
            + "</tr>"
        )
        for row in t.rows:
            cells = []
            for c in conds:
                d = row[c]
                if d is None:
                    cells.append("<td>–</td>")
                    continue
                a = min(abs(d) / 30.0, 1.0) * 0.6
                bg = f"rgba(200,40,40,{a:.2f})" if d < 0 else f"rgba(40,90,200,{a:.2f})"
                cells.append(f"<td style='background:{bg}'>{fmt(d, sign=True)}</td>")
            out.append(
                f"<tr><td>{row['category_id']} {e(row['category'])}</td><td><b>{fmt(row['clean'])}</b></td>"
                + "".join(cells)
                + "</tr>"
            )
        out.append("</table>")
    return "".join(out)


def _results(res: StudyResults) -> str:
    return (
        "<section><h2>Results table</h2>"
        "<p class='muted'>AP points (×100). Differences are condition − clean, paired by seed, with Holm-adjusted intervals ("
        + e(interval_note(res))
        + "); bold red = worse than clean and distinguishable from zero after Holm's correction.</p>"
        + "".join(_results_grid(t) for t in results_grids(res))
        + _noise(res, noise_table(res))
        + _seed_spread(seed_table(res))
        + _replication(replication_table(res))
        + _taus(tau_table(res))
        + _per_category(res, per_category_grids(res))
        + "</section>"
    )


def _gallery(res: StudyResults, gallery: Path | None) -> str:
    out = ["<section><h2>What the conditions look like</h2>"]
    if gallery is not None and gallery.is_file():
        out.append(
            f"<p class='muted'>{e(res.cfg.gallery_object)} under every condition.</p><img class='fig' src='{_png_uri(gallery)}' alt='gallery'>"
        )
    real = real_frames(res)
    if real:
        out.append(
            "<h3>Training images next to real frames</h3><div class='strip'><div class='lab'>real</div>"
            + "".join(f"<img src='{_thumb(p)}'>" for p in real)
            + "</div>"
        )
    for cond in res.cfg.conditions:
        imgs = training_samples(res, cond)
        if imgs:
            out.append(
                f"<div class='strip'><div class='lab'>{_cond_label(cond)}</div>"
                + "".join(f"<img src='{_thumb(p)}'>" for p in imgs)
                + "</div>"
            )
    out.append("</section>")
    return "".join(out)


def _timings(res: StudyResults, t: Table, per_job: Table) -> str:
    out = [
        "<h3>Timings (wall seconds, summed over jobs)</h3><table><tr><th>stage</th><th>seconds</th><th>minutes</th><th>share</th></tr>"
    ]
    total = next(r["seconds"] for r in t.rows if r["scope"] == "total")
    tot = total or 1.0
    for r in t.rows:
        if r["scope"] == "total":
            continue
        k, v = (f"{r['stage']} (all jobs)" if r["scope"] == "stage" else r["stage"]), r["seconds"]
        out.append(
            f"<tr><td>{e(k)}</td><td>{v:.1f}</td><td>{v / 60:.1f}</td><td>{100 * v / tot:.0f}%</td></tr>"
        )
    out.append(
        f"<tr><td><b>total (sum of stages)</b></td><td><b>{tot:.1f}</b></td><td><b>{tot / 60:.1f}</b></td><td></td></tr>"
    )
    wall = t.meta["wall"]
    out.append(
        f"<tr><td><b>wall clock</b> ({t.meta['sessions']} session(s), {res.cfg.executor.workers} parallel job(s))</td>"
        f"<td><b>{wall:.1f}</b></td><td><b>{wall / 60:.1f}</b></td><td></td></tr></table>"
    )
    stages = per_job.columns[1:]
    out.append("<h3>Per job</h3><table><tr><th>job</th>" + "".join(f"<th>{s}</th>" for s in stages) + "</tr>")
    for r in per_job.rows:
        out.append(f"<tr><td>{e(r['job'])}</td>" + "".join(f"<td>{r[s]:.1f}</td>" for s in stages) + "</tr>")
    out.append("</table>")
    return "".join(out)


def _design(res: StudyResults) -> str:
    cfg = res.cfg
    scenes = res.shared["scenes"]
    kinds = scenes.get("kinds", {})
    toml = res.run_dir / "study.toml"
    return (
        f"<h3>Design</h3><p class='small'>Paired design: {scenes.get('n_scenes')} training scenes built once "
        f"(scene seed {cfg.scenes.seed}; hash <code>{e(str(scenes.get('scenes_hash', ''))[:12])}</code>) and rendered under "
        f"every condition; seeds {cfg.seeds} train every condition (common random numbers). Twinned videos: "
        f"{', '.join(cfg.twin_videos)}. Categories trained: {e(category_names(scenes.get('categories', []), res.category_names))}.</p>"
        f"<p class='small'>Training scenes: {kinds.get('sampled', 0)} new views sampled around the twins of the real "
        f"frames and {kinds.get('composed', 0)} composed layouts (objects in stable poses on the twins' support planes), "
        f"rendered at {cfg.scenes.width}x{cfg.scenes.height}. Test sets: <b>twinned</b> = the real frames the twins were "
        "built from (the paper's YCB-Real: same rooms, same objects); <b>held-out</b> = real videos no training scene was "
        "built from, whose objects the model only saw in composed layouts (generalisation, as the paper's YCB-Video test). "
        "Each test set scores only the categories the model was trained on that appear in it.</p>"
        f"<h3>Versions</h3><pre>{e(dumps_json(res.versions))}</pre>"
        + _machines(res)
        + f"<h3>Configuration</h3><pre>{e(toml.read_text() if toml.is_file() else '')}</pre>"
    )


def _machines(res: StudyResults) -> str:
    if not res.machines:
        return ""
    rows = "".join(
        f"<tr><td>{e(float_fingerprint(m['info']))}</td><td>{len(m['jobs'])}</td></tr>" for m in res.machines
    )
    note = (
        "All jobs computed on one kind of machine: bit-identical on a rerun there."
        if len(res.machines) == 1
        else "Jobs computed on different machines: their floats differ; the intervals cover that (training noise)."
    )
    return (
        "<h3>Machines</h3><table class='small'><tr><th>what computes the floats</th><th>jobs</th></tr>"
        f"{rows}</table><p class='muted small'>{note}</p>"
    )


def _run(res: StudyResults) -> str:
    return (
        "<section><h2>The run</h2><div class='two'><div>"
        + _timings(res, timings_table(res), per_job_timings(res))
        + "</div><div>"
        + _design(res)
        + "</div></div></section>"
    )


def write_html(res: StudyResults, figs: dict[str, Path], gallery: Path | None) -> Path:
    """Write ``report.html`` with every image embedded.

    Args:
        res: The study's results.
        figs: ``{"fig1": Figure 1 PNG, "bars": AP-difference chart PNG}``.
        gallery: The conditions' gallery PNG, or None to leave it out.
    """
    parts = [
        _head(res),
        _banners(res),
        _cards(res),
        _figure1(res, figs["fig1"]),
        _fixes(res, fixes_table(res)),
        f"<section><h2>AP difference per condition</h2><img class='fig' src='{_png_uri(figs['bars'])}' alt='bar chart'></section>",
        _results(res),
        _gallery(res, gallery),
        _run(res),
        "<p class='muted small'>Files: results/summary.csv, results/jobs.csv, results/fixes.csv, results/timings.csv, "
        "results/stats.json, report.md. Generated by twingap from the run folder; no number typed by hand.</p>",
        "</main></body></html>",
    ]
    path = res.run_dir / "report.html"
    write_text_atomic(path, "".join(parts))
    return path
