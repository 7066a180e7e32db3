"""Twin scenes: the :class:`SceneSpec` that reproduces a real annotated frame.

A twin has the frame's intrinsics and image size, its objects at the annotated poses, and the
video's environment (:mod:`twingap.render.background`) and calibration
(:mod:`twingap.render.calibration`). All frames of a video share one **world frame** aligned with
the support plane (``z = 0`` where the objects rest, ``+z`` up), derived from the camera motion, so
that the background mesh, the lights and the object poses are the same for the whole video; the
camera's ``cam_T_world`` carries the motion. ``cam_T_world @ world_T_obj`` equals the annotated
object-to-camera pose (OpenCV camera, metres).

Layout of a twin environment folder (``ENV``, one sub-folder per video)::

    ENV/<video>/world.json                 plane-aligned world frame, per-frame cam_T_world
    ENV/<video>/background/<frame>.png     inpainted real background of each frame
    ENV/<video>/background.glb             textured 2.5D background mesh (world coordinates)
    ENV/<video>/calibration.json           fitted response, lights, ambient, noise (if calibrated)
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from twingap.assets.asset import ModelLibrary
from twingap.data.frame import Frame
from twingap.errors import TwingapError
from twingap.render.scene import (
    BackgroundSpec,
    CameraSpec,
    LightSpec,
    ObjectSpec,
    ResponseSpec,
    SceneSpec,
    check_rigid,
)

#: Lighting of an uncalibrated twin: ambient plus one key light from above (world -z travel).
DEFAULT_AMBIENT = 0.6
DEFAULT_LIGHTS = (LightSpec(kind="directional", direction=(0.0, 0.0, -1.0), intensity=0.6),)


def scale_camera(camera: CameraSpec, scale: float) -> CameraSpec:
    """Return the camera resized by ``scale`` (e.g. 0.5: 640x480 -> 320x240).

    Pixel centres sit at integer coordinates, so the principal point maps as
    ``c' = (c + 0.5) * s - 0.5`` and the focal lengths as ``f' = f * s``.
    """
    if scale == 1.0:
        return camera
    if not scale > 0:
        raise TwingapError(f"image scale must be positive, got {scale}")
    K = camera.K.copy()
    K[0, 0] *= scale
    K[1, 1] *= scale
    K[0, 1] *= scale
    K[0, 2] = (K[0, 2] + 0.5) * scale - 0.5
    K[1, 2] = (K[1, 2] + 0.5) * scale - 0.5
    return CameraSpec(
        K=K,
        width=max(1, round(camera.width * scale)),
        height=max(1, round(camera.height * scale)),
        cam_T_world=camera.cam_T_world.copy(),
        znear=camera.znear,
        zfar=camera.zfar,
    )


def scale_scene(scene: SceneSpec, scale: float) -> SceneSpec:
    """Return a copy of ``scene`` with its camera scaled (see :func:`scale_camera`)."""
    d = scene.to_dict()
    out = SceneSpec.from_dict(d)
    out.camera = scale_camera(out.camera, scale)
    return out


def check_frame(frame: Frame) -> None:
    """Validate the parts of a frame a twin needs.

    Raises:
        TwingapError: If intrinsics are missing/invalid or a pose is not rigid.
    """
    src = str(frame.rgb_path)
    if frame.K is None:
        raise TwingapError(f"frame {frame.frame_id}: camera intrinsics missing", src)
    K = np.asarray(frame.K, dtype=np.float64)
    if K.shape != (3, 3) or not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise TwingapError(f"frame {frame.frame_id}: invalid camera intrinsics {K.tolist()}", src)
    for oid, pose in zip(frame.obj_ids, frame.poses, strict=True):
        try:
            check_rigid(pose, f"frame {frame.frame_id}: pose of object {int(oid)}")
        except TwingapError as exc:
            raise TwingapError(exc.message, src) from exc


def twin_scene(
    frame: Frame,
    library: ModelLibrary,
    cam_T_world: np.ndarray | None = None,
    background: BackgroundSpec | None = None,
    calibration: dict | None = None,
    scale: float = 1.0,
    seed: int = 0,
) -> SceneSpec:
    """The twin of a real frame.

    Args:
        frame: The annotated real frame.
        library: Model library; every annotated object id must have a model.
        cam_T_world: (4, 4) world-to-camera transform of the frame in its video's world
            (from :func:`twingap.render.background.video_world`); identity (world = camera) if None.
        background: What is behind the objects (default: black).
        calibration: Fitted parameters (``response``, ``lights``, ``ambient``; see
            :mod:`twingap.render.calibration`); the uncalibrated defaults if None.
        scale: Image scale of the camera (1.0 = the frame's size).
        seed: Scene seed (sensor noise).

    Returns:
        The :class:`SceneSpec`; ``source_frame`` is the frame id, ``meta`` holds the video id.

    Raises:
        TwingapError: If intrinsics are missing, a pose is not a rotation, or an object has no
            model (one line naming the frame).
    """
    check_frame(frame)
    cam_T_world = np.eye(4) if cam_T_world is None else np.asarray(cam_T_world, dtype=np.float64)
    world_T_cam = np.linalg.inv(cam_T_world)
    objects = []
    for oid, pose in zip(frame.obj_ids, frame.poses, strict=True):
        try:
            name = library.name_of(int(oid))
        except TwingapError as exc:
            raise TwingapError(
                f"frame {frame.frame_id}: object id {int(oid)} has no model in the library", frame.rgb_path
            ) from exc
        world_T_obj = world_T_cam @ pose
        world_T_obj[3] = (0.0, 0.0, 0.0, 1.0)
        objects.append(ObjectSpec(model=name, obj_id=int(oid), world_T_obj=world_T_obj))
    camera = scale_camera(
        CameraSpec(K=frame.K, width=frame.width, height=frame.height, cam_T_world=cam_T_world), scale
    )
    cal = calibration or {}
    lights = (
        [LightSpec(**li) for li in cal["lights"]]
        if "lights" in cal
        else [LightSpec(**vars(li)) for li in DEFAULT_LIGHTS]
    )
    response = ResponseSpec(**cal["response"]) if "response" in cal else ResponseSpec()
    return SceneSpec(
        scene_id=f"twin/{frame.frame_id}",
        camera=camera,
        objects=objects,
        lights=lights,
        ambient=float(cal.get("ambient", DEFAULT_AMBIENT)),
        background=background or BackgroundSpec(),
        response=response,
        seed=int(seed),
        source_frame=frame.frame_id,
        meta={"video": frame.scene_id, "kind": "twin", "calibrated": calibration is not None},
    )


def group_by_video(frames: list[Frame]) -> dict[str, list[Frame]]:
    """Frames grouped by video (scene id), in input order."""
    out: dict[str, list[Frame]] = defaultdict(list)
    for f in frames:
        out[f.scene_id].append(f)
    return dict(out)


def build_twins(
    frames: list[Frame],
    library: ModelLibrary,
    env_root: str | Path,
    background: str = "image",
    calibrations: dict[str, dict] | None = None,
    scale: float = 1.0,
    with_mesh: bool = True,
    progress: bool = False,
) -> tuple[list[SceneSpec], dict]:
    """Reconstruct every video's environment and return the twins of all frames.

    Args:
        frames: Real frames (with depth), any number of videos.
        library: Model library.
        env_root: Folder for the twin environments (``env_root/<video>/...``); reused if present.
        background: ``"image"`` (the frame's inpainted photo: exact view), ``"mesh"`` (the
            video's background mesh) or ``"none"`` (black).
        calibrations: Per video id, fitted parameters; missing videos use the defaults.
        scale: Image scale of the cameras.
        with_mesh: Build the background meshes (needed by ``background="mesh"`` and sampling).
        progress: Show a progress bar.

    Returns:
        ``(twins, envs)``: the twin scenes in input order and, per video id, its
        :class:`~twingap.render.background.VideoEnvironment`.

    Raises:
        TwingapError: On invalid frames (see :func:`twin_scene`) or a background failure.
    """
    from twingap.render.background import build_environment

    if background not in ("image", "mesh", "none"):
        raise TwingapError(f"unknown twin background {background!r} (image, mesh, none)")
    for f in frames:  # fail fast, before any reconstruction work
        check_frame(f)
        for oid in f.obj_ids:
            try:
                library.name_of(int(oid))
            except TwingapError as exc:
                raise TwingapError(
                    f"frame {f.frame_id}: object id {int(oid)} has no model in the library", f.rgb_path
                ) from exc
    env_root = Path(env_root)
    groups = group_by_video(frames)
    envs = {}
    videos = sorted(groups)
    iterator = videos
    if progress:
        from rich.progress import track

        iterator = track(videos, description="twin environments")
    for video in iterator:
        envs[video] = build_environment(groups[video], env_root / video, library=library, with_mesh=with_mesh)
    twins = []
    for f in frames:
        env = envs[f.scene_id]
        if background == "image":
            bg = BackgroundSpec(kind="image", path=str(env.background_images[f.frame_id].resolve()))
        elif background == "mesh" and env.mesh_path is not None:
            bg = BackgroundSpec(kind="mesh", path=str(env.mesh_path.resolve()))
        else:
            bg = BackgroundSpec()
        cal = (calibrations or {}).get(f.scene_id)
        scene = twin_scene(f, library, env.world.cam_T_world[f.frame_id], bg, cal, scale=scale)
        scene.meta["env"] = str(env.folder.resolve())
        if env.mesh_path is not None:
            scene.meta["background_mesh"] = str(env.mesh_path.resolve())
        scene.meta["background_image"] = str(env.background_images[f.frame_id].resolve())
        scene.meta["background_rgb"] = env.median_rgb
        twins.append(scene)
    return twins, envs
