from __future__ import annotations

import json

import numpy as np
import pytest

from twingap.data.coco import coco_categories, detections_to_coco, instances_to_coco
from twingap.evaluate.coco_map import SUMMARY_KEYS, COCOEvaluator, evaluate_coco


def _close(a, b):
    if a is None or b is None:
        return a is b
    return abs(a - b) < 1e-12


@pytest.mark.parametrize("seed", [0, 1])
def test_faster_matches_pycocotools(sample_gt, seed, fake_predictions):
    preds = fake_predictions(sample_gt, seed=seed)
    fast = evaluate_coco(sample_gt, preds, backend="faster")
    ref = evaluate_coco(sample_gt, preds, backend="pycocotools")
    for t in ("bbox", "segm"):
        for k in SUMMARY_KEYS:
            assert _close(fast[t][k], ref[t][k]), (t, k, fast[t][k], ref[t][k])
        assert 0.05 < fast[t]["AP"] < 0.95
        for cf, cr in zip(fast[t]["per_category"], ref[t]["per_category"], strict=True):
            assert cf["id"] == cr["id"] and _close(cf["AP"], cr["AP"]) and _close(cf["AP50"], cr["AP50"])
    assert fast["bbox"]["APs"] is None  # no small object in the sample


def test_gt_as_predictions_is_perfect(sample_gt):
    preds = [
        {k: a[k] for k in ("image_id", "category_id", "bbox", "segmentation")} | {"score": 1.0}
        for a in sample_gt["annotations"]
    ]
    m = evaluate_coco(sample_gt, preds)
    for t in ("bbox", "segm"):
        assert m[t]["AP"] == 1.0 and m[t]["AP50"] == 1.0 and m[t]["AP75"] == 1.0
        present = [c for c in m[t]["per_category"] if c["num_gt"]]
        assert len(present) == 12 and all(c["AP"] == 1.0 for c in present)
        assert all(c["AP"] is None for c in m[t]["per_category"] if not c["num_gt"])


def _box_mask(h, w, box):
    m = np.zeros((h, w), bool)
    x, y, bw, bh = box
    m[y : y + bh, x : x + bw] = True
    return m


def hand_case():
    """One 100x100 image. Category 1: GT g1 [0,0,20,20], g2 [50,50,20,20], g4 [10,70,15,15].
    Category 2: GT g3 [60,10,20,20]. Detections (score order):
      d1 cat 1, 0.9, exactly g1                  -> TP at every IoU threshold
      d3 cat 1, 0.8, [80,80,10,10] overlaps none  -> false positive
      d2 cat 1, 0.7, g2 shifted 2 px right        -> IoU 18*20/(400+400-360) = 0.818:
                                                     TP at IoU .50-.80 (7 thresholds), FP at .85-.95 (3)
      d4 cat 2, 0.6, exactly g3                   -> TP everywhere (category 2 AP = 1)
      g4 is missed.
    """
    h = w = 100
    gt_boxes = {1: [[0, 0, 20, 20], [50, 50, 20, 20], [10, 70, 15, 15]], 2: [[60, 10, 20, 20]]}
    masks, ids = [], []
    for cid, boxes in gt_boxes.items():
        for b in boxes:
            masks.append(_box_mask(h, w, b))
            ids.append(cid)
    gt = {
        "images": [{"id": 1, "width": w, "height": h, "file_name": "x.png"}],
        "annotations": instances_to_coco(np.stack(masks), ids, image_id=1),
        "categories": coco_categories(extra_ids=range(1, 22)),
    }
    det_boxes = [[0, 0, 20, 20], [80, 80, 10, 10], [52, 50, 20, 20], [60, 10, 20, 20]]
    dets = detections_to_coco(
        1, [1, 1, 1, 2], [0.9, 0.8, 0.7, 0.6], masks=np.stack([_box_mask(h, w, b) for b in det_boxes])
    )
    return gt, dets


def test_hand_built_case():
    """Hand computation (COCO: 101 recall points r = 0, .01, .., 1; precision made monotone).

    Category 1 has 3 GT. Ranked d1 (TP), d3 (FP), d2:
    * IoU thresholds where d2 is a TP (7 of 10): cumulative TP 1,1,2 / FP 0,1,1 ->
      recall 1/3, 1/3, 2/3, precision 1, 1/2, 2/3, monotone envelope 1, 2/3, 2/3.
      r <= 1/3 (r = 0..0.33, 34 points) -> 1; 1/3 < r <= 2/3 (0.34..0.66, 33 points) -> 2/3;
      r > 2/3 -> 0 (g4 is never found). AP = (34 + 33 * 2/3) / 101 = 56/101.
    * where d2 is a FP (IoU .85, .90, .95): recall stays 1/3 -> AP = 34/101.
    Category 1 AP@[.5:.95] = (7 * 56 + 3 * 34) / 1010 = 494/1010; category 2 AP = 1.
    mAP = (494/1010 + 1) / 2; AP50 = AP75 = (56/101 + 1) / 2.
    Boxes and masks are the same rectangles, so bbox and segm agree.
    """
    gt, dets = hand_case()
    for backend in ("faster", "pycocotools"):
        m = evaluate_coco(gt, dets, backend=backend)
        for t in ("bbox", "segm"):
            assert m[t]["AP"] == pytest.approx((494 / 1010 + 1) / 2, abs=1e-12)
            assert m[t]["AP50"] == pytest.approx((56 / 101 + 1) / 2, abs=1e-12)
            assert m[t]["AP75"] == pytest.approx((56 / 101 + 1) / 2, abs=1e-12)
            per = {c["id"]: c for c in m[t]["per_category"]}
            assert per[1]["AP"] == pytest.approx(494 / 1010, abs=1e-12)
            assert per[2]["AP"] == pytest.approx(1.0) and per[1]["num_gt"] == 3
            # all GT are 400 px or less: small objects only
            assert m[t]["APs"] == pytest.approx(m[t]["AP"], abs=1e-12)
            assert m[t]["APm"] is None and m[t]["APl"] is None
    # scoring only category 2 (cat_ids): perfect
    m2 = evaluate_coco(gt, dets, cat_ids=[2])
    assert m2["bbox"]["AP"] == 1.0 and [c["id"] for c in m2["bbox"]["per_category"]] == [2]


def test_evaluator_contract(sample_gt, fake_predictions):
    preds = fake_predictions(sample_gt, seed=3)
    snapshot = json.dumps(preds, sort_keys=True)
    ev = COCOEvaluator(sample_gt)
    ev.reset()
    ev.process(preds[:100])
    ev.process(preds[100:])
    streamed = ev.evaluate()
    assert json.dumps(preds, sort_keys=True) == snapshot  # inputs not mutated
    assert streamed["num_detections"] == len(preds) and streamed["num_images"] == 60
    once = evaluate_coco(sample_gt, preds)
    assert streamed["segm"]["AP"] == once["segm"]["AP"]
    ev.reset()
    empty = ev.evaluate()
    assert empty["bbox"]["AP"] == 0.0 and empty["bbox"]["APs"] is None and empty["num_detections"] == 0
    # a cat_ids restriction equals the mean of those categories' AP
    cats = [1, 5, 21]
    sub = evaluate_coco(sample_gt, preds, cat_ids=cats)
    per = {c["id"]: c["AP"] for c in once["bbox"]["per_category"]}
    assert sub["bbox"]["AP"] == pytest.approx(np.mean([per[c] for c in cats]), abs=1e-12)
    assert sub["cat_ids"] == cats
    # an image restriction
    img_ids = [im["id"] for im in sample_gt["images"][:20]]
    part = COCOEvaluator(sample_gt, iou_types=("bbox",), img_ids=img_ids)
    part.process(preds)
    assert part.evaluate()["num_images"] == 20
