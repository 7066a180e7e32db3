"""Cycles backend without Blender: settings, pure conversions, option checks, worker asset files.

Nothing here imports ``bpy``; these tests run in every environment (the rendering tests that
need Blender are in ``test_cycles.py``).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from twingap.assets.asset import Asset
from twingap.errors import TwingapError
from twingap.render import backend
from twingap.render.cycles import CyclesSettings, check_options
from twingap.render.cycles.convert import (
    FAR,
    IDS_PASS_SETTINGS,
    blender_camera_matrix,
    blender_camera_params,
    blender_light,
    check_scene,
    colour_pass_settings,
    composite,
    cycles_seed,
    ids_and_depth,
    mesh_arrays,
    mesh_background,
    render_threads,
    result_from_passes,
    sun_rotation,
    texture_pixels,
    usable_cores,
    world_color,
)
from twingap.render.cycles.worker import load_asset, save_asset
from twingap.render.response import response_float
from twingap.render.scene import BackgroundSpec, CameraSpec, LightSpec, ObjectSpec, ResponseSpec, SceneSpec

K = np.array([[60.0, 0, 31.5], [0, 58.0, 23.5], [0, 0, 1]])
W, H = 64, 48


def _scene(**kw) -> SceneSpec:
    base = dict(
        scene_id="s",
        camera=CameraSpec(K, W, H),
        objects=[ObjectSpec("m", 1, np.eye(4))],
        lights=[LightSpec("directional", (0, 0, 1))],
        response=ResponseSpec(gamma=1.0),
        seed=5,
    )
    base.update(kw)
    return SceneSpec(**base)


def _asset() -> Asset:
    v = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], float)
    f = np.array([[0, 1, 2], [0, 2, 2], [0, 2, 3]])  # the middle triangle is degenerate
    uv = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)
    tex = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 10
    return Asset("m", v, f, uv, tex)


def _rigid(rng: np.random.Generator) -> np.ndarray:
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    T = np.eye(4)
    T[:3, :3] = q * np.sign(np.linalg.det(q))
    T[:3, 3] = rng.normal(size=3)
    return T


# --------------------------------------------------------------------------- settings


def test_settings_normalise_and_survive_the_worker_round_trip():
    s = CyclesSettings(samples=16.0, denoise=0, device="GPU", denoise_quality="fast", threads="2")
    assert (s.samples, s.denoise, s.device, s.denoise_quality, s.threads) == (16, False, "gpu", "FAST", 2)
    assert CyclesSettings(**dataclasses.asdict(s)) == s  # what the worker rebuilds from JSON
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.samples = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"samples": 0}, "samples must be >= 1"),
        ({"device": "tpu"}, "unknown Cycles device 'tpu'"),
        ({"denoise_quality": "best"}, "unknown denoise quality 'BEST'"),
        ({"samples": "many"}, "samples='many': expected int"),
        ({"sampels": 4}, r"unknown Cycles option\(s\) \['sampels'\]"),
    ],
)
def test_bad_settings_are_one_line_user_errors(options, match):
    with pytest.raises(TwingapError, match=match) as exc:
        CyclesSettings.from_options(options)
    assert "\n" not in str(exc.value)


def test_renderer_options_are_checked_before_looking_for_blender():
    # true whether or not bpy is installed: the typo is reported, not the install hint
    with pytest.raises(TwingapError, match="sampels"):
        backend.get_renderer("cycles", width=W, height=H, sampels=4)


def test_check_options_knows_settings_and_process_options():
    s = check_options({"samples": 3, "scenes_per_process": 7, "in_process": False, "python": "x"})
    assert s == CyclesSettings(samples=3)
    with pytest.raises(TwingapError, match=r"\['msaa'\].*scenes_per_process"):
        check_options({"msaa": 1})
    backend.check_options("cycles", {"denoise": False})
    backend.check_options("raster", {"msaa": 1})
    with pytest.raises(TwingapError, match=r"unknown raster option\(s\) \['samples'\]"):
        backend.check_options("raster", {"samples": 4})
    with pytest.raises(TwingapError, match="unknown render backend"):
        backend.check_options("povray", {})


def test_study_render_options_typo_stops_at_load(tmp_path):
    from twingap.cli import main

    path = tmp_path / "s.toml"
    path.write_text('preset = "tiny"\nstages = "fake"\n[render]\noptions = { msaaa = 1 }\n')
    assert main(["study", "--config", str(path), "-o", str(tmp_path / "r")]) == 2
    assert not (tmp_path / "r").exists()
    from twingap.study.config import load_study_config

    with pytest.raises(TwingapError, match=r"\[render\] options: unknown raster option\(s\) \['msaaa'\]"):
        load_study_config(path)


# --------------------------------------------------------------------------- camera


def test_camera_pose_and_intrinsics_reproduce_opencv_projection():
    rng = np.random.default_rng(0)
    cam_T_world = _rigid(rng)
    X_cam = np.array([[0.05, -0.02, 1.0], [-0.1, 0.08, 0.7], [0.2, 0.1, 2.0]])
    X_world = (np.linalg.inv(cam_T_world) @ np.c_[X_cam, np.ones(3)].T).T[:, :3]
    M = blender_camera_matrix(cam_T_world)
    # Blender's camera looks down its local -z with +y up: local = (x, -y, -z) of OpenCV's
    local = (np.linalg.inv(M) @ np.c_[X_world, np.ones(3)].T).T[:, :3]
    np.testing.assert_allclose(local, X_cam * [1, -1, -1], atol=1e-12)
    # Blender's projection of the local point, from the camera settings (rows from the top)
    p = blender_camera_params(K, W, H)
    a = p["pixel_aspect_y"] / p["pixel_aspect_x"]
    f = p["lens"] * W / p["sensor_width"]
    x, y, z = local[:, 0], -local[:, 1], -local[:, 2]
    raster = np.stack([W / 2 - p["shift_x"] * W + f * x / z, H / 2 + p["shift_y"] * W / a + f / a * y / z], 1)
    uv = (X_cam @ K.T)[:, :2] / X_cam[:, 2:]
    np.testing.assert_allclose(raster, uv + 0.5, atol=1e-9)  # OpenCV pixel centres at integers


# --------------------------------------------------------------------------- lights and world


@pytest.mark.parametrize("direction", [(0, 0, 1), (0.3, -0.2, 0.9), (-1.0, 0.0, 0.0), (0.95, 0.1, 0.0)])
def test_sun_rotation_points_local_minus_z_along_the_light(direction):
    R = sun_rotation(np.array(direction, float))
    np.testing.assert_allclose(R.T @ R, np.eye(3), atol=1e-12)
    assert np.linalg.det(R) == pytest.approx(1.0)
    d = np.array(direction, float) / np.linalg.norm(direction)
    np.testing.assert_allclose(R @ [0, 0, -1], d, atol=1e-12)


def test_lights_in_blender_units_match_the_raster_shading():
    s = CyclesSettings(sun_angle=0.1, point_radius=0.03)
    sun = blender_light(LightSpec("directional", (0, 1, 0), color=(1, 0.5, 0.25), intensity=0.8), s)
    # Lambertian radiance under a sun of irradiance E head-on: albedo * E / pi = albedo * I
    assert (sun.type, sun.size_attr, sun.size) == ("SUN", "angle", 0.1)
    assert sun.energy / math.pi == pytest.approx(0.8)
    assert sun.color == (1.0, 0.5, 0.25)
    np.testing.assert_allclose(sun.matrix[:3, :3] @ [0, 0, -1], [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(sun.matrix[:3, 3], 0)
    point = blender_light(LightSpec("point", position=(0.1, 0.2, 0.3), intensity=0.5), s)
    assert (point.type, point.size_attr, point.size) == ("POINT", "shadow_soft_size", 0.03)
    assert point.energy == pytest.approx(4 * math.pi**2 * 0.5)
    np.testing.assert_allclose(point.matrix, [[1, 0, 0, 0.1], [0, 1, 0, 0.2], [0, 0, 1, 0.3], [0, 0, 0, 1]])
    assert world_color(0.25) == (0.25, 0.25, 0.25, 1.0)


# --------------------------------------------------------------------------- pass settings


def test_colour_pass_settings_cap_bounces_and_follow_the_denoiser():
    on = colour_pass_settings(CyclesSettings(samples=12, max_bounces=5, denoise_quality="high"), seed=7)
    assert (on["samples"], on["max_bounces"], on["diffuse_bounces"], on["glossy_bounces"]) == (12, 5, 3, 2)
    assert on["use_adaptive_sampling"] is False and on["seed"] == 7
    assert on["use_denoising"] is True and on["denoising_quality"] == "HIGH"
    low = colour_pass_settings(CyclesSettings(max_bounces=1), seed=0)
    assert (low["diffuse_bounces"], low["glossy_bounces"]) == (1, 1)
    off = colour_pass_settings(CyclesSettings(denoise=True), seed=0, has_oidn=False)
    assert off["use_denoising"] is False and "denoiser" not in off
    assert cycles_seed(2**31 - 1 + 5) == 5
    # the ids pass only overrides settings the colour pass set
    assert set(IDS_PASS_SETTINGS) <= set(on)
    assert IDS_PASS_SETTINGS["samples"] == 1 and IDS_PASS_SETTINGS["max_bounces"] == 0


def test_render_threads():
    assert render_threads(CyclesSettings(threads=3)) == 3
    assert render_threads(CyclesSettings(threads=0)) == usable_cores() >= 1


# --------------------------------------------------------------------------- meshes and textures


def test_mesh_arrays_drop_degenerate_triangles_and_give_uvs_per_loop():
    asset = _asset()
    m = mesh_arrays(asset)
    np.testing.assert_array_equal(m.loops, [0, 1, 2, 0, 2, 3])
    np.testing.assert_array_equal(m.loop_start, [0, 3])
    np.testing.assert_array_equal(m.loop_total, [3, 3])
    np.testing.assert_array_equal(m.uvs, asset.uvs[[0, 1, 2, 0, 2, 3]])
    assert m.vertices.dtype == m.uvs.dtype == np.float32
    assert m.loops.dtype == m.loop_start.dtype == np.int32


def test_texture_pixels_are_bottom_up_rgba():
    tex = _asset().texture
    px = texture_pixels(tex)
    assert px.shape == (2, 3, 4) and px.dtype == np.float32
    np.testing.assert_allclose(px[0, :, :3], tex[1] / 255.0, rtol=1e-6)  # Blender's first row: the bottom
    assert np.all(px[..., 3] == 1)


# --------------------------------------------------------------------------- scene checks


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"lights": [LightSpec("spot")]}, "unknown light kind 'spot'"),
        ({"lights": [LightSpec("directional", (0, 0, 0))]}, "zero direction"),
        ({"background": BackgroundSpec(kind="sky")}, "unknown background kind 'sky'"),
        ({"objects": [ObjectSpec("nope", 1, np.eye(4))]}, "no model 'nope'"),
    ],
)
def test_check_scene_errors(change, match):
    with pytest.raises(TwingapError, match=match):
        check_scene(_scene(**change), {"m": _asset()})


# --------------------------------------------------------------------------- passes -> result


def test_ids_and_depth_drop_out_of_range_ids_and_far_depth():
    index = np.array([[0.0, 1.0, 2.2], [3.0, -1.0, 1.9]])
    depth = np.array([[1e10, 0.5, 1.0], [FAR * 2, 2.0, 0.7]])
    ids, d = ids_and_depth(index, depth, n_objects=2)
    np.testing.assert_array_equal(ids, [[0, 1, 2], [0, 0, 2]])
    np.testing.assert_array_equal(d, np.array([[0, 0.5, 1.0], [0, 2.0, 0.7]], np.float32))
    assert ids.dtype == np.int32 and d.dtype == np.float32


def test_composite_mixes_the_response_over_the_background():
    scene = _scene(background=BackgroundSpec(kind="color", color=(40, 80, 120)))
    radiance = np.array([0.2, 0.4, 0.6])
    premult = np.zeros((2, 2, 3))
    alpha = np.array([[0.0, 1.0], [0.5, 0.25]])
    premult[...] = alpha[..., None] * radiance
    rgb = composite(scene, premult, alpha, None)
    bg = np.array([40, 80, 120]) / 255.0
    lit = response_float(radiance[None], scene.response)[0]
    for (i, j), a in np.ndenumerate(alpha):
        expected = np.clip(a * lit + (1 - a) * bg, 0, 1) * 255
        assert np.all(np.abs(rgb[i, j].astype(float) - expected) <= 0.5 + 1e-4), (i, j)


def test_result_from_passes_unpremultiplies_and_uses_the_mesh_background():
    scene = _scene()
    rgba = np.zeros((3, 4, 4), np.float32)
    rgba[0, 0] = [0.1, 0.2, 0.3, 0.5]
    passes = {
        "centre": np.full((3, 4, 3), 0.5, np.float32),
        "depth": np.where(np.arange(4) < 3, 2.0, 1e10)[None].repeat(3, 0),
        "index": np.zeros((3, 4)),
    }
    passes["index"][0, 0] = 1
    res = result_from_passes(scene, rgba, passes, None, mesh_bg=True, return_linear=True)
    np.testing.assert_allclose(res.linear[0, 0], [0.2, 0.4, 0.6], rtol=1e-6)
    assert np.all(res.linear[1:] == 0) and res.coverage[0, 0] == 0.5
    assert res.instance_ids[0, 0] == 1 and res.depth[0, 3] == 0
    assert np.all(res.rgb[:, 3] == 0)  # the mesh covers no pixel there: black
    assert np.all(res.rgb[1, :3] == 188)  # linear 0.5 unlit -> sRGB 0.735
    plain = result_from_passes(scene, rgba, passes, None, mesh_bg=False, return_linear=False)
    assert plain.linear is None and plain.coverage is None and np.all(plain.rgb[1, 1] == 0)


def test_mesh_background_fills_under_objects_from_the_nearest_mesh_pixel():
    centre = np.zeros((1, 5, 3))
    centre[0, :, 0] = [0.0, 0.2, 0.9, 0.9, 0.4]
    ids = np.array([[0, 0, 1, 1, 0]])
    depth = np.array([[0.0, 1.0, 1.0, 1.0, 1.0]])
    bg = mesh_background(centre, ids, depth)
    srgb = np.where(centre <= 0.0031308, 12.92 * centre, 1.055 * centre ** (1 / 2.4) - 0.055)
    np.testing.assert_allclose(bg[0, :, 0], [0.0, srgb[0, 1, 0], srgb[0, 1, 0], srgb[0, 4, 0], srgb[0, 4, 0]])
    assert np.all(mesh_background(centre, np.ones((1, 5), int), depth) == 0)  # no mesh pixel seen


# --------------------------------------------------------------------------- worker files


def test_worker_asset_files_round_trip(tmp_path):
    a = _asset()
    save_asset(tmp_path / "a.npz", a)
    b = load_asset(tmp_path / "a.npz")
    assert b.name == a.name and b.textured == a.textured
    for k in ("vertices", "faces", "uvs", "texture"):
        np.testing.assert_array_equal(getattr(b, k), getattr(a, k))
    assert b.content_hash == a.content_hash
