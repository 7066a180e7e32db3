"""Predictions are valid COCO results with the ground truth's image ids and YCB category ids."""

from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from twingap.cli import main
from twingap.data.images import read_rgb
from twingap.train.config import TrainConfig
from twingap.train.engine import train
from twingap.train.paste import toy_dataset
from twingap.train.predict import predict


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    torch.set_num_threads(1)
    base = tmp_path_factory.mktemp("pred")
    ds = toy_dataset(base / "ds", n_images=6, size=(96, 72))
    # The whole body frozen: 12 steps on 6 toy images are enough for the heads to detect something
    # (the quick preset's trainable later blocks need more steps than a test should take).
    cfg = TrainConfig(
        image_size=(96, 72),
        iterations=12,
        batch_size=2,
        warmup_iters=1,
        aug_variants=1,
        threads=1,
        lr=0.02,
        frozen_blocks=18,
    )
    train(ds, base / "run", cfg, progress=False)
    return base / "run"


def _load_res(gt: dict, results: list[dict]):
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        cgt = COCO()
        cgt.dataset = gt
        cgt.createIndex()
        return cgt.loadRes(copy.deepcopy(results)) if results else None


def test_predict_valid_coco_results(run):
    ds = run.parent / "ds"
    coco = json.loads((ds / "coco.json").read_text())
    pairs = [(im["id"] * 10, ds / im["file_name"]) for im in coco["images"]]
    res = predict(run, pairs, score_threshold=0.0)
    assert res, "a trained model at threshold 0 should return detections"
    ids = {i for i, _ in pairs}
    for r in res:
        assert r["image_id"] in ids
        assert r["category_id"] in {1, 2, 5}
        x, y, w, h = r["bbox"]
        assert w >= 0 and h >= 0 and x >= -1 and y >= -1 and x + w <= 97 and y + h <= 73
        assert 0.0 <= r["score"] <= 1.0
        assert r["segmentation"]["size"] == [72, 96] and isinstance(r["segmentation"]["counts"], str)
    gt = {**coco, "images": [{**im, "id": im["id"] * 10} for im in coco["images"]], "annotations": []}
    assert _load_res(gt, res) is not None
    # Scores within an image are sorted; results are deterministic.
    assert res == predict(run, pairs, score_threshold=0.0)


def test_box_from_mask_is_the_tight_box_of_the_mask(run):
    from pycocotools import mask as mask_utils

    ds = run.parent / "ds"
    pairs = [(i + 1, p) for i, p in enumerate(sorted((ds / "images").glob("*.png")))]
    regressed = predict(run, pairs, score_threshold=0.0, box_from_mask=False)
    from_mask = predict(run, pairs, score_threshold=0.0, box_from_mask=True)
    assert len(regressed) == len(from_mask) > 0
    n_nonempty = 0
    for a, b in zip(regressed, from_mask, strict=True):
        keys = ("image_id", "category_id", "score", "segmentation")
        assert [a[k] for k in keys] == [b[k] for k in keys]
        rle = {**b["segmentation"], "counts": b["segmentation"]["counts"].encode("ascii")}
        if mask_utils.area(rle) > 0:
            n_nonempty += 1
            assert b["bbox"] == pytest.approx([round(float(v), 2) for v in mask_utils.toBbox(rle)])
        else:
            assert b["bbox"] == a["bbox"]
    assert n_nonempty > 0


def test_predict_maps_back_to_original_size(run):
    """A 2x upscaled image gives the same detections (the model sees the same input) at 2x the coordinates."""
    from pycocotools import mask as mask_utils

    ds = run.parent / "ds"
    img = read_rgb(ds / "images" / "000000.png")  # 96 x 72, the model's input size
    big = np.repeat(np.repeat(img, 2, axis=0), 2, axis=1)  # 192 x 144; area-downsampled back to img exactly
    small = predict(run, [img], score_threshold=0.0, box_from_mask=False)
    res = predict(run, [big], score_threshold=0.0, box_from_mask=False)
    assert len(small) >= 3, "the trained model at threshold 0 should detect several objects"
    assert [(r["category_id"], r["score"]) for r in res] == [(r["category_id"], r["score"]) for r in small]
    for a, b in zip(small, res, strict=True):
        assert b["segmentation"]["size"] == [144, 192]
        assert b["bbox"] == pytest.approx([2 * v for v in a["bbox"]], abs=0.02)  # rounded to 0.01 px
        area_a = mask_utils.area({**a["segmentation"], "counts": a["segmentation"]["counts"].encode()})
        area_b = mask_utils.area({**b["segmentation"], "counts": b["segmentation"]["counts"].encode()})
        # the mask is pasted at each resolution: 4x the area, up to half a 96 x 72 pixel along its rim
        assert abs(float(area_b) - 4 * float(area_a)) <= 2 * (a["bbox"][2] + a["bbox"][3])


def test_cli_predict_on_frames(run, small_ycbv, tmp_path, capsys):
    out = tmp_path / "preds.json"
    argv = ["predict", str(run), "--frames", str(small_ycbv), "-o", str(out), "--no-progress"]
    code = main([*argv, "--score-threshold", "0"])
    assert code == 0, capsys.readouterr().err
    res = json.loads(out.read_text())
    from twingap.data.coco import frames_to_coco
    from twingap.data.loader import load_frames

    frames = load_frames(small_ycbv, load_depth=False)
    gt = frames_to_coco(frames)
    # at threshold 0 every frame gets detections, with the ground truth's image ids and sizes
    assert {r["image_id"] for r in res} == {im["id"] for im in gt["images"]}
    size = {im["id"]: [im["height"], im["width"]] for im in gt["images"]}
    assert all(r["segmentation"]["size"] == size[r["image_id"]] for r in res)
    assert _load_res(gt, res) is not None
    assert f"{len(res)} detections on {len(frames)} images" in capsys.readouterr().out


def test_cli_predict_bad_run_exit_2(tmp_path, small_ycbv, capsys):
    code = main(["predict", str(tmp_path), "--frames", str(small_ycbv), "-o", str(tmp_path / "p.json")])
    assert code == 2
    assert "model_final.pt missing" in capsys.readouterr().err


def test_cli_predict_on_images_folder_and_coco_file(run, tmp_path, capsys):
    ds = run.parent / "ds"
    coco = json.loads((ds / "coco.json").read_text())
    by_api = predict(run, [(im["id"], ds / im["file_name"]) for im in coco["images"]])
    # --coco: images next to the COCO file, the file's own image ids
    out = tmp_path / "coco_preds.json"
    assert main(["predict", str(run), "--coco", str(ds / "coco.json"), "-o", str(out), "--no-progress"]) == 0
    assert json.loads(out.read_text()) == by_api
    # --coco elsewhere + --images: looked up under the folder (by file name)
    moved = tmp_path / "elsewhere" / "instances.json"
    moved.parent.mkdir()
    moved.write_text(json.dumps(coco))
    out2 = tmp_path / "coco_preds2.json"
    args = ["predict", str(run), "--coco", str(moved), "--images", str(ds / "images"), "-o", str(out2)]
    assert main([*args, "--no-progress"]) == 0
    assert json.loads(out2.read_text()) == by_api
    # --images alone: ids 1..N in file-name order, listed next to the results
    out3 = tmp_path / "folder_preds.json"
    assert main(["predict", str(run), "--images", str(ds / "images"), "-o", str(out3), "--no-progress"]) == 0
    listing = json.loads((tmp_path / "folder_preds.images.json").read_text())
    files = sorted(p.name for p in (ds / "images").glob("*.png"))
    assert listing == [{"id": i + 1, "file_name": f} for i, f in enumerate(files)]
    by_name = {im["file_name"].split("/")[-1]: im["id"] for im in coco["images"]}
    renumber = {by_name[f]: i + 1 for i, f in enumerate(files)}
    assert json.loads(out3.read_text()) == [{**r, "image_id": renumber[r["image_id"]]} for r in by_api]


def test_cli_predict_coco_missing_image_exit_2(run, tmp_path, capsys):
    ds = run.parent / "ds"
    coco = json.loads((ds / "coco.json").read_text())
    coco["images"][1]["file_name"] = "images/gone.png"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(coco))
    (tmp_path / "images").symlink_to(ds / "images")
    code = main(["predict", str(run), "--coco", str(bad), "-o", str(tmp_path / "p.json")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "bad.json" in err and "'images/gone.png' not found" in err
    assert main(["predict", str(run), "-o", str(tmp_path / "p.json")]) == 2
    assert "--frames ROOT, --images DIR or --coco FILE" in capsys.readouterr().err
