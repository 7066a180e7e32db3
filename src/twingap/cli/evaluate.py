"""``twingap eval``: COCO bbox and segm AP of predictions against ground truth."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from twingap.cli import app


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def print_metrics(metrics: dict[str, Any], iou_types: list[str]) -> None:
    """Print summary and per-category AP tables (percent) with rich."""
    from rich.console import Console
    from rich.table import Table

    from twingap.evaluate.coco_map import SUMMARY_KEYS

    console = Console()
    summary = Table(
        title="COCO AP (%)", caption=f"{metrics['num_images']} images, {metrics['num_detections']} detections"
    )
    summary.add_column("metric")
    for t in iou_types:
        summary.add_column(t, justify="right")
    for key in SUMMARY_KEYS:
        summary.add_row(key, *[_fmt(metrics[t][key]) for t in iou_types])
    console.print(summary)
    per = Table(title="Per-category AP (%), IoU 0.50:0.95")
    per.add_column("id", justify="right")
    per.add_column("category")
    per.add_column("GT", justify="right")
    for t in iou_types:
        per.add_column(t, justify="right")
    rows = {t: {c["id"]: c for c in metrics[t]["per_category"]} for t in iou_types}
    first = metrics[iou_types[0]]["per_category"]
    for c in first:
        if c["num_gt"] == 0:
            continue
        per.add_row(
            str(c["id"]), c["name"], str(c["num_gt"]), *[_fmt(rows[t][c["id"]]["AP"]) for t in iou_types]
        )
    console.print(per)


def _parse_cat_ids(text: str | None) -> list[int] | None:
    from twingap.errors import TwingapError

    if text is None or not text.strip():
        return None
    try:
        return sorted({int(v) for v in text.replace(" ", "").split(",") if v})
    except ValueError as exc:
        raise TwingapError(f"--cat-ids must be comma-separated integers, got {text!r}") from exc


@app.command("eval")
def eval_command(
    gt: Annotated[Path, typer.Option("--gt", help="COCO ground-truth JSON (from `twingap data coco`).")],
    pred: Annotated[
        Path,
        typer.Option(
            "--pred", help="COCO results JSON: a list of {image_id, category_id, score, bbox, segmentation}."
        ),
    ],
    out: Annotated[
        Path | None, typer.Option("-o", "--out", help="Write the metrics as JSON here (fractions in [0, 1]).")
    ] = None,
    iou_type: Annotated[
        list[str] | None,
        typer.Option(
            "--iou-type",
            help="bbox and/or segm (repeat the option). Default: both when every detection has a "
            "segmentation, else bbox.",
        ),
    ] = None,
    cat_ids: Annotated[
        str | None,
        typer.Option(
            "--cat-ids",
            help="Score only these category ids, e.g. '1,2,5' (the objects a model was trained on).",
        ),
    ] = None,
    backend: Annotated[
        str, typer.Option(help="faster (faster-coco-eval) or pycocotools (reference).")
    ] = "faster",
) -> None:
    """Score predictions: bbox and segm AP, AP50, AP75, APs/APm/APl and per-category AP."""
    from twingap.data.coco import load_gt, load_predictions, validate_predictions
    from twingap.errors import TwingapError
    from twingap.evaluate.coco_map import IOU_TYPES, COCOEvaluator
    from twingap.io import sha256_file, write_json_atomic

    gt_dict = load_gt(gt)
    if iou_type:
        types = list(dict.fromkeys(iou_type))
        bad = [t for t in types if t not in IOU_TYPES]
        if bad:
            raise TwingapError(f"unknown --iou-type {bad} (use bbox or segm)")
    else:
        types = ["bbox"]
    preds = load_predictions(pred, gt_dict, iou_types=types)
    if not iou_type and all(isinstance(d.get("segmentation"), dict) for d in preds):
        types = ["bbox", "segm"]
        preds = validate_predictions(preds, gt_dict, pred, iou_types=types)
    if backend not in ("faster", "pycocotools"):
        raise TwingapError(f"unknown --backend {backend!r} (faster or pycocotools)")
    evaluator = COCOEvaluator(gt_dict, iou_types=types, cat_ids=_parse_cat_ids(cat_ids), backend=backend)
    evaluator.process(preds)
    metrics = evaluator.evaluate()
    print_metrics(metrics, types)
    if out is not None:
        metrics["inputs"] = {
            "gt": str(gt),
            "gt_sha256": sha256_file(gt),
            "pred": str(pred),
            "pred_sha256": sha256_file(pred),
            "backend": backend,
        }
        write_json_atomic(out, metrics)
        typer.echo(f"wrote {out}")
