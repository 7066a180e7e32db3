"""Reader and writer for the BOP scenewise layout.

Layout (https://github.com/thodan/bop_toolkit/blob/master/docs/bop_datasets_format.md)::

    root/                      (or root/<split>/)
      000000/                  one folder per scene (6-digit id)
        scene_camera.json      {im_id: {cam_K: [9], depth_scale, cam_R_w2c: [9], cam_t_w2c: [3] mm}}
        scene_gt.json          {im_id: [{obj_id, cam_R_m2c: [9], cam_t_m2c: [3] mm}, ...]}
        scene_gt_info.json     {im_id: [{bbox_visib, px_count_visib, px_count_valid, ...}, ...]}
        rgb/000001.png         colour image (.png or .jpg)
        depth/000001.png       uint16; depth in mm = value * depth_scale
        mask_visib/000001_000000.png   visible mask of instance 0 (0 / 255)
        mask/000001_000000.png         full (amodal) mask, only written when known

Units: millimetres in the files, metres inside twingap (:class:`~twingap.data.frame.Frame`). Rotations are
row-major 3x3; poses are object-to-camera (OpenCV camera). ``cam_R_w2c``/``cam_t_w2c`` map world to
camera (the inverse of :attr:`Frame.cam_pose`).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from twingap.data.frame import Frame
from twingap.data.images import read_image, write_png
from twingap.errors import TwingapError
from twingap.io import atomic_path, write_text_atomic

_SCENE_RE = re.compile(r"^\d+$")
_RGB_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif")


def is_bop_root(root: str | Path) -> bool:
    """Return True if ``root`` holds BOP scenes (``<scene>/scene_gt.json``) or is one."""
    root = Path(root)
    if not root.is_dir():
        return False
    if (root / "scene_gt.json").is_file():
        return True
    return any((p / "scene_gt.json").is_file() for p in root.iterdir() if p.is_dir())


def list_scenes(root: str | Path) -> list[Path]:
    """Return the sorted BOP scene folders under ``root`` (``[root]`` if root is a scene)."""
    root = Path(root)
    if not root.is_dir():
        raise TwingapError("data folder not found", root)
    if (root / "scene_gt.json").is_file():
        return [root]
    scenes = [p for p in root.iterdir() if p.is_dir() and (p / "scene_gt.json").is_file()]
    return sorted(scenes, key=lambda p: (int(p.name) if _SCENE_RE.match(p.name) else 1 << 62, p.name))


def _read_json_dict(path: Path) -> dict[str, Any]:
    from twingap.io import read_json

    data = read_json(path)
    if not isinstance(data, dict):
        raise TwingapError(f"expected a JSON object keyed by image id, got {type(data).__name__}", path)
    return data


def _mat3(values: Any, path: Path, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.size != 9:
        raise TwingapError(f"{what} must have 9 numbers, got {arr.size}", path)
    return arr.reshape(3, 3)


def _vec3(values: Any, path: Path, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.size != 3:
        raise TwingapError(f"{what} must have 3 numbers, got {arr.size}", path)
    return arr


def _find_rgb(scene_dir: Path, im_id: int) -> Path:
    for folder in ("rgb", "gray"):
        for suffix in _RGB_SUFFIXES:
            p = scene_dir / folder / f"{im_id:06d}{suffix}"
            if p.is_file():
                return p
    raise TwingapError(f"image file not found for image {im_id}", scene_dir / "rgb" / f"{im_id:06d}.png")


def load_bop_scene(
    scene_dir: str | Path, load_depth: bool = True, im_ids: Sequence[int] | None = None
) -> list[Frame]:
    """Read the annotated images of one BOP scene.

    Args:
        scene_dir: The scene folder (holding ``scene_gt.json``).
        load_depth: Read ``depth/`` into :attr:`Frame.depth` (metres, float32).
        im_ids: Restrict to these image ids; None = every image of ``scene_gt.json``.

    Returns:
        Frames sorted by image id; ``frame_id`` is ``"<scene folder>/<im_id:06d>"``.

    Raises:
        TwingapError: On missing/malformed JSON, missing images or masks, or size mismatches.
    """
    from PIL import Image

    scene_dir = Path(scene_dir)
    gt_path = scene_dir / "scene_gt.json"
    cam_path = scene_dir / "scene_camera.json"
    scene_gt = _read_json_dict(gt_path)
    if not cam_path.is_file():
        raise TwingapError("BOP scene has no scene_camera.json (the camera intrinsics cam_K)", scene_dir)
    scene_cam = _read_json_dict(cam_path)
    try:
        ids = sorted(int(k) for k in scene_gt)
    except ValueError as exc:
        raise TwingapError(f"image ids must be integers ({exc})", gt_path) from exc
    if im_ids is not None:
        wanted = {int(i) for i in im_ids}
        ids = [i for i in ids if i in wanted]
    frames = []
    for im_id in ids:
        cam = scene_cam.get(str(im_id))
        if not isinstance(cam, dict) or "cam_K" not in cam:
            raise TwingapError(f"no cam_K for image {im_id}", cam_path)
        K = _mat3(cam["cam_K"], cam_path, f"cam_K of image {im_id}")
        depth_scale = float(cam.get("depth_scale", 1.0))
        cam_pose = None
        if "cam_R_w2c" in cam and "cam_t_w2c" in cam:
            w2c = np.eye(4)
            w2c[:3, :3] = _mat3(cam["cam_R_w2c"], cam_path, f"cam_R_w2c of image {im_id}")
            w2c[:3, 3] = _vec3(cam["cam_t_w2c"], cam_path, f"cam_t_w2c of image {im_id}") / 1000.0
            cam_pose = np.linalg.inv(w2c)

        entries = scene_gt[str(im_id)]
        if not isinstance(entries, list):
            raise TwingapError(f"scene_gt entry of image {im_id} must be a list", gt_path)
        rgb_path = _find_rgb(scene_dir, im_id)
        try:
            with Image.open(rgb_path) as im:
                width, height = im.size
        except Exception as exc:
            raise TwingapError(f"unreadable image ({exc})", rgb_path) from exc

        n = len(entries)
        obj_ids = np.zeros(n, dtype=np.int64)
        poses = np.tile(np.eye(4), (n, 1, 1))
        masks = np.zeros((n, height, width), dtype=bool)
        for k, e in enumerate(entries):
            try:
                obj_ids[k] = int(e["obj_id"])
                poses[k, :3, :3] = _mat3(e["cam_R_m2c"], gt_path, f"cam_R_m2c of image {im_id}")
                poses[k, :3, 3] = _vec3(e["cam_t_m2c"], gt_path, f"cam_t_m2c of image {im_id}") / 1000.0
            except (KeyError, TypeError, ValueError) as exc:
                raise TwingapError(f"malformed annotation {k} of image {im_id} ({exc!r})", gt_path) from exc
            mpath = scene_dir / "mask_visib" / f"{im_id:06d}_{k:06d}.png"
            m = read_image(mpath)
            if m.ndim == 3:
                m = m[..., 0]
            if m.shape != (height, width):
                raise TwingapError(f"mask is {m.shape[1]}x{m.shape[0]}, image is {width}x{height}", mpath)
            masks[k] = m > 0

        depth = None
        if load_depth:
            dpath = scene_dir / "depth" / f"{im_id:06d}.png"
            raw = read_image(dpath)
            if raw.shape != (height, width):
                raise TwingapError(
                    f"depth is {raw.shape[1]}x{raw.shape[0]}, image is {width}x{height}", dpath
                )
            # float64 product then cast: value * depth_scale mm -> metres
            depth = (raw.astype(np.float64) * (depth_scale / 1000.0)).astype(np.float32)

        frames.append(
            Frame(
                frame_id=f"{scene_dir.name}/{im_id:06d}",
                scene_id=scene_dir.name,
                rgb_path=rgb_path,
                K=K,
                width=int(width),
                height=int(height),
                obj_ids=obj_ids,
                poses=poses,
                masks=masks,
                depth=depth,
                cam_pose=cam_pose,
                source=f"bop:{scene_dir.parent}",
                extra={"layout": "bop", "depth_scale": depth_scale, "im_id": im_id},
            )
        )
    return frames


def load_bop(
    root: str | Path,
    load_depth: bool = True,
    scenes: Sequence[str | int] | None = None,
    split: str | None = None,
) -> list[Frame]:
    """Read every annotated image of a BOP dataset split (scenewise layout).

    Args:
        root: Folder holding scene folders, a single scene folder, or a BOP dataset root
            when ``split`` is given (then ``root/split`` holds the scenes).
        load_depth: Read depth maps (metres, float32).
        scenes: Restrict to these scene ids (ints or folder names); None = all.
        split: Optional split sub-folder, e.g. ``"test"``.

    Returns:
        Frames sorted by scene id then image id (poses object-to-camera, metres).

    Raises:
        TwingapError: If no scene is found or a scene is invalid.
    """
    root = Path(root)
    if split is not None:
        root = root / split
    scene_dirs = list_scenes(root)
    if scenes is not None:
        wanted = {int(s) if str(s).isdigit() else str(s) for s in scenes}
        found = {int(p.name) if p.name.isdigit() else p.name for p in scene_dirs}
        missing = sorted(str(s) for s in wanted - found)
        if missing:
            raise TwingapError(f"no BOP scene folder for {', '.join(missing)}", root)
        scene_dirs = [p for p in scene_dirs if (int(p.name) if p.name.isdigit() else p.name) in wanted]
    out: list[Frame] = []
    for sdir in scene_dirs:
        out.extend(load_bop_scene(sdir, load_depth=load_depth))
    if not out:
        raise TwingapError("no BOP scenes (<scene>/scene_gt.json) with images found", root)
    return out


def _bbox_visib(mask: np.ndarray) -> list[int]:
    """BOP ``bbox_visib`` [x, y, w, h] of a mask (w = x_max - x_min + 1); [-1]*4 when empty."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return [-1, -1, -1, -1]
    x0, y0 = int(xs.min()), int(ys.min())
    return [x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1]


def _scene_number(scene_id: str, fallback: int) -> int:
    return int(scene_id) if scene_id.isdigit() else fallback


def _image_number(frame: Frame, fallback: int) -> int:
    if "im_id" in frame.extra:
        return int(frame.extra["im_id"])
    tail = frame.frame_id.rsplit("/", 1)[-1]
    return int(tail) if tail.isdigit() else fallback


def _dump_json(path: Path, obj: dict) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2) + "\n")


def _floats(a: np.ndarray) -> list[float]:
    return [float(v) for v in np.asarray(a, dtype=np.float64).ravel()]


def write_bop(
    frames: Sequence[Frame],
    out_root: str | Path,
    depth_scale: float = 0.1,
    overwrite: bool = False,
    progress: bool = False,
) -> list[Path]:
    """Write frames in the BOP scenewise layout (one scene folder per ``Frame.scene_id``).

    Scene folder names are the 6-digit scene number (``"0001"`` -> ``000001``; non-numeric scene ids
    are numbered in order of appearance); image ids come from the frame name (``"0001/000012"`` -> 12)
    or ``Frame.extra["im_id"]``. Colour files are copied byte for byte. Depth is written as uint16
    with ``depth_mm = value * depth_scale``; the default 0.1 mm keeps YCB-Video depth
    (1/10000 m units) lossless. Full (amodal) masks, ``bbox_obj``, ``px_count_all`` and
    ``visib_fract`` are written only when ``frame.extra["masks_full"]`` ((N, H, W) bool) is given.

    Args:
        frames: Frames to write (poses in metres, OpenCV camera).
        out_root: Output folder; scene folders are created inside it.
        depth_scale: Millimetres per depth unit in the written PNGs.
        overwrite: Replace scene folders that already exist (otherwise an error).
        progress: Show a progress bar.

    Returns:
        The written scene folders, sorted.

    Raises:
        TwingapError: If a scene folder exists and ``overwrite`` is False, depth does not fit
            uint16 at ``depth_scale``, or two frames map to the same scene and image id.
    """
    out_root = Path(out_root)
    if depth_scale <= 0:
        raise TwingapError(f"depth_scale must be positive, got {depth_scale}", out_root)
    by_scene: dict[int, list[tuple[int, Frame]]] = {}
    scene_numbers: dict[str, int] = {}
    for f in frames:
        if f.scene_id not in scene_numbers:
            scene_numbers[f.scene_id] = _scene_number(f.scene_id, len(scene_numbers))
        s = scene_numbers[f.scene_id]
        by_scene.setdefault(s, []).append((_image_number(f, len(by_scene.get(s, [])) + 1), f))
    for s, items in by_scene.items():
        ids = [i for i, _ in items]
        if len(set(ids)) != len(ids):
            raise TwingapError(f"two frames share an image id in scene {s}", out_root)
        if (out_root / f"{s:06d}").exists() and not overwrite:
            raise TwingapError(f"scene folder {s:06d} exists (use overwrite)", out_root)

    from rich.progress import track

    written = []
    todo = [
        (s, im_id, f)
        for s, items in sorted(by_scene.items())
        for im_id, f in sorted(items, key=lambda t: t[0])
    ]
    for_write = track(todo, description="writing BOP") if progress else todo

    cams: dict[int, dict] = {s: {} for s in by_scene}
    gts: dict[int, dict] = {s: {} for s in by_scene}
    infos: dict[int, dict] = {s: {} for s in by_scene}
    for s in by_scene:
        sdir = out_root / f"{s:06d}"
        if sdir.exists():
            shutil.rmtree(sdir)
        for sub in ("rgb", "depth", "mask_visib"):
            (sdir / sub).mkdir(parents=True, exist_ok=True)
        written.append(sdir)

    for s, im_id, f in for_write:
        sdir = out_root / f"{s:06d}"
        key = str(im_id)
        cam: dict[str, Any] = {"cam_K": _floats(f.K), "depth_scale": float(depth_scale)}
        if f.cam_pose is not None:
            w2c = np.linalg.inv(f.cam_pose)
            cam["cam_R_w2c"] = _floats(w2c[:3, :3])
            cam["cam_t_w2c"] = _floats(w2c[:3, 3] * 1000.0)
        cams[s][key] = cam
        gts[s][key] = [
            {"cam_R_m2c": _floats(p[:3, :3]), "cam_t_m2c": _floats(p[:3, 3] * 1000.0), "obj_id": int(o)}
            for o, p in zip(f.obj_ids, f.poses, strict=True)
        ]
        suffix = f.rgb_path.suffix.lower() if f.rgb_path.suffix.lower() in _RGB_SUFFIXES else ".png"
        rgb_out = sdir / "rgb" / f"{im_id:06d}{suffix}"
        if f.rgb_path.suffix.lower() in _RGB_SUFFIXES:
            if not Path(f.rgb_path).is_file():
                raise TwingapError("image file not found", f.rgb_path)
            with atomic_path(rgb_out) as tmp:
                shutil.copyfile(f.rgb_path, tmp)
        else:
            write_png(rgb_out, f.load_rgb())

        valid = None
        if f.depth is not None:
            units = np.round(f.depth.astype(np.float64) * (1000.0 / depth_scale))
            if units.max(initial=0) > np.iinfo(np.uint16).max or units.min(initial=0) < 0:
                raise TwingapError(
                    f"depth of frame {f.frame_id} does not fit uint16 at depth_scale {depth_scale}", out_root
                )
            write_png(sdir / "depth" / f"{im_id:06d}.png", units.astype(np.uint16))
            valid = f.depth > 0
        full = f.extra.get("masks_full")
        info = []
        for k in range(f.num_instances):
            m = f.masks[k]
            write_png(sdir / "mask_visib" / f"{im_id:06d}_{k:06d}.png", (m * 255).astype(np.uint8))
            entry: dict[str, Any] = {
                "bbox_visib": _bbox_visib(m),
                "px_count_visib": int(m.sum()),
                "px_count_valid": int((m & valid).sum()) if valid is not None else int(m.sum()),
            }
            if full is not None:
                fm = np.asarray(full[k], dtype=bool)
                (sdir / "mask").mkdir(exist_ok=True)
                write_png(sdir / "mask" / f"{im_id:06d}_{k:06d}.png", (fm * 255).astype(np.uint8))
                n_all = int(fm.sum())
                entry.update(
                    bbox_obj=_bbox_visib(fm),
                    px_count_all=n_all,
                    visib_fract=float(m.sum() / n_all) if n_all else 0.0,
                )
            info.append(entry)
        infos[s][key] = info

    for s in sorted(by_scene):
        sdir = out_root / f"{s:06d}"
        _dump_json(sdir / "scene_camera.json", cams[s])
        _dump_json(sdir / "scene_gt.json", gts[s])
        _dump_json(sdir / "scene_gt_info.json", infos[s])
    return sorted(written)
