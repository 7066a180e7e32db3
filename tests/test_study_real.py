"""A miniature real study (the ``tiny`` preset): every real stage once, on the shipped sample.

Twins of 3 frames of video 0001 (no calibration), 4 sampled + 4 composed training scenes at
160x120, conditions clean and texture-3, 4 training iterations, 2 + 3 real test frames. It checks
the plumbing, not the numbers (4 iterations learn nothing, so every AP is 0): the scores must be
those of the stored predictions, the predictions those of the stored final model, and the two
conditions must render the same scenes (the paired design).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from twingap.cli import main
from twingap.evaluate.coco_map import evaluate_coco

pytest.importorskip("moderngl")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("tiny") / "run"
    code = main(["study", "--preset", "tiny", "--executor", "inline", "-o", str(run_dir)])
    assert code == 0
    return run_dir


def test_every_stage_ran(tiny_run):
    scenes = json.loads((tiny_run / "scenes" / "manifest.json").read_text())
    assert scenes["stages"] == "real"
    assert scenes["kinds"] == {"twin": 3, "sampled": 4, "composed": 4}
    assert set(scenes["timings"]) == {"twin environments", "calibration", "sampling"}
    # the held-out video's objects are learnt from composed scenes
    assert {5, 9, 10, 18} <= set(scenes["categories"])
    for cond in ("clean", "texture-3"):
        ds = tiny_run / "datasets" / cond
        coco = json.loads((ds / "coco.json").read_text())
        assert len(coco["images"]) == 11 and len(list((ds / "images").glob("*.png"))) == 11
        job = tiny_run / "jobs" / f"{cond}__s0"
        m = json.loads((job / "manifest.json").read_text())
        assert m["status"] == "done" and m["stages"] == "real" and not m["fake"]
        assert all(m["timings"][k] > 0 for k in ("render", "train", "predict", "evaluate"))
        assert (job / "model" / "model_final.pt").is_file()
        assert not (job / "model" / "checkpoint.pt").exists()  # only the final weights are kept
        metrics = json.loads((job / "metrics.json").read_text())
        for ts in ("ycb-real", "held-out-0002"):
            preds = json.loads((job / "preds" / f"{ts}.json").read_text())
            gt = json.loads((tiny_run / "testsets" / ts / "gt.json").read_text())
            assert preds and {p["image_id"] for p in preds} <= {im["id"] for im in gt["images"]}
            # the job's scores are COCO's (pycocotools) on its stored predictions and scored categories
            ref = evaluate_coco(gt, preds, cat_ids=metrics[ts]["categories"], backend="pycocotools")
            for iou in ("bbox", "segm"):
                for k in ("AP", "AP50", "AP75"):
                    assert metrics[ts][iou][k] == pytest.approx(ref[iou][k] or 0.0, abs=1e-9), (
                        cond,
                        ts,
                        iou,
                        k,
                    )
    # paired design: both conditions rendered the same scenes; a texture blur leaves every object's
    # geometry, so the annotations (boxes, visible masks) are identical while the pixels differ
    clean, blurred = (
        json.loads((tiny_run / "datasets" / c / "coco.json").read_text()) for c in ("clean", "texture-3")
    )
    assert [im["file_name"] for im in clean["images"]] == [im["file_name"] for im in blurred["images"]]
    assert clean["annotations"] == blurred["annotations"] and len(clean["annotations"]) > 11
    a = (tiny_run / "datasets" / "clean" / "images" / "000000.png").read_bytes()
    b = (tiny_run / "datasets" / "texture-3" / "images" / "000000.png").read_bytes()
    assert a != b


def test_predictions_are_the_final_models(tiny_run, tmp_path):
    """Predicting again with the stored final model reproduces the stored predictions exactly."""
    from twingap.study.config import preset
    from twingap.study.real import RealStages

    job = tiny_run / "jobs" / "clean__s0"
    for ts in ("ycb-real", "held-out-0002"):
        out = tmp_path / f"{ts}.json"
        RealStages().predict(preset("tiny"), job / "model", tiny_run / "testsets" / ts, out)
        assert json.loads(out.read_text()) == json.loads((job / "preds" / f"{ts}.json").read_text())


def test_test_sets_score_only_trained_categories(tiny_run):
    stats = json.loads((tiny_run / "results" / "stats.json").read_text())
    trained = set(json.loads((tiny_run / "scenes" / "manifest.json").read_text())["categories"])
    for ts, cats in stats["categories"].items():
        present = set(json.loads((tiny_run / "testsets" / ts / "manifest.json").read_text())["categories"])
        assert set(cats) == trained & present
    assert stats["categories"]["held-out-0002"] == [5, 9, 10, 18]


def test_report_and_resume(tiny_run, capsys):
    assert (tiny_run / "report.html").is_file() and (tiny_run / "report.md").is_file()
    html = (tiny_run / "report.html").read_text()
    assert "FAKE" not in html
    assert "Per category" in html and "Per category: held-out-0002" in (tiny_run / "report.md").read_text()
    rows = (tiny_run / "results" / "per_category.csv").read_text().splitlines()
    assert rows[0] == "test_set,iou_type,condition,seed,category_id,category,AP_points"
    # one row per test set x IoU type x job of the first seed x scored category
    stats = json.loads((tiny_run / "results" / "stats.json").read_text())
    n_cats = sum(len(c) for c in stats["categories"].values())
    assert len(rows) - 1 == n_cats * 2 * len(list(tiny_run.glob("jobs/*__s0/manifest.json")))
    manifests = {p: p.read_text() for p in tiny_run.glob("jobs/*/manifest.json")}
    assert main(["study", "--executor", "inline", "-o", str(tiny_run)]) == 0
    assert {p: p.read_text() for p in manifests} == manifests  # nothing redone
    assert main(["study", "status", str(tiny_run)]) == 0
    assert "done: 2" in capsys.readouterr().out


def test_train_restarts_a_partial_run_with_other_settings(tmp_path):
    from twingap.study.config import preset
    from twingap.study.real import RealStages
    from twingap.train.paste import toy_dataset

    ds = toy_dataset(tmp_path / "toy", n_images=4, size=(64, 48))
    cfg = preset("tiny")
    cfg.train.overrides = {
        **cfg.train.overrides,
        "image_size": [64, 48],
        "iterations": 2,
        "checkpoint_every": 1,
    }
    model_dir = tmp_path / "model"
    # a partial run written with another thread count (as after a resume with other executor settings)
    model_dir.mkdir()
    other = RealStages().train_config(cfg, seed=0).replace(threads=3)
    (model_dir / "config.json").write_text(json.dumps(other.to_dict()))
    info = RealStages().train(cfg, ds, model_dir, seed=0)
    assert info["iterations"] == 2
    assert (model_dir / "model_final.pt").is_file()
    assert json.loads((model_dir / "config.json").read_text())["threads"] == 1
