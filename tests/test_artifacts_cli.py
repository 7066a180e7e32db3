"""`twingap artifacts ...` commands, and bad input giving one clear line and exit code 2."""

from __future__ import annotations

import json

import numpy as np
import pytest

from test_artifacts import textured_box
from twingap.assets.io import save_obj
from twingap.cli import main


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_list(capsys):
    code, out, _ = run(capsys, "artifacts", "list")
    assert code == 0
    for name in ("clean", "noise-3", "holes-2", "texture-1", "baked-light", "ambient-2"):
        assert name in out
    code, out, _ = run(capsys, "artifacts", "list", "--json")
    data = json.loads(out)
    assert [d["name"] for d in data][:2] == ["clean", "noise-1"] and len(data) == 13


def test_apply_sample_model(tmp_path, capsys):
    code, _, err = run(
        capsys, "artifacts", "apply", "061_foam_brick", "--condition", "holes-1", "-o", str(tmp_path)
    )
    assert code == 0, err
    stem = "061_foam_brick__holes-1__s0"
    assert {p.name for p in tmp_path.iterdir()} == {f"{stem}.{s}" for s in ("obj", "mtl", "png", "json")}
    rec = json.loads((tmp_path / f"{stem}.json").read_text())
    assert rec["condition"]["name"] == "holes-1" and rec["seed"] == 0
    assert rec["damage"]["removed_area_frac"] >= 0.01
    assert rec["input_hash"] != rec["output_hash"]


def test_apply_mesh_path(tmp_path, capsys):
    src = save_obj(textured_box(tex_px=64), tmp_path / "in" / "box.obj")
    code, _, err = run(
        capsys, "artifacts", "apply", str(src), "-c", "noise-2", "--seed", "4", "-o", str(tmp_path / "o")
    )
    assert code == 0, err
    assert (tmp_path / "o" / "box__noise-2__s4.obj").is_file()


def _one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    for needle in needles:
        assert needle in lines[0]


def test_unknown_condition(capsys):
    code, _, err = run(capsys, "artifacts", "apply", "011_banana", "-c", "noise-9")
    _one_line_error(code, err, "unknown condition 'noise-9'", "noise-1")


def test_unknown_model(capsys):
    code, _, err = run(capsys, "artifacts", "apply", "999_nothing", "-c", "clean")
    _one_line_error(code, err, "unknown model '999_nothing'")


def test_empty_mesh(tmp_path, capsys):
    path = tmp_path / "empty.obj"
    path.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    code, _, err = run(capsys, "artifacts", "apply", str(path), "-c", "noise-1", "-o", str(tmp_path / "o"))
    _one_line_error(code, err, "empty.obj", "empty mesh")


def test_missing_mesh_file(tmp_path, capsys):
    code, _, err = run(capsys, "artifacts", "apply", str(tmp_path / "nope.ply"), "-c", "clean")
    _one_line_error(code, err, "nope.ply", "not found")


def test_non_manifold_mesh(tmp_path, capsys):
    path = tmp_path / "book.obj"
    verts = np.array([[0, 0, 0], [0, 0, 0.1], [0.1, 0, 0], [0, 0.1, 0], [-0.1, 0, 0], [0, -0.1, 0.0]])
    faces = np.array([[1, 2, 3], [1, 2, 4], [1, 2, 5], [1, 2, 6]])
    path.write_text(
        "".join(f"v {x} {y} {z}\n" for x, y, z in verts) + "".join(f"f {a} {b} {c}\n" for a, b, c in faces)
    )
    code, _, err = run(capsys, "artifacts", "apply", str(path), "-c", "holes-1", "-o", str(tmp_path / "o"))
    _one_line_error(code, err, "book.obj", "non-manifold")


def test_missing_texture_file(tmp_path, capsys):
    obj = save_obj(textured_box(tex_px=64), tmp_path / "box.obj")
    obj.with_suffix(".png").unlink()
    code, _, err = run(capsys, "artifacts", "apply", str(obj), "-c", "texture-1", "-o", str(tmp_path / "o"))
    _one_line_error(code, err, "box.obj", "texture file 'box.png'", "missing")


def test_bad_artist_hours_file(tmp_path, capsys):
    hours = tmp_path / "hours.toml"
    hours.write_text("[clean]\nhours = -2\n")
    code, _, err = run(capsys, "artifacts", "list", "--hours", str(hours))
    _one_line_error(code, err, "hours.toml", ">= 0")


def test_gallery(tmp_path, capsys):
    pytest.importorskip("twingap.render.raster")
    from PIL import Image

    from twingap.errors import TwingapError
    from twingap.render.raster import RasterRenderer

    try:
        RasterRenderer(8, 8)
    except TwingapError as exc:  # no EGL on this machine
        pytest.skip(str(exc))
    src = save_obj(textured_box(tex_px=64), tmp_path / "box.obj")
    out = tmp_path / "g.png"
    code, _, err = run(capsys, "artifacts", "gallery", str(src), "-o", str(out), "--size", "48")
    assert code == 0, err
    img = np.asarray(Image.open(out))
    assert img.shape == (4 * (48 + 22), 4 * 48, 3)
    tiles = [img[r * 70 + 22 : (r + 1) * 70, c * 48 : (c + 1) * 48] for r in range(4) for c in range(4)]
    # clean tiles agree; the damaged ones differ from clean (texture-1 on a 64 px texture is a no-op)
    assert np.array_equal(tiles[0], tiles[4])
    for k in (3, 7, 11, 13, 15):
        assert not np.array_equal(tiles[k], tiles[12 if k > 11 else 4 * (k // 4)]), k
