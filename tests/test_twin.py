"""Twin scenes: poses, camera scaling, mask fidelity, backgrounds, bad input through the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from tests.conftest import copy_ycbv_frames

from twingap.assets.asset import ModelLibrary, default_sample_root, load_mesh_file
from twingap.cli import main
from twingap.data.ycbv import load_ycbv
from twingap.render.background import build_environment, inpaint_background, object_mask
from twingap.render.fidelity import ciede2000, mask_ious
from twingap.render.scene import BackgroundSpec, CameraSpec, SceneSpec
from twingap.render.twin import scale_camera, twin_scene


@pytest.fixture(scope="module")
def library() -> ModelLibrary:
    return ModelLibrary(default_sample_root() / "models")


@pytest.fixture(scope="module")
def frames0(ycbv_root_module) -> list:
    return load_ycbv(ycbv_root_module, videos=["0000"], frames=["000001", "000002"])


@pytest.fixture(scope="module")
def ycbv_root_module() -> Path:
    return Path(__file__).resolve().parents[1] / "data" / "sample" / "ycbv_real_frames"


def test_twin_poses_compose_to_annotation(frames0, library):
    f = frames0[0]
    world = np.eye(4)
    world[:3, 3] = (0.1, -0.2, 0.5)
    s = twin_scene(f, library, cam_T_world=world)
    assert s.camera.width == f.width and np.allclose(s.camera.K, f.K)
    for i, pose in enumerate(f.poses):
        assert np.allclose(s.obj_T_cam(i), pose, atol=1e-9)
    assert [o.obj_id for o in s.objects] == f.obj_ids.tolist()
    # JSON round trip keeps it
    s2 = SceneSpec.from_dict(json.loads(json.dumps(s.to_dict())))
    assert np.allclose(s2.obj_T_cam(0), f.poses[0])


def test_scale_camera_half_pixel():
    K = np.array([[500.0, 0, 319.5], [0, 500.0, 239.5], [0, 0, 1]])
    cam = scale_camera(CameraSpec(K=K, width=640, height=480), 0.5)
    assert (cam.width, cam.height) == (320, 240)
    p = np.array([0.05, -0.03, 0.8])
    u, v = K[0, 0] * p[0] / p[2] + K[0, 2], K[1, 1] * p[1] / p[2] + K[1, 2]
    u2 = cam.K[0, 0] * p[0] / p[2] + cam.K[0, 2]
    v2 = cam.K[1, 1] * p[1] / p[2] + cam.K[1, 2]
    assert np.isclose(u2, (u + 0.5) * 0.5 - 0.5) and np.isclose(v2, (v + 0.5) * 0.5 - 0.5)
    assert np.isclose(cam.K[0, 2], 159.5)


def test_twin_mask_iou_of_sample_frame(frames0, library):
    from twingap.render.raster import RasterRenderer

    f = frames0[0]
    s = twin_scene(f, library, background=BackgroundSpec())
    res = RasterRenderer().render(s, {o.model: library.load(o.model) for o in s.objects})
    ious = mask_ious(res.instance_ids, f.masks)
    assert ious.mean() >= 0.98, ious


def test_object_mask_dilation_and_inpaint_leak():
    from twingap.data.frame import Frame

    h, w = 60, 80
    rng = np.random.default_rng(0)
    rgb = np.clip(rng.normal([90, 110, 140], 12, (h, w, 3)), 0, 255).astype(np.uint8)
    mask = np.zeros((h, w), bool)
    mask[20:40, 30:50] = True
    rgb[18:42, 28:52] = (255, 0, 0)  # the object bleeds 2 px beyond its annotated mask
    f = Frame("v/1", "v", Path("x.png"), np.eye(3), w, h, np.array([1]), np.eye(4)[None], mask[None])
    dil = object_mask(f, 7)
    assert dil[13, 40] and dil[40 + 6, 40] and not dil[5, 5]
    out = inpaint_background(rgb, dil)
    assert np.array_equal(out[~dil], rgb[~dil])
    red = out[..., 0].astype(int) - np.maximum(out[..., 1], out[..., 2]).astype(int)
    assert red.max() < 60, "object colour leaked into the background"


def test_build_environment_on_sample(tmp_path, frames0, library):
    env = build_environment(frames0, tmp_path / "0000", library=library)
    f = frames0[0]
    bg = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(env.background_images[f.frame_id]))
    dil = object_mask(f, 7)
    real = f.load_rgb()
    assert np.array_equal(bg[~dil], real[~dil])
    assert not np.array_equal(bg[dil], real[dil])
    mesh = load_mesh_file(env.mesh_path, "bg")
    assert len(mesh.faces) > 1000 and mesh.textured
    # objects rest on the world plane z = 0 (within 1.5 cm of hull bottoms)
    T = env.world.cam_T_world[f.frame_id]
    for oid, pose in zip(f.obj_ids, f.poses, strict=True):
        v = library.load(library.name_of(int(oid))).vertices
        W = np.linalg.inv(T) @ pose
        z = v @ W[:3, 2] + W[2, 3]
        assert abs(z.min()) < 0.02
    assert (tmp_path / "0000" / "world.json").is_file()


def test_ciede2000_known_values():
    a = np.array([[50.0, 2.6772, -79.7751], [50.0, 3.1571, -77.2803], [50.0, 0.0, 0.0]])
    b = np.array([[50.0, 0.0, -82.7485], [50.0, 0.0, -82.7485], [50.0, 0.0, 0.0]])
    assert np.allclose(ciede2000(a, b), [2.0425, 2.8615, 0.0], atol=1e-3)


def _write_meta(path: Path, **changes):
    meta = scipy.io.loadmat(str(path))
    meta = {k: v for k, v in meta.items() if not k.startswith("__")}
    for k, v in changes.items():
        if v is None:
            meta.pop(k, None)
        else:
            meta[k] = v
    scipy.io.savemat(str(path), meta)


def test_bad_pose_is_one_line_exit_2(tmp_path, capsys):
    root = copy_ycbv_frames(tmp_path / "ycbv", {"0000": ["000001"]})
    meta = scipy.io.loadmat(str(root / "0000" / "000001-meta.mat"))
    poses = meta["poses"].copy()
    poses[:3, :3, 0] *= 1.5  # scaled: not a rotation
    _write_meta(root / "0000" / "000001-meta.mat", poses=poses)
    code = main(["twin", "scenes", str(root), "-o", str(tmp_path / "s.json"), "--no-calibrate"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "not a rotation" in err and len(err.splitlines()) == 1


def test_missing_intrinsics_exit_2(tmp_path, capsys):
    root = copy_ycbv_frames(tmp_path / "ycbv", {"0000": ["000001"]})
    _write_meta(root / "0000" / "000001-meta.mat", intrinsic_matrix=None)
    code = main(["twin", "scenes", str(root), "-o", str(tmp_path / "s.json"), "--no-calibrate"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "intrinsic" in err and len(err.splitlines()) == 1


def test_object_without_model_exit_2(tmp_path, capsys):
    root = copy_ycbv_frames(tmp_path / "ycbv", {"0000": ["000001"]})
    models = tmp_path / "models"
    models.mkdir()
    info = json.loads((default_sample_root() / "models" / "models_info.json").read_text())
    info.pop("025_mug")  # id 14, present in frame 0000/000001
    (models / "models_info.json").write_text(json.dumps(info))
    code = main(["twin", "scenes", str(root), "-o", str(tmp_path / "s.json"), "--models", str(models)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "no model" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "s.json").exists()


def test_cli_scenes_writes_twins(tmp_path):
    root = copy_ycbv_frames(tmp_path / "ycbv", {"0001": ["000001"]})
    out = tmp_path / "scenes.json"
    assert main(["twin", "scenes", str(root), "-o", str(out), "--no-calibrate", "--scale", "0.5"]) == 0
    data = json.loads(out.read_text())
    assert len(data) == 1 and data[0]["camera"]["width"] == 320
    assert Path(data[0]["background"]["path"]).is_file()
    shutil.rmtree(tmp_path / "twin_env")


def test_environment_is_deterministic(tmp_path, library):
    from twingap.io import sha256_file

    frames = load_ycbv(
        Path(__file__).resolve().parents[1] / "data" / "sample" / "ycbv_real_frames",
        videos=["0002"],
        frames=["000001"],
    )
    hashes = []
    for name in ("a", "b"):
        env = build_environment(frames, tmp_path / name, library=library)
        files = [env.mesh_path, env.background_images[frames[0].frame_id], env.folder / "world.json"]
        hashes.append([sha256_file(p) for p in files])
    assert hashes[0] == hashes[1]
