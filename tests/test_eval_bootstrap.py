from __future__ import annotations

import copy

import numpy as np
import pytest

from twingap.evaluate.bootstrap import PerImageEval
from twingap.evaluate.coco_map import evaluate_coco, run_cocoeval


@pytest.fixture(scope="module")
def preds_ab(sample_gt, fake_predictions):
    return fake_predictions(sample_gt, seed=0), fake_predictions(sample_gt, seed=1, noise=3.0)


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_reaccumulated_ap_equals_coco_exactly(sample_gt, preds_ab, iou_type):
    preds = preds_ab[0]
    pe = PerImageEval.from_coco(sample_gt, preds, iou_type)
    for backend in ("pycocotools", "faster"):
        ref = evaluate_coco(sample_gt, preds, iou_types=[iou_type], backend=backend)[iou_type]
        assert pe.ap() == ref["AP"]
        assert pe.ap50() == ref["AP50"]
    # the full precision array too: (T, R, K) at area all, 100 dets
    ev = run_cocoeval(sample_gt, preds, iou_type, backend="pycocotools")
    np.testing.assert_array_equal(
        pe.precision(np.ones(pe.num_images, int))[0], ev.eval["precision"][:, :, :, 0, -1]
    )
    cats = [2, 5, 10, 14]
    pe_c = PerImageEval.from_coco(sample_gt, preds, iou_type, cat_ids=cats)
    ref = evaluate_coco(sample_gt, preds, iou_types=[iou_type], cat_ids=cats, backend="pycocotools")
    assert pe_c.ap() == ref[iou_type]["AP"]


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_per_category_ap_equals_coco_per_category(sample_gt, preds_ab, iou_type):
    from twingap.study.real import RealPerImage

    preds = preds_ab[1]
    per_cat = RealPerImage(PerImageEval.from_coco(sample_gt, preds, iou_type)).per_category()
    cats = sorted({a["category_id"] for a in sample_gt["annotations"]})
    assert sorted(per_cat) == sorted(c["id"] for c in sample_gt["categories"])
    assert all(np.isnan(v) for c, v in per_cat.items() if c not in cats)  # no ground truth
    for cid in cats[:4]:
        ref = evaluate_coco(sample_gt, preds, iou_types=[iou_type], cat_ids=[cid], backend="pycocotools")
        assert per_cat[cid] == pytest.approx(ref[iou_type]["AP"], abs=1e-12)


def _duplicated(gt, preds, indices, img_ids):
    """A COCO set where image img_ids[i] appears as many times as i is in indices (new ids)."""
    images, anns, dets = [], [], []
    by_img = {}
    for a in gt["annotations"]:
        by_img.setdefault(a["image_id"], []).append(a)
    det_by_img = {}
    for d in preds:
        det_by_img.setdefault(d["image_id"], []).append(d)
    for copy_no, i in enumerate(sorted(indices)):
        src = int(img_ids[i])
        new = 10_000_000 + copy_no
        images.append({**next(im for im in gt["images"] if im["id"] == src), "id": new})
        for a in by_img.get(src, []):
            anns.append({**copy.deepcopy(a), "image_id": new, "id": len(anns) + 1})
        for d in det_by_img.get(src, []):
            dets.append({**copy.deepcopy(d), "image_id": new})
    return {**gt, "images": images, "annotations": anns}, dets


def test_resampled_multiset_matches_coco_on_duplicated_images(sample_gt, preds_ab):
    preds = preds_ab[0]
    pe = PerImageEval.from_coco(sample_gt, preds, "bbox")
    rng = np.random.default_rng(5)
    for _ in range(2):
        idx = rng.integers(0, pe.num_images, pe.num_images)
        gt2, dets2 = _duplicated(sample_gt, preds, idx, pe.img_ids)
        ref = evaluate_coco(gt2, dets2, iou_types=["bbox"], backend="pycocotools")["bbox"]
        assert pe.ap(idx) == pytest.approx(ref["AP"], abs=1e-12)
        assert pe.ap50(idx) == pytest.approx(ref["AP50"], abs=1e-12)


def test_edge_cases(sample_gt, fake_predictions):
    empty = PerImageEval.from_coco(sample_gt, [], "bbox")
    assert empty.ap() == 0.0
    with pytest.raises(IndexError):
        empty.ap([0, 60])
    # an image multiset without any GT of the evaluated categories gives NaN (COCO's -1)
    pe = PerImageEval.from_coco(sample_gt, fake_predictions(sample_gt), "bbox", cat_ids=[21])
    no_21 = [i for i, im in enumerate(pe.img_ids) if im >= 1_000_000]  # videos 0001/0002 have no 061
    assert np.isnan(pe.ap(no_21))
