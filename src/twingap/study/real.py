"""The study's real stages: twins -> training scenes -> render -> Mask R-CNN -> COCO AP on real frames.

Each method wraps one stage module (:mod:`twingap.render`, :mod:`twingap.train`,
:mod:`twingap.evaluate`) and talks to the runner through files only.
"""

from __future__ import annotations

import contextlib
import copy
import json
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from twingap.errors import TwingapError
from twingap.io import dumps_json, read_json, write_json_atomic
from twingap.study.stages import Stages, TrainFailed

if TYPE_CHECKING:
    from twingap.study.config import StudyConfig, TestSetConfig


def _evenly(items: list, n: int) -> list:
    """At most ``n`` items, evenly spaced (all when ``n`` is 0 or larger than the list)."""
    if n <= 0 or n >= len(items):
        return list(items)
    idx = np.linspace(0, len(items) - 1, n).round().astype(int)
    return [items[i] for i in idx]


def in_subprocess(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run ``fn(*args, **kwargs)`` in a fresh spawned process and return its result.

    OpenGL (EGL) rendering and torch training in one process crashed here (a segfault in libc
    once training started after a render), so every stage that renders runs in its own process.
    The process ends when this one dies (:func:`twingap.procguard.die_with_parent`).
    """
    import multiprocessing as mp
    import os
    from concurrent.futures import ProcessPoolExecutor

    from twingap.procguard import die_with_parent

    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=ctx, initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
        return pool.submit(fn, *args, **kwargs).result()


def _valid_mean(x: np.ndarray) -> float:
    """Mean of the precision entries that exist (COCO marks missing ones -1); NaN if none."""
    v = x[x > -1]
    return float(v.mean()) if v.size else float("nan")


class RealPerImage:
    """Adapter of :class:`twingap.evaluate.bootstrap.PerImageEval` to the study's interface."""

    def __init__(self, pe: Any) -> None:
        self.pe = pe
        self.n_images = pe.num_images

    def ap_weights(self, weights: np.ndarray) -> np.ndarray:
        """(B,) COCO AP@[.5:.95] for (B, I) image draw counts."""
        return self.pe.ap_from_weights(np.atleast_2d(weights))[0]

    def _precision(self) -> np.ndarray:
        """(T, R, K) interpolated precision with every image once."""
        return self.pe.precision(np.ones((1, self.n_images), dtype=np.int64))[0]

    def metrics(self) -> dict[str, float]:
        """AP, AP50, AP75 on every image once (equal to pycocotools' summary)."""
        P = self._precision()
        thr = np.asarray(self.pe.iou_thrs)
        t50, t75 = int(np.argmin(np.abs(thr - 0.5))), int(np.argmin(np.abs(thr - 0.75)))
        return {"AP": _valid_mean(P), "AP50": _valid_mean(P[t50]), "AP75": _valid_mean(P[t75])}

    def per_category(self) -> dict[int, float]:
        """COCO AP@[.5:.95] of each scored category (NaN for a category without ground truth)."""
        P = self._precision()
        return {int(cid): _valid_mean(P[..., k]) for k, cid in enumerate(self.pe.cat_ids)}


class RealStages(Stages):
    """The real twingap stages (see the module docstring)."""

    name = "real"
    is_fake = False

    # ------------------------------------------------------------------ scenes (once per study)
    def prepare_scenes(self, cfg: StudyConfig, scenes_dir: Path) -> dict[str, Any]:
        """Twin the training videos, calibrate them, and sample + compose the training scenes.

        Writes ``scenes_dir/env/<video>/`` (backgrounds, calibration), ``twins.json`` and
        ``train_scenes.json``. Runs in a subprocess (it renders; see :func:`in_subprocess`).
        """
        return in_subprocess(self._prepare_scenes, cfg, scenes_dir)

    def _prepare_scenes(self, cfg: StudyConfig, scenes_dir: Path) -> dict[str, Any]:
        from twingap.assets.asset import ModelLibrary
        from twingap.data.loader import load_frames
        from twingap.render.calibration import apply_calibration, calibrate_video
        from twingap.render.raster import RasterRenderer
        from twingap.render.scene import save_scenes, scenes_hash
        from twingap.render.twin import build_twins, group_by_video, scale_scene

        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        frames = load_frames(cfg.frames_root_path(), videos=list(cfg.twin_videos))
        if cfg.scenes.max_twin_frames:
            groups = group_by_video(frames)
            frames = [f for v in sorted(groups) for f in _evenly(groups[v], cfg.scenes.max_twin_frames)]
        library = ModelLibrary(cfg.models_root_path())
        twins, envs = build_twins(frames, library, scenes_dir / "env", background="image", progress=False)
        timings["twin environments"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        assets = {n: library.load(n) for n in sorted({o.model for s in twins for o in s.objects})}
        by_id = dict(zip([f.frame_id for f in frames], twins, strict=True))
        cals: dict[str, dict] = {}
        renderer = RasterRenderer() if cfg.scenes.calibrate else None
        try:
            for video, fs in group_by_video(frames).items():
                if renderer is None:
                    break
                cal_path = envs[video].folder / "calibration.json"
                if cal_path.is_file():
                    cals[video] = read_json(cal_path)
                    continue
                cals[video] = calibrate_video(
                    fs, [by_id[f.frame_id] for f in fs], assets, renderer, scale=0.5
                )
                write_json_atomic(cal_path, cals[video])
        finally:
            if renderer is not None:
                renderer.release()
        if cals:
            twins = [apply_calibration(t, cals[f.scene_id]) for t, f in zip(twins, frames, strict=True)]
        scale = cfg.scenes.width / frames[0].width
        twins = [scale_scene(t, scale) for t in twins]
        save_scenes(scenes_dir / "twins.json", twins)
        timings["calibration"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        scenes = self._training_scenes(cfg, twins, library, scenes_dir)
        for i, s in enumerate(scenes):  # the same scene seeds for every condition
            s.seed = int(cfg.scenes.seed) * 1_000_003 + i
        save_scenes(scenes_dir / "train_scenes.json", scenes)
        timings["sampling"] = time.perf_counter() - t0
        cats = sorted({o.obj_id for s in scenes for o in s.objects})
        names = library.categories()
        return {
            "category_names": {str(c): names.get(c, f"obj_{c:06d}") for c in cats},
            "library": {"root": str(library.root), "kind": library.kind, "notes": list(library.notes)},
            "n_scenes": len(scenes),
            "n_twins": len(twins),
            "kinds": {
                k: sum(s.meta.get("kind") == k for s in scenes) for k in {s.meta.get("kind") for s in scenes}
            },
            "categories": cats,
            "scenes_hash": scenes_hash(scenes),
            "timings": timings,
        }

    def _composed_objects(self, cfg: StudyConfig, library: Any) -> list[str]:
        spec = cfg.scenes.composed_objects
        if spec == "all":
            return library.names
        if spec == "test":
            ids: set[int] = set()
            for ts in cfg.test_sets:
                ids |= self._test_set_ids(cfg, ts, library)
            names = []
            for i in sorted(ids):
                with contextlib.suppress(TwingapError):
                    names.append(library.name_of(i))
            return names
        unknown = [n for n in spec if n not in library.names]
        if unknown:
            raise TwingapError(f"scenes.composed_objects: unknown model(s) {unknown}")
        return list(spec)

    def _training_scenes(self, cfg: StudyConfig, twins: list, library: Any, scenes_dir: Path) -> list:
        """The twins themselves, views sampled around them, and composed layouts.

        ``twins`` are already scaled to the study's image size, so both samplers run at scale 1.
        """
        from twingap.render.sampling import sample_scenes

        seed = int(cfg.scenes.seed)
        scenes = []
        if cfg.scenes.include_twins:
            for t in twins:
                c = copy.deepcopy(t)
                c.meta["kind"] = "twin"
                scenes.append(c)
        if cfg.scenes.twin_views:
            sampled = list(sample_scenes(twins, cfg.scenes.twin_views, seed=seed))
            for s in sampled:
                s.meta["kind"] = "sampled"
            scenes += sampled
        if cfg.scenes.composed:
            from twingap.render.compose import compose_scenes

            composed = list(
                compose_scenes(
                    twins,
                    library,
                    cfg.scenes.composed,
                    seed=seed + 1,
                    objects=self._composed_objects(cfg, library),
                    n_objects=tuple(cfg.scenes.objects_per_scene),
                    cache_dir=scenes_dir / "stable_poses",
                )
            )
            for s in composed:
                s.meta["kind"] = "composed"
            scenes += composed
        return scenes

    # ------------------------------------------------------------------ test sets
    def _test_set_ids(self, cfg: StudyConfig, ts: TestSetConfig, library: Any) -> set[int]:
        """Model ids annotated in a test set (COCO categories matched to the library)."""
        if ts.kind == "coco":
            from twingap.data.coco_real import load_coco_test_set

            cts = load_coco_test_set(
                ts.annotations, cfg.test_set_root(ts), library.categories(), ts.category_map, ts.match
            )
            return {int(a["category_id"]) for a in cts.gt["annotations"]}
        from twingap.data.loader import load_frames

        frames = load_frames(cfg.test_set_root(ts), load_depth=False, **self._videos_kw(cfg, ts))
        return {int(i) for f in frames for i in f.obj_ids}

    @staticmethod
    def _videos_kw(cfg: StudyConfig, ts: TestSetConfig) -> dict[str, Any]:
        from twingap.data.loader import detect_layout

        videos = cfg.test_set_videos(ts)
        if videos is None:
            return {}
        return {"scenes": videos} if detect_layout(cfg.test_set_root(ts)) == "bop" else {"videos": videos}

    def prepare_test_set(self, cfg: StudyConfig, ts: TestSetConfig, out_dir: Path) -> dict[str, Any]:
        """COCO ground truth of the real frames (``gt.json``) and their image list (``frames.json``).

        Category ids and names are the model library's; a ``coco`` test set's categories are matched
        to it (:func:`twingap.study.byod.prepare_coco_test_set`).
        """
        from twingap.assets.asset import ModelLibrary
        from twingap.data.coco import assign_image_ids, frames_to_coco
        from twingap.data.loader import load_frames

        names = ModelLibrary(cfg.models_root_path()).categories()
        if ts.kind == "coco":
            from twingap.study.byod import prepare_coco_test_set

            return prepare_coco_test_set(cfg, ts, out_dir, names)
        frames = load_frames(cfg.test_set_root(ts), load_depth=False, **self._videos_kw(cfg, ts))
        if ts.max_frames:
            by_video: dict[str, list] = {}
            for f in frames:
                by_video.setdefault(f.scene_id, []).append(f)
            frames = [f for v in sorted(by_video) for f in _evenly(by_video[v], ts.max_frames)]
        gt = frames_to_coco(frames, description=f"twingap study test set {ts.name}", categories=names)
        write_json_atomic(out_dir / "gt.json", gt, indent=None)
        ids = assign_image_ids(frames)
        write_json_atomic(
            out_dir / "frames.json",
            [
                {
                    "image_id": i,
                    "frame_id": f.frame_id,
                    "scene_id": f.scene_id,
                    "rgb_path": str(Path(f.rgb_path).resolve()),
                }
                for i, f in zip(ids, frames, strict=True)
            ],
        )
        anns = [a for a in gt["annotations"] if not a.get("iscrowd", 0)]
        cats = sorted({int(a["category_id"]) for a in anns})
        return {
            "n_images": len(frames),
            "n_instances": len(anns),
            "categories": cats,
            "category_names": {str(c): names.get(c, f"obj_{c:06d}") for c in cats},
        }

    # ------------------------------------------------------------------ per job
    def render(self, cfg: StudyConfig, scenes_dir: Path, condition: str, out_dir: Path) -> dict[str, Any]:
        """Render the training scenes under ``condition`` (COCO + images + BOP), in a subprocess."""
        return in_subprocess(self._render, cfg, scenes_dir, condition, out_dir)

    def _render(self, cfg: StudyConfig, scenes_dir: Path, condition: str, out_dir: Path) -> dict[str, Any]:
        from twingap.assets.asset import ModelLibrary
        from twingap.render.dataset import render_dataset
        from twingap.render.scene import load_scenes
        from twingap.train.data import dataset_hash

        scenes = load_scenes(scenes_dir / "train_scenes.json")
        library = ModelLibrary(cfg.models_root_path())
        workers = max(1, int(cfg.executor.cpus_per_job))
        render_dataset(
            scenes,
            out_dir,
            library,
            condition,
            seed=cfg.scenes.seed,
            workers=workers,
            progress=False,
            backend=cfg.render.backend,
            renderer_options=dict(cfg.render.options) or None,
        )
        return {"n_images": len(scenes), "dataset_hash": dataset_hash(out_dir)}

    def train_config(self, cfg: StudyConfig, seed: int) -> Any:
        """The :class:`twingap.train.config.TrainConfig` of a job."""
        from twingap.train.config import load_config

        threads = cfg.executor.threads_per_job or max(1, int(cfg.executor.cpus_per_job))
        over = {"threads": threads, **cfg.train.overrides, "seed": int(seed)}
        return load_config(cfg.train.preset, **over)

    def _model_config(self, cfg: StudyConfig, model_dir: Path, seed: int) -> Any:
        """The job's training config; clears a partial run in ``model_dir`` made with other settings."""
        tcfg = self.train_config(cfg, seed)
        old_cfg = model_dir / "config.json"
        if old_cfg.is_file() and read_json(old_cfg) != json.loads(dumps_json(tcfg.to_dict())):
            shutil.rmtree(model_dir)  # a partial run with other settings (e.g. threads) cannot resume
        return tcfg

    @staticmethod
    def _trained(tcfg: Any, model_dir: Path, final: Path) -> dict[str, Any]:
        """Keep only the final weights of a finished run; returns the train stage's information."""
        from twingap.io import sha256_bytes

        with contextlib.suppress(FileNotFoundError):
            (model_dir / "checkpoint.pt").unlink()
        fingerprint = sha256_bytes(dumps_json(read_json(model_dir / "config.json"), indent=None).encode())[
            :12
        ]
        return {
            "iterations": tcfg.iterations,
            "model": tcfg.model,
            "weights": final.name,
            "config_hash": fingerprint,
        }

    def train(self, cfg: StudyConfig, dataset_dir: Path, model_dir: Path, seed: int) -> dict[str, Any]:
        """Train (resuming from a checkpoint in ``model_dir``); keep only the final weights."""
        from twingap.train.engine import train

        tcfg = self._model_config(cfg, model_dir, seed)
        final = train(dataset_dir, model_dir, tcfg, resume=model_dir.exists(), progress=False)
        return self._trained(tcfg, model_dir, final)

    def train_group(
        self, cfg: StudyConfig, jobs: list[tuple[Path, Path, int]]
    ) -> list[dict[str, Any] | TrainFailed]:
        """Train the jobs' models together in this process (:func:`twingap.train.group.train_group`).

        Each model is the one :meth:`train` gives (bit for bit on CPU); a job fails alone.
        """
        from twingap.train.group import train_group

        tcfgs = [self._model_config(cfg, model_dir, seed) for _, model_dir, seed in jobs]
        members = [(d, m, t, m.exists()) for (d, m, _), t in zip(jobs, tcfgs, strict=True)]
        out: list[dict[str, Any] | TrainFailed] = []
        for r, tcfg in zip(train_group(members, progress=False), tcfgs, strict=True):
            if r.final is None:
                out.append(TrainFailed(r.error or "training failed", r.traceback or ""))
            else:
                out.append(self._trained(tcfg, r.run_dir, r.final))
        return out

    def trains_on_cuda(self, cfg: StudyConfig) -> bool:
        """Whether the study's training config resolves to a CUDA device on this machine."""
        from twingap.train.engine import resolve_device

        try:
            return resolve_device(self.train_config(cfg, 0).device).type == "cuda"
        except TwingapError:  # "cuda" without a GPU: the jobs fail with that error themselves
            return False

    def predict(self, cfg: StudyConfig, model_dir: Path, test_dir: Path, out_json: Path) -> dict[str, Any]:
        """COCO results of the model on a prepared test set."""
        from twingap.train.predict import predict

        frames = read_json(test_dir / "frames.json")
        items = [(int(f["image_id"]), Path(f["rgb_path"])) for f in frames]
        preds = predict(model_dir, items, progress=False)
        write_json_atomic(out_json, preds, indent=None)
        return {"n_images": len(items), "n_detections": len(preds)}

    _gt_cache: ClassVar[dict[str, dict]] = {}

    def per_image_eval(
        self, gt_path: Path, preds_path: Path, iou_type: str, cat_ids: list[int]
    ) -> RealPerImage:
        """Per-image COCO matching (pycocotools), re-accumulable for the bootstrap."""
        from twingap.evaluate.bootstrap import PerImageEval

        key = str(Path(gt_path).resolve())
        if key not in self._gt_cache:
            self._gt_cache[key] = read_json(gt_path)
        preds = read_json(preds_path)
        return RealPerImage(PerImageEval.from_coco(self._gt_cache[key], preds, iou_type, cat_ids))

    def gallery(self, cfg: StudyConfig, model: str, out_png: Path) -> bool:
        """The artifact gallery of one model (all conditions side by side), in a subprocess."""
        return in_subprocess(self._gallery, cfg, model, out_png)

    def _gallery(self, cfg: StudyConfig, model: str, out_png: Path) -> bool:
        from twingap.artifacts.gallery import render_gallery
        from twingap.assets.asset import ModelLibrary

        library = ModelLibrary(cfg.models_root_path())
        if model not in library.names:
            model = library.names[0]
        damage = render_gallery(library.load(model), out_png, seed=cfg.scenes.seed, size=200)
        write_json_atomic(out_png.with_suffix(".json"), {"model": model, "damage": damage})
        return True

    @staticmethod
    def remove_dataset(dataset_dir: Path) -> None:
        """Delete a rendered training set (after every seed of its condition has trained)."""
        shutil.rmtree(dataset_dir, ignore_errors=True)
