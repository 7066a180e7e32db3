from __future__ import annotations

import json

import numpy as np
from pycocotools import mask as mask_util
from pycocotools.coco import COCO

from twingap.assets.ycb import YCBV_NAMES
from twingap.cli import main
from twingap.data.coco import (
    detections_to_coco,
    frames_to_coco,
    instances_to_coco,
    mask_to_rle,
    rle_to_mask,
    validate_gt,
)
from twingap.data.ycbv import load_ycbv
from twingap.io import sha256_file


def test_cli_coco_on_sample(ycbv_root, tmp_path, capsys):
    out = tmp_path / "gt.json"
    models = ycbv_root.parent / "models"  # category names come from the model library
    assert main(["data", "coco", str(ycbv_root), "-o", str(out), "--models", str(models)]) == 0
    assert "60 images, 260 instances" in capsys.readouterr().out
    coco = COCO(str(out))  # loads in pycocotools
    assert len(coco.imgs) == 60 and len(coco.anns) == 260
    assert {c["id"]: c["name"] for c in coco.dataset["categories"]} == YCBV_NAMES
    assert len({a["category_id"] for a in coco.anns.values()}) == 12
    # deterministic bytes
    out2 = tmp_path / "gt2.json"
    assert main(["data", "coco", str(ycbv_root), "-o", str(out2), "--models", str(models)]) == 0
    assert sha256_file(out) == sha256_file(out2)
    # annotations agree with the frames: RLE decodes to the visible mask, bbox and area from it
    frames = load_ycbv(ycbv_root, videos=["0002"], load_depth=False)
    f = frames[4]
    img = next(i for i in coco.dataset["images"] if i["frame_id"] == f.frame_id)
    assert img["file_name"] == "0002/000005-color.png" and img["id"] == 2_000_005
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[img["id"]]))
    assert [a["category_id"] for a in anns] == f.obj_ids.tolist()
    for a, m in zip(anns, f.masks, strict=True):
        np.testing.assert_array_equal(coco.annToMask(a).astype(bool), m)
        ys, xs = np.nonzero(m)
        assert a["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
        assert a["area"] == m.sum() and a["iscrowd"] == 0


def test_tiny_instances_are_crowd():
    masks = np.zeros((3, 40, 50), dtype=bool)
    masks[0, 5:25, 10:30] = True  # 400 px
    masks[1, 0:9, 0:11] = True  # 99 px -> below the default 100
    anns = instances_to_coco(masks, [3, 5, 7], image_id=9, ann_id_start=11)
    assert [a["id"] for a in anns] == [11, 12, 13]
    assert [a["iscrowd"] for a in anns] == [0, 1, 1]  # empty mask is always ignored
    assert [a["area"] for a in anns] == [400, 99, 0]
    assert anns[0]["bbox"] == [10.0, 5.0, 20.0, 20.0]
    assert anns[2]["bbox"] == [0.0, 0.0, 0.0, 0.0]
    assert [a["iscrowd"] for a in instances_to_coco(masks, [3, 5, 7], 9, min_visible_px=50)] == [0, 0, 1]
    json.dumps(anns)  # serialisable
    assert instances_to_coco(np.zeros((0, 4, 4), bool), [], 1) == []


def test_rle_helpers_round_trip():
    rng = np.random.default_rng(0)
    m = rng.random((17, 23)) > 0.5
    rle = mask_to_rle(m)
    assert isinstance(rle["counts"], str)
    np.testing.assert_array_equal(rle_to_mask(rle), m)
    poly_free = mask_util.encode(np.asfortranarray(m.astype(np.uint8)))
    np.testing.assert_array_equal(rle_to_mask(poly_free), m)


def test_detections_to_coco():
    masks = np.zeros((2, 30, 40), dtype=bool)
    masks[0, 2:12, 3:8] = True
    masks[1, 10:20, 10:30] = True
    dets = detections_to_coco(7, [1, 2], [0.9, 0.4], boxes_xyxy=np.array([[3, 2, 8, 12], [10, 10, 30, 20.0]]))
    assert dets[0]["bbox"] == [3.0, 2.0, 5.0, 10.0] and "segmentation" not in dets[0]
    dets = detections_to_coco(7, [1, 2], [0.9, 0.4], masks=masks)
    assert dets[1]["bbox"] == [10.0, 10.0, 20.0, 10.0]
    np.testing.assert_array_equal(rle_to_mask(dets[0]["segmentation"]), masks[0])


def test_frames_to_coco_in_memory(ycbv_root):
    frames = load_ycbv(ycbv_root, videos=["0001"], frames=["000001", "000002"], load_depth=False)
    gt = validate_gt(frames_to_coco(frames))
    assert [im["id"] for im in gt["images"]] == [1_000_001, 1_000_002]
    assert [a["id"] for a in gt["annotations"]] == list(range(1, 1 + sum(f.num_instances for f in frames)))
    # non-numeric frame ids fall back to 1..N
    frames[0].frame_id, frames[1].frame_id = "a/x", "a/y"
    assert [im["id"] for im in frames_to_coco(frames)["images"]] == [1, 2]


def test_unknown_object_ids_get_categories(ycbv_root):
    frames = load_ycbv(ycbv_root, videos=["0000"], frames=["000001"], load_depth=False)
    frames[0].obj_ids = np.array([8, 14, 42])
    gt = validate_gt(frames_to_coco(frames, categories=YCBV_NAMES))
    cats = {c["id"]: c["name"] for c in gt["categories"]}
    assert len(cats) == 22 and cats[42] == "obj_000042" and cats[8] == "009_gelatin_box"
    # without names (no model library): the ids present, BOP-style names
    cats = {c["id"]: c["name"] for c in frames_to_coco(frames)["categories"]}
    assert cats == {8: "obj_000008", 14: "obj_000014", 42: "obj_000042"}
