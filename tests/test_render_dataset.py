"""Synthetic dataset writer: COCO/BOP content, AP 1.0 against itself, determinism, resume."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from twingap.assets.asset import Asset, ModelLibrary
from twingap.errors import TwingapError
from twingap.render import dataset as ds
from twingap.render.dataset import render_dataset
from twingap.render.scene import CameraSpec, LightSpec, ObjectSpec, SceneSpec, save_scenes

W, H = 64, 48
K = np.array([[80.0, 0.0, 31.5], [0.0, 80.0, 23.5], [0.0, 0.0, 1.0]])


def _box_asset(name: str, size: float, textured: bool) -> Asset:
    import trimesh

    m = trimesh.creation.box(extents=(size, size * 0.8, size * 0.6))
    v = np.asarray(m.vertices, np.float64)
    uv = (v[:, :2] - v[:, :2].min(0)) / np.ptp(v[:, :2], 0)
    tex = np.zeros((8, 8, 3), np.uint8)
    tex[::2, ::2] = (250, 200, 30)
    tex[1::2, 1::2] = (30, 90, 220)
    if not textured:
        tex = np.full((1, 1, 3), 128, np.uint8)
    return Asset(name, v, np.asarray(m.faces, np.int64), uv, tex, textured)


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> ModelLibrary:
    root = tmp_path_factory.mktemp("models")
    info = {}
    for k, (name, size, textured) in enumerate([("box_a", 0.15, True), ("box_b", 0.12, False)]):
        _box_asset(name, size, textured).to_trimesh().export(root / f"{name}.glb")
        info[name] = {
            "file": f"{name}.glb",
            "obj_id": k + 1,
            "g16k_to_ycbv_mm": [0, 0, 0],
            "fallback_rgb": [200, 60, 60],
        }
    (root / "models_info.json").write_text(json.dumps(info))
    return ModelLibrary(root)


def _pose(x, y, z, angle):
    c, s = np.cos(angle), np.sin(angle)
    T = np.eye(4)
    T[:3, :3] = [[c, 0, s], [0, 1, 0], [-s, 0, c]] @ np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    T[:3, 3] = (x, y, z)
    return T


def make_scenes(n=4) -> list[SceneSpec]:
    out = []
    for i in range(n):
        objs = [
            ObjectSpec("box_a", 1, _pose(-0.08 + 0.01 * i, 0.0, 0.8, 0.3 * i)),
            ObjectSpec("box_b", 2, _pose(0.1, 0.02 * i, 0.9, 0.5 + 0.2 * i)),
        ]
        if i == 3:  # an object behind the camera: annotated, invisible
            objs.append(ObjectSpec("box_b", 2, _pose(0.0, 0.0, -1.0, 0.0)))
        out.append(
            SceneSpec(
                f"s{i}",
                CameraSpec(K, W, H),
                objs,
                lights=[LightSpec(direction=(0.3, 0.5, 1.0), intensity=0.7)],
                ambient=0.3,
                seed=i,
            )
        )
    return out


def tree_digest(root: Path, skip=()) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name not in skip
    }


@pytest.fixture(scope="module")
def dataset(library, tmp_path_factory) -> Path:
    return render_dataset(make_scenes(), tmp_path_factory.mktemp("d") / "ds", library, progress=False)


def test_layout_and_bop(dataset):
    from PIL import Image

    manifest = json.loads((dataset / "manifest.json").read_text())
    assert manifest["complete"] and manifest["counts"]["images"] == 4
    assert manifest["condition"]["name"] == "clean" and manifest["backend"] == "raster"
    assert sorted(p.name for p in (dataset / "images").iterdir()) == [f"{i:06d}.png" for i in range(4)]
    assert not list(dataset.rglob("*.tmp*"))
    bop = dataset / "bop" / "000000"
    gt = json.loads((bop / "scene_gt.json").read_text())
    cam = json.loads((bop / "scene_camera.json").read_text())
    info = json.loads((bop / "scene_gt_info.json").read_text())
    assert len(gt["0"]) == 2 and len(gt["3"]) == 3
    np.testing.assert_allclose(gt["0"][0]["cam_t_m2c"], [-80.0, 0.0, 800.0], atol=1e-9)  # millimetres
    assert cam["0"]["cam_K"] == K.ravel().tolist()
    depth = np.asarray(Image.open(bop / "depth" / "000000.png"))
    assert depth.dtype == np.uint16
    mask = np.asarray(Image.open(bop / "mask_visib" / "000000_000000.png")) > 0
    assert np.array_equal(
        mask, np.asarray(Image.open(dataset / "bop/000000/mask_visib/000000_000000.png").convert("L")) == 255
    )
    assert mask.sum() == info["0"][0]["px_count_visib"] > 0
    z = depth[mask] * cam["0"]["depth_scale"] / 1000.0
    assert 0.7 < z.min() and z.max() < 0.9
    assert info["3"][2]["px_count_visib"] == 0 and info["3"][2]["bbox_visib"] == [-1, -1, -1, -1]
    rgb = np.asarray(Image.open(dataset / "images" / "000000.png"))
    assert (
        rgb.shape == (H, W, 3)
        and (bop / "rgb" / "000000.png").read_bytes() == (dataset / "images" / "000000.png").read_bytes()
    )


def test_coco_loads_and_scores_ap_1_against_itself(dataset):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = COCO(str(dataset / "coco.json"))
    assert gt.dataset["images"][0]["file_name"] == "images/000000.png"
    assert (dataset / gt.dataset["images"][0]["file_name"]).is_file()
    anns = gt.dataset["annotations"]
    assert len(anns) == 9 and [a["id"] for a in anns] == list(range(1, 10))
    assert {a["category_id"] for a in anns} == {1, 2}
    hidden = [a for a in anns if a["area"] == 0]
    assert len(hidden) == 1 and hidden[0]["iscrowd"] == 1
    dets = [
        {k: a[k] for k in ("image_id", "category_id", "segmentation", "bbox")} | {"score": 1.0}
        for a in anns
        if not a["iscrowd"]
    ]
    for iou_type in ("segm", "bbox"):
        ev = COCOeval(gt, gt.loadRes(dets), iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        assert ev.stats[0] == pytest.approx(1.0)
    # and with the project's evaluator (faster-coco-eval), which also validates the file
    from twingap.evaluate.coco_map import evaluate_coco

    metrics = evaluate_coco(dataset / "coco.json", dets)
    assert metrics["segm"]["AP"] == pytest.approx(1.0) and metrics["bbox"]["AP"] == pytest.approx(1.0)


def test_deterministic_by_hash(dataset, library, tmp_path):
    again = render_dataset(make_scenes(), tmp_path / "again", library, progress=False)
    assert tree_digest(again) == tree_digest(dataset)


def test_resume_after_interrupted_write(dataset, library, tmp_path, monkeypatch):
    out = tmp_path / "resumed"
    real_write = ds.write_image
    calls = []

    def crashing_write(out_dir, i, *args):
        calls.append(i)
        if len(calls) == 3:  # die in the middle of the third image
            (ds.image_paths(out_dir, i)["image"]).parent.mkdir(parents=True, exist_ok=True)
            (out_dir / "images" / f".{i:06d}.half.tmp.png").write_bytes(b"half")
            raise KeyboardInterrupt
        real_write(out_dir, i, *args)

    monkeypatch.setattr(ds, "write_image", crashing_write)
    with pytest.raises(KeyboardInterrupt):
        render_dataset(make_scenes(), out, library, progress=False)
    assert not (out / "coco.json").exists()
    assert len(list((out / "ann").iterdir())) == 2
    # an image whose sidecar never got written is redone
    (out / "ann" / "000001.json").unlink()
    monkeypatch.setattr(ds, "write_image", lambda *a: (calls.append(a[1]), real_write(*a)))
    calls.clear()
    render_dataset(make_scenes(), out, library, progress=False)
    assert sorted(calls) == [1, 2, 3]
    (out / "images" / ".000002.half.tmp.png").unlink()  # a leftover temp file is never used
    assert tree_digest(out) == tree_digest(dataset)


def test_refuses_a_different_dataset_in_the_folder(dataset, library):
    other = make_scenes()[:3]
    with pytest.raises(TwingapError, match="different dataset"):
        render_dataset(other, dataset, library, progress=False)
    with pytest.raises(TwingapError, match="different dataset"):
        render_dataset(make_scenes(), dataset, library, seed=5, condition="ambient-1", progress=False)


def test_condition_changes_pixels_not_masks(dataset, library, tmp_path):
    from PIL import Image

    out = render_dataset(make_scenes(), tmp_path / "amb", library, condition="ambient-2", progress=False)
    m = json.loads((out / "manifest.json").read_text())
    assert m["condition"]["name"] == "ambient-2" and m["condition"]["render_params"]["ambient_add"] > 0
    a = np.asarray(Image.open(out / "images" / "000000.png")).astype(int)
    b = np.asarray(Image.open(dataset / "images" / "000000.png")).astype(int)
    assert a.sum() > b.sum()
    assert (
        json.loads((out / "coco.json").read_text())["annotations"]
        == json.loads((dataset / "coco.json").read_text())["annotations"]
    )


def test_unknown_model_is_an_error(library, tmp_path):
    sc = make_scenes(1)
    sc[0].objects[0].model = "nope"
    with pytest.raises(TwingapError, match="unknown model"):
        render_dataset(sc, tmp_path / "x", library, progress=False)


def test_two_workers_match_one(dataset, library, tmp_path):
    out = render_dataset(make_scenes(), tmp_path / "par", library, workers=2, progress=False)
    assert tree_digest(out) == tree_digest(dataset)


def test_scene_file_round_trip_renders_same(dataset, library, tmp_path):
    from twingap.render.scene import load_scenes

    save_scenes(tmp_path / "scenes.json", make_scenes())
    out = render_dataset(load_scenes(tmp_path / "scenes.json"), tmp_path / "rt", library, progress=False)
    assert tree_digest(out) == tree_digest(dataset)


# ----------------------------------------------------------------------------- CLI
def _write_scene_dicts(path: Path, dicts: list[dict]) -> Path:
    path.write_text(json.dumps(dicts))
    return path


def test_cli_render_writes_dataset(dataset, library, tmp_path, capsys):
    from twingap.cli import main

    save_scenes(tmp_path / "scenes.json", make_scenes())
    out = tmp_path / "cli_ds"
    args = ["render", str(tmp_path / "scenes.json"), "-o", str(out), "--models", str(library.root)]
    assert main([*args, "--no-progress"]) == 0
    assert "wrote 4 images, 9 annotations" in capsys.readouterr().out
    assert tree_digest(out) == tree_digest(dataset)


@pytest.mark.parametrize(
    "breakage, message",
    [
        ("not_rotation", "not a rotation"),
        ("no_model", "has no model"),
        ("no_K", "intrinsics K missing"),
        ("bad_condition", "unknown condition"),
        ("missing_file", "file not found"),
    ],
)
def test_cli_bad_input_one_line_exit_2(library, tmp_path, capsys, breakage, message):
    from twingap.cli import main

    dicts = [s.to_dict() for s in make_scenes(2)]
    extra = []
    if breakage == "not_rotation":
        dicts[1]["objects"][0]["world_T_obj"][0][0] = 2.0
    elif breakage == "no_model":
        dicts[0]["objects"][1]["model"] = "999_unicorn"
    elif breakage == "no_K":
        del dicts[0]["camera"]["K"]
    elif breakage == "bad_condition":
        extra = ["--condition", "rust-9"]
    path = _write_scene_dicts(tmp_path / "scenes.json", dicts)
    if breakage == "missing_file":
        path = tmp_path / "nothere.json"
    code = main(["render", str(path), "-o", str(tmp_path / "o"), "--models", str(library.root), *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o" / "coco.json").exists()


def test_full_masks_and_bop_reader_round_trip(dataset, library, tmp_path):
    from twingap.data.bop import load_bop
    from twingap.data.coco import rle_to_mask

    out = render_dataset(make_scenes(), tmp_path / "full", library, progress=False, full_masks=True)
    info = json.loads((out / "bop/000000/scene_gt_info.json").read_text())
    for entries in info.values():
        for e in entries:
            assert e["px_count_all"] >= e["px_count_visib"]
            assert 0.0 <= e["visib_fract"] <= 1.0
    assert info["3"][2]["px_count_all"] == 0  # behind the camera
    assert (out / "bop/000000/mask/000000_000000.png").is_file()
    # images, annotations and masks are those of the dataset without full masks
    assert (out / "coco.json").read_bytes() == (dataset / "coco.json").read_bytes()
    frames = load_bop(out / "bop")
    coco = json.loads((out / "coco.json").read_text())
    assert len(frames) == 4
    for i, f in enumerate(frames):
        anns = [a for a in coco["annotations"] if a["image_id"] == i + 1]
        assert [a["category_id"] for a in anns] == f.obj_ids.tolist()
        for a, m in zip(anns, f.masks, strict=True):
            assert np.array_equal(rle_to_mask(a["segmentation"]), m)
        np.testing.assert_allclose(f.poses[0], make_scenes()[i].obj_T_cam(0), atol=1e-6)


def test_scenes_hash_follows_content_not_location(tmp_path):
    import dataclasses
    import shutil

    from twingap.render.scene import BackgroundSpec, scenes_hash

    def with_background(root: Path) -> list[SceneSpec]:
        bg = root / "env" / "bg.png"
        meta = {"env": str(root / "env"), "background_image": str(bg)}
        return [
            dataclasses.replace(s, background=BackgroundSpec(kind="image", path=str(bg)), meta=meta)
            for s in make_scenes(2)
        ]

    a = tmp_path / "run_a"
    (a / "env").mkdir(parents=True)
    (a / "env" / "bg.png").write_bytes(b"background bytes")
    shutil.copytree(a, tmp_path / "run_b")
    h = scenes_hash(with_background(a))
    assert scenes_hash(with_background(tmp_path / "run_b")) == h  # same content, other folder
    (tmp_path / "run_b" / "env" / "bg.png").write_bytes(b"other background")
    assert scenes_hash(with_background(tmp_path / "run_b")) != h  # other content
