"""The ``tiny`` study end to end on a dataset twingap has never heard of, in the formats users have.

A non-YCB BOP dataset is built from scratch (:mod:`tests.byod`: three procedural textured objects
written as BOP PLY in millimetres, frames rendered by twingap and used as if real). The study twins
the BOP scene ``real/000001`` with models from the BOP ``models/`` folder and tests on the BOP scene
``test/000002`` and on a COCO export of the same frames: the two test sets must give the same
ground truth, the same predictions and the same AP. The tiny preset's sizes, one condition: this
checks the plumbing, not the numbers (4 training steps learn nothing).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.byod import build_bop_dataset

from twingap.cli import main

pytest.importorskip("moderngl")

STUDY_TOML = """\
preset = "tiny"
conditions = ["clean"]
frames_root = "real"          # a BOP split
twin_videos = ["000001"]      # its scene folders
models_root = "models"        # a BOP models/ folder (PLY in mm)
gallery_object = "obj_000004"

[scenes]
twin_views = 2
composed = 2

[[test_sets]]
name = "bop-test"
kind = "user"
root = "test"

[[test_sets]]
name = "coco-test"
kind = "coco"
root = "test"
annotations = "test_coco.json"
"""


@pytest.fixture(scope="module")
def byod_run(tmp_path_factory) -> Path:
    root = build_bop_dataset(tmp_path_factory.mktemp("byod") / "data")
    export = [
        "data",
        "coco",
        str(root / "test"),
        "-o",
        str(root / "test_coco.json"),
        "--models",
        str(root / "models"),
    ]
    assert main(export) == 0
    (root / "study.toml").write_text(STUDY_TOML)
    run_dir = root.parent / "run"
    assert (
        main(["study", "--config", str(root / "study.toml"), "--executor", "inline", "-o", str(run_dir)]) == 0
    )
    return run_dir


def _read(p: Path):
    return json.loads(p.read_text())


def test_twinned_from_bop_with_bop_models(byod_run):
    scenes = _read(byod_run / "scenes" / "manifest.json")
    assert scenes["kinds"] == {"twin": 3, "sampled": 2, "composed": 2}
    assert scenes["library"]["kind"] == "bop"
    assert scenes["categories"] == [4, 31, 57]
    assert scenes["category_names"] == {"4": "obj_000004", "31": "obj_000031", "57": "obj_000057"}
    twins = _read(byod_run / "scenes" / "twins.json")
    assert {t["source_frame"] for t in twins} == {"000001/000001", "000001/000002", "000001/000003"}
    job = _read(byod_run / "jobs" / "clean__s0" / "manifest.json")
    assert job["status"] == "done" and not job["fake"]


def _instances(gt: dict) -> list[tuple]:
    return sorted(
        (a["image_id"], a["category_id"], tuple(a["bbox"]), a["area"], a["iscrowd"])
        for a in gt["annotations"]
    )


def test_bop_and_coco_test_sets_same_ground_truth_and_ap(byod_run, fake_predictions):
    from twingap.study.real import RealStages

    bop, coco = byod_run / "testsets" / "bop-test", byod_run / "testsets" / "coco-test"
    gt_b, gt_c = _read(bop / "gt.json"), _read(coco / "gt.json")
    assert len(gt_b["images"]) == len(gt_c["images"]) == 3
    assert _instances(gt_b) == _instances(gt_c) and len(_instances(gt_b)) == 9
    man_c = _read(coco / "manifest.json")
    assert {r["how"] for r in man_c["matching"]} == {"name"} and man_c["not_scored"] == []
    # the study's own predictions: the same images and ids, so the same detections and AP
    job = byod_run / "jobs" / "clean__s0"
    assert _read(job / "preds" / "bop-test.json") == _read(job / "preds" / "coco-test.json")
    metrics = _read(job / "metrics.json")
    assert metrics["bop-test"] == metrics["coco-test"]
    # imperfect predictions with a non-trivial AP score the same on both ground truths
    preds = fake_predictions(gt_b, seed=3)
    pred_path = byod_run.parent / "fake_preds.json"
    pred_path.write_text(json.dumps(preds))
    for iou in ("bbox", "segm"):
        m_b = RealStages().per_image_eval(bop / "gt.json", pred_path, iou, [4, 31, 57]).metrics()
        m_c = RealStages().per_image_eval(coco / "gt.json", pred_path, iou, [4, 31, 57]).metrics()
        assert m_b == m_c and m_b["AP50"] > 0.3


def test_report_names_categories_from_the_library(byod_run):
    md = (byod_run / "report.md").read_text()
    assert "Scored categories: 4 obj_000004, 31 obj_000031, 57 obj_000057" in md
    assert "tomato" not in md and "tomato" not in (byod_run / "report.html").read_text()  # YCB id 4's name
    rows = (byod_run / "results" / "per_category.csv").read_text().splitlines()[1:]
    assert {r.split(",")[5] for r in rows} == {"obj_000004", "obj_000031", "obj_000057"}
