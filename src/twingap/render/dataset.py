"""Render a list of :class:`SceneSpec` into a synthetic dataset folder (COCO + BOP), resumably.

Layout of ``out_dir``::

    manifest.json            scenes hash, condition, seed, backend, versions, model hashes, counts
    images/000000.png ...    RGB (8-bit PNG, deterministic bytes), one per scene, in list order
    ann/000000.json ...      per-image annotation sidecar (written last: marks the image done)
    coco.json                COCO instances (visible-mask RLE, boxes from visible masks)
    bop/000000/              BOP scenewise layout, 1000 images per BOP scene:
        scene_camera.json    cam_K, depth_scale (mm per unit), cam_R_w2c, cam_t_w2c (mm)
        scene_gt.json        cam_R_m2c, cam_t_m2c (mm), obj_id
        scene_gt_info.json   bbox_visib, px_count_visib, px_count_valid
        rgb/ depth/ mask_visib/ (masks: 1-bit PNG, 0/1; "> 0" is the mask)

COCO follows the real ground truth's rule (:func:`twingap.data.coco.instances_to_coco`): image
``i`` (0-based scene index) has id ``i + 1`` and ``file_name`` ``images/{i:06d}.png``;
``category_id`` is ``ObjectSpec.obj_id`` (the model library's ids); instances with few visible pixels are
``iscrowd``/``ignore``. BOP depth is uint16 with ``depth_mm = value * depth_scale`` (0.1 mm,
or 1 mm for an image whose depth exceeds 6.5 m).

Every file is written atomically; an image counts as done when its sidecar exists, so a killed
run continues where it stopped (``render_dataset`` again with the same arguments). A folder
holding a different dataset (other scenes, condition, seed or models) is refused.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from twingap.assets.asset import Asset, ModelLibrary
from twingap.errors import TwingapError
from twingap.io import atomic_path, dumps_json, read_json, write_json_atomic, write_text_atomic
from twingap.provenance import package_versions
from twingap.render.scene import SceneSpec, scenes_hash

MANIFEST_SCHEMA = 1
IMAGES_PER_BOP_SCENE = 1000
#: PNG zlib level: fast, still lossless and deterministic.
PNG_LEVEL = 1


# ----------------------------------------------------------------------------- conditions
def resolve_condition(condition: Any) -> Any | None:
    """Return the Condition for ``condition`` (a Condition or a name); None for clean.

    ``None``, ``"clean"`` and any level-0 condition all mean the unmodified assets.

    Raises:
        TwingapError: If the name is unknown.
    """
    if condition is None or condition == "clean":
        return None
    if isinstance(condition, str):
        from twingap.artifacts.base import get_condition

        condition = get_condition(condition)
    if condition.family == "clean" or (condition.level == 0 and not condition.render_params):
        return None
    return condition


def condition_dict(condition: Any | None) -> dict:
    """JSON form of a condition (the catalogue's ``clean`` entry for None)."""
    if condition is not None:
        return condition.to_dict()
    try:
        from twingap.artifacts.base import get_condition

        return get_condition("clean").to_dict()
    except (ImportError, TwingapError):
        return {"name": "clean", "family": "clean", "level": 0, "params": {}, "render_params": {}}


def apply_condition_once(asset: Asset, condition: Any | None, seed: int) -> Asset:
    """Apply ``condition`` to an asset (identity for None / clean)."""
    if condition is None:
        return asset
    from twingap.artifacts.base import apply_condition

    return apply_condition(asset, condition, seed)


@dataclass
class _Job:
    """Everything a worker needs (picklable)."""

    scenes: list[dict]
    assets: dict[str, Asset]
    out_dir: str
    backend: str
    renderer_options: dict
    full_masks: bool = False


def _asset_key(model: str, condition_name: str | None) -> str:
    return model if condition_name is None else f"{model}@{condition_name}"


def prepare_assets(
    scenes: Sequence[SceneSpec],
    library: ModelLibrary,
    condition: Any | None,
    seed: int,
    progress: bool = False,
) -> tuple[dict[str, Asset], list[SceneSpec]]:
    """Load and damage every needed model once; return assets and render-ready scenes.

    Objects with their own ``ObjectSpec.condition`` get that condition; the others get the
    dataset's. The returned scenes reference the assets by key (``model`` or
    ``model@condition``) and have the condition's ``ambient_add`` added to their ambient.

    Raises:
        TwingapError: If a model is not in the library or a condition is unknown.
    """

    def object_condition(obj) -> Any | None:
        if obj.condition is None:
            return condition
        if condition is not None and obj.condition == condition.name:
            return condition
        return resolve_condition(obj.condition)

    ambient_add = 0.0 if condition is None else float(condition.render_params.get("ambient_add", 0.0))
    out = []
    needed: dict[str, tuple[str, Any]] = {}
    for sc in scenes:
        d = sc.to_dict()
        d["ambient"] = float(sc.ambient) + ambient_add
        for od, obj in zip(d["objects"], sc.objects, strict=True):
            cond = object_condition(obj)
            key = _asset_key(obj.model, None if cond is None else cond.name)
            needed.setdefault(key, (obj.model, cond))
            od["model"] = key
        out.append(SceneSpec.from_dict(d))
    from rich.progress import track

    assets: dict[str, Asset] = {}
    items = sorted(needed.items())
    for key, (model, cond) in track(items, description="preparing models", disable=not progress):
        assets[key] = apply_condition_once(library.load(model), cond, seed)
    return assets, out


# ----------------------------------------------------------------------------- writing one image
def _png_bytes(arr: np.ndarray) -> bytes:
    """PNG bytes of an (H, W, 3) uint8 RGB or (H, W) uint16 image (zlib level 1, RLE strategy)."""
    import cv2

    if arr.ndim == 3:
        arr = arr[..., ::-1]  # OpenCV writes BGR
    params = [cv2.IMWRITE_PNG_COMPRESSION, PNG_LEVEL, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(arr), params)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def _mask_png_bytes(mask: np.ndarray) -> bytes:
    """1-bit PNG of an (H, W) bool mask (reads back as bool / 0-1; ``> 0`` gives the mask)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(mask, dtype=bool)).save(buf, format="PNG", compress_level=PNG_LEVEL)
    return buf.getvalue()


def _write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _bbox_visib(mask: np.ndarray) -> list[int]:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        return [-1, -1, -1, -1]
    x0, y0 = int(cols[0]), int(rows[0])
    return [x0, y0, int(cols[-1]) - x0 + 1, int(rows[-1]) - y0 + 1]


def _floats(a: np.ndarray) -> list[float]:
    return [float(v) for v in np.asarray(a, dtype=np.float64).ravel()]


def image_paths(out_dir: Path, i: int) -> dict[str, Path]:
    """Paths of image ``i``'s files (COCO image, sidecar, BOP scene folder)."""
    s, im = divmod(i, IMAGES_PER_BOP_SCENE)
    bop = out_dir / "bop" / f"{s:06d}"
    return {
        "image": out_dir / "images" / f"{i:06d}.png",
        "sidecar": out_dir / "ann" / f"{i:06d}.json",
        "bop": bop,
        "bop_rgb": bop / "rgb" / f"{im:06d}.png",
        "bop_depth": bop / "depth" / f"{im:06d}.png",
    }


def write_image(
    out_dir: Path, i: int, scene: SceneSpec, obj_ids: list[int], result, full_masks: np.ndarray | None = None
) -> None:
    """Write image ``i``'s files and, last, its annotation sidecar (all atomically).

    Args:
        out_dir: Dataset folder.
        i: Image index (scene index).
        scene: The rendered scene (poses for BOP).
        obj_ids: Class id of each object.
        result: The :class:`~twingap.render.backend.RenderResult`.
        full_masks: Optional (N, H, W) bool amodal masks (BOP ``mask/``, ``px_count_all``,
            ``bbox_obj``, ``visib_fract``).
    """
    from twingap.data.coco import instances_to_coco

    p = image_paths(out_dir, i)
    png = _png_bytes(result.rgb)
    _write_bytes(p["image"], png)
    _write_bytes(p["bop_rgb"], png)
    depth = result.depth.astype(np.float64)
    depth_scale = 0.1 if depth.max(initial=0) * 1000 / 0.1 < 65535 else 1.0
    units = np.round(depth * (1000.0 / depth_scale))
    if units.max(initial=0) > 65535:
        raise TwingapError(f"scene {scene.scene_id!r}: depth beyond 65 m does not fit BOP uint16 depth")
    _write_bytes(p["bop_depth"], _png_bytes(units.astype(np.uint16)))
    ids = result.instance_ids
    n = len(scene.objects)
    masks = np.stack([ids == k + 1 for k in range(n)]) if n else np.zeros((0, *ids.shape), bool)
    _, im_id = divmod(i, IMAGES_PER_BOP_SCENE)
    info = []
    for k in range(n):
        m = masks[k]
        _write_bytes(p["bop"] / "mask_visib" / f"{im_id:06d}_{k:06d}.png", _mask_png_bytes(m))
        count = int(m.sum())
        entry = {"bbox_visib": _bbox_visib(m), "px_count_visib": count, "px_count_valid": count}
        if full_masks is not None:
            fm = full_masks[k] | m
            _write_bytes(p["bop"] / "mask" / f"{im_id:06d}_{k:06d}.png", _mask_png_bytes(fm))
            n_all = int(fm.sum())
            entry.update(
                bbox_obj=_bbox_visib(fm), px_count_all=n_all, visib_fract=count / n_all if n_all else 0.0
            )
        info.append(entry)
    cam = scene.camera
    sidecar = {
        "index": i,
        "scene_id": scene.scene_id,
        "source_frame": scene.source_frame,
        "image": {
            "id": i + 1,
            "file_name": f"images/{i:06d}.png",
            "width": cam.width,
            "height": cam.height,
            "scene_id": scene.scene_id,
        },
        "annotations": instances_to_coco(masks, obj_ids, image_id=i + 1, ann_id_start=1),
        "bop_camera": {
            "cam_K": _floats(cam.K),
            "depth_scale": depth_scale,
            "cam_R_w2c": _floats(cam.cam_T_world[:3, :3]),
            "cam_t_w2c": _floats(cam.cam_T_world[:3, 3] * 1000.0),
        },
        "bop_gt": [
            {
                "cam_R_m2c": _floats(scene.obj_T_cam(k)[:3, :3]),
                "cam_t_m2c": _floats(scene.obj_T_cam(k)[:3, 3] * 1000.0),
                "obj_id": int(obj_ids[k]),
            }
            for k in range(n)
        ],
        "bop_gt_info": info,
    }
    write_text_atomic(p["sidecar"], dumps_json(sidecar, indent=None) + "\n")


# ----------------------------------------------------------------------------- workers
_WORKER: dict[str, Any] = {}


def _worker_init(job: _Job, gl_threads: int | None = None) -> None:
    from twingap.render.backend import get_renderer

    if gl_threads is not None:  # llvmpipe reads it when the context is created
        os.environ.setdefault("LP_NUM_THREADS", str(gl_threads))

    _WORKER["scenes"] = job.scenes
    _WORKER["assets"] = job.assets
    _WORKER["out_dir"] = Path(job.out_dir)
    _WORKER["full_masks"] = job.full_masks
    first = job.scenes[0]["camera"] if job.scenes else {"width": 640, "height": 480}
    _WORKER["renderer"] = get_renderer(
        job.backend, width=first["width"], height=first["height"], **job.renderer_options
    )


def _pool_worker_init(parent_pid: int, job: _Job, gl_threads: int | None = None) -> None:
    """A pool worker's start: end with the parent process, then :func:`_worker_init`."""
    from twingap.procguard import die_with_parent

    die_with_parent(parent_pid)
    _worker_init(job, gl_threads)


def _worker_render(i: int) -> int:
    d = _WORKER["scenes"][i]
    scene = SceneSpec.from_dict(d)
    renderer = _WORKER["renderer"]
    result = renderer.render(scene, _WORKER["assets"])
    full = renderer.render_full_masks(scene, _WORKER["assets"]) if _WORKER["full_masks"] else None
    obj_ids = [int(o["obj_id"]) for o in d["objects"]]
    write_image(_WORKER["out_dir"], i, scene, obj_ids, result, full)
    return i


def _is_done(out_dir: Path, i: int) -> bool:
    p = image_paths(out_dir, i)
    return p["sidecar"].is_file() and p["image"].is_file()


# ----------------------------------------------------------------------------- manifest
_IDENTITY_KEYS = (
    "scenes_hash",
    "num_scenes",
    "condition",
    "seed",
    "backend",
    "renderer_options",
    "full_masks",
    "models",
)


def _check_manifest(out_dir: Path, manifest: dict) -> None:
    path = out_dir / "manifest.json"
    if not path.is_file():
        if (out_dir / "images").is_dir() and any((out_dir / "images").iterdir()):
            raise TwingapError("folder holds images but no manifest.json; use an empty folder", out_dir)
        return
    old = read_json(path)
    diff = [k for k in _IDENTITY_KEYS if old.get(k) != manifest[k]]
    if diff:
        raise TwingapError(
            f"folder holds a different dataset ({', '.join(diff)} differ); "
            "use a new output folder or delete this one",
            out_dir,
        )


# ----------------------------------------------------------------------------- assembly
def assemble(out_dir: Path, n: int, categories: dict[int, str] | None = None) -> dict[str, int]:
    """Build ``coco.json`` and the BOP scene JSON files from the per-image sidecars.

    ``categories`` (id -> name, the model library's) names the COCO categories; ids without a
    name are listed as ``obj_XXXXXX``.

    Returns:
        Counts: ``images``, ``annotations``, ``ignored`` (iscrowd) annotations.
    """
    from twingap.data.coco import coco_categories

    images, anns = [], []
    bop: dict[int, dict[str, dict]] = {}
    for i in range(n):
        side = read_json(image_paths(out_dir, i)["sidecar"])
        images.append(side["image"])
        for a in side["annotations"]:
            anns.append({**a, "id": len(anns) + 1})
        s, im = divmod(i, IMAGES_PER_BOP_SCENE)
        b = bop.setdefault(s, {"cam": {}, "gt": {}, "info": {}})
        b["cam"][str(im)] = side["bop_camera"]
        b["gt"][str(im)] = side["bop_gt"]
        b["info"][str(im)] = side["bop_gt_info"]
    coco = {
        "info": {"description": "twingap synthetic dataset", "version": "1"},
        "images": images,
        "annotations": anns,
        "categories": coco_categories(categories, sorted({int(a["category_id"]) for a in anns})),
    }
    write_json_atomic(out_dir / "coco.json", coco, indent=None)
    for s, b in sorted(bop.items()):
        sdir = out_dir / "bop" / f"{s:06d}"
        write_json_atomic(sdir / "scene_camera.json", b["cam"])
        write_json_atomic(sdir / "scene_gt.json", b["gt"])
        write_json_atomic(sdir / "scene_gt_info.json", b["info"])
    return {
        "images": len(images),
        "annotations": len(anns),
        "ignored_annotations": sum(int(a.get("iscrowd", 0)) for a in anns),
    }


# ----------------------------------------------------------------------------- entry point
def render_dataset(
    scenes: Sequence[SceneSpec],
    out_dir: str | Path,
    library: ModelLibrary,
    condition: Any = None,
    seed: int = 0,
    workers: int = 1,
    backend: str = "raster",
    progress: bool = True,
    renderer_options: dict | None = None,
    full_masks: bool = False,
) -> Path:
    """Render ``scenes`` under an artifact condition into a dataset folder (see module doc).

    Args:
        scenes: The scenes, one image each, in order (image ``i`` = ``scenes[i]``).
        out_dir: Output folder (created; resumed if it holds the same dataset).
        library: Where the clean models come from.
        condition: A ``twingap.artifacts.base.Condition``, a condition name, or None (clean).
        seed: Study seed passed to the artifact ops (same seed -> same damage).
        workers: Rendering processes (each with its own GL context); 1 renders in-process.
        backend: Renderer backend name (:func:`twingap.render.backend.get_renderer`).
        progress: Show a rich progress bar.
        renderer_options: Extra backend options (raster: ``{"msaa": 1}`` renders without
            anti-aliasing, about 3x faster on llvmpipe); recorded in the manifest.
        full_masks: Also render each object alone for BOP's amodal ``mask/``, ``bbox_obj``,
            ``px_count_all`` and ``visib_fract`` (one extra cheap pass per object).

    Returns:
        ``out_dir`` as a Path.

    Raises:
        TwingapError: On an unknown model or condition, invalid scenes, or an ``out_dir`` that
            holds a different dataset.
    """
    from twingap.render.backend import check_backend

    out_dir = Path(out_dir)
    scenes = list(scenes)
    # Fail before writing a manifest or spawning workers (a missing bpy would otherwise make
    # every pool worker die and respawn).
    check_backend(backend)
    if backend == "cycles":
        workers = 1  # Cycles already uses every core; one Blender worker process renders the batch
    options = dict(renderer_options or {})
    if backend == "raster":
        from twingap.render.raster import MSAA_SAMPLES

        options = {"msaa": MSAA_SAMPLES, **options}
    cond = resolve_condition(condition)
    assets, render_scenes = prepare_assets(scenes, library, cond, seed, progress=progress)
    manifest: dict[str, Any] = {
        "schema": MANIFEST_SCHEMA,
        "scenes_hash": scenes_hash(scenes),
        "num_scenes": len(scenes),
        "condition": condition_dict(cond),
        "seed": int(seed),
        "backend": backend,
        "renderer_options": options,
        "full_masks": bool(full_masks),
        "models": {k: a.content_hash for k, a in sorted(assets.items())},
        "versions": package_versions(),
        "complete": False,
    }
    _check_manifest(out_dir, manifest)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_dir / "manifest.json", manifest)

    todo = [i for i in range(len(scenes)) if not _is_done(out_dir, i)]
    if full_masks and backend != "raster":
        raise TwingapError(f"full (amodal) masks need the raster backend, not {backend!r}")
    job = _Job([s.to_dict() for s in render_scenes], assets, str(out_dir), backend, options, bool(full_masks))
    _run(job, todo, workers, progress, len(scenes))
    counts = assemble(out_dir, len(scenes), library.categories())
    manifest.update(complete=True, counts=counts)
    write_json_atomic(out_dir / "manifest.json", manifest)
    return out_dir


def _run(job: _Job, todo: list[int], workers: int, progress: bool, total: int) -> None:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("rendering"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, disable=not progress, transient=False) as bar:
        task = bar.add_task("render", total=total, completed=total - len(todo))
        if not todo:
            return
        if workers <= 1 or len(todo) == 1:
            _worker_init(job)
            try:
                for i in todo:
                    _worker_render(i)
                    bar.advance(task)
            finally:
                renderer = _WORKER.pop("renderer")
                for method in ("release", "close"):
                    if hasattr(renderer, method):
                        getattr(renderer, method)()
                        break
                _WORKER.clear()
            return
        import multiprocessing as mp

        ctx = mp.get_context("spawn")  # no GL state or threads inherited from the parent
        procs = min(workers, len(todo))
        gl_threads = max(1, default_workers() // procs)  # share the cores instead of oversubscribing
        init_args = (os.getpid(), job, gl_threads)
        with ctx.Pool(processes=procs, initializer=_pool_worker_init, initargs=init_args) as pool:
            for _ in pool.imap_unordered(_worker_render, todo, chunksize=1):
                bar.advance(task)


def clear_dataset(out_dir: str | Path) -> None:
    """Delete a dataset folder written by :func:`render_dataset` (refuses other folders)."""
    out_dir = Path(out_dir)
    if not (out_dir / "manifest.json").is_file():
        raise TwingapError("not a twingap dataset folder (no manifest.json)", out_dir)
    shutil.rmtree(out_dir)


def default_workers() -> int:
    """A sensible default worker count (number of usable cores)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)
