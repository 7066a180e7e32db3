"""Reader for the YCB-Video native layout.

Layout (one folder per video, one set of files per frame)::

    root/
      0000/
        000001-color.png   8-bit RGB, 640x480
        000001-depth.png   uint16, metres = value / factor_depth
        000001-label.png   uint8 class index per pixel (0 = background)
        000001-meta.mat    cls_indexes (N,), poses (3, 4, N), intrinsic_matrix (3, 3),
                           factor_depth, rotation_translation_matrix (3, 4)
        000001-box.txt     "<name> x1 y1 x2 y2" per object (optional; kept in Frame.extra)
      0001/ ...

Conventions (checked on the shipped sample, see ``tests/test_data_ycbv.py``):

* ``poses[:, :, i]`` is the object-to-camera transform of instance ``i`` (OpenCV camera, metres),
  ``p_cam = R @ p_obj + t`` with the object in the YCB-Video model frame.
* ``rotation_translation_matrix`` maps **world to camera** (``p_cam = M @ p_world``): with it, the
  world pose ``inv(M) @ pose`` of every (static) object is constant over a video to ~0.2 mm,
  whereas ``M @ pose`` drifts by centimetres. :attr:`Frame.cam_pose` is therefore ``inv(M)``
  (camera-to-world).
* In YCB-Video each object class appears at most once per frame, so the class mask of
  ``label.png`` is the instance's visible mask.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from twingap.data.frame import Frame
from twingap.data.images import read_image
from twingap.errors import TwingapError

_VIDEO_RE = re.compile(r"^\d{4}$")
_FRAME_RE = re.compile(r"^(\d{6})-meta\.mat$")


def is_ycbv_root(root: str | Path) -> bool:
    """Return True if ``root`` looks like a YCB-Video root (or a single video folder)."""
    root = Path(root)
    if not root.is_dir():
        return False
    if any(root.glob("*-meta.mat")):
        return True
    return any(p.is_dir() and _VIDEO_RE.match(p.name) and any(p.glob("*-meta.mat")) for p in root.iterdir())


def list_videos(root: str | Path) -> list[Path]:
    """Return the sorted video folders (``NNNN``) under ``root``; ``[root]`` if root is a video."""
    root = Path(root)
    if not root.is_dir():
        raise TwingapError("data folder not found", root)
    if any(root.glob("*-meta.mat")):
        return [root]
    return sorted(p for p in root.iterdir() if p.is_dir() and _VIDEO_RE.match(p.name))


def list_frames(video_dir: str | Path) -> list[str]:
    """Return the sorted frame names (``NNNNNN``) of a video folder, found via their ``-meta.mat``."""
    names = []
    for p in Path(video_dir).iterdir():
        m = _FRAME_RE.match(p.name)
        if m:
            names.append(m.group(1))
    return sorted(names)


def read_meta(path: str | Path) -> dict[str, np.ndarray]:
    """Read and validate a YCB-Video ``-meta.mat`` file.

    Args:
        path: The ``NNNNNN-meta.mat`` file.

    Returns:
        A dict with ``cls_indexes`` (N,) int64, ``poses`` (N, 4, 4) float64 object-to-camera
        (metres), ``K`` (3, 3) float64, ``factor_depth`` float (depth units per metre) and
        ``world_to_cam`` (4, 4) float64 or None.

    Raises:
        TwingapError: If the file is missing, unreadable, or lacks or has inconsistent fields.
    """
    import scipy.io

    path = Path(path)
    if not path.is_file():
        raise TwingapError("meta file not found", path)
    try:
        mat = scipy.io.loadmat(str(path))
    except Exception as exc:  # scipy raises many types (ValueError, TypeError, MatReadError)
        raise TwingapError(f"unreadable meta.mat ({type(exc).__name__}: {exc})", path) from exc
    for key in ("cls_indexes", "poses", "intrinsic_matrix"):
        if key not in mat:
            raise TwingapError(f"meta.mat has no '{key}'", path)
    cls = np.asarray(mat["cls_indexes"]).astype(np.int64).ravel()
    poses = np.asarray(mat["poses"], dtype=np.float64)
    if poses.ndim == 2:
        poses = poses[:, :, None]
    if poses.shape[:2] != (3, 4) or poses.shape[2] != len(cls):
        raise TwingapError(
            f"meta.mat 'poses' has shape {poses.shape}, expected (3, 4, {len(cls)}) for {len(cls)} objects",
            path,
        )
    if len(set(cls.tolist())) != len(cls):
        raise TwingapError(f"meta.mat lists a class twice: {cls.tolist()}", path)
    if np.any(cls < 1):
        raise TwingapError(f"meta.mat 'cls_indexes' must be >= 1, got {cls.tolist()}", path)
    poses44 = np.zeros((len(cls), 4, 4), dtype=np.float64)
    poses44[:, :3, :] = np.transpose(poses, (2, 0, 1))
    poses44[:, 3, 3] = 1.0
    K = np.asarray(mat["intrinsic_matrix"], dtype=np.float64)
    if K.shape != (3, 3):
        raise TwingapError(f"meta.mat 'intrinsic_matrix' has shape {K.shape}, expected (3, 3)", path)
    factor = float(np.asarray(mat.get("factor_depth", 10000.0)).ravel()[0])
    if not factor > 0:
        raise TwingapError(f"meta.mat 'factor_depth' must be positive, got {factor}", path)
    world_to_cam = None
    if "rotation_translation_matrix" in mat:
        rt = np.asarray(mat["rotation_translation_matrix"], dtype=np.float64)
        if rt.shape == (3, 4):
            world_to_cam = np.eye(4)
            world_to_cam[:3, :] = rt
    return {
        "cls_indexes": cls,
        "poses": poses44,
        "K": K,
        "factor_depth": factor,
        "world_to_cam": world_to_cam,
    }


def _image_size(path: Path) -> tuple[int, int]:
    """Return (width, height) of an image from its header, with clear errors."""
    if not path.is_file():
        raise TwingapError("image file not found", path)
    try:
        with Image.open(path) as im:
            return im.size
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise TwingapError(f"unreadable image ({exc})", path) from exc


def _read_boxes(path: Path) -> dict[str, list[float]]:
    """Parse ``-box.txt`` into {name: [x1, y1, x2, y2]} (pixels); {} if absent or malformed."""
    out: dict[str, list[float]] = {}
    if not path.is_file():
        return out
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split()
        if len(parts) == 5:
            try:
                out[parts[0]] = [float(v) for v in parts[1:]]
            except ValueError:
                continue
    return out


def load_ycbv_frame(video_dir: str | Path, name: str, load_depth: bool = True) -> Frame:
    """Read one YCB-Video frame.

    Args:
        video_dir: The video folder (``root/NNNN``).
        name: The frame name, e.g. ``"000001"``.
        load_depth: Read ``-depth.png`` into :attr:`Frame.depth` (metres, float32).

    Returns:
        The :class:`Frame`; masks (N, H, W) bool are the class masks of ``-label.png``.

    Raises:
        TwingapError: On a missing/unreadable image, a bad meta.mat, a size mismatch, or label
            values that are not among the frame's objects.
    """
    video_dir = Path(video_dir)
    prefix = video_dir / name
    meta_path = Path(f"{prefix}-meta.mat")
    color_path = Path(f"{prefix}-color.png")
    label_path = Path(f"{prefix}-label.png")
    depth_path = Path(f"{prefix}-depth.png")
    meta = read_meta(meta_path)
    width, height = _image_size(color_path)

    label = read_image(label_path)
    if label.ndim != 2:
        raise TwingapError(f"label image must be single-channel, got shape {label.shape}", label_path)
    if label.shape != (height, width):
        raise TwingapError(
            f"label image is {label.shape[1]}x{label.shape[0]} but the colour image is {width}x{height}",
            label_path,
        )
    cls = meta["cls_indexes"]
    present = np.unique(label)
    unknown = sorted(set(present.tolist()) - {0} - set(cls.tolist()))
    if unknown:
        raise TwingapError(
            f"label values {unknown} are not among the frame's objects {cls.tolist()} "
            f"(cls_indexes of {meta_path.name})",
            label_path,
        )
    masks = label[None, :, :] == cls[:, None, None].astype(label.dtype)

    depth = None
    if load_depth:
        raw = read_image(depth_path)
        if raw.shape != (height, width):
            raise TwingapError(
                f"depth image is {raw.shape[1::-1]} but the colour image is {width}x{height}", depth_path
            )
        depth = (raw.astype(np.float32) / np.float32(meta["factor_depth"])).astype(np.float32)

    cam_pose = None if meta["world_to_cam"] is None else np.linalg.inv(meta["world_to_cam"])
    boxes = _read_boxes(Path(f"{prefix}-box.txt"))  # informative only; masks are the truth
    return Frame(
        frame_id=f"{video_dir.name}/{name}",
        scene_id=video_dir.name,
        rgb_path=color_path,
        K=meta["K"],
        width=int(width),
        height=int(height),
        obj_ids=cls.astype(np.int64),
        poses=meta["poses"],
        masks=np.ascontiguousarray(masks),
        depth=depth,
        cam_pose=cam_pose,
        source=f"ycbv:{video_dir.parent}",
        extra={"boxes_xyxy": boxes, "factor_depth": meta["factor_depth"], "layout": "ycbv"},
    )


def load_ycbv(
    root: str | Path,
    videos: list[str] | None = None,
    load_depth: bool = True,
    frames: list[str] | None = None,
) -> list[Frame]:
    """Read all annotated frames of a YCB-Video root, sorted by video then frame.

    Args:
        root: Folder holding video folders ``NNNN/`` (or a single video folder).
        videos: Restrict to these video names (e.g. ``["0000", "0002"]``); None = all.
        load_depth: Read depth maps (metres). Turn off to save time and memory.
        frames: Restrict to these frame names (e.g. ``["000001"]``) in every video; None = all.

    Returns:
        The list of :class:`~twingap.data.frame.Frame` (poses object-to-camera in metres,
        OpenCV camera; ``cam_pose`` camera-to-world).

    Raises:
        TwingapError: If the root or a requested video is missing, no frame is found, or a
            frame is invalid (see :func:`load_ycbv_frame`).
    """
    root = Path(root)
    video_dirs = list_videos(root)
    if videos is not None:
        wanted = [str(v) for v in videos]
        by_name = {p.name: p for p in video_dirs}
        missing = [v for v in wanted if v not in by_name]
        if missing:
            raise TwingapError(f"video(s) {missing} not found (have {sorted(by_name)})", root)
        video_dirs = [by_name[v] for v in wanted]
    out: list[Frame] = []
    for vdir in video_dirs:
        names = list_frames(vdir)
        if frames is not None:
            names = [n for n in names if n in set(frames)]
        out.extend(load_ycbv_frame(vdir, n, load_depth=load_depth) for n in names)
    if not out:
        raise TwingapError("no YCB-Video frames (NNNN/NNNNNN-meta.mat) found", root)
    return out
