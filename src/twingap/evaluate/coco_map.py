"""COCO bbox and segm AP: an evaluator with a reset/process/evaluate contract.

Backed by faster-coco-eval (C++ matching and accumulation); ``backend="pycocotools"`` runs the
reference implementation instead. Metrics are fractions in [0, 1] (not percent); a metric that
COCO reports as -1 (no ground truth in that area range) is ``None``.

Conventions, as in detectron2's ``COCOEvaluator``:

* For ``segm``, the ``bbox`` of each detection is dropped before loading so that COCO's area
  ranges (small/medium/large) use the mask area, as for the ground truth.
* ``cat_ids`` restricts scoring to those categories (the study scores only the objects a model
  was trained on); categories without ground truth in the image set are left out of the mean,
  as in COCO.
* Per-category AP is the mean precision over IoU 0.50:0.95 and recall, area ``all``, 100 dets.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from twingap.errors import TwingapError

IOU_TYPES = ("bbox", "segm")
#: Summary metrics in COCOeval ``stats`` order (first six entries).
SUMMARY_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl")


def _coco_classes(backend: str):
    if backend == "faster":
        from faster_coco_eval import COCO, COCOeval_faster

        return COCO, COCOeval_faster
    if backend == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        return COCO, COCOeval
    raise ValueError(f"unknown backend {backend!r} (faster or pycocotools)")


def _quiet():
    """Silence the COCO API's prints."""
    return contextlib.redirect_stdout(io.StringIO())


def _none_if_missing(value: float) -> float | None:
    value = float(value)
    return None if value < 0 or math.isnan(value) else value


def prepare_results(preds: Sequence[dict[str, Any]], iou_type: str) -> list[dict[str, Any]]:
    """Deep-copy detections for one IoU type (``segm`` drops ``bbox``, as detectron2 does)."""
    out = copy.deepcopy(list(preds))
    if iou_type == "segm":
        for d in out:
            d.pop("bbox", None)
            seg = d.get("segmentation")
            if isinstance(seg, dict) and isinstance(seg.get("counts"), bytes):
                seg["counts"] = seg["counts"].decode("ascii")
    return out


def run_cocoeval(
    gt: dict[str, Any],
    preds: Sequence[dict[str, Any]],
    iou_type: str,
    cat_ids: Iterable[int] | None = None,
    img_ids: Iterable[int] | None = None,
    backend: str = "faster",
):
    """Run COCOeval (evaluate + accumulate + summarize) and return the evaluator object.

    Args:
        gt: COCO ground-truth dict.
        preds: COCO results (non-empty).
        iou_type: ``"bbox"`` or ``"segm"``.
        cat_ids: Restrict to these category ids; None = all categories of ``gt``.
        img_ids: Restrict to these image ids; None = all images of ``gt``.
        backend: ``"faster"`` (faster-coco-eval) or ``"pycocotools"``.
    """
    COCO, COCOeval = _coco_classes(backend)
    with _quiet():
        coco_gt = COCO(copy.deepcopy(gt)) if backend == "faster" else _pycoco_from_dict(COCO, gt)
        coco_dt = coco_gt.loadRes(prepare_results(preds, iou_type))
        ev = COCOeval(coco_gt, coco_dt, iou_type)
        if cat_ids is not None:
            ev.params.catIds = sorted(int(c) for c in cat_ids)
        if img_ids is not None:
            ev.params.imgIds = sorted(int(i) for i in img_ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def _pycoco_from_dict(COCO, gt: dict[str, Any]):
    coco = COCO()
    coco.dataset = copy.deepcopy(gt)
    coco.createIndex()
    return coco


def metrics_from_cocoeval(ev, gt: dict[str, Any]) -> dict[str, Any]:
    """Extract summary and per-category metrics from an accumulated COCOeval.

    Returns:
        ``{"AP", "AP50", "AP75", "APs", "APm", "APl": float | None, "per_category": [{"id",
        "name", "AP", "AP50", "num_gt"}]}`` (fractions in [0, 1]).
    """
    out: dict[str, Any] = {k: _none_if_missing(v) for k, v in zip(SUMMARY_KEYS, ev.stats[:6], strict=True)}
    names = {int(c["id"]): c.get("name", str(c["id"])) for c in gt["categories"]}
    precision = np.asarray(ev.eval["precision"])  # (T, R, K, A, M)
    iou_thrs = np.asarray(ev.params.iouThrs)
    t50 = int(np.argmin(np.abs(iou_thrs - 0.5)))
    num_gt: dict[int, int] = {}
    img_ids = set(int(i) for i in ev.params.imgIds)
    for a in gt["annotations"]:
        if int(a["image_id"]) in img_ids and not a.get("iscrowd", 0) and not a.get("ignore", 0):
            num_gt[int(a["category_id"])] = num_gt.get(int(a["category_id"]), 0) + 1
    per_cat = []
    for k, cid in enumerate(ev.params.catIds):
        p = precision[:, :, k, 0, -1]
        p50 = precision[t50, :, k, 0, -1]
        per_cat.append(
            {
                "id": int(cid),
                "name": names.get(int(cid), str(cid)),
                "AP": float(np.mean(p[p > -1])) if np.any(p > -1) else None,
                "AP50": float(np.mean(p50[p50 > -1])) if np.any(p50 > -1) else None,
                "num_gt": num_gt.get(int(cid), 0),
            }
        )
    out["per_category"] = per_cat
    return out


def empty_metrics(gt: dict[str, Any], cat_ids: Iterable[int] | None, img_ids: Iterable[int] | None) -> dict:
    """Metrics of an empty prediction set: 0 for every category with ground truth, else None."""
    cats = (
        sorted(int(c["id"]) for c in gt["categories"]) if cat_ids is None else sorted(int(c) for c in cat_ids)
    )
    imgs = None if img_ids is None else set(int(i) for i in img_ids)
    names = {int(c["id"]): c.get("name", str(c["id"])) for c in gt["categories"]}
    num_gt: dict[int, int] = {}
    areas: dict[str, int] = {"s": 0, "m": 0, "l": 0}
    for a in gt["annotations"]:
        if (
            (imgs is None or int(a["image_id"]) in imgs)
            and not a.get("iscrowd", 0)
            and int(a["category_id"]) in cats
        ):
            num_gt[int(a["category_id"])] = num_gt.get(int(a["category_id"]), 0) + 1
            area = float(a.get("area", 0))
            areas["s" if area < 32**2 else "m" if area < 96**2 else "l"] += 1
    any_gt = bool(num_gt)
    out: dict[str, Any] = {k: (0.0 if any_gt else None) for k in ("AP", "AP50", "AP75")}
    out.update({f"AP{s}": (0.0 if n else None) for s, n in areas.items()})
    out["per_category"] = [
        {
            "id": c,
            "name": names.get(c, str(c)),
            "AP": 0.0 if num_gt.get(c) else None,
            "AP50": 0.0 if num_gt.get(c) else None,
            "num_gt": num_gt.get(c, 0),
        }
        for c in cats
    ]
    return out


class COCOEvaluator:
    """Scores COCO-format detections against a COCO ground truth (bbox and/or segm AP).

    The detectron2 ``DatasetEvaluator`` contract: :meth:`reset`, then :meth:`process` any number of
    times with detections (a streamed model output, or a whole results file), then
    :meth:`evaluate`. The same object can score a run, a subset of images or a bootstrap sample.

    Args:
        gt: COCO ground-truth dict (e.g. from :func:`twingap.data.coco.frames_to_coco`) or a path.
        iou_types: Any of ``"bbox"``, ``"segm"``.
        cat_ids: Score only these category ids (None = all categories of ``gt``).
        img_ids: Score only these image ids (None = all images of ``gt``).
        backend: ``"faster"`` (faster-coco-eval, default) or ``"pycocotools"`` (reference).

    Example:
        >>> ev = COCOEvaluator(gt, iou_types=("bbox", "segm"), cat_ids=[1, 2, 5])
        >>> ev.reset(); ev.process(detections); metrics = ev.evaluate()
        >>> metrics["segm"]["AP"]
    """

    def __init__(
        self,
        gt: dict[str, Any] | str | Path,
        iou_types: Sequence[str] = IOU_TYPES,
        cat_ids: Iterable[int] | None = None,
        img_ids: Iterable[int] | None = None,
        backend: str = "faster",
    ) -> None:
        from twingap.data.coco import load_gt, validate_gt

        self.gt = load_gt(gt) if isinstance(gt, str | Path) else validate_gt(gt)
        for t in iou_types:
            if t not in IOU_TYPES:
                raise TwingapError(f"unknown IoU type {t!r} (use bbox or segm)")
        self.iou_types = tuple(iou_types)
        known = {int(c["id"]) for c in self.gt["categories"]}
        self.cat_ids = None if cat_ids is None else sorted({int(c) for c in cat_ids})
        if self.cat_ids is not None and not set(self.cat_ids) <= known:
            raise TwingapError(f"cat_ids {sorted(set(self.cat_ids) - known)} are not ground-truth categories")
        self.img_ids = None if img_ids is None else sorted({int(i) for i in img_ids})
        self.backend = backend
        _coco_classes(backend)  # fail early on a bad backend
        self._preds: list[dict[str, Any]] = []

    def reset(self) -> None:
        """Forget all processed detections."""
        self._preds = []

    def process(self, detections: Iterable[dict[str, Any]]) -> None:
        """Add COCO results entries (``image_id``, ``category_id``, ``score``, ``bbox``, ``segmentation``)."""
        self._preds.extend(detections)

    @property
    def predictions(self) -> list[dict[str, Any]]:
        """The detections processed so far."""
        return list(self._preds)

    def evaluate(self) -> dict[str, Any]:
        """Score the processed detections.

        Returns:
            ``{iou_type: {"AP", "AP50", "AP75", "APs", "APm", "APl", "per_category"}, ...,
            "num_images", "num_detections", "cat_ids"}``; metrics are fractions in [0, 1] or None.

        Raises:
            TwingapError: If detections name unknown image/category ids or lack a requested field.
        """
        from twingap.data.coco import validate_predictions

        preds = validate_predictions(self._preds, self.gt, iou_types=self.iou_types, allow_empty=True)
        if self.cat_ids is not None:
            keep = set(self.cat_ids)
            preds = [d for d in preds if int(d["category_id"]) in keep]
        if self.img_ids is not None:
            keep_img = set(self.img_ids)
            preds = [d for d in preds if int(d["image_id"]) in keep_img]
        result: dict[str, Any] = {}
        for t in self.iou_types:
            if not preds:
                result[t] = empty_metrics(self.gt, self.cat_ids, self.img_ids)
            else:
                ev = run_cocoeval(self.gt, preds, t, self.cat_ids, self.img_ids, backend=self.backend)
                result[t] = metrics_from_cocoeval(ev, self.gt)
        result["num_images"] = len(self.img_ids) if self.img_ids is not None else len(self.gt["images"])
        result["num_detections"] = len(preds)
        result["cat_ids"] = self.cat_ids
        return result


def evaluate_coco(
    gt: dict[str, Any] | str | Path,
    preds: Sequence[dict[str, Any]],
    iou_types: Sequence[str] = IOU_TYPES,
    cat_ids: Iterable[int] | None = None,
    backend: str = "faster",
) -> dict[str, Any]:
    """One-shot helper: :class:`COCOEvaluator` reset + process + evaluate."""
    ev = COCOEvaluator(gt, iou_types=iou_types, cat_ids=cat_ids, backend=backend)
    ev.process(preds)
    return ev.evaluate()
