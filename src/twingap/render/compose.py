"""Composed scenes: any catalogue objects arranged on a twin's support plane.

A detector trained on the few real layouts of a video memorises them; composed layouts (objects
the video never shows, in new arrangements, over the same reconstructed backgrounds and seen from
views like the real ones) make it learn the objects instead.

Per scene (world = the video's plane-aligned frame, ``z = 0`` the support plane, metres):

1. pick a video (its twin gives the background mesh, calibrated lights/response, real cameras);
2. pick ``k`` objects (``n_objects`` range) from ``objects`` (default: the whole library);
3. put each in a **stable resting pose** (trimesh ``compute_stable_poses`` on its convex hull,
   drawn by probability among poses with probability >= ``min_pose_prob``; cached per asset
   content hash), lowest point on ``z = 0``, random yaw, random position in a disc around the
   real layout; reject a placement whose 2D footprint (convex hull of the projected hull
   vertices, rasterised at 2 mm and dilated by ``gap_m``) overlaps an earlier one, so objects
   never interpenetrate (a resting object lies inside the prism over its footprint);
4. view it like the real views (:func:`twingap.render.sampling.sample_view` around the layout's
   centroid), moving the camera back along its axis if needed so that every object is in view.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from twingap.assets.asset import Asset, ModelLibrary
from twingap.errors import TwingapError
from twingap.io import read_json, write_json_atomic
from twingap.render.sampling import ViewParams, jitter_lights, project_points, sample_view
from twingap.render.scene import BackgroundSpec, CameraSpec, ObjectSpec, SceneSpec
from twingap.render.twin import scale_camera

_STABLE_CACHE: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
GRID_M = 0.002
GRID_HALF_M = 0.8


def stable_poses(asset: Asset, cache_dir: str | Path | None = None):
    """Stable resting poses of an asset on the plane ``z = 0``.

    Args:
        asset: The object (pose frame, metres).
        cache_dir: Optional folder for a JSON cache (``stable_<hash16>.json``).

    Returns:
        ``(transforms (P,4,4), probs (P,), hull_vertices (H,3))``: each transform maps the pose
        frame so that the object rests with its lowest point on ``z = 0`` and its hull centroid
        above the origin; probabilities sum to 1.
    """
    import trimesh

    key = asset.content_hash
    if key in _STABLE_CACHE:
        return _STABLE_CACHE[key]
    hull = trimesh.Trimesh(asset.vertices, asset.faces, process=False).convex_hull
    hv = np.asarray(hull.vertices, dtype=np.float64)
    path = Path(cache_dir) / f"stable_{key[:16]}.json" if cache_dir else None
    if path is not None and path.is_file():
        d = read_json(path)
        out = (np.asarray(d["transforms"]), np.asarray(d["probs"]), hv)
    else:
        T, p = hull.compute_stable_poses()
        T, p = np.asarray(T, dtype=np.float64), np.asarray(p, dtype=np.float64)
        if len(T) == 0:
            T, p = np.eye(4)[None], np.ones(1)
        for i in range(len(T)):  # normalise: lowest point at z = 0, hull centroid over the origin
            v = hv @ T[i, :3, :3].T + T[i, :3, 3]
            T[i, :3, 3] -= np.array([v[:, 0].mean(), v[:, 1].mean(), v[:, 2].min()])
        p = p / p.sum()
        out = (T, p, hv)
        if path is not None:
            write_json_atomic(path, {"model": asset.name, "transforms": T.tolist(), "probs": p.tolist()})
    _STABLE_CACHE[key] = out
    return out


def _yaw(a: float) -> np.ndarray:
    T = np.eye(4)
    T[:2, :2] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    return T


def footprint(world_T_obj: np.ndarray, hull_vertices: np.ndarray, gap_m: float = 0.0) -> np.ndarray:
    """Occupancy grid (bool, ``GRID_M`` cells over ``+-GRID_HALF_M``) of an object's 2D footprint."""
    import cv2

    n = round(2 * GRID_HALF_M / GRID_M)
    grid = np.zeros((n, n), np.uint8)
    v = hull_vertices @ world_T_obj[:3, :3].T + world_T_obj[:3, 3]
    cells = np.round((v[:, :2] + GRID_HALF_M) / GRID_M).astype(np.int32)
    hull = cv2.convexHull(cells)
    cv2.fillConvexPoly(grid, hull, 1)
    r = int(np.ceil(gap_m / GRID_M))
    if r > 0:
        grid = cv2.dilate(grid, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    return grid.astype(bool)


def _layout_radius(twin: SceneSpec) -> float:
    """Radius (metres) of the disc that holds the object positions: the real layout's spread."""
    xy = np.array([o.world_T_obj[:2, 3] for o in twin.objects]) if twin.objects else np.zeros((1, 2))
    return float(np.clip(np.linalg.norm(xy, axis=1).max() + 0.03, 0.08, 0.3))


def _fit_in_view(cam_T_world: np.ndarray, camera: CameraSpec, pts: np.ndarray, margin_px: float = 4.0):
    """Move the camera back along its optical axis until all ``pts`` project inside the image."""
    scene = SceneSpec("tmp", dataclasses.replace(camera, cam_T_world=cam_T_world), [])
    T = cam_T_world.copy()
    for _ in range(12):
        scene.camera.cam_T_world = T
        uv = project_points(scene, pts)
        ok = np.all(np.isfinite(uv)) and np.all(
            (uv[:, 0] >= margin_px)
            & (uv[:, 0] <= camera.width - 1 - margin_px)
            & (uv[:, 1] >= margin_px)
            & (uv[:, 1] <= camera.height - 1 - margin_px)
        )
        if ok:
            break
        T = T.copy()
        T[2, 3] += 0.08  # camera moves 8 cm back along its own z (world points get farther)
    return T


def compose_scenes(
    twins: list[SceneSpec],
    library: ModelLibrary,
    n: int,
    seed: int = 0,
    objects: list[str] | None = None,
    n_objects: tuple[int, int] = (3, 6),
    scale: float = 1.0,
    params: ViewParams | None = None,
    min_pose_prob: float = 0.02,
    gap_m: float = 0.004,
    cache_dir: str | Path | None = None,
) -> list[SceneSpec]:
    """Scenes of catalogue objects in stable poses on the twins' support planes.

    Args:
        twins: Twin scenes (their videos give backgrounds, lights, response, real cameras).
        library: Model library.
        n: Number of scenes.
        seed: Seed (same inputs + seed -> identical scenes).
        objects: Model names to use (default: every model of the library).
        n_objects: Inclusive range of the number of objects per scene.
        scale: Image scale of the cameras.
        params: View / light sampling ranges.
        min_pose_prob: Stable poses less likely than this are not used.
        gap_m: Minimum free gap between footprints, metres.
        cache_dir: Folder for the stable-pose cache.

    Returns:
        ``n`` scenes with ids ``compose/<video>/<i>``.

    Raises:
        TwingapError: If there are no twins, an object name is unknown, or a twin has no mesh.
    """
    if not twins:
        raise TwingapError("compose_scenes: no twin scenes (backgrounds) to compose on")
    names = list(objects) if objects else library.names
    for name in names:
        if name not in library.info:
            raise TwingapError(f"unknown model {name!r} (have: {', '.join(library.names)})", library.root)
    lo, hi = int(n_objects[0]), int(n_objects[1])
    if not 1 <= lo <= hi:
        raise TwingapError(f"n_objects must be 1 <= min <= max, got {n_objects}")
    p = params or ViewParams()
    by_video: dict[str, list[SceneSpec]] = {}
    for t in twins:
        by_video.setdefault(str(t.meta.get("video", t.scene_id)), []).append(t)
    videos = sorted(by_video)
    out = []
    for i in range(n):
        rng = np.random.default_rng([seed, 7919, i])
        video = videos[int(rng.integers(len(videos)))]
        vt = by_video[video]
        twin = vt[int(rng.integers(len(vt)))]
        path = twin.meta.get("background_mesh")
        if not path:
            raise TwingapError(f"twin {twin.scene_id} has no background mesh (build twins with meshes)")
        k = int(rng.integers(lo, min(hi, len(names)) + 1)) if len(names) >= lo else len(names)
        chosen = [names[j] for j in sorted(rng.choice(len(names), size=k, replace=False))]
        radius = _layout_radius(twin)
        occupied = None
        placed: list[ObjectSpec] = []
        hull_pts = []
        for name in chosen:
            asset = library.load(name)
            T, prob, hv = stable_poses(asset, cache_dir)
            keep = np.flatnonzero(prob >= min_pose_prob)
            if len(keep) == 0:
                keep = np.array([int(np.argmax(prob))])
            pk = prob[keep] / prob[keep].sum()
            for _attempt in range(30):
                rest = T[keep[int(rng.choice(len(keep), p=pk))]]
                r = radius * np.sqrt(rng.uniform())
                a = rng.uniform(0, 2 * np.pi)
                W = _yaw(rng.uniform(0, 2 * np.pi)) @ rest
                W[:2, 3] += (r * np.cos(a), r * np.sin(a))
                fp = footprint(W, hv, gap_m / 2)
                if occupied is None or not np.any(occupied & fp):
                    occupied = fp if occupied is None else occupied | fp
                    placed.append(ObjectSpec(model=name, obj_id=library.obj_id(name), world_T_obj=W))
                    hull_pts.append(hv @ W[:3, :3].T + W[:3, 3])
                    break
        pts = np.concatenate(hull_pts)
        target = np.array([*pts[:, :2].mean(0), 0.5 * pts[:, 2].max()])
        real_cams = [t.camera.cam_T_world for t in vt]
        cam_T_world = sample_view(target, real_cams, rng, p)
        base = CameraSpec(K=twin.camera.K, width=twin.camera.width, height=twin.camera.height)
        cam_T_world = _fit_in_view(cam_T_world, base, pts)
        lights, ambient = jitter_lights(twin, rng, p)
        fill = tuple(int(x) for x in twin.meta.get("background_rgb", (0, 0, 0)))
        camera = dataclasses.replace(base, cam_T_world=cam_T_world)
        out.append(
            SceneSpec(
                scene_id=f"compose/{video}/{i:06d}",
                camera=scale_camera(camera, scale),
                objects=placed,
                lights=lights,
                ambient=ambient,
                background=BackgroundSpec(kind="mesh", path=str(path), color=fill),
                response=dataclasses.replace(twin.response),
                seed=int(rng.integers(2**31 - 1)),
                source_frame=None,
                meta={"video": video, "kind": "compose", "twin": twin.scene_id, "sample_seed": int(seed)},
            )
        )
    return out
