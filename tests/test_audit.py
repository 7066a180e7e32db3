"""`twingap audit`: levels on the sample's clean and flawed models, calibration, costs, bad input."""

from __future__ import annotations

import csv
import json
from html.parser import HTMLParser

import numpy as np
import pytest

from test_artifacts import textured_box
from twingap.artifacts.base import apply_condition, load_catalogue
from twingap.assets.asset import Asset, ModelLibrary, default_sample_root, uniform_texture
from twingap.assets.io import save_obj
from twingap.audit import calibrate
from twingap.audit.core import audit_asset
from twingap.audit.cost import cost_of, fix_list, load_study
from twingap.audit.geometry import weld
from twingap.audit.holes import measure as measure_holes
from twingap.audit.levels import FAMILIES, fit_threshold, fit_thresholds, level_of, load_calibration
from twingap.cli import main

#: A few sample models: textured (banana, mustard bottle) and untextured (mug).
TEXTURED = ("011_banana", "006_mustard_bottle")
UNTEXTURED = "025_mug"


@pytest.fixture(scope="module")
def library() -> ModelLibrary:
    return ModelLibrary(default_sample_root() / "models")


@pytest.fixture(scope="module")
def calibration() -> dict:
    return load_calibration()


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


# ------------------------------------------------------------------------------ levels on the sample


@pytest.mark.parametrize("name", [*TEXTURED, UNTEXTURED])
def test_clean_sample_models_audit_at_level_0(library, calibration, name):
    rec = audit_asset(library.load(name), calibration).record
    for fam in ("noise", "holes", "baked_light"):
        assert rec[fam]["level"] == 0, (fam, rec[fam])
    if rec["facts"]["textured"]:
        assert rec["texture"]["level"] == 0, rec["texture"]
    else:  # the real flaw is named instead of a level
        assert rec["texture"]["level"] is None and "no texture" in rec["texture"]["reason"]
        assert any("no texture" in w for w in rec["facts"]["warnings"])


def _cases():
    cat = load_catalogue()
    for name in TEXTURED:
        for c in cat.values():
            if c.family in ("noise", "holes", "texture", "baked_light"):
                yield name, c.name
    for c in cat.values():  # without a texture map, texture-N changes nothing: not a case
        if c.family in ("noise", "holes", "baked_light"):
            yield UNTEXTURED, c.name


@pytest.mark.parametrize(("name", "condition"), list(_cases()))
def test_flawed_model_audits_within_one_level(library, calibration, name, condition):
    cond = load_catalogue()[condition]
    rec = audit_asset(apply_condition(library.load(name), cond, seed=0), calibration).record
    got = rec[cond.family]["level"]
    assert got is not None and abs(got - cond.level) <= 1, (name, condition, rec[cond.family])


# ------------------------------------------------------------------------------------- calibration


def test_fit_threshold_separates_and_is_order_free():
    low, high = np.array([1.0, 2.0, 3.0]), np.array([5.0, 6.0, 2.5])
    t = fit_threshold(low, high)
    assert (low >= t).sum() + (high < t).sum() == 1  # the fewest errors a cut can make here
    assert fit_threshold(low[::-1], high[::-1]) == t
    th = fit_thresholds(np.array([1.0, 1.1, 2.0, 2.1, 4.0, 4.2, 9.0]), np.array([0, 0, 1, 1, 2, 2, 3]), 3)
    assert th == sorted(th) and [level_of(s, th) for s in (1.0, 2.0, 4.0, 9.0)] == [0, 1, 2, 3]
    assert level_of(None, th) is None


def test_calibration_is_deterministic(tmp_path, monkeypatch):
    import twingap.artifacts.base as base

    real = base.load_catalogue()
    keep = ("clean", "noise-2", "holes-1", "texture-3", "baked-light", "ambient-1")
    monkeypatch.setattr(base, "load_catalogue", lambda *a, **k: {n: real[n] for n in keep})
    lib_dir = tmp_path / "lib"
    save_obj(textured_box(n=8, tex_px=128), lib_dir / "box.obj")
    (lib_dir / "models_info.json").write_text(json.dumps({"box": {"file": "box.obj", "obj_id": 1}}))
    runs = []
    for k in range(2):
        rows = calibrate.measure_grid(lib_dir, [0], tmp_path / f"t{k}.csv", log=lambda s: None)
        runs.append([{c: r[c] for c in r if c != "seconds"} for r in rows])
    assert runs[0] == runs[1]
    rows = calibrate.read_table(tmp_path / "t0.csv")
    th = {fam: [0.5] * len(lv) for fam, lv in FAMILIES.items()}
    calibrate.write_calibration(th, [0], 1, tmp_path / "a.json")
    calibrate.write_calibration(th, [0], 1, tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    mats = calibrate.confusion(rows, lambda r: th)
    assert sum(int(m.sum()) for m in mats.values()) == len(rows) * len(FAMILIES)


def test_packaged_calibration_is_increasing(calibration):
    for fam, levels in FAMILIES.items():
        th = calibration["families"][fam]["thresholds"]
        assert len(th) == len(levels) and th == sorted(th)
    assert "twingap.audit.calibrate" in calibration["generated_by"]


# ------------------------------------------------------------------------------------------- holes


def _open_cylinder(side_hole: bool) -> Asset:
    import trimesh

    mesh = trimesh.creation.cylinder(radius=0.04, height=0.1, sections=48)
    v, f = trimesh.remesh.subdivide_to_size(mesh.vertices, mesh.faces, max_edge=0.01)
    tri = v[f]
    keep = ~np.all(np.isclose(tri[:, :, 2], -0.05), axis=1)  # drop the bottom cap: an open bottom
    if side_hole:
        c = tri.mean(axis=1)
        keep &= ~((np.linalg.norm(c[:, :2] - [0.04, 0.0], axis=1) < 0.012) & (np.abs(c[:, 2]) < 0.012))
    return Asset("cyl", v, f[keep], np.zeros((len(v), 2)), uniform_texture((128, 128, 128)), False)


def test_open_bottom_is_reported_apart_from_interior_holes():
    rec, _ = measure_holes(weld(_open_cylinder(side_hole=False)))
    assert rec["outer_cut"] is not None and rec["interior_holes"] == 0 and rec["score"] == 0.0
    assert rec["outer_cut"]["area_cm2"] == pytest.approx(np.pi * 4.0**2, rel=0.05)
    rec, _ = measure_holes(weld(_open_cylinder(side_hole=True)))
    assert rec["outer_cut"] is not None and rec["interior_holes"] == 1 and rec["score"] > 0


# -------------------------------------------------------------------------------- cost and report


def _fake_run(tmp_path, deltas: dict[str, tuple[float, float, float]]):
    run_dir = tmp_path / "run"
    (run_dir / "results").mkdir(parents=True)
    with open(run_dir / "results" / "summary.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["condition", "test_set", "iou_type", "AP", "delta_AP", "delta_lo", "delta_hi"])
        for ts in ("ycb-real", "held-out"):
            for iou in ("bbox", "segm"):
                w.writerow(["clean", ts, iou, 70.0, 0.0, 0.0, 0.0])
                for cond, (d, lo, hi) in deltas.items():
                    w.writerow([cond, ts, iou, 70.0 + d, d, lo, hi])
    return run_dir


def test_costs_and_fix_ranking(tmp_path):
    run_dir = _fake_run(
        tmp_path,
        {"noise-2": (-10.0, -12.0, -8.0), "holes-1": (-1.0, -3.0, 1.0), "texture-3": (-6.0, -7.0, -5.0)},
    )
    study = load_study(run_dir)
    assert study.test_set == "ycb-real" and not study.fake
    c = cost_of("noise", 2, study)
    assert c["delta_AP"] == -10.0 and c["hours"] == 5.0 and c["ap_per_hour"] == pytest.approx(2.0)
    assert cost_of("noise", 0, study) is None and cost_of("noise", 3, study) == {
        "condition": "noise-3",
        "measured": False,
    }
    records = {
        "a": {
            "noise": {"level": 2},
            "holes": {"level": 1},
            "texture": {"level": 0},
            "baked_light": {"level": 0},
        },
        "b": {
            "noise": {"level": 0},
            "holes": {"level": 0},
            "texture": {"level": 3},
            "baked_light": {"level": 0},
        },
    }
    fixes = fix_list(records, study)
    # noise-2: 10 AP / 5 h = 2/h; texture-3: 6 AP / 6 h = 1/h; holes-1's interval includes 0: last
    assert [(f.model, f.condition) for f in fixes] == [("a", "noise-2"), ("b", "texture-3"), ("a", "holes-1")]


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.srcs: list[str] = []  # every src and href
        self.imgs: list[str] = []  # img src
        self.links: list[str] = []  # a href

    def handle_starttag(self, tag, attrs):
        self.srcs += [v for k, v in attrs if k in ("src", "href") and v]
        self.imgs += [v for k, v in attrs if tag == "img" and k == "src" and v]
        self.links += [v for k, v in attrs if tag == "a" and k == "href" and v]


def test_cli_writes_audit_json_keyed_by_stem_and_self_contained_html(tmp_path, capsys, library):
    flawed = apply_condition(library.load("011_banana"), load_catalogue()["holes-3"], seed=0)
    obj = save_obj(flawed, tmp_path / "in" / "my_banana.obj")
    run_dir = _fake_run(tmp_path, {"holes-3": (-4.0, -5.0, -3.0)})
    out = tmp_path / "audit"
    code, _, err = run(capsys, "audit", str(obj), "--study", str(run_dir), "-o", str(out))
    assert code == 0, err
    data = json.loads((out / "audit.json").read_text())
    assert list(data) == ["my_banana"]
    rec = data["my_banana"]
    for fam in ("noise", "holes", "texture", "baked_light"):
        assert set(rec[fam]) >= {"level", "score"}
    assert rec["holes"]["level"] == 3 and rec["cost"]["holes"]["condition"] == "holes-3"
    fixes = json.loads((out / "fixes.json").read_text())["fixes"]
    assert fixes[0]["model"] == "my_banana" and fixes[0]["condition"] == "holes-3"
    text = (out / "report.html").read_text()
    parser = _Tags()
    parser.feed(text)
    # self-contained: every picture is inline data; links go to anchors or the full-size pictures beside it
    assert parser.imgs and all(s.startswith("data:image/") for s in parser.imgs)
    assert all(s.startswith("#") or (out / s).is_file() for s in parser.links)
    assert "What the audit cannot see" in text and "Fix these first" in text


def test_report_is_light_and_links_full_size_pictures(tmp_path, capsys, library):
    """The page inlines display-size thumbnails only: bytes per model well under 4 MB / 36 meshes."""
    import re
    from urllib.parse import unquote

    from PIL import Image

    flawed = apply_condition(library.load("011_banana"), load_catalogue()["holes-2"], seed=0)
    files = [  # every picture kind: roughness, holes, blur (textured), shading; and an untextured model
        save_obj(flawed, tmp_path / "in" / "a.obj"),
        save_obj(library.load("006_mustard_bottle"), tmp_path / "in" / "b(1).obj"),  # not URL-safe
        save_obj(library.load(UNTEXTURED), tmp_path / "in" / "mug.obj"),
    ]
    out = tmp_path / "audit"
    (out / "pictures").mkdir(parents=True)
    (out / "pictures" / "gone.roughness.webp").write_bytes(b"stale")  # an earlier audit's picture
    code, stdout, err = run(capsys, "audit", *map(str, files), "-o", str(out))
    assert code == 0, err
    assert "full-size pictures in" in stdout
    page = (out / "report.html").read_bytes()
    text = page.decode()
    parser = _Tags()
    parser.feed(text)
    assert parser.imgs and not any(s.startswith("data:image/png") for s in parser.imgs)
    # each thumbnail links its full-size picture, which exists beside the page at twice its size
    pairs = re.findall(r"<a href='([^']+)'[^>]*><img [^>]*width='(\d+)'", text)
    assert len(pairs) == len(parser.imgs)
    full = [out / unquote(href) for href, _ in pairs]
    assert all(p.is_file() and p.parent == out / "pictures" for p in full)
    for p, (_, width) in zip(full, pairs, strict=True):
        with Image.open(p) as im:
            assert abs(im.width / 2 - int(width)) <= 1, (p.name, im.width, width)
    kinds = {p.name.split(".")[-2] for p in full}
    assert kinds == {"roughness", "holes", "blur", "shading"}, kinds
    assert sorted(p.name for p in (out / "pictures").iterdir()) == sorted(p.name for p in full)  # no stale
    per_model = len(page) / len(files)
    # at most 70% of 4 MB / 36 meshes (about 47 kB here; inline PNGs made about 330 kB per model)
    assert per_model < 0.7 * 4e6 / 36, per_model
    assert sum(p.stat().st_size for p in full) > len(page)  # the weight moved to the linked files


# ------------------------------------------------------------------------------------------ bad input


def test_mesh_without_texture_is_audited_and_named(tmp_path, capsys):
    box = textured_box(tex_px=64)
    path = tmp_path / "plain.obj"
    path.write_text(
        "".join(f"v {x} {y} {z}\n" for x, y, z in box.vertices)
        + "".join(f"f {a} {b} {c}\n" for a, b, c in box.faces + 1)
    )
    code, stdout, err = run(capsys, "audit", str(path), "-o", str(tmp_path / "a"))
    assert code == 0, err
    assert "no texture map" in stdout
    assert json.loads((tmp_path / "a" / "audit.json").read_text())["plain"]["texture"]["level"] is None


def test_empty_mesh_exits_2(tmp_path, capsys):
    path = tmp_path / "empty.obj"
    path.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    code, _, err = run(capsys, "audit", str(path), "-o", str(tmp_path / "a"))
    assert code == 2 and "empty.obj" in err and "empty mesh" in err
    assert err.strip().splitlines()[-1].startswith("error:")


def test_non_manifold_mesh_gets_a_clear_line(tmp_path, capsys):
    path = tmp_path / "book.obj"
    verts = np.array([[0, 0, 0], [0, 0, 0.1], [0.1, 0, 0], [0, 0.1, 0], [-0.1, 0, 0], [0, -0.1, 0.0]])
    faces = np.array([[1, 2, 3], [1, 2, 4], [1, 2, 5], [1, 2, 6]])
    path.write_text(
        "".join(f"v {x} {y} {z}\n" for x, y, z in verts) + "".join(f"f {a} {b} {c}\n" for a, b, c in faces)
    )
    code, stdout, err = run(capsys, "audit", str(path), "-o", str(tmp_path / "a"))
    assert code == 0, err
    assert "1 non-manifold edge(s)" in stdout


def test_mesh_in_millimetres_exits_2_after_auditing_the_rest(tmp_path, capsys):
    box = textured_box(tex_px=64)
    mm = save_obj(box.replace(vertices=box.vertices * 1000.0, name="box_mm"), tmp_path / "box_mm.obj")
    ok = save_obj(box, tmp_path / "box_m.obj")
    code, _, err = run(capsys, "audit", str(mm), str(ok), "-o", str(tmp_path / "a"))
    assert code == 2 and "box_mm.obj" in err and "millimetres" in err
    assert list(json.loads((tmp_path / "a" / "audit.json").read_text())) == ["box_m"]


def test_unknown_model_name_exits_2(tmp_path, capsys):
    code, _, err = run(capsys, "audit", "no_such_model", "-o", str(tmp_path / "a"))
    assert code == 2 and "no_such_model" in err


def test_study_without_summary_exits_2(tmp_path, capsys):
    code, _, err = run(capsys, "audit", "011_banana", "--study", str(tmp_path), "-o", str(tmp_path / "a"))
    assert code == 2 and "summary.csv" in err
