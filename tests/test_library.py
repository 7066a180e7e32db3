"""Model libraries as users have them: BOP models/, objects.toml folders, plain folders; bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tests.byod import procedural_assets

from twingap.assets.asset import ModelLibrary
from twingap.assets.io import save_obj
from twingap.assets.library import parse_color, read_ply_header, write_bop_models
from twingap.cli import main


@pytest.fixture(scope="module")
def shapes():
    return procedural_assets()


def _one_line_exit_2(args: list[str], capsys, *needles: str) -> str:
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    errors = [ln for ln in err.splitlines() if not ln.startswith("note: ")]  # notes may precede it
    assert len(errors) == 1 and errors[0].startswith("error: ") and "Traceback" not in err, err
    for n in needles:
        assert n in err, err
    return err


def _close_to(asset, ref, atol=1e-6):
    np.testing.assert_allclose(np.sort(asset.vertices, axis=0), np.sort(ref.vertices, axis=0), atol=atol)


def test_bop_models_folder_in_millimetres(shapes, tmp_path):
    write_bop_models({4: shapes[4]}, tmp_path / "models")
    write_bop_models({57: shapes[57]}, tmp_path / "face", texcoord="face")
    for p in (tmp_path / "face").glob("obj_*"):
        p.rename(tmp_path / "models" / p.name)
    info = json.loads((tmp_path / "models" / "models_info.json").read_text())
    info["57"] = {**json.loads((tmp_path / "face" / "models_info.json").read_text())["57"]}
    info["4"]["symmetries_discrete"] = [[-1, 0, 0, 0, 0, -1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]]
    (tmp_path / "models" / "models_info.json").write_text(json.dumps(info))
    assert read_ply_header(tmp_path / "models" / "obj_000004.ply").texture_file == "obj_000004.png"
    assert "texcoord" in read_ply_header(tmp_path / "models" / "obj_000057.ply").face_props

    lib = ModelLibrary(tmp_path / "models")
    assert lib.kind == "bop" and lib.categories() == {4: "obj_000004", 57: "obj_000057"}
    for oid in (4, 57):
        a = lib.load(f"obj_{oid:06d}")
        assert a.textured and a.texture.shape == shapes[oid].texture.shape
        _close_to(a, shapes[oid])  # millimetres in the file, metres inside (PLY floats: 1e-6 mm)
        # the texture is sampled at the same UVs for the same surface points
        np.testing.assert_array_equal(a.texture, shapes[oid].texture)
    e = lib.info["obj_000004"]
    assert e["unit"] == "mm" and e["diameter_mm"] == pytest.approx(1000 * shapes[4].bbox_diagonal, rel=1e-6)
    assert e["symmetries"]["symmetries_discrete"]  # kept for later use
    # a BOP dataset root works too (its models/ sub-folder)
    assert ModelLibrary(tmp_path).categories() == lib.categories()


def test_objects_toml_with_obj_glb_ply_in_their_units(shapes, tmp_path):
    root = tmp_path / "lib"
    save_obj(shapes[4], root / "box.obj")  # metres
    mm = shapes[31].replace(vertices=shapes[31].vertices * 1000)
    mm.to_trimesh().export(root / "can.glb")  # millimetres
    write_bop_models({57: shapes[57].replace(vertices=shapes[57].vertices / 10)}, tmp_path / "ply")
    (tmp_path / "ply" / "obj_000057.ply").rename(root / "prism.ply")  # m / 10 written x 1000: centimetres
    (tmp_path / "ply" / "obj_000057.png").rename(root / "prism_tex.png")
    text = (root / "prism.ply").read_text().replace("TextureFile obj_000057.png", "TextureFile prism_tex.png")
    (root / "prism.ply").write_text(text)
    (root / "objects.toml").write_text(
        '[[object]]\nname = "box"\nid = 7\nfile = "box.obj"\nunit = "m"\n\n'
        '[[object]]\nname = "can"\nid = 3\nfile = "can.glb"\nunit = "mm"\n\n'
        '[[object]]\nname = "prism"\nid = 12\nfile = "prism.ply"\nunit = "cm"\n'
    )
    lib = ModelLibrary(root)
    assert lib.kind == "objects.toml" and lib.categories() == {3: "can", 7: "box", 12: "prism"}
    assert lib.notes == ()
    for name, oid in (("box", 4), ("can", 31), ("prism", 57)):
        a = lib.load(name)
        assert a.textured
        assert a.bbox_diagonal == pytest.approx(shapes[oid].bbox_diagonal, rel=1e-5)
    # main() prints the listing
    assert main(["data", "models", str(root)]) == 0


def test_plain_folder_ids_follow_sorted_names_and_say_so(shapes, tmp_path, capsys):
    save_obj(shapes[31], tmp_path / "b_can.obj")
    save_obj(shapes[4], tmp_path / "a_box.obj")
    lib = ModelLibrary(tmp_path)
    assert lib.kind == "folder" and lib.categories() == {1: "a_box", 2: "b_can"}
    err = capsys.readouterr().err
    assert "no objects.toml: ids follow the sorted file names (1 a_box, 2 b_can)" in err
    ModelLibrary(tmp_path)  # said once per process
    assert "no objects.toml" not in capsys.readouterr().err


def test_sample_library_unchanged(capsys):
    from twingap.assets.asset import default_sample_root
    from twingap.assets.ycb import YCBV_NAMES

    lib = ModelLibrary(default_sample_root() / "models")
    assert lib.kind == "twingap" and lib.categories() == YCBV_NAMES
    a = lib.load("011_banana")
    assert a.metadata["offset_m"] == pytest.approx([0.00719, -0.00493, -0.01655])


# ------------------------------------------------------------------ bad input: one line, exit 2
def test_unit_sanity_check_suggests_the_unit(shapes, tmp_path, capsys):
    mug_mm = shapes[31].replace(vertices=shapes[31].vertices * 1000)  # ~11 cm in mm
    save_obj(mug_mm, tmp_path / "mug.obj")
    (tmp_path / "objects.toml").write_text('[[object]]\nname = "mug"\nid = 1\nfile = "mug.obj"\nunit = "m"\n')
    _one_line_exit_2(
        ["data", "models", str(tmp_path)],
        capsys,
        "mug.obj",
        "m across (bounding-box diagonal) in unit 'm'",
        'is the unit "mm"?',
        'unit = "mm"',
    )


def test_bop_model_in_metres_is_caught(shapes, tmp_path, capsys):
    write_bop_models({4: shapes[4].replace(vertices=shapes[4].vertices / 1000)}, tmp_path)  # file in metres
    _one_line_exit_2(["data", "models", str(tmp_path)], capsys, "obj_000004.ply", 'is the unit "m"?')


def test_ply_without_texture_coordinates(shapes, tmp_path, capsys):
    write_bop_models({4: shapes[4]}, tmp_path)
    ply = tmp_path / "obj_000004.ply"
    lines = ply.read_text().splitlines()
    head, nv = lines.index("end_header"), len(shapes[4].vertices)
    header = [ln for ln in lines[: head + 1] if "texture_" not in ln]  # keeps the TextureFile comment
    body = [" ".join(ln.split()[:3]) for ln in lines[head + 1 : head + 1 + nv]] + lines[head + 1 + nv :]
    ply.write_text("\n".join(header + body) + "\n")
    _one_line_exit_2(
        ["data", "models", str(tmp_path)], capsys, "obj_000004.ply", "has no texture coordinates"
    )


def test_texture_file_missing(shapes, tmp_path, capsys):
    write_bop_models({4: shapes[4]}, tmp_path)
    (tmp_path / "obj_000004.png").unlink()
    _one_line_exit_2(
        ["data", "models", str(tmp_path)], capsys, "obj_000004.ply", "'obj_000004.png'", "missing"
    )


def test_obj_texture_file_missing(shapes, tmp_path, capsys):
    save_obj(shapes[4], tmp_path / "box.obj")
    (tmp_path / "box.png").unlink()
    _one_line_exit_2(
        ["data", "models", str(tmp_path)], capsys, "box.obj", "texture file 'box.png'", "missing"
    )


def _untextured_obj(path: Path, mtl: str) -> Path:
    """A 10 cm box as OBJ (no UVs) using material ``m`` of an MTL with the given body."""
    import trimesh

    box = trimesh.creation.box((0.1, 0.1, 0.1))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".mtl").write_text(mtl)
    path.write_text(
        f"mtllib {path.stem}.mtl\nusemtl m\n"
        + "".join(f"v {x} {y} {z}\n" for x, y, z in box.vertices)
        + "".join(f"f {a} {b} {c}\n" for a, b, c in box.faces + 1)
    )
    return path


def test_untextured_obj_takes_its_mtl_colour_and_says_so(tmp_path, capsys):
    _untextured_obj(tmp_path / "red_bowl.obj", "newmtl m\nKa 1 1 1\nKd 0.40 0.40 0.40\nKs 0 0 0\nillum 1\n")
    lib = ModelLibrary(tmp_path)
    a = lib.load("red_bowl")
    assert not a.textured and a.texture.reshape(3).tolist() == [102, 102, 102]  # Kd is sRGB 0..1
    assert a.metadata["color_source"] == "the material (MTL Kd of 'm')"
    capsys.readouterr()
    assert main(["data", "models", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "red_bowl" in out and "no texture, colour 102 102 102 from the material (MTL Kd of 'm')" in out


def test_untextured_glb_takes_its_base_color_factor(tmp_path, capsys):
    import trimesh

    box = trimesh.creation.box((0.1, 0.1, 0.1))
    material = trimesh.visual.material.PBRMaterial(name="paint", baseColorFactor=[0.4, 0.2, 0.8, 1.0])
    box.visual = trimesh.visual.TextureVisuals(material=material)
    box.export(tmp_path / "cup.glb")
    a = ModelLibrary(tmp_path).load("cup")
    # glTF factors are linear light: sRGB-encoded 0.4 -> 0.665, 0.2 -> 0.485, 0.8 -> 0.906
    assert not a.textured and a.texture.reshape(3).tolist() == [170, 124, 231]
    capsys.readouterr()
    assert main(["data", "models", str(tmp_path)]) == 0
    assert "colour 170 124 231 from the material (glTF baseColorFactor of 'paint')" in capsys.readouterr().out


def test_mtl_without_texture_or_colour(shapes, tmp_path, capsys):
    save_obj(shapes[4], tmp_path / "box.obj")
    mtl = tmp_path / "box.mtl"
    mtl.write_text(
        "\n".join(ln for ln in mtl.read_text().splitlines() if not ln.startswith(("map_Kd", "Kd")))
    )
    _one_line_exit_2(
        ["data", "models", str(tmp_path)],
        capsys,
        "box.obj",
        "'box.mtl' names no texture (map_Kd) and no colour (Kd)",
    )
    # a colour in objects.toml makes it a deliberate untextured object, and says so
    (tmp_path / "objects.toml").write_text(
        '[[object]]\nname = "box"\nid = 1\nfile = "box.obj"\nunit = "m"\ncolor = [200, 30, 30]\n'
    )
    a = ModelLibrary(tmp_path).load("box")
    assert not a.textured and a.texture.reshape(3).tolist() == [200, 30, 30]
    assert a.metadata["color_source"] == "objects.toml (color = [200, 30, 30])"


def test_objects_toml_color_wins_over_the_material(tmp_path):
    _untextured_obj(tmp_path / "bowl.obj", "newmtl m\nKd 0.4 0.4 0.4\n")
    (tmp_path / "objects.toml").write_text(
        '[[object]]\nname = "bowl"\nid = 1\nfile = "bowl.obj"\nunit = "m"\ncolor = "#c81e1e"\n'
    )
    a = ModelLibrary(tmp_path).load("bowl")
    assert a.texture.reshape(3).tolist() == [200, 30, 30]
    assert a.metadata["color_source"] == 'objects.toml (color = "#c81e1e")'


@pytest.mark.parametrize(
    ("value", "rgb"),
    [
        ([200, 30, 30], [200, 30, 30]),
        ([0, 0, 0], [0, 0, 0]),
        ([255, 255, 255], [255, 255, 255]),
        ([0.4, 0.4, 0.4], [102, 102, 102]),  # the MTL Kd scale
        ([1.0, 1.0, 1.0], [255, 255, 255]),
        ([1.0, 0, 0.5], [255, 0, 128]),  # one float makes the triple 0..1
        ("#FF8000", [255, 128, 0]),
        ("#c81e1e", [200, 30, 30]),
    ],
)
def test_parse_color_forms(value, rgb):
    assert parse_color(value, "x") == rgb


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ([1, 1, 1], "is ambiguous"),
        ([0, 1, 0], "write [0.0, 1.0, 0.0] for the 0..1 scale or [0, 255, 0]"),
        ([300, 0, 0], "color must be [r, g, b] integers 0..255"),
        ([-1, 0, 0], "color must be"),
        ([200.0, 30.0, 30.0], "numbers 0..1 with at least one written as a float"),
        ([0.4, 0.4], "color must be"),
        ([True, 0, 0], "color must be"),
        ("red", "\"#rrggbb\"; got 'red'"),
        ("#12345", "color must be"),
        ({"r": 1}, "color must be"),
    ],
)
def test_parse_color_refuses_anything_else(value, needle):
    from twingap.errors import TwingapError

    with pytest.raises(TwingapError) as info:
        parse_color(value, "[[object]] 1 ('mug')")
    assert needle in str(info.value) and "[[object]] 1 ('mug')" in str(info.value)


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        (
            '[[object]]\nname = "a"\nid = 1\nfile = "a.obj"\nunit = "m"\n'
            '[[object]]\nname = "b"\nid = 1\nfile = "b.obj"\nunit = "m"\n',
            "objects 'a' and 'b' both have id 1",
        ),
        (
            '[[object]]\nname = "a"\nid = 1\nfile = "a.obj"\nunit = "m"\n'
            '[[object]]\nname = "a"\nid = 2\nfile = "b.obj"\nunit = "m"\n',
            "object name 'a' is used twice",
        ),
        ('[[object]]\nname = "a"\nid = 1\nfile = "a.obj"\nunit = "inch"\n', "unit must be one of"),
        ('[[object]]\nname = "a"\nid = 1\nfile = "gone.obj"\nunit = "m"\n', "mesh file 'gone.obj' not found"),
        ('[[object]]\nname = "a"\nfile = "a.obj"\nunit = "m"\n', "missing key(s) ['id']"),
        (
            '[[object]]\nname = "a"\nid = 1\nfile = "a.obj"\nunit = "m"\ncolor = [1, 1, 1]\n',
            "[[object]] 1 ('a'): color [1, 1, 1] is ambiguous",
        ),
        (
            '[[object]]\nname = "a"\nid = 1\nfile = "a.obj"\nunit = "m"\ncolor = [200.0, 30, 30]\n',
            "[[object]] 1 ('a'): color must be [r, g, b] integers 0..255",
        ),
    ],
)
def test_objects_toml_errors(shapes, tmp_path, capsys, toml, needle):
    save_obj(shapes[4], tmp_path / "a.obj")
    save_obj(shapes[31], tmp_path / "b.obj")
    (tmp_path / "objects.toml").write_text(toml)
    _one_line_exit_2(["data", "models", str(tmp_path)], capsys, "objects.toml", needle)


def test_ids_clash_in_models_info(tmp_path, capsys):
    from twingap.assets.asset import default_sample_root

    info = json.loads((default_sample_root() / "models" / "models_info.json").read_text())
    info["011_banana"]["obj_id"] = 1
    (tmp_path / "models_info.json").write_text(json.dumps(info))
    _one_line_exit_2(["data", "models", str(tmp_path)], capsys, str(tmp_path), "both have id 1")


def test_empty_folder(tmp_path: Path, capsys):
    _one_line_exit_2(["data", "models", str(tmp_path)], capsys, "no models: expected objects.toml")
