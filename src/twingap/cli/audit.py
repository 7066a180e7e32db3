"""``twingap audit MODEL_OR_LIBRARY... -o AUDIT_DIR``: grade a team's meshes on the study's flaw levels."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from twingap.cli import app


@app.command("audit")
def audit_cmd(
    items: Annotated[list[str], typer.Argument(help="Mesh files, model folders, or sample model names.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Audit folder (audit.json, report.html).")],
    study: Annotated[
        Path | None, typer.Option(help="A study run folder: cost each flaw and rank fixes.")
    ] = None,
    test_set: Annotated[
        str | None, typer.Option(help="Study test set for the costs (default: its first).")
    ] = None,
    iou_type: Annotated[str, typer.Option(help="bbox or segm AP for the costs.")] = "bbox",
    models: Annotated[
        Path | None, typer.Option(help="Library for model names (default: data/sample/models).")
    ] = None,
    calibration: Annotated[
        Path | None, typer.Option(help="Calibration JSON (default: the packaged one).")
    ] = None,
) -> None:
    """Audit textured meshes with no clean reference: noise, holes, texture blur, baked light, plain facts.

    Writes AUDIT_DIR/audit.json (keyed by file stem) and a self-contained AUDIT_DIR/report.html (thumbnails
    inlined, each linked to its full-size picture in AUDIT_DIR/pictures/); with --study also each flaw's
    measured AP cost and a fix list ranked by AP per artist hour (fixes.json).
    Models that cannot be audited are listed and the command exits 2 after writing the rest.
    """
    from twingap.audit.core import audit_asset, collect_inputs
    from twingap.audit.cost import load_study
    from twingap.audit.levels import load_calibration
    from twingap.audit.report import write_audit
    from twingap.errors import TwingapError

    cal = load_calibration(calibration)
    study_data = load_study(study, test_set, iou_type) if study is not None else None
    results, skipped = [], []
    for stem, load in collect_inputs(items, models):
        try:
            asset = load()
            result = audit_asset(asset, cal, stem)
        except TwingapError as exc:
            skipped.append((stem, exc.one_line()))
            typer.secho(f"skipped {stem}: {exc.one_line()}", err=True, fg=typer.colors.YELLOW)
            continue
        results.append(result)
        graded = {fam: result.record[fam]["level"] for fam in ("noise", "holes", "texture", "baked_light")}
        levels = ", ".join(f"{fam} {'n/a' if lv is None else lv}" for fam, lv in graded.items())
        typer.echo(f"{stem}: {levels}")
        for warning in result.record["facts"]["warnings"]:
            typer.echo(f"  warning: {warning}")
    if results:
        paths = write_audit(out, results, study_data, cal, skipped)
        typer.echo(
            f"wrote {paths['audit']} and {paths['report']} (full-size pictures in {paths['pictures']})"
        )
    if skipped:
        raise TwingapError(
            f"{len(skipped)} of {len(skipped) + len(results)} model(s) could not be audited: "
            + "; ".join(f"{s}: {m}" for s, m in skipped)
        )
