"""Bad input gives one line naming the file and the problem, exit code 2, no traceback."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.io
from PIL import Image

from twingap.cli import main
from twingap.errors import TwingapError


def run(args, capsys):
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.err


def assert_one_line_error(code, err, *needles):
    assert code == 2
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])


def test_missing_image(small_ycbv, tmp_path, capsys):
    bad = small_ycbv / "0000" / "000002-color.png"
    bad.unlink()
    code, err = run(["data", "coco", str(small_ycbv), "-o", str(tmp_path / "gt.json")], capsys)
    assert_one_line_error(code, err, str(bad), "not found")
    assert not (tmp_path / "gt.json").exists()


def test_unreadable_image(small_ycbv, tmp_path, capsys):
    bad = small_ycbv / "0001" / "000001-color.png"
    bad.write_bytes(b"this is not a png")
    code, err = run(["data", "coco", str(small_ycbv), "-o", str(tmp_path / "gt.json")], capsys)
    assert_one_line_error(code, err, str(bad), "unreadable image")


def test_unreadable_label(small_ycbv, tmp_path, capsys):
    bad = small_ycbv / "0000" / "000001-label.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    code, err = run(["data", "convert", str(small_ycbv), "-o", str(tmp_path / "bop")], capsys)
    assert_one_line_error(code, err, str(bad), "unreadable image")


def test_meta_without_poses(small_ycbv, tmp_path, capsys):
    meta = small_ycbv / "0000" / "000001-meta.mat"
    m = scipy.io.loadmat(str(meta))
    scipy.io.savemat(str(meta), {k: v for k, v in m.items() if not k.startswith("__") and k != "poses"})
    code, err = run(["data", "coco", str(small_ycbv), "-o", str(tmp_path / "gt.json")], capsys)
    assert_one_line_error(code, err, str(meta), "no 'poses'")


def test_corrupt_meta(small_ycbv, tmp_path, capsys):
    meta = small_ycbv / "0000" / "000002-meta.mat"
    meta.write_bytes(b"garbage" * 10)
    code, err = run(["data", "coco", str(small_ycbv), "-o", str(tmp_path / "gt.json")], capsys)
    assert_one_line_error(code, err, str(meta), "unreadable meta.mat")


def test_label_value_not_in_frame(small_ycbv, tmp_path, capsys):
    label = small_ycbv / "0000" / "000001-label.png"
    arr = np.array(Image.open(label))
    arr[:5, :5] = 13  # 024_bowl is not in this frame (8, 14, 21)
    Image.fromarray(arr).save(label)
    code, err = run(["data", "coco", str(small_ycbv), "-o", str(tmp_path / "gt.json")], capsys)
    assert_one_line_error(code, err, str(label), "label values [13]", "[8, 14, 21]")


def test_not_a_dataset(tmp_path, capsys):
    code, err = run(["data", "coco", str(tmp_path), "-o", str(tmp_path / "gt.json")], capsys)
    assert_one_line_error(code, err, str(tmp_path), "not a YCB-Video")
    code, err = run(["data", "coco", str(tmp_path / "nope"), "-o", str(tmp_path / "gt.json")], capsys)
    assert_one_line_error(code, err, "not found")


def test_bop_missing_mask(small_ycbv, tmp_path, capsys):
    out = tmp_path / "bop"
    assert main(["data", "convert", str(small_ycbv), "-o", str(out)]) == 0
    mask = out / "000000" / "mask_visib" / "000002_000001.png"
    mask.unlink()
    code, err = run(["data", "coco", str(out), "-o", str(tmp_path / "gt.json")], capsys)
    assert_one_line_error(code, err, str(mask), "not found")
    (out / "000001" / "scene_gt.json").write_text("{not json")
    code, err = run(["data", "info", str(out / "000001")], capsys)
    assert_one_line_error(code, err, "scene_gt.json", "not valid JSON")


# ------------------------------------------------------------------ predictions / eval


@pytest.fixture
def gt_file(small_ycbv, tmp_path):
    from twingap.assets.asset import default_sample_root

    path = tmp_path / "gt.json"
    models = default_sample_root() / "models"  # category names from the model library
    assert main(["data", "coco", str(small_ycbv), "-o", str(path), "--models", str(models)]) == 0
    return path


def _good_pred(gt_file):
    gt = json.loads(gt_file.read_text())
    a = gt["annotations"][0]
    return {"image_id": a["image_id"], "category_id": a["category_id"], "score": 0.9, "bbox": a["bbox"]}


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("", "predictions file is empty"),
        ("[]", "has no detections"),
        ("{oops", "not valid JSON"),
        ('{"a": 1}', "must be a JSON list"),
        ('[{"image_id": 1}]', "needs image_id, category_id and a numeric score"),
        ('[{"image_id": 1, "category_id": 8, "score": 0.5, "bbox": [1, 2]}]', "bbox [x, y, w, h]"),
    ],
)
def test_bad_predictions_file(gt_file, tmp_path, capsys, content, needle):
    pred = tmp_path / "pred.json"
    pred.write_text(content)
    code, err = run(["eval", "--gt", str(gt_file), "--pred", str(pred)], capsys)
    assert_one_line_error(code, err, str(pred), needle)


def test_predictions_unknown_ids(gt_file, tmp_path, capsys):
    pred = tmp_path / "pred.json"
    good = _good_pred(gt_file)
    pred.write_text(json.dumps([good, {**good, "image_id": 424242}]))
    code, err = run(["eval", "--gt", str(gt_file), "--pred", str(pred)], capsys)
    assert_one_line_error(code, err, str(pred), "image ids not in the ground truth: 424242")
    pred.write_text(json.dumps([good, {**good, "category_id": 99}]))
    code, err = run(["eval", "--gt", str(gt_file), "--pred", str(pred)], capsys)
    assert_one_line_error(code, err, str(pred), "category ids not in the ground truth: 99")
    # segm requested but the detections have no masks
    pred.write_text(json.dumps([good]))
    code, err = run(["eval", "--gt", str(gt_file), "--pred", str(pred), "--iou-type", "segm"], capsys)
    assert_one_line_error(code, err, str(pred), "needs an RLE segmentation")


def test_bad_gt_and_options(gt_file, tmp_path, capsys):
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps([_good_pred(gt_file)]))
    code, err = run(["eval", "--gt", str(tmp_path / "missing.json"), "--pred", str(pred)], capsys)
    assert_one_line_error(code, err, "missing.json", "file not found")
    bad_gt = tmp_path / "bad_gt.json"
    bad_gt.write_text('{"images": []}')
    code, err = run(["eval", "--gt", str(bad_gt), "--pred", str(pred)], capsys)
    assert_one_line_error(code, err, str(bad_gt), "no 'annotations' list")
    code, err = run(["eval", "--gt", str(gt_file), "--pred", str(pred), "--cat-ids", "1,x"], capsys)
    assert_one_line_error(code, err, "--cat-ids")


def test_debug_shows_traceback(tmp_path):
    with pytest.raises(TwingapError):
        main(["--debug", "data", "coco", str(tmp_path / "nope"), "-o", str(tmp_path / "gt.json")])


def test_eval_cli_writes_metrics(gt_file, tmp_path, capsys):
    gt = json.loads(gt_file.read_text())
    preds = [
        {k: a[k] for k in ("image_id", "category_id", "bbox", "segmentation")} | {"score": 0.5}
        for a in gt["annotations"]
    ]
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps(preds))
    out = tmp_path / "metrics.json"
    assert main(["eval", "--gt", str(gt_file), "--pred", str(pred), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "COCO AP" in printed and "100.0" in printed and "025_mug" in printed
    m = json.loads(out.read_text())
    assert m["bbox"]["AP"] == 1.0 and m["segm"]["AP"] == 1.0 and m["num_images"] == 3
    assert len(m["inputs"]["gt_sha256"]) == 64
