"""The README's "Bring your own data" examples work as written (objects.toml and the study TOML)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
from tests.byod import procedural_assets

README = Path(__file__).resolve().parents[1] / "README.md"


def _toml_blocks() -> list[str]:
    text = README.read_text()
    section = text.split("## Bring your own data", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```toml\n(.*?)```", section, flags=re.S)


def test_readme_objects_toml_loads(tmp_path):
    from twingap.assets.asset import ModelLibrary
    from twingap.assets.io import save_obj
    from twingap.assets.library import write_bop_models

    block = next(b for b in _toml_blocks() if "[[object]]" in b)
    shapes = procedural_assets()
    save_obj(shapes[31].replace(vertices=shapes[31].vertices * 1000), tmp_path / "mug.obj")  # mm
    shapes[4].to_trimesh().export(tmp_path / "drill.glb")  # m
    write_bop_models({1: shapes[57].replace(vertices=shapes[57].vertices / 10)}, tmp_path / "ply")  # cm
    header_less = [
        ln for ln in (tmp_path / "ply" / "obj_000001.ply").read_text().splitlines() if "TextureFile" not in ln
    ]
    (tmp_path / "clamp.ply").write_text("\n".join(header_less) + "\n")
    (tmp_path / "ply" / "obj_000001.png").rename(tmp_path / "clamp.png")
    (tmp_path / "objects.toml").write_text(block)
    lib = ModelLibrary(tmp_path)
    assert lib.categories() == {1: "mug", 2: "drill", 3: "clamp"}
    for name, oid in (("mug", 31), ("drill", 4), ("clamp", 57)):
        a = lib.load(name)
        assert a.textured and abs(a.bbox_diagonal - shapes[oid].bbox_diagonal) < 1e-5


def test_readme_study_toml_loads(tmp_path):
    from twingap.assets.library import write_bop_models
    from twingap.data.images import write_png
    from twingap.study.config import load_study_config

    block = next(b for b in _toml_blocks() if "[[test_sets]]" in b)
    for d in ("my_data/bop/test", "my_data/photos"):
        (tmp_path / d).mkdir(parents=True)
    shapes = procedural_assets()
    write_bop_models({1: shapes[4], 2: shapes[31]}, tmp_path / "my_data/bop/models")
    write_png(tmp_path / "my_data/photos/img.png", np.zeros((8, 8, 3), np.uint8))
    poly = [[1, 1, 5, 1, 5, 5]]
    coco = {
        "images": [{"id": 1, "file_name": "img.png", "width": 8, "height": 8}],
        "categories": [{"id": 1, "name": "cordless drill"}, {"id": 2, "name": "hand"}],
        "annotations": [{"image_id": 1, "category_id": c, "segmentation": poly} for c in (1, 2)],
    }
    (tmp_path / "my_data/photos/instances.json").write_text(json.dumps(coco))
    (tmp_path / "my_study.toml").write_text(block)
    cfg = load_study_config(tmp_path / "my_study.toml")
    assert cfg.name == "quick+my_study" and cfg.twin_videos == ["000001", "000002"]
    assert [(t.name, t.kind) for t in cfg.test_sets] == [
        ("twinned", "twinned"),
        ("held-out", "heldout"),
        ("shop-floor", "coco"),
    ]
    coco = cfg.test_sets[2]
    assert coco.category_map == {"cordless drill": "obj_000002", "hand": ""}
    assert Path(coco.annotations) == (tmp_path / "my_data/photos/instances.json").resolve()
