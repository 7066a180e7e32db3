"""Training scenes sampled around the twins: new views, jittered lights, the video's background mesh.

Every condition of a study renders exactly the scenes returned here (paired design), so sampling
is a pure function of ``(twins, n, seed, parameters)``: same inputs, same scenes (byte-identical
JSON).

Geometry (world = the video's plane-aligned frame of :mod:`twingap.render.background`: ``z = 0``
is the support plane, ``+z`` up; cameras are OpenCV, ``cam_T_world`` maps world to camera):

* the **look-at target** is the objects' centroid (their pose origins), lifted to half their mean
  height, plus a few centimetres of jitter;
* the **camera position** starts from a real camera of the same video (drawn at random among the
  video's frames), expressed in spherical coordinates around the target (distance, azimuth,
  elevation above the plane); azimuth is jittered by ``azimuth_deg`` (normal sigma), elevation by
  ``elevation_deg`` (uniform, clipped to ``elevation_range``), distance scaled by a uniform factor
  in ``distance_scale``; the camera looks at the target with a roll near the real one;
* **lights** keep the calibrated ones, with the key direction rotated by up to ``light_deg`` and
  strengths scaled by ``light_scale``; the calibrated response (and noise) is kept;
* **objects** stay as annotated, optionally with a small yaw / in-plane shift (``pose_jitter``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from twingap.errors import TwingapError
from twingap.render.scene import BackgroundSpec, CameraSpec, LightSpec, SceneSpec
from twingap.render.twin import scale_camera


@dataclass(frozen=True)
class ViewParams:
    """Ranges of the view sampling (angles in degrees, distances relative to the real one)."""

    azimuth_deg: float = 30.0
    elevation_deg: float = 12.0
    elevation_range: tuple[float, float] = (15.0, 80.0)
    distance_scale: tuple[float, float] = (0.8, 1.25)
    target_jitter_m: float = 0.03
    roll_deg: float = 4.0
    light_deg: float = 15.0
    light_scale: tuple[float, float] = (0.8, 1.2)
    ambient_scale: tuple[float, float] = (0.85, 1.15)
    pose_jitter_deg: float = 0.0
    pose_jitter_m: float = 0.0


def look_at(
    eye: np.ndarray, target: np.ndarray, up: tuple[float, float, float] = (0.0, 0.0, 1.0), roll: float = 0.0
):
    """World-to-camera transform of an OpenCV camera at ``eye`` looking at ``target``.

    Args:
        eye: (3,) camera centre, world metres.
        target: (3,) point on the optical axis, world metres.
        up: (3,) world up; the image's "up" (-y) is its projection.
        roll: Rotation about the optical axis, radians (positive turns the image clockwise).

    Returns:
        (4, 4) ``cam_T_world``.
    """
    z = np.asarray(target, float) - np.asarray(eye, float)
    z /= np.linalg.norm(z)
    x = np.cross(z, np.asarray(up, float))
    if np.linalg.norm(x) < 1e-9:  # looking straight down the up axis
        x = np.cross(z, [0.0, 1.0, 0.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    c, s = np.cos(roll), np.sin(roll)
    x, y = c * x + s * y, -s * x + c * y
    world_T_cam = np.eye(4)
    world_T_cam[:3, 0], world_T_cam[:3, 1], world_T_cam[:3, 2], world_T_cam[:3, 3] = x, y, z, eye
    return np.linalg.inv(world_T_cam)


def camera_roll(cam_T_world: np.ndarray, target: np.ndarray) -> float:
    """Roll (radians) of a camera relative to the level camera at the same place and target."""
    eye = np.linalg.inv(cam_T_world)[:3, 3]
    level = look_at(eye, target)
    # both look along nearly the same axis; compare their x axes
    x_real = cam_T_world[0, :3]
    x_level, y_level = level[0, :3], level[1, :3]
    return float(np.arctan2(x_real @ y_level, x_real @ x_level))


def objects_target(scene: SceneSpec) -> np.ndarray:
    """World point the views aim at: the centroid of the objects' pose origins.

    YCB-Video model frames are centred on the objects, so this is about half-way up the layout.
    """
    if not scene.objects:
        return np.zeros(3)
    return np.array([o.world_T_obj[:3, 3] for o in scene.objects]).mean(0)


def _rotate(v: np.ndarray, axis: np.ndarray, angle: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    return v * np.cos(angle) + np.cross(axis, v) * np.sin(angle) + axis * (axis @ v) * (1 - np.cos(angle))


def jitter_lights(scene: SceneSpec, rng: np.random.Generator, p: ViewParams) -> tuple[list[LightSpec], float]:
    """Lights and ambient jittered around the scene's (calibrated) ones."""
    lights = []
    for li in scene.lights:
        d = np.asarray(li.direction, float)
        if li.kind == "directional" and np.linalg.norm(d) > 0:
            axis = np.cross(d, rng.standard_normal(3))
            if np.linalg.norm(axis) > 1e-9:
                d = _rotate(d, axis, np.radians(p.light_deg) * rng.uniform(0, 1))
        scale = rng.uniform(*p.light_scale)
        lights.append(
            dataclasses.replace(
                li,
                direction=tuple(round(float(x), 6) for x in d),
                intensity=round(float(li.intensity * scale), 6),
            )
        )
    ambient = round(float(scene.ambient * rng.uniform(*p.ambient_scale)), 6)
    return lights, ambient


def sample_view(
    target: np.ndarray, real_cams: list[np.ndarray], rng: np.random.Generator, p: ViewParams
) -> np.ndarray:
    """A ``cam_T_world`` near the real cameras, looking at ``target``."""
    real = real_cams[int(rng.integers(len(real_cams)))]
    eye0 = np.linalg.inv(real)[:3, 3]
    rel = eye0 - target
    dist = float(np.linalg.norm(rel))
    az = float(np.arctan2(rel[1], rel[0]))
    el = float(np.degrees(np.arcsin(np.clip(rel[2] / max(dist, 1e-9), -1, 1))))
    roll0 = camera_roll(real, target)
    az += np.radians(p.azimuth_deg) * rng.standard_normal()
    el = float(np.clip(el + rng.uniform(-p.elevation_deg, p.elevation_deg), *p.elevation_range))
    dist *= rng.uniform(*p.distance_scale)
    e = np.radians(el)
    tgt = target + rng.normal(0, p.target_jitter_m, 3) * np.array([1.0, 1.0, 0.5])
    eye = tgt + dist * np.array([np.cos(e) * np.cos(az), np.cos(e) * np.sin(az), np.sin(e)])
    roll = roll0 + np.radians(p.roll_deg) * rng.standard_normal()
    return look_at(eye, tgt, roll=roll)


def sample_scenes(
    twins: list[SceneSpec],
    n: int,
    seed: int = 0,
    scale: float = 1.0,
    params: ViewParams | None = None,
    background: str = "mesh",
) -> list[SceneSpec]:
    """Training scenes: new views around the twins of the real frames.

    Args:
        twins: Twin scenes (from :func:`twingap.render.twin.build_twins`; ``meta["video"]`` groups
            them, ``meta["background_mesh"]`` names the video's background mesh).
        n: Number of scenes (spread evenly over the twins: scene ``i`` derives from twin
            ``perm[i % len(twins)]``).
        seed: Sampling seed (same twins + seed + params -> identical scenes).
        scale: Image scale of the cameras (e.g. 0.5 -> 320x240 for YCB-Video).
        params: Sampling ranges (:class:`ViewParams`).
        background: ``"mesh"`` (the video's background mesh; needed for novel views) or
            ``"color"`` (keep a uniform colour).

    Returns:
        ``n`` :class:`SceneSpec` with ids ``sample/<video>/<i>``; ``meta`` records the source twin.

    Raises:
        TwingapError: If there are no twins, or a twin lacks its background mesh.
    """
    if not twins:
        raise TwingapError("sample_scenes: no twin scenes to sample around")
    if n < 0:
        raise TwingapError(f"sample_scenes: n must be >= 0, got {n}")
    p = params or ViewParams()
    rng = np.random.default_rng(seed)
    by_video: dict[str, list[SceneSpec]] = {}
    for t in twins:
        by_video.setdefault(str(t.meta.get("video", t.scene_id)), []).append(t)
    perm = rng.permutation(len(twins))
    out = []
    for i in range(n):
        twin = twins[int(perm[i % len(twins)])]
        video = str(twin.meta.get("video", twin.scene_id))
        srng = np.random.default_rng([seed, i])
        real_cams = [t.camera.cam_T_world for t in by_video[video]]
        target = objects_target(twin)
        cam_T_world = sample_view(target, real_cams, srng, p)
        objects = [dataclasses.replace(o) for o in twin.objects]
        if p.pose_jitter_deg > 0 or p.pose_jitter_m > 0:
            for o in objects:
                a = np.radians(p.pose_jitter_deg) * srng.standard_normal()
                Rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
                T = o.world_T_obj.copy()
                T[:3, :3] = Rz @ T[:3, :3]
                T[:2, 3] += srng.normal(0, p.pose_jitter_m, 2)
                o.world_T_obj = T
        lights, ambient = jitter_lights(twin, srng, p)
        bg = twin.background
        if background == "mesh":
            path = twin.meta.get("background_mesh")
            if not path:
                raise TwingapError(f"twin {twin.scene_id} has no background mesh (build twins with meshes)")
            fill = tuple(int(x) for x in twin.meta.get("background_rgb", (0, 0, 0)))
            bg = BackgroundSpec(kind="mesh", path=str(path), color=fill)
        elif background == "color":
            bg = BackgroundSpec(kind="color", color=twin.background.color)
        camera = CameraSpec(
            K=twin.camera.K, width=twin.camera.width, height=twin.camera.height, cam_T_world=cam_T_world
        )
        out.append(
            SceneSpec(
                scene_id=f"sample/{video}/{i:06d}",
                camera=scale_camera(camera, scale),
                objects=objects,
                lights=lights,
                ambient=ambient,
                background=bg,
                response=dataclasses.replace(twin.response),
                seed=int(srng.integers(2**31 - 1)),
                source_frame=twin.source_frame,
                meta={"video": video, "kind": "sample", "twin": twin.scene_id, "sample_seed": int(seed)},
            )
        )
    return out


def project_points(scene: SceneSpec, pts_world: np.ndarray) -> np.ndarray:
    """(N, 2) pixel coordinates (u, v) of world points; NaN behind the camera."""
    T = scene.camera.cam_T_world
    pc = pts_world @ T[:3, :3].T + T[:3, 3]
    K = scene.camera.K
    with np.errstate(divide="ignore", invalid="ignore"):
        u = K[0, 0] * pc[:, 0] / pc[:, 2] + K[0, 1] * pc[:, 1] / pc[:, 2] + K[0, 2]
        v = K[1, 1] * pc[:, 1] / pc[:, 2] + K[1, 2]
    uv = np.stack([u, v], -1)
    uv[pc[:, 2] <= 0] = np.nan
    return uv
