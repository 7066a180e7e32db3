"""Write an audit folder: ``audit.json`` (keyed by file stem), ``fixes.json``, ``report.html``, ``pictures/``.

``audit.json`` is ``{stem: {"noise": {"level", "score", ...}, "holes": {...}, "texture": {...},
"baked_light": {...}, "facts": {...}, "cost": {family: ...} (with a study), "source": path}}``; a
level is 0 (clean) to 3, or null where the family cannot be judged (e.g. no texture). The HTML is
self-contained and light: each picture is inlined as a display-size WebP thumbnail (a few kB, see
:func:`twingap.audit.pictures.thumbnail`) that links to its full-size PNG in ``pictures/`` beside
the page (``<stem>.<kind>.webp``, twice the display size, WebP quality 90). Moved without that
folder, the page still shows every thumbnail.
"""

# ruff: noqa: E501  (HTML templates read better unwrapped)
from __future__ import annotations

import base64
import hashlib
import html
import math
import re
from pathlib import Path
from urllib.parse import quote

from twingap.audit import pictures
from twingap.audit.core import AuditResult
from twingap.audit.cost import Study, cost_of, fix_list, fixes_as_dicts
from twingap.audit.levels import FAMILIES
from twingap.io import write_bytes_atomic, write_json_atomic, write_text_atomic

#: Folder of the full-size pictures, beside ``report.html``.
PICTURES_DIR = "pictures"

FAMILY_TITLES = {
    "noise": "mesh noise",
    "holes": "holes",
    "texture": "texture blur",
    "baked_light": "baked light",
}

#: What the audit cannot see (shown in every report; the README says the same with the numbers).
LIMITS = (
    "Render-time flaws (the study's ambient-N): they are not in the asset.",
    "Flaws that look like texture: printed shading, dark seams or a logo lit from one side read as baked light; a texture that is plain by design reads as blurry or is not judged.",
    "Baked light on boxes: a flat face takes one shade, which a per-face colour change explains as well.",
    "Real holes and real roughness: a mug's opening, a sponge's pores or a knurled grip are scored like scan flaws.",
    "Symmetric objects: the regression cannot tell a light from above from an object darker at the bottom.",
)


def _clean(obj):
    """Replace NaN / inf by None so the JSON is strict."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def attach_costs(results: list[AuditResult], study: Study | None) -> None:
    """Add ``cost`` per family (None at level 0) to each record, in place."""
    if study is None:
        return
    for r in results:
        r.record["cost"] = {fam: cost_of(fam, r.record[fam].get("level"), study) for fam in FAMILIES}


def write_audit(
    out_dir: Path,
    results: list[AuditResult],
    study: Study | None,
    calibration: dict,
    skipped: list[tuple[str, str]],
) -> dict[str, Path]:
    """Write ``audit.json``, ``fixes.json`` (with a study), ``report.html`` and ``pictures/``.

    Full-size pictures of an earlier audit in ``out_dir/pictures`` (``*.webp``, ``*.jpg``, ``*.png``)
    that this one does not draw are removed, so the folder matches the page.

    Returns:
        Name -> path of what was written (``"pictures"``: the folder of full-size pictures).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    attach_costs(results, study)
    records = {r.stem: r.record for r in results}
    paths = {
        "audit": out_dir / "audit.json",
        "report": out_dir / "report.html",
        "pictures": out_dir / PICTURES_DIR,
    }
    write_json_atomic(paths["audit"], _clean(records))
    fixes = fix_list(records, study) if study is not None else []
    if study is not None:
        paths["fixes"] = out_dir / "fixes.json"
        write_json_atomic(
            paths["fixes"],
            _clean(
                {
                    "study": study.run_dir,
                    "test_set": study.test_set,
                    "iou_type": study.iou_type,
                    "fake": study.fake,
                    "fixes": fixes_as_dicts(fixes),
                }
            ),
        )
    written: list[Path] = []
    page = render_html(results, study, fixes, calibration, skipped, paths["pictures"], written)
    old = sorted(paths["pictures"].iterdir()) if paths["pictures"].is_dir() else []
    for path in old:
        if path.suffix in (".webp", ".jpg", ".png") and path.is_file() and path not in written:
            path.unlink()
    write_text_atomic(paths["report"], page)
    return paths


def picture_name(stem: str, kind: str, suffix: str = ".webp") -> str:
    """File name of a full-size picture: ``<stem>.<kind><suffix>``, the stem safe for a file name and URL.

    A stem with other characters than letters, digits, ``.``, ``_`` and ``-`` has them replaced by
    ``_`` and gets a short hash of the stem, so that two stems never share a file.
    """
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", stem)
    if safe != stem or safe.startswith("."):
        safe = f"{safe.lstrip('.')}-{hashlib.sha256(stem.encode()).hexdigest()[:8]}"
    return f"{safe}.{kind}{suffix}"


def _img(png: bytes, alt: str, stem: str, pictures_dir: Path | None, written: list[Path] | None) -> str:
    """A display-size thumbnail inlined as data; linked to the full-size picture written to ``pictures_dir``."""
    thumb, mime, w, h = pictures.thumbnail(png)
    tag = (
        f"<img alt='{html.escape(alt)}' width='{w}' height='{h}' "
        f"src='data:{mime};base64,{base64.b64encode(thumb).decode()}'>"
    )
    if pictures_dir is None:
        return tag
    data, mime, _, _ = pictures.encode(png)
    full = pictures_dir / picture_name(stem, alt, pictures.SUFFIXES[mime])
    write_bytes_atomic(full, data)
    if written is not None:
        written.append(full)
    href = html.escape(f"{full.parent.name}/{quote(full.name)}")
    return f"<a href='{href}' title='full size: {html.escape(full.name)}'>{tag}</a>"


def _fmt(v, digits: int = 3) -> str:
    if v is None:
        return "&ndash;"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return html.escape(str(v))


def _level_cell(entry: dict) -> str:
    lv = entry.get("level")
    if lv is None:
        return f"<td class='na' title='{html.escape(entry.get('reason', ''))}'>n/a</td>"
    return f"<td class='l{lv}'>{lv} <span class='muted small'>({_fmt(entry.get('score'))})</span></td>"


def _summary_table(results: list[AuditResult]) -> str:
    head = "".join(f"<th>{FAMILY_TITLES[f]}</th>" for f in FAMILIES)
    rows = []
    for r in results:
        f = r.record["facts"]
        tex = "none" if not f["textured"] else f"{f['texture_px'][1]}x{f['texture_px'][0]}"
        dens = r.record["texture"].get("texel_density_px_per_cm")
        rows.append(
            f"<tr><td><a href='#{html.escape(r.stem)}'>{html.escape(r.stem)}</a></td>"
            + "".join(_level_cell(r.record[fam]) for fam in FAMILIES)
            + f"<td>{f['faces']}</td><td>{tex}</td><td>{_fmt(dens)}</td>"
            f"<td>{' x '.join(f'{x:.1f}' for x in f['size_cm'])}</td>"
            f"<td class='small'>{'<br>'.join(html.escape(w) for w in f['warnings'])}</td></tr>"
        )
    return (
        "<table><tr><th>model</th>" + head + "<th>faces</th><th>texture</th><th>texels/cm</th>"
        "<th>size (cm)</th><th>warnings</th></tr>" + "".join(rows) + "</table>"
    )


def _fix_table(fixes, study: Study) -> str:
    if not fixes:
        return "<p>No graded flaw has a measured cost in this study.</p>"
    rows = []
    for i, fx in enumerate(fixes, 1):
        cls = "" if fx.harmful else " class='muted'"
        rows.append(
            f"<tr{cls}><td>{i}</td><td>{html.escape(fx.model)}</td><td>{FAMILY_TITLES[fx.family]} {fx.level}</td>"
            f"<td>{fx.condition}</td><td>{fx.delta_AP:+.1f} [{fx.delta_lo:+.1f}, {fx.delta_hi:+.1f}]</td>"
            f"<td>{fx.hours:g}</td><td>{_fmt(fx.ap_per_hour)}</td></tr>"
        )
    return (
        f"<p class='small'>AP differences from <code>{html.escape(study.run_dir)}</code>, test set "
        f"<b>{html.escape(study.test_set)}</b>, {study.iou_type} AP; the study measured each difference with "
        "<i>every</i> object flawed, so the list ranks fixes; it does not promise the AP one model's fix returns. "
        "Greyed rows: the study's interval includes no loss.</p>"
        "<table><tr><th>#</th><th>model</th><th>flaw (level)</th><th>study condition</th><th>&Delta;AP [interval]</th>"
        "<th>artist h</th><th>AP per hour</th></tr>" + "".join(rows) + "</table>"
    )


def _details(entry: dict) -> str:
    skip = {"level", "score", "holes", "energy_ratios"}
    items = [
        f"{html.escape(k)} = {_fmt(v) if not isinstance(v, dict) else html.escape(str(v))}"
        for k, v in entry.items()
        if k not in skip and v is not None
    ]
    return "<br>".join(items)


def _model_section(
    r: AuditResult, pictures_dir: Path | None = None, written: list[Path] | None = None
) -> str:
    rows = "".join(
        f"<tr><td>{FAMILY_TITLES[fam]}</td>{_level_cell(r.record[fam])}<td class='small'>{_details(r.record[fam])}</td>"
        + (
            f"<td class='small'>{_cost_cell(r.record.get('cost', {}).get(fam))}</td>"
            if "cost" in r.record
            else ""
        )
        + "</tr>"
        for fam in FAMILIES
    )
    cost_head = "<th>study cost</th>" if "cost" in r.record else ""
    pics = []
    for kind, png in model_pictures(r):
        pics.append(_img(png, kind, r.stem, pictures_dir, written))
    return (
        f"<h3 id='{html.escape(r.stem)}'>{html.escape(r.stem)}</h3>"
        f"<p class='small muted'>{html.escape(str(r.record.get('source') or ''))}</p>"
        f"<table><tr><th>family</th><th>level (score)</th><th>measures</th>{cost_head}</tr>{rows}</table>"
        + "".join(f"<div>{p}</div>" for p in pics)
    )


def model_pictures(r: AuditResult) -> list[tuple[str, bytes]]:
    """The full-size pictures of one audited model: ``[(kind, PNG bytes)]``.

    ``roughness`` (always), ``holes`` (when it has boundary edges), ``blur`` (a judged texture),
    ``shading`` (a fitted shading).
    """
    pics = []
    w, m = r.welded, r.maps
    if w is not None:
        pics.append(("roughness", pictures.roughness_picture(w, m["noise"]["roughness"])))
        if len(m["holes"]["boundary"]):
            pics.append(("holes", pictures.holes_picture(w, m["holes"]["boundary"], m["holes"]["outer"])))
    if m.get("texture", {}).get("blur_map") is not None and r.asset is not None:
        pics.append(
            ("blur", pictures.blur_picture(r.asset.texture, m["texture"]["blur_map"], m["texture"]["mask"]))
        )
    if m.get("baked_light", {}).get("shading") is not None:
        pics.append(
            ("shading", pictures.shading_picture(m["baked_light"]["albedo"], m["baked_light"]["shading"]))
        )
    return pics


def _cost_cell(c: dict | None) -> str:
    if c is None:
        return ""
    if not c.get("measured"):
        return f"{html.escape(str(c.get('condition')))}: not in this study"
    return f"{c['condition']}: {c['delta_AP']:+.1f} AP [{c['delta_lo']:+.1f}, {c['delta_hi']:+.1f}], {c['hours']:g} h"


def render_html(
    results: list[AuditResult],
    study: Study | None,
    fixes,
    calibration: dict,
    skipped: list[tuple[str, str]],
    pictures_dir: Path | None = None,
    written: list[Path] | None = None,
) -> str:
    """The self-contained report (display-size thumbnails inlined).

    Args:
        results: The audited models.
        study: The study the costs come from, or None.
        fixes: Its ranked fix list.
        calibration: The calibration the levels come from.
        skipped: ``(stem, reason)`` of the models that could not be audited.
        pictures_dir: Where to write the full-size pictures the thumbnails link to (a folder beside
            the page; its name is the link's folder); None: thumbnails only, unlinked.
        written: Collects the paths of the full-size pictures written.
    """
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}table{border-collapse:collapse;margin:.5em 0}"
        "td,th{border:1px solid #ccc;padding:3px 6px;vertical-align:top}.small{font-size:85%}.muted{color:#888}"
        ".l0{background:#e6f4e6}.l1{background:#fff4cc}.l2{background:#ffd9a8}.l3{background:#f8b4b4}.na{background:#eee}"
        ".fake{background:#c00;color:#fff;padding:.5em;font-weight:bold}img{max-width:100%;height:auto}"
    )
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>twingap audit</title><style>{style}</style></head><body>"
    ]
    if study is not None and study.fake:
        parts.append(
            "<p class='fake'>FAKE stages: the study these costs come from ran with stand-in stages; its numbers are not results.</p>"
        )
    parts.append(f"<h1>twingap audit: {len(results)} model(s)</h1>")
    th = calibration["families"]
    parts.append(
        "<p class='small'>Levels 0 (clean) to 3 on the study's own scale, fitted on the study's flawed sample assets "
        f"(<code>{html.escape(calibration.get('generated_by', ''))}</code>); thresholds: "
        + "; ".join(f"{FAMILY_TITLES[f]} {', '.join(_fmt(t) for t in th[f]['thresholds'])}" for f in FAMILIES)
        + ". Scores: noise = median offset from a local quadric fit / bbox diagonal; holes = interior closing area / "
        "closed surface; texture = blur in px of a 2048 px texture; baked light = R&sup2; of log luminance on normal + AO.</p>"
    )
    if skipped:
        parts.append(
            "<h2>Not audited</h2><ul>"
            + "".join(f"<li>{html.escape(s)}: {html.escape(m)}</li>" for s, m in skipped)
            + "</ul>"
        )
    parts.append("<h2>Library</h2>" + _summary_table(results))
    if study is not None:
        parts.append("<h2>Fix these first</h2>" + _fix_table(fixes, study))
    parts.append(
        "<h2>What the audit cannot see</h2><ul>"
        + "".join(f"<li>{html.escape(s)}</li>" for s in LIMITS)
        + "</ul>"
    )
    linked = (
        f" Click one for the full-size picture (twice as large, in <code>{html.escape(pictures_dir.name)}/</code> beside this page)."
        if pictures_dir is not None
        else ""
    )
    parts.append(
        f"<h2>Models</h2><p class='small muted'>Pictures are display-size thumbnails.{linked}</p>"
        + "".join(_model_section(r, pictures_dir, written) for r in results)
    )
    parts.append("</body></html>")
    return "\n".join(parts)
