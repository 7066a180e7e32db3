"""Invariants, known answers and golden hashes of the artifact conditions (twingap.artifacts)."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import numpy as np
import pytest

from twingap.artifacts import (
    Condition,
    apply_condition,
    condition_names,
    damage,
    get_condition,
    load_artist_hours,
    load_catalogue,
    render_params_of,
)
from twingap.artifacts.base import face_areas, merge_by_position, non_manifold_edge_fraction
from twingap.assets.asset import Asset, ModelLibrary, default_sample_root, load_mesh_file, uniform_texture
from twingap.errors import TwingapError

GOLDEN = Path(__file__).parent / "golden" / "artifacts_box.json"
SRC = Path(__file__).resolve().parents[1] / "src" / "twingap"
CONDITION_NAMES = condition_names()

#: The damage measure that must grow strictly with the level, per family.
MAIN_DAMAGE = {
    "noise": "mean_displacement_frac",
    "holes": "removed_area_frac",
    "texture": "hf_energy_lost",
    "ambient": "ambient_add",
}


def textured_box(size=(0.10, 0.06, 0.15), n: int = 4, tex_px: int = 512, name: str = "box") -> Asset:
    """A closed box, each side an n x n grid with its own UV chart (seams split), and a patterned texture."""
    sx, sy, sz = (s / 2 for s in size)
    # (origin, axis a, axis b) with a x b = outward normal
    sides = [
        ((-sx, -sy, sz), (2 * sx, 0, 0), (0, 2 * sy, 0)),  # +z
        ((-sx, sy, -sz), (2 * sx, 0, 0), (0, -2 * sy, 0)),  # -z
        ((sx, -sy, -sz), (0, 2 * sy, 0), (0, 0, 2 * sz)),  # +x
        ((-sx, sy, -sz), (0, -2 * sy, 0), (0, 0, 2 * sz)),  # -x
        ((sx, sy, -sz), (-2 * sx, 0, 0), (0, 0, 2 * sz)),  # +y
        ((-sx, -sy, -sz), (2 * sx, 0, 0), (0, 0, 2 * sz)),  # -y
    ]
    verts, uvs, faces = [], [], []
    t = np.linspace(0, 1, n + 1)
    for k, (o, a, b) in enumerate(sides):
        o, a, b = map(np.asarray, (o, a, b))
        cu, cv = (k % 3) / 3, (k // 3) / 2
        base = len(verts)
        for j in range(n + 1):
            for i in range(n + 1):
                verts.append(o + t[i] * a + t[j] * b)
                uvs.append((cu + 0.02 + 0.29 * t[i], cv + 0.02 + 0.46 * t[j]))
        for j in range(n):
            for i in range(n):
                v0 = base + j * (n + 1) + i
                faces += [(v0, v0 + 1, v0 + n + 2), (v0, v0 + n + 2, v0 + n + 1)]
    yy, xx = np.mgrid[0:tex_px, 0:tex_px]
    tex = np.stack(
        [
            (xx * 255 // tex_px),
            np.where(((xx // 16) + (yy // 16)) % 2 == 0, 220, 40),
            128 + 100 * np.sin(yy / 5.0),
        ],
        axis=-1,
    ).astype(np.uint8)
    return Asset(name, np.array(verts, float), np.array(faces, np.int64), np.array(uvs, float), tex)


@pytest.fixture(scope="module")
def box() -> Asset:
    return textured_box()


@pytest.fixture(scope="module")
def catalogue() -> dict[str, Condition]:
    return load_catalogue()


@pytest.fixture(scope="module")
def banana() -> Asset:
    return ModelLibrary(default_sample_root() / "models").load("011_banana")


#: Golden summary keys -> decimals they are stored with (and compared to, +- 2 units of the last one).
GOLDEN_DECIMALS = {
    "n_vertices": 0,
    "n_faces": 0,
    "area_cm2": 4,
    "bbox_min_mm": 4,
    "bbox_max_mm": 4,
    "centroid_mm": 4,
    "uv_mean": 6,
    "texture_mean": 3,
    "texture_std": 3,
    "texture_4x4": 1,
}


def golden_summary(asset: Asset) -> dict:
    """What a person can read when a golden test fails: sizes, geometry and texture statistics.

    Geometry in millimetres / square centimetres; ``texture_4x4``: mean grey level (0-255) of a
    4 x 4 grid over the texture (row 0 at the top of the image).
    """
    v = asset.vertices * 1000.0
    tex = asset.texture.astype(np.float64)
    grey = tex.mean(axis=2)
    h, w = grey.shape
    thumb = grey[: h - h % 4, : w - w % 4].reshape(4, h // 4, 4, w // 4).mean(axis=(1, 3))
    raw = {
        "n_vertices": len(asset.vertices),
        "n_faces": len(asset.faces),
        "area_cm2": float(face_areas(asset.vertices, asset.faces).sum() * 1e4),
        "bbox_min_mm": v.min(axis=0),
        "bbox_max_mm": v.max(axis=0),
        "centroid_mm": v.mean(axis=0),
        "uv_mean": asset.uvs.mean(axis=0),
        "texture_mean": tex.reshape(-1, 3).mean(axis=0),
        "texture_std": tex.reshape(-1, 3).std(axis=0),
        "texture_4x4": thumb,
    }
    out = {k: np.round(np.asarray(x, dtype=np.float64), GOLDEN_DECIMALS[k]).tolist() for k, x in raw.items()}
    return {**out, "n_vertices": int(out["n_vertices"]), "n_faces": int(out["n_faces"])}


def golden_json(summaries: dict) -> str:
    """The golden file: one line per condition and value, so a diff reads like a table."""
    blocks = []
    for name, summary in summaries.items():
        lines = ",\n".join(f"    {json.dumps(k)}: {json.dumps(v)}" for k, v in summary.items())
        blocks.append(f"  {json.dumps(name)}: {{\n{lines}\n  }}")
    return "{\n" + ",\n".join(blocks) + "\n}\n"


def golden_differences(expected: dict, got: dict) -> list[str]:
    """One line per summary value that moved by more than 2 units of its last stored decimal."""
    out = []
    for name in sorted(set(expected) | set(got)):
        if name not in expected or name not in got:
            out.append(f"{name}: only in {'got' if name in got else 'golden file'}")
            continue
        for key, decimals in GOLDEN_DECIMALS.items():
            e, g = np.asarray(expected[name][key]), np.asarray(got[name][key])
            if e.shape != g.shape or not np.allclose(e, g, rtol=0, atol=2 * 10.0**-decimals):
                out.append(f"{name}.{key}: golden {expected[name][key]}, got {got[name][key]}")
    return out


# ----------------------------------------------------------------------------- catalogue


def test_catalogue_has_the_13_conditions(catalogue):
    assert len(catalogue) == 13 and tuple(catalogue) == CONDITION_NAMES
    assert CONDITION_NAMES[0] == "clean"  # display order: clean first, then by family
    # the report's display order: texture, then the ambient levels, then baked light last
    assert CONDITION_NAMES[-3:] == ("ambient-1", "ambient-2", "baked-light")
    hours = load_artist_hours()
    for name, cond in catalogue.items():
        assert cond.name == name
        assert cond.artist_hours == hours[name] >= 0
        assert cond.description and "\n" not in cond.description
        json.dumps(cond.to_dict())
        assert Condition.from_dict(json.loads(json.dumps(cond.to_dict()))) == cond
    assert catalogue["clean"].level == 0
    assert catalogue["ambient-1"].render_params == {"ambient_add": 0.3}
    assert (
        catalogue["ambient-2"].render_params["ambient_add"]
        > catalogue["ambient-1"].render_params["ambient_add"]
    )
    assert all(not c.render_params for n, c in catalogue.items() if not n.startswith("ambient"))
    # fixes of heavier damage cost at least as much
    for fam in ("noise", "holes", "texture"):
        h = [catalogue[f"{fam}-{k}"].artist_hours for k in (1, 2, 3)]
        assert h == sorted(h) and h[0] > 0


def test_one_catalogue_is_read_by_study_cost_and_gallery(catalogue):
    from twingap.artifacts.gallery import gallery_rows
    from twingap.study.config import StudyConfig
    from twingap.study.cost import artist_hours

    cfg = StudyConfig()
    assert tuple(cfg.conditions) == CONDITION_NAMES
    assert artist_hours(cfg) == {n: c.artist_hours for n, c in catalogue.items()}
    shown = [n for _, names in gallery_rows(catalogue) for n in names if n != "clean"]
    assert sorted(shown) == sorted(CONDITION_NAMES[1:])  # every condition once in the gallery


def test_no_source_module_lists_conditions():
    """Condition names are defined in configs/conditions.toml only: no module holds a list of them.

    A string literal naming a condition other than ``clean`` (the reference) may appear, but at
    most one per module (e.g. the ``tiny`` preset's one damaged condition).
    """
    import ast

    found: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in CONDITION_NAMES[1:]:
                found.setdefault(str(path.relative_to(SRC)), set()).add(node.value)
    assert {f: sorted(n) for f, n in found.items() if len(n) > 1} == {}


def test_unknown_condition_lists_valid_names(catalogue):
    with pytest.raises(TwingapError, match=r"unknown condition 'nois-2'.*noise-2"):
        get_condition("nois-2", catalogue)
    assert get_condition("holes-2").params["n_holes"] == 3


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[clean]\nhours = -1.0\n", "must be finite and >= 0"),
        ('[clean]\nrationale = "x"\n', "missing 'hours'"),
        ('[clean]\nhours = "many"\n', "not a number"),
        ("[clean\n", "not valid TOML"),
    ],
)
def test_artist_hours_validation(tmp_path, text, match):
    path = tmp_path / "hours.toml"
    path.write_text(text)
    with pytest.raises(TwingapError, match=match):
        load_artist_hours(path)


def test_catalogue_needs_hours_for_every_condition(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[conditions.clean]\nfamily = "clean"\nlevel = 0\n')
    with pytest.raises(TwingapError, match="has no artist hours"):
        load_catalogue(path)


def test_hours_table_overrides_and_names_known_conditions(tmp_path):
    path = tmp_path / "hours.toml"
    path.write_text("[noise-1]\nhours = 7.5\n")
    cat = load_catalogue(hours_path=path)
    assert cat["noise-1"].artist_hours == 7.5
    assert cat["noise-2"].artist_hours == load_artist_hours()["noise-2"]
    path.write_text("[noise_1]\nhours = 7.5\n")
    with pytest.raises(TwingapError, match=r"unknown key 'noise_1' \(did you mean 'noise-1'\?\)"):
        load_catalogue(hours_path=path)


def test_catalogue_rejects_unknown_key(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[conditions.clean]\nfamily = "clean"\nhours = 0.0\nlevle = 0\n')
    with pytest.raises(
        TwingapError, match=r"\[conditions.clean\]: unknown key 'levle' \(did you mean 'level'\?\)"
    ):
        load_catalogue(path)


def test_catalogue_rejects_unknown_family(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[conditions.clean]\nfamily = "sparkle"\nlevel = 1\nhours = 0.0\n')
    with pytest.raises(TwingapError, match="unknown family 'sparkle'"):
        load_catalogue(path)


# ----------------------------------------------------------------------------- invariants


@pytest.mark.parametrize("name", CONDITION_NAMES)
def test_pure_deterministic_and_recorded(box, catalogue, name):
    cond = catalogue[name]
    before = box.content_hash
    out1 = apply_condition(box, cond, seed=3)
    out2 = apply_condition(box, cond, seed=3)
    assert box.content_hash == before  # input unchanged
    assert not box.vertices.flags.writeable and not out1.texture.flags.writeable
    assert out1.content_hash == out2.content_hash  # same seed -> bit-identical
    rec = out1.metadata["conditions"][-1]
    assert rec["name"] == name and rec["seed"] == 3 and rec["render_params"] == cond.render_params
    assert "conditions" not in box.metadata
    assert len(out1.uvs) == len(out1.vertices) and out1.faces.max() < len(out1.vertices)
    d = damage(box, out1, cond)
    assert all(np.isfinite(v) for v in d.values())


@pytest.mark.parametrize("name", ["noise-2", "holes-2", "baked-light"])
def test_different_seeds_differ(box, catalogue, name):
    cond = catalogue[name]
    assert apply_condition(box, cond, 0).content_hash != apply_condition(box, cond, 1).content_hash


def test_different_objects_get_different_damage(box, catalogue):
    cond = catalogue["holes-2"]
    other = box.replace(name="other_box")
    assert apply_condition(box, cond, 0).content_hash != apply_condition(other, cond, 0).content_hash


@pytest.mark.parametrize("name", ["clean", "ambient-1", "ambient-2"])
def test_identity_conditions(box, catalogue, name):
    out = apply_condition(box, catalogue[name], seed=0)
    assert out.content_hash == box.content_hash
    assert out.vertices is box.vertices


def test_level_zero_is_identity_for_every_family(box):
    for fam in ("noise", "holes", "texture", "baked_light"):
        cond = Condition(f"{fam}-0", fam, 0, {})
        assert apply_condition(box, cond, 0).content_hash == box.content_hash


def test_ambient_render_params(box, catalogue):
    out = apply_condition(box, catalogue["ambient-2"], 0)
    assert render_params_of(out) == {"ambient_add": 0.7}
    assert damage(box, out, catalogue["ambient-2"]) == {"ambient_add": 0.7}
    assert render_params_of(apply_condition(box, catalogue["noise-1"], 0)) == {}


@pytest.mark.parametrize("family", ["noise", "holes", "texture", "ambient"])
def test_damage_grows_with_level(box, banana, catalogue, family):
    key = MAIN_DAMAGE[family]
    for asset in (box, banana):
        values = []
        for level in (1, 2, 3):
            cond = catalogue.get(f"{family}-{level}")
            if cond is None:
                continue
            values.append(damage(asset, apply_condition(asset, cond, 0), cond)[key])
        assert values[0] > 0
        assert all(b > a for a, b in itertools.pairwise(values)), values


def test_noise_targets_sigma(banana, catalogue):
    for level, sigma in ((1, 0.002), (2, 0.005), (3, 0.01)):
        cond = catalogue[f"noise-{level}"]
        d = damage(banana, apply_condition(banana, cond, 0), cond)
        # mean |N(0, s)| = 0.8 s
        assert d["mean_displacement_frac"] == pytest.approx(0.8 * sigma, rel=0.1)
        assert d["hausdorff_frac"] >= d["mean_displacement_frac"]


@pytest.mark.parametrize("mode", ["correlated", "iid"])
def test_noise_keeps_seams_closed(banana, catalogue, mode):
    cond = Condition("noise-x", "noise", 2, {**catalogue["noise-2"].params, "mode": mode})
    out = apply_condition(banana, cond, 0)
    _, inv = merge_by_position(banana.vertices)
    # duplicates (same position) before must be at the same position after
    order = np.argsort(inv, kind="stable")
    grouped = out.vertices[order]
    same = inv[order][1:] == inv[order][:-1]
    assert same.sum() > 0
    assert np.array_equal(grouped[1:][same], grouped[:-1][same])
    assert np.array_equal(out.uvs, banana.uvs) and np.array_equal(out.faces, banana.faces)


def test_noise_subdivides_coarse_mesh(box, catalogue):
    cond = catalogue["noise-1"]
    out = apply_condition(box, cond, 0)
    assert out.metadata["noise_subdivisions"] == 2
    assert len(out.faces) == 16 * len(box.faces)
    assert out.uvs.min() >= 0 and out.uvs.max() <= 1


def test_noise_bad_mode(box):
    with pytest.raises(TwingapError, match="unknown mode"):
        apply_condition(box, Condition("n", "noise", 1, {"mode": "perlin"}), 0)


def test_holes_keep_uvs_and_faces_consistent(banana, catalogue):
    for level, expected in ((1, 0.01), (2, 0.06), (3, 0.18)):
        cond = catalogue[f"holes-{level}"]
        out = apply_condition(banana, cond, 0)
        assert len(out.uvs) == len(out.vertices)
        assert out.faces.min() >= 0 and out.faces.max() < len(out.vertices)
        assert len(np.unique(out.faces)) == len(out.vertices)  # no unused vertices
        # every kept face is an original face with its original positions and UVs
        orig = {
            tuple(np.round(np.concatenate([banana.vertices[f], banana.uvs[f]], 1).ravel(), 9))
            for f in banana.faces
        }
        kept = [
            tuple(np.round(np.concatenate([out.vertices[f], out.uvs[f]], 1).ravel(), 9)) for f in out.faces
        ]
        assert all(k in orig for k in kept)
        d = damage(banana, out, cond)
        assert expected <= d["removed_area_frac"] < expected * 1.1
        assert out.metadata["double_sided"] is True


def test_holes_are_connected_patches(box, catalogue):
    out = apply_condition(box, catalogue["holes-1"], 0)
    assert 0 < len(out.faces) < len(box.faces)
    a0 = face_areas(box.vertices, box.faces).sum()
    assert face_areas(out.vertices, out.faces).sum() < a0


def test_texture_blur_scales_with_resolution(box, catalogue):
    from twingap.artifacts.texture_blur import blur_sigma_px

    assert blur_sigma_px((2048, 2048, 3), 16) == 16
    assert blur_sigma_px((1024, 1024, 3), 16) == 8
    out = apply_condition(box, catalogue["texture-3"], 0)
    assert np.array_equal(out.vertices, box.vertices)
    assert out.texture.shape == box.texture.shape
    assert not np.array_equal(out.texture, box.texture)


def test_texture_blur_uniform_texture_is_noop(box, catalogue):
    plain = box.replace(texture=uniform_texture((10, 200, 30)), uvs=np.zeros_like(box.uvs), textured=False)
    cond = catalogue["texture-3"]
    out = apply_condition(plain, cond, 0)
    assert out.content_hash == plain.content_hash
    assert damage(plain, out, cond) == {"hf_energy_lost": 0.0, "mean_albedo_change": 0.0}


def test_baked_light_changes_textured_albedo(box, catalogue):
    cond = catalogue["baked-light"]
    out = apply_condition(box, cond, 0)
    assert np.array_equal(out.vertices, box.vertices) and np.array_equal(out.uvs, box.uvs)
    d = damage(box, out, cond)
    assert d["mean_albedo_change"] > 0.02
    # the lit side is brighter than the unlit side
    light = np.asarray(out.metadata["baked_light_from"])
    n = np.array([[0, 0, 1], [0, 0, -1], [1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0]], float)
    lit, dark = int(np.argmax(n @ light)), int(np.argmin(n @ light))
    ratio = out.texture.astype(float).mean(-1) / np.maximum(box.texture.astype(float).mean(-1), 1)

    def side_ratio(side):
        faces = box.faces[32 * side : 32 * (side + 1)]
        uv = box.uvs[faces].mean(1)
        rows = ((1 - uv[:, 1]) * 512).astype(int)
        cols = (uv[:, 0] * 512).astype(int)
        return ratio[rows, cols].mean()

    assert side_ratio(lit) > side_ratio(dark) * 1.5


def test_baked_light_untextured_gets_an_atlas(box, catalogue):
    plain = box.replace(texture=uniform_texture((200, 40, 30)), uvs=np.zeros_like(box.uvs), textured=False)
    cond = Condition("baked-light", "baked_light", 1, {**catalogue["baked-light"].params, "atlas_px": 256})
    out = apply_condition(plain, cond, 0)
    assert out.texture.shape == (256, 256, 3) and out.textured
    assert len(out.faces) == len(plain.faces)
    assert out.metadata["generated_atlas"]["charts"] >= 6
    # charts do not overlap: every texel is covered at most once
    from twingap.artifacts.texture_blur import chart_mask

    assert 0.2 < chart_mask(out).mean() < 1.0
    assert damage(plain, out, cond)["mean_albedo_change"] > 0.02
    # geometry is the same surface
    assert np.allclose(out.vertices[out.faces], plain.vertices[plain.faces])


def test_rasterize_uv_interpolates():
    from twingap.artifacts.baked_light import rasterize_uv

    uvs = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], float)
    faces = np.array([[0, 1, 2], [1, 3, 2]])
    values = uvs[:, :1].copy()  # value = u
    img = rasterize_uv(uvs, faces, values, 8, 8)
    expected = (np.arange(8) + 0.5) / 8
    assert np.allclose(img[..., 0], expected[None, :])


def test_non_manifold_detection(box):
    assert non_manifold_edge_fraction(box.vertices, box.faces) == 0
    verts = np.array([[0, 0, 0], [0, 0, 1], [1, 0, 0], [0, 1, 0], [-1, 0, 0], [0, -1, 0.0]])
    faces = np.array([[0, 1, 2], [0, 1, 3], [0, 1, 4], [0, 1, 5]])
    assert non_manifold_edge_fraction(verts, faces) > 0.1


# ----------------------------------------------------------------------------- IO


def test_save_obj_round_trip(tmp_path, box, catalogue):
    from twingap.assets.io import save_obj

    flawed = apply_condition(box, catalogue["holes-2"], 0)
    path = save_obj(flawed, tmp_path / "flawed.obj")
    assert {p.name for p in tmp_path.iterdir()} == {"flawed.obj", "flawed.mtl", "flawed.png"}
    back = load_mesh_file(path)
    assert np.allclose(back.vertices, flawed.vertices, atol=1e-8)
    assert np.allclose(back.uvs, flawed.uvs, atol=1e-8)
    assert np.array_equal(back.faces, flawed.faces)
    assert np.array_equal(back.texture, flawed.texture)
    first = path.read_bytes()
    save_obj(flawed, tmp_path / "flawed.obj")
    assert path.read_bytes() == first  # deterministic


# ----------------------------------------------------------------------------- golden


def test_golden_summaries(catalogue):
    """Each condition on a small box, summarised (seed 0); a change names the condition and the value.

    ``TWINGAP_UPDATE_GOLDEN=1`` rewrites ``tests/golden/artifacts_box.json`` and skips (it never
    compares the file with itself).
    """
    small = textured_box(n=3, tex_px=512, name="golden_box")
    got = {name: golden_summary(apply_condition(small, catalogue[name], seed=0)) for name in CONDITION_NAMES}
    if os.environ.get("TWINGAP_UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(golden_json(got))
        pytest.skip(f"rewrote {GOLDEN.name}: review its diff before committing")
    expected = json.loads(GOLDEN.read_text())
    differences = golden_differences(expected, got)
    assert not differences, "golden summaries changed:\n" + "\n".join(differences)
    # the summaries see every family's damage: no condition but the render-time ones equals clean
    same_as_clean = {n for n in CONDITION_NAMES if got[n] == got["clean"]}
    assert same_as_clean == {"clean"} | {n for n in CONDITION_NAMES if catalogue[n].family == "ambient"}
