"""A small non-YCB BOP dataset built from scratch: procedural textured objects, frames rendered by twingap.

The objects (ids 4, 31 and 57: id 4 is also a YCB-Video id, so a name that leaks from a YCB table
would show) are written as a BOP ``models/`` folder (PLY in millimetres, texture files,
``models_info.json``). Two scenes of three views each are rendered with the raster renderer on a
textured table and written in the BOP layout (``scene_gt.json``, ``scene_camera.json``,
``mask_visib/``, depth) under ``real/`` (scene 000001, to twin) and ``test/`` (scene 000002, to
test on), to be used as if they were real photos.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

#: Object id -> (shape, size in metres, two texture colours).
OBJECTS = {
    4: ("box", (0.08, 0.05, 0.12), ((200, 40, 40), (240, 230, 220))),
    31: ("cylinder", (0.035, 0.09), ((30, 60, 190), (240, 210, 40))),
    57: ("prism", (0.05, 0.045), ((40, 160, 70), (30, 30, 30))),
}
WIDTH, HEIGHT, FOCAL = 160, 120, 170.0


def _texture(c1, c2, size: int = 64, period: int = 8, checker: bool = True) -> np.ndarray:
    y, x = np.mgrid[:size, :size]
    pattern = ((x // period + y // period) % 2 == 0) if checker else ((x // period) % 2 == 0)
    return np.where(pattern[..., None], np.array(c1, np.uint8), np.array(c2, np.uint8)).astype(np.uint8)


def _unwrapped(mesh) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vertices (one set per face), faces and box-projected UVs of a trimesh mesh (resting on z = 0)."""
    v = np.asarray(mesh.vertices)[np.asarray(mesh.faces).ravel()]
    v = v - [0.0, 0.0, v[:, 2].min()]
    faces = np.arange(len(v)).reshape(-1, 3)
    normals = np.repeat(np.asarray(mesh.face_normals), 3, axis=0)
    lo, hi = v.min(0), v.max(0)
    t = (v - lo) / np.maximum(hi - lo, 1e-9)
    axis = np.abs(normals).argmax(1)
    uv = np.where(axis[:, None] == 0, t[:, [1, 2]], np.where(axis[:, None] == 1, t[:, [0, 2]], t[:, [0, 1]]))
    return v, faces, uv


def procedural_assets() -> dict[int, object]:
    """The three textured objects (metres, resting on z = 0 in their own frame)."""
    import trimesh

    from twingap.assets.asset import Asset

    out = {}
    for oid, (shape, size, (c1, c2)) in OBJECTS.items():
        if shape == "box":
            mesh = trimesh.creation.box(extents=size)
        elif shape == "cylinder":
            mesh = trimesh.creation.cylinder(radius=size[0], height=size[1], sections=20)
        else:
            mesh = trimesh.creation.cylinder(radius=size[0], height=size[1], sections=6)
        v, f, uv = _unwrapped(mesh)
        out[oid] = Asset(f"shape_{oid}", v, f, uv, _texture(c1, c2, checker=shape != "cylinder"))
    return out


def _table():
    from twingap.assets.asset import Asset

    rng = np.random.default_rng(7)
    v = np.array([[-1.5, -1.5, 0.0], [1.5, -1.5, 0.0], [1.5, 1.5, 0.0], [-1.5, 1.5, 0.0]])
    tex = np.clip(rng.normal(150, 25, (64, 64, 1)) * [1.0, 0.8, 0.6], 0, 255).astype(np.uint8)
    uv = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    return Asset("table", v, np.array([[0, 1, 2], [0, 2, 3]]), uv, tex)


def _look_at(azimuth_deg: float, elevation_deg: float, distance: float) -> np.ndarray:
    """World-to-camera (OpenCV) transform of a camera looking at the world origin."""
    a, e = np.radians(azimuth_deg), np.radians(elevation_deg)
    eye = distance * np.array([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)])
    z = -eye / np.linalg.norm(eye)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z])  # rows: camera axes in world
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, -R @ eye
    return T


def _yaw(deg: float, x: float, y: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    T = np.eye(4)
    T[:2, :2] = [[c, -s], [s, c]]
    T[:2, 3] = x, y
    return T


#: Per scene: object layouts (id, yaw, x, y) and camera views (azimuth, elevation, distance).
SCENES = {
    1: (
        [(4, 20, -0.08, 0.02), (31, 0, 0.07, 0.06), (57, 40, 0.02, -0.09)],
        [(0, 50, 0.48), (25, 55, 0.48), (-25, 45, 0.5)],
    ),
    2: (
        [(4, -30, 0.06, -0.05), (31, 0, -0.08, -0.04), (57, 10, 0.0, 0.09)],
        [(90, 50, 0.48), (115, 55, 0.46), (65, 48, 0.5)],
    ),
}


def render_frames(models_dir: Path, out_root: Path) -> None:
    """Render the scenes with the library's objects and write them as BOP (``real/`` and ``test/``)."""
    from twingap.assets.asset import ModelLibrary
    from twingap.data.bop import write_bop
    from twingap.data.frame import Frame
    from twingap.data.images import write_png
    from twingap.render.raster import RasterRenderer
    from twingap.render.scene import CameraSpec, ObjectSpec, SceneSpec

    library = ModelLibrary(models_dir)
    assets = {n: library.load(n) for n in library.names} | {"table": _table()}
    K = np.array([[FOCAL, 0, (WIDTH - 1) / 2], [0, FOCAL, (HEIGHT - 1) / 2], [0, 0, 1]])
    renderer = RasterRenderer(WIDTH, HEIGHT)
    try:
        for scene_id, (layout, views) in SCENES.items():
            objects = [ObjectSpec("table", 999, np.eye(4))]
            objects += [ObjectSpec(library.name_of(oid), oid, _yaw(yaw, x, y)) for oid, yaw, x, y in layout]
            frames = []
            for k, view in enumerate(views, start=1):
                cam_T_world = _look_at(*view)
                scene = SceneSpec(
                    scene_id=f"{scene_id}/{k}",
                    camera=CameraSpec(K=K, width=WIDTH, height=HEIGHT, cam_T_world=cam_T_world),
                    objects=objects,
                    seed=k,
                )
                res = renderer.render(scene, assets)
                rgb_path = out_root / "renders" / f"{scene_id:06d}_{k:06d}.png"
                write_png(rgb_path, res.rgb)
                objs = objects[1:]
                frames.append(
                    Frame(
                        frame_id=f"{scene_id:06d}/{k:06d}",
                        scene_id=f"{scene_id:06d}",
                        rgb_path=rgb_path,
                        K=K,
                        width=WIDTH,
                        height=HEIGHT,
                        obj_ids=np.array([o.obj_id for o in objs], dtype=np.int64),
                        poses=np.stack([cam_T_world @ o.world_T_obj for o in objs]),
                        masks=np.stack([res.instance_ids == i + 2 for i in range(len(objs))]),
                        depth=res.depth,
                    )
                )
            write_bop(frames, out_root / ("real" if scene_id == 1 else "test"))
    finally:
        renderer.release()


def build_bop_dataset(root: Path) -> Path:
    """Write the whole dataset under ``root`` (``models/``, ``real/``, ``test/``); return ``root``.

    Rendering runs in a spawned process (OpenGL and torch in one process have crashed before).
    """
    from twingap.assets.library import write_bop_models
    from twingap.study.real import in_subprocess

    assets = procedural_assets()
    write_bop_models({4: assets[4], 31: assets[31]}, root / "models")
    face = root / "face_uv"
    write_bop_models({57: assets[57]}, face, texcoord="face")  # the other PLY texture convention
    for p in face.glob("obj_*"):
        p.rename(root / "models" / p.name)
    info = json.loads((root / "models" / "models_info.json").read_text())
    info.update(json.loads((face / "models_info.json").read_text()))
    (root / "models" / "models_info.json").write_text(json.dumps(info))
    shutil.rmtree(face)
    in_subprocess(render_frames, root / "models", root)
    return root
