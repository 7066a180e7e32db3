"""COCO real test sets: polygons and RLE in, the study's ground truth out; category matching; bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_util

from twingap.cli import main
from twingap.data.coco_real import coco_images, load_coco_test_set, match_categories
from twingap.data.images import write_png
from twingap.errors import TwingapError

MODELS = {3: "can", 7: "box", 12: "prism"}
W, H = 40, 30


def _rle(mask: np.ndarray, compressed: bool = True) -> dict:
    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    if compressed:
        return {"size": [H, W], "counts": rle["counts"].decode("ascii")}
    flat = mask.astype(np.uint8).ravel(order="F")
    runs, cur, n = [], 0, 0
    for v in flat:
        if v != cur:
            runs.append(n)
            cur, n = v, 0
        n += 1
    runs.append(n)
    return {"size": [H, W], "counts": runs}


@pytest.fixture
def coco_set(tmp_path) -> Path:
    """Two 40x30 photos; a polygon, a compressed RLE, an uncompressed RLE, a tiny instance."""
    (tmp_path / "photos").mkdir()
    for k in (1, 2):
        write_png(tmp_path / "photos" / f"img{k}.png", np.full((H, W, 3), 60 * k, np.uint8))
    box = np.zeros((H, W), bool)
    box[5:20, 4:24] = True
    blob = np.zeros((H, W), bool)
    blob[10:25, 25:38] = True
    tiny = np.zeros((H, W), bool)
    tiny[1:4, 1:4] = True
    coco = {
        "images": [
            {"id": 11, "file_name": "img1.png", "width": W, "height": H},
            {"id": 12, "file_name": "sub/img2.png", "width": W, "height": H},  # found by its base name
        ],
        "categories": [
            {"id": 1, "name": "box"},
            {"id": 2, "name": "coffee can"},
            {"id": 5, "name": "person"},
        ],
        "annotations": [
            {
                "id": 1,
                "image_id": 11,
                "category_id": 1,
                "segmentation": [[4, 5, 24, 5, 24, 20, 4, 20]],
                "bbox": [0, 0, 1, 1],
                "iscrowd": 0,
            },
            {"id": 2, "image_id": 11, "category_id": 2, "segmentation": _rle(blob), "iscrowd": 0},
            {"id": 3, "image_id": 12, "category_id": 2, "segmentation": _rle(box, compressed=False)},
            {"id": 4, "image_id": 12, "category_id": 1, "segmentation": _rle(tiny)},
            {"id": 5, "image_id": 12, "category_id": 5, "segmentation": _rle(blob)},
        ],
    }
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(coco))
    return path


def test_reads_polygons_and_rle_with_the_study_rules(coco_set):
    cts = load_coco_test_set(
        coco_set, coco_set.parent / "photos", MODELS, {"coffee can": "can", "person": ""}
    )
    gt = cts.gt
    assert [im["id"] for im in gt["images"]] == [11, 12] and [i for i, _ in cts.items] == [11, 12]
    assert all(Path(im["file_name"]).is_file() for im in gt["images"])
    anns = gt["annotations"]
    assert [(a["image_id"], a["category_id"]) for a in anns] == [(11, 7), (11, 3), (12, 3), (12, 7)]
    # boxes and areas from the masks (the polygon's given bbox is not trusted)
    assert anns[1]["area"] == 15 * 13 and anns[1]["bbox"] == [25.0, 10.0, 13.0, 15.0]
    assert anns[2]["area"] == 15 * 20 and anns[2]["bbox"] == [4.0, 5.0, 20.0, 15.0]
    assert anns[0]["bbox"][2] == pytest.approx(20, abs=1) and anns[0]["area"] == pytest.approx(300, rel=0.1)
    # tiny instance: ignored, as in frames_to_coco
    assert anns[3]["area"] == 9 and anns[3]["iscrowd"] == 1 and anns[3]["ignore"] == 1
    assert {c["id"]: c["name"] for c in gt["categories"]} == {3: "can", 7: "box"}
    how = {r["name"]: r["how"] for r in cts.matching}
    assert how == {"box": "name", "coffee can": "map", "person": "unscored"}
    assert [r["name"] for r in cts.not_scored] == ["person"]
    # scored by pycocotools like any ground truth
    from twingap.data.coco import validate_gt

    validate_gt(gt)


def test_category_matching_by_name_id_and_map():
    cats = [{"id": 3, "name": "mug"}, {"id": 7, "name": "box"}, {"id": 9, "name": "unused"}]
    counts = {3: 2, 7: 1}
    ids_only = [{"id": 3, "name": "mug"}, {"id": 7, "name": "thing"}]
    recs = match_categories(ids_only, MODELS, counts=counts)  # no name is a model's: by id
    assert [(r["id"], r["model_id"], r["how"]) for r in recs] == [(3, 3, "id"), (7, 7, "id")]
    recs = match_categories(cats, MODELS, {"mug": "can"}, counts=counts)  # names speak: by name
    how = [(r["id"], r["model_id"], r["how"]) for r in recs]
    assert how == [(3, 3, "map"), (7, 7, "name"), (9, None, "unused")]
    with pytest.raises(TwingapError, match=r"category 'mug' \(id 3, 2 annotations\) has no model"):
        match_categories(cats, MODELS, counts=counts)  # a coincident id is not trusted next to names
    recs = match_categories(cats, MODELS, {"mug": "prism", "7": 3}, counts=counts)
    assert [(r["model_id"], r["how"]) for r in recs][:2] == [(12, "map"), (3, "map")]
    with pytest.raises(TwingapError, match=r"category 'mug' .* has no model"):
        match_categories(cats, MODELS, match="name", counts=counts)
    with pytest.raises(TwingapError, match="sends 'mug' to 'teapot', which is no model"):
        match_categories(cats, MODELS, {"mug": "teapot"}, counts=counts)
    with pytest.raises(TwingapError, match=r"not in the test set: \['cup'\]"):
        match_categories(cats, MODELS, {"cup": "box"}, counts=counts)


def test_coco_images_next_to_the_file(coco_set, tmp_path):
    (tmp_path / "img1.png").write_bytes((tmp_path / "photos" / "img1.png").read_bytes())
    (tmp_path / "img2.png").write_bytes((tmp_path / "photos" / "img2.png").read_bytes())
    assert [(i, p.name) for i, p in coco_images(coco_set)] == [(11, "img1.png"), (12, "img2.png")]


# ------------------------------------------------------------------ bad input
def _edit(path: Path, fn) -> Path:
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))
    return path


def _load(path: Path, **kw):
    return load_coco_test_set(path, path.parent / "photos", MODELS, {"coffee can": "can", "person": ""}, **kw)


def test_image_missing(coco_set):
    _edit(coco_set, lambda d: d["images"][1].update(file_name="gone.png"))
    with pytest.raises(TwingapError, match=r"image 12: file 'gone\.png' not found under") as e:
        _load(coco_set)
    assert e.value.path == str(coco_set)


def test_category_without_model(coco_set):
    with pytest.raises(TwingapError, match=r"category 'person' \(id 5, 1 annotations\) has no model") as e:
        load_coco_test_set(coco_set, coco_set.parent / "photos", MODELS, {"coffee can": "can"})
    assert e.value.path == str(coco_set) and 'category_map = { "person" = "<model name>" }' in e.value.message


def test_mask_size_differs_from_image(coco_set):
    _edit(coco_set, lambda d: d["annotations"][1]["segmentation"].update(size=[H, W + 1]))
    with pytest.raises(TwingapError, match="annotation 2: mask is 41x30, its image is 40x30"):
        _load(coco_set)


def test_image_size_differs_from_record(coco_set):
    _edit(coco_set, lambda d: d["images"][0].update(width=64))
    with pytest.raises(TwingapError, match="image 11 is 40x30 but the COCO file says 64x30"):
        _load(coco_set)


def test_annotation_without_segmentation(coco_set):
    _edit(coco_set, lambda d: d["annotations"][0].pop("segmentation"))
    with pytest.raises(TwingapError, match="annotation 1: needs a segmentation"):
        _load(coco_set)


# ------------------------------------------------------------------ in a study config
def _study_toml(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "study.toml"
    # fake stages: a config that wrongly passes validation must not start a real study
    head = 'preset = "tiny"\nstages = "fake"\n\n[[test_sets]]\nname = "photos"\nkind = "coco"\n'
    path.write_text(head + body)
    return path


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("", "a coco test set needs annotations = <COCO file>"),
        ('annotations = "nope.json"\n', "COCO file not found"),
        ('annotations = "instances.json"\nvideos = ["0001"]\n', "videos does not apply to a coco test set"),
        ('annotations = "instances.json"\nmatch = "fuzzy"\n', "match must be one of"),
        # checked before any job runs: images present, every annotated category has a model
        ('annotations = "instances.json"\n', "image 11: file 'img1.png' not found under"),
        (
            'annotations = "instances.json"\nroot = "photos"\nmatch = "name"\n',
            "category 'box' (id 1, 2 annotations) has no model",
        ),
    ],
)
def test_study_config_coco_errors(coco_set, tmp_path, capsys, body, needle):
    code = main(["study", "--config", str(_study_toml(tmp_path, body)), "-o", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and needle in err, err


def test_study_config_coco_paths_relative_to_the_file(coco_set, tmp_path):
    from twingap.study.config import load_study_config

    body = (
        'annotations = "instances.json"\nroot = "photos"\n'
        'category_map = { box = "003_cracker_box", "coffee can" = "005_tomato_soup_can", person = "" }\n'
    )
    cfg = load_study_config(_study_toml(tmp_path, body))
    ts = cfg.test_sets[0]
    assert (
        ts.annotations == str(coco_set.resolve()) and cfg.test_set_root(ts) == (tmp_path / "photos").resolve()
    )
    assert cfg.test_set_videos(ts) is None


def test_not_scored_lists_untrained_and_unmapped_categories(tmp_path):
    from twingap.study.byod import category_names, not_scored

    (tmp_path / "scenes").mkdir()
    (tmp_path / "scenes" / "manifest.json").write_text(
        json.dumps({"categories": [3, 7], "category_names": {"3": "can", "7": "box"}})
    )
    (tmp_path / "testsets" / "photos").mkdir(parents=True)
    (tmp_path / "testsets" / "photos" / "manifest.json").write_text(
        json.dumps(
            {
                "categories": [3, 7, 12],
                "category_names": {"3": "can", "7": "box", "12": "prism"},
                "not_scored": ["person (id 5)"],
            }
        )
    )
    assert category_names(tmp_path) == {3: "can", 7: "box", 12: "prism"}
    assert not_scored(tmp_path, "photos") == ["12 prism (never trained)", "person (id 5) (no model)"]


def test_video_ids_group_photos_into_scenes(coco_set):
    # frames of one video are one sampling unit for the study's intervals; lone photos are their own
    from twingap.study.byod import _scene_of

    path = _edit(coco_set, lambda d: d["images"][0].update(video_id=4))
    gt = _load(path).gt
    by_id = {im["id"]: im for im in gt["images"]}
    assert by_id[11]["video_id"] == 4 and "video_id" not in by_id[12]
    assert _scene_of(by_id[11], 11) == "video_id-4" and _scene_of(by_id[12], 12) == "image-12"
