"""Cycles backend (twingap.render.cycles).

The camera-parameter and error-path tests run everywhere; the rendering tests need Blender as a
Python module (``pip install 'twingap[cycles]'``, bpy 4.5 with numpy<2) and are skipped without it.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from twingap.assets.asset import Asset
from twingap.errors import TwingapError
from twingap.render.backend import BACKGROUND_ASSET_KEY, check_backend, get_renderer
from twingap.render.cycles import BPY_PYTHON_ENV, blender_camera_params, bpy_available
from twingap.render.scene import BackgroundSpec, CameraSpec, LightSpec, ObjectSpec, SceneSpec

W, H = 64, 48
K = np.array([[60.0, 0, 31.5], [0, 60.0, 23.5], [0, 0, 1]])


def needs_bpy():
    return pytest.importorskip(
        "bpy", reason="Blender as a Python module is not installed (pip install 'twingap[cycles]')"
    )


def plane_asset(size: float = 0.2, rgb: int = 128, name: str = "plane") -> Asset:
    """A square in the z = 0 plane, normal -z (faces a camera at the origin looking down +z)."""
    h = size / 2
    v = np.array([[-h, -h, 0], [h, -h, 0], [h, h, 0], [-h, h, 0]], float)
    f = np.array([[0, 2, 1], [0, 3, 2]])
    uv = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)
    return Asset(name, v, f, uv, np.full((4, 4, 3), rgb, np.uint8))


def translation(x: float, y: float, z: float) -> np.ndarray:
    t = np.eye(4)
    t[:3, 3] = [x, y, z]
    return t


def plane_scene(**kw) -> SceneSpec:
    base = dict(
        scene_id="tiny",
        camera=CameraSpec(K, W, H),
        objects=[ObjectSpec("plane", 1, translation(0, 0, 1.0))],
        lights=[LightSpec("directional", (0, 0, 1), intensity=1.0)],
        ambient=0.0,
        seed=3,
    )
    base.update(kw)
    return SceneSpec(**base)


def digest(res) -> str:
    return hashlib.sha256(res.rgb.tobytes() + res.depth.tobytes() + res.instance_ids.tobytes()).hexdigest()


def srgb_to_linear(x: float) -> float:
    return x / 12.92 if x <= 0.04045 else ((x + 0.055) / 1.055) ** 2.4


# --------------------------------------------------------------------------- without bpy


def project_blender(p: dict, X: np.ndarray, width: int, height: int) -> np.ndarray:
    """Blender's projection (raster coords, rows from the top) from the camera parameters."""
    a = p["pixel_aspect_y"] / p["pixel_aspect_x"]
    fx = p["lens"] * width / p["sensor_width"]
    xr = width / 2 - p["shift_x"] * width + fx * X[:, 0] / X[:, 2]
    yr = height / 2 + p["shift_y"] * width / a + fx / a * X[:, 1] / X[:, 2]
    return np.stack([xr, yr], 1)


def test_camera_params_reproduce_opencv_projection():
    K2 = np.array([[1066.8, 0, 312.99], [0, 1067.5, 241.31], [0, 0, 1]])
    X = np.array([[0.0, 0.0, 1.0], [0.1, -0.05, 0.8], [-0.2, 0.1, 1.5]])
    for k in (K2, np.array([[500.0, 0, 330], [0, 520, 230], [0, 0, 1]])):
        p = blender_camera_params(k, 640, 480)
        uv = (X @ k.T)[:, :2] / X[:, 2:]
        np.testing.assert_allclose(project_blender(p, X, 640, 480), uv + 0.5, atol=1e-9)
        assert min(p["pixel_aspect_x"], p["pixel_aspect_y"]) == 1.0


def test_skewed_camera_is_a_user_error():
    k = K.copy()
    k[0, 1] = 0.5
    with pytest.raises(TwingapError, match="skew"):
        blender_camera_params(k, W, H)


def test_missing_bpy_gives_install_hint(monkeypatch):
    if bpy_available():
        pytest.skip("bpy is installed here")
    monkeypatch.delenv(BPY_PYTHON_ENV, raising=False)
    with pytest.raises(TwingapError, match=r"pip install 'twingap\[cycles\]'"):
        get_renderer("cycles", width=W, height=H)
    with pytest.raises(TwingapError, match=r"pip install 'twingap\[cycles\]'"):
        check_backend("cycles")  # what a caller runs before spawning render workers
    import sys

    assert "bpy" not in sys.modules  # importing the backend never imports bpy


def test_bad_bpy_python_is_reported(monkeypatch, tmp_path):
    monkeypatch.setenv(BPY_PYTHON_ENV, str(tmp_path / "no-python"))
    if bpy_available():
        pytest.skip("bpy is installed here (this interpreter is used)")
    with pytest.raises(TwingapError, match="cannot import bpy"):
        get_renderer("cycles")


# --------------------------------------------------------------------------- with bpy


@pytest.fixture(scope="module")
def cycles():
    needs_bpy()
    r = get_renderer("cycles", width=W, height=H, samples=4, in_process=True, threads=2)
    yield r
    r.close()


def test_ids_depth_and_sun_calibration(cycles):
    res = cycles.render(plane_scene(), {"plane": plane_asset()}, return_linear=True)
    assert res.rgb.shape == (H, W, 3) and res.rgb.dtype == np.uint8
    assert res.depth.dtype == np.float32 and res.instance_ids.dtype == np.int32
    # the square spans u, v in c -+ 60 * 0.1 / 1.0 = c -+ 6: pixel centres 26..37 x 18..29
    ys, xs = np.nonzero(res.instance_ids == 1)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (26, 37, 18, 29)
    assert set(np.unique(res.instance_ids)) == {0, 1}
    np.testing.assert_allclose(res.depth[res.instance_ids == 1], 1.0, atol=1e-5)
    assert np.all(res.depth[res.instance_ids == 0] == 0)
    # sun of intensity 1 head-on: linear radiance = albedo
    albedo = srgb_to_linear(128 / 255)
    inner = res.linear[20:28, 28:36]  # 4 samples + denoiser: per-pixel noise and bias of a few %
    np.testing.assert_allclose(inner.mean(), albedo, rtol=0.04)
    np.testing.assert_allclose(inner, albedo, rtol=0.15)
    assert np.all(res.rgb[0, 0] == 0)  # black background colour


def test_planar_depth_with_tilted_off_centre_camera(cycles):
    from scipy.spatial.transform import Rotation

    k = np.array([[70.0, 0, 28.3], [0, 64.0, 26.1], [0, 0, 1]])
    cam = np.eye(4)
    cam[:3, :3] = Rotation.from_euler("xyz", [8, -12, 5], degrees=True).as_matrix()
    cam[:3, 3] = [0.03, -0.02, 0.1]
    objects = [ObjectSpec("plane", 1, translation(0, 0, 1))]
    scene = plane_scene(camera=CameraSpec(k, W, H, cam), objects=objects)
    scene.objects[0].world_T_obj[:3, :3] = Rotation.from_euler("y", 20, degrees=True).as_matrix()
    res = cycles.render(scene, {"plane": plane_asset(0.6)})
    mask = res.instance_ids == 1
    assert mask.sum() > 200
    # analytic planar depth: intersect each pixel ray with the plane (camera frame)
    T = cam @ scene.objects[0].world_T_obj
    n, p0 = T[:3, 2], T[:3, 3]
    v, u = np.nonzero(mask)
    rays = np.stack([(u - k[0, 2]) / k[0, 0], (v - k[1, 2]) / k[1, 1], np.ones_like(u, float)], 1)
    z = (n @ p0) / (rays @ n)
    np.testing.assert_allclose(res.depth[mask], z, rtol=1e-4)


def test_deterministic_by_hash(cycles):
    scene = plane_scene(ambient=0.3, response=plane_scene().response)
    scene.response.noise_sigma = 2.0
    a = cycles.render(scene, {"plane": plane_asset()})
    b = cycles.render(scene, {"plane": plane_asset()})
    assert digest(a) == digest(b)


def test_matches_raster_masks_and_depth(cycles):
    pytest.importorskip("moderngl", reason="raster backend (moderngl) not installed")
    from scipy.spatial.transform import Rotation

    raster = get_renderer("raster", width=W, height=H)
    pose = translation(0.01, 0.02, 0.9)
    pose[:3, :3] = Rotation.from_euler("xyz", [30, 20, 10], degrees=True).as_matrix()
    scene = plane_scene(
        objects=[ObjectSpec("plane", 1, pose), ObjectSpec("plane", 1, translation(-0.05, 0, 1.2))],
        ambient=0.4,
    )
    assets = {"plane": plane_asset()}
    c, r = cycles.render(scene, assets), raster.render(scene, assets)
    raster.release()
    for i in (1, 2):
        inter = np.sum((c.instance_ids == i) & (r.instance_ids == i))
        union = np.sum((c.instance_ids == i) | (r.instance_ids == i))
        assert inter / union >= 0.98
    assert np.count_nonzero(c.instance_ids != r.instance_ids) <= 2  # both sample pixel centres
    both = (c.instance_ids > 0) & (c.instance_ids == r.instance_ids)
    np.testing.assert_allclose(c.depth[both], r.depth[both], rtol=1e-4)


def test_background_mesh_is_pass_through_and_unannotated(cycles):
    bg = plane_asset(2.0, rgb=200, name="bg")
    bg = bg.replace(vertices=bg.vertices + np.array([0, 0, 1.5]))
    scene = plane_scene(background=BackgroundSpec(kind="mesh"), ambient=0.3)
    res = cycles.render(scene, {"plane": plane_asset(), BACKGROUND_ASSET_KEY: bg})
    assert set(np.unique(res.instance_ids)) == {0, 1}
    np.testing.assert_allclose(res.depth[res.instance_ids == 0], 1.5, atol=1e-5)
    assert np.all(np.abs(res.rgb[2, 2].astype(int) - 200) <= 1)  # the photo texture, unlit


def test_lit_background_mesh_goes_through_the_response(cycles):
    bg = plane_asset(2.0, rgb=200, name="bg")
    bg = bg.replace(vertices=bg.vertices + np.array([0, 0, 1.5]))
    scene = plane_scene(background=BackgroundSpec(kind="mesh"), ambient=0.3, lights=[])
    scene.meta["background_unlit"] = False
    res = cycles.render(scene, {"plane": plane_asset(), BACKGROUND_ASSET_KEY: bg})
    assert res.instance_ids[2, 2] == 0 and res.depth[2, 2] == pytest.approx(1.5, abs=1e-5)
    expected = 255 * (0.3 * srgb_to_linear(200 / 255)) ** (1 / 2.2)  # ambient only, gamma 2.2
    assert abs(float(res.rgb[2:6, 2:6].mean()) - expected) < 0.05 * expected


def test_image_background_is_composited_as_is(cycles, tmp_path):
    from PIL import Image

    img = np.zeros((H, W, 3), np.uint8)
    img[..., 0] = np.arange(W, dtype=np.uint8)[None] * 3
    img[..., 2] = 90
    Image.fromarray(img).save(tmp_path / "bg.png")
    scene = plane_scene(background=BackgroundSpec(kind="image", path=str(tmp_path / "bg.png")))
    res = cycles.render(scene, {"plane": plane_asset()})
    far = res.instance_ids == 0
    far[10:38, 20:44] = False  # away from the anti-aliased object edge
    assert np.array_equal(res.rgb[far], img[far])
    with pytest.raises(TwingapError, match="background image not found"):
        missing = BackgroundSpec(kind="image", path=str(tmp_path / "x.png"))
        cycles.render(plane_scene(background=missing), {"plane": plane_asset()})


def test_unknown_model_is_a_user_error(cycles):
    with pytest.raises(TwingapError, match="no model"):
        cycles.render(plane_scene(), {})


def test_worker_batch_matches_in_process(cycles):
    from twingap.render.cycles import render_batch

    scenes = [plane_scene(), plane_scene(seed=4, ambient=0.2)]
    assets = {"plane": plane_asset()}
    got = {}
    n = render_batch(
        scenes,
        assets,
        lambda i, s, r: got.__setitem__(i, r),
        samples=4,
        threads=2,
        scenes_per_process=1,  # exercise the worker restart
    )
    assert n == 2 and sorted(got) == [0, 1]
    for i, s in enumerate(scenes):
        assert digest(got[i]) == digest(cycles.render(s, assets))


def test_real_twin_masks_agree_with_raster(cycles):
    """One sample frame's objects at their annotated poses, at a quarter of 640x480."""
    pytest.importorskip("moderngl", reason="raster backend (moderngl) not installed")
    from twingap.assets.asset import ModelLibrary, default_sample_root
    from twingap.data.loader import load_frames
    from twingap.render.twin import twin_scene

    root = default_sample_root()
    library = ModelLibrary(root / "models")
    frame = load_frames(root / "ycbv_real_frames", load_depth=False, videos=["0001"])[0]
    scene = twin_scene(frame, library, scale=0.25)
    assets = {o.model: library.load(o.model) for o in scene.objects}
    raster = get_renderer("raster", width=scene.camera.width, height=scene.camera.height)
    r = raster.render(scene, assets)
    raster.release()
    c = cycles.render(scene, assets)
    assert c.rgb.shape == (120, 160, 3)
    for i in range(1, len(scene.objects) + 1):
        mc, mr = c.instance_ids == i, r.instance_ids == i
        if mr.sum() >= 20:
            assert (mc & mr).sum() / (mc | mr).sum() >= 0.98
