"""The sample's frames read natively, converted to BOP and exported to COCO give the same ground truth.

Also: BOP inputs a user may get wrong (a scene without scene_camera.json, masks of another size),
and a study twinned from a BOP folder (``twin_videos`` naming BOP scene folders).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from twingap.assets.asset import default_sample_root
from twingap.cli import main
from twingap.data.coco import frames_to_coco
from twingap.data.coco_real import load_coco_test_set
from twingap.data.loader import load_frames


@pytest.fixture(scope="module")
def converted(tmp_path_factory, ycbv_root) -> tuple[Path, Path]:
    """The 60 sample frames as BOP (``twingap data convert``) and that BOP's COCO export."""
    tmp = tmp_path_factory.mktemp("formats")
    bop = tmp / "bop"
    assert main(["data", "convert", str(ycbv_root), "--to", "bop", "-o", str(bop)]) == 0
    coco = tmp / "coco.json"
    assert (
        main(["data", "coco", str(bop), "-o", str(coco), "--models", str(default_sample_root() / "models")])
        == 0
    )
    return bop, coco


def _by_instance(gt: dict) -> dict[tuple[int, int, int], tuple]:
    """(image id, category, k-th instance of that category in the image) -> (bbox, area, iscrowd)."""
    out: dict[tuple[int, int, int], tuple] = {}
    for a in gt["annotations"]:
        k = sum(1 for key in out if key[:2] == (a["image_id"], a["category_id"]))
        out[(a["image_id"], a["category_id"], k)] = (tuple(a["bbox"]), a["area"], a["iscrowd"])
    return out


def test_bop_and_coco_give_the_ycbv_ground_truth(ycbv_root, converted):
    bop, coco = converted
    names = {1: "a"}  # names are not under test here
    ycbv_gt = frames_to_coco(load_frames(ycbv_root, layout="ycbv", load_depth=False), categories=names)
    bop_gt = frames_to_coco(load_frames(bop, layout="bop", load_depth=False), categories=names)
    models = {int(c["id"]): c["name"] for c in json.loads(coco.read_text())["categories"]}
    coco_gt = load_coco_test_set(coco, bop, models).gt
    ref = _by_instance(ycbv_gt)
    assert len(ref) == 260
    assert _by_instance(bop_gt) == ref  # same image ids, boxes, mask areas, ignore flags
    assert _by_instance(coco_gt) == ref
    # and the same masks, pixel for pixel
    from twingap.data.coco import rle_to_mask

    for a, b in zip(ycbv_gt["annotations"], coco_gt["annotations"], strict=True):
        assert np.array_equal(rle_to_mask(a["segmentation"]), rle_to_mask(b["segmentation"]))


def test_study_twinned_from_bop_scene_folders(converted, tmp_path):
    """The config accepts a BOP twin source; frames of the named scene folders are read (no TypeError)."""
    from twingap.study.config import load_study_config
    from twingap.study.real import RealStages

    bop, _ = converted
    toml = tmp_path / "study.toml"
    toml.write_text(
        f'preset = "tiny"\nframes_root = "{bop}"\ntwin_videos = ["000001"]\n\n'
        '[[test_sets]]\nname = "held-out"\nkind = "heldout"\nvideos = ["000002"]\nmax_frames = 2\n'
    )
    cfg = load_study_config(toml)
    frames = load_frames(cfg.frames_root_path(), videos=cfg.twin_videos, load_depth=False)
    assert {f.scene_id for f in frames} == {"000001"} and len(frames) == 20
    info = RealStages().prepare_test_set(cfg, cfg.test_sets[0], tmp_path)
    assert info["n_images"] == 2 and info["category_names"]["5"] == "006_mustard_bottle"


# ------------------------------------------------------------------ BOP bad input
def _scene_copy(converted, tmp_path: Path) -> Path:
    bop, _ = converted
    dst = tmp_path / "bop" / "000000"
    shutil.copytree(bop / "000000", dst)
    return dst


def _one_line(code: int, err: str, *needles: str) -> None:
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in err, err


def test_bop_scene_without_scene_camera(converted, tmp_path, capsys):
    scene = _scene_copy(converted, tmp_path)
    (scene / "scene_camera.json").unlink()
    code = main(["data", "coco", str(scene.parent), "-o", str(tmp_path / "gt.json")])
    _one_line(code, capsys.readouterr().err, str(scene), "no scene_camera.json")


def test_bop_mask_of_another_size(converted, tmp_path, capsys):
    from twingap.data.images import write_png

    scene = _scene_copy(converted, tmp_path)
    mask = scene / "mask_visib" / "000001_000000.png"
    write_png(mask, np.zeros((240, 320), np.uint8))
    code = main(["data", "coco", str(scene.parent), "-o", str(tmp_path / "gt.json")])
    _one_line(code, capsys.readouterr().err, str(mask), "mask is 320x240, image is 640x480")


def test_bop_twin_video_that_does_not_exist(converted, tmp_path, capsys):
    bop, _ = converted
    with pytest.raises(Exception, match="no BOP scene folder for 7"):
        load_frames(bop, videos=["000007"], load_depth=False)
