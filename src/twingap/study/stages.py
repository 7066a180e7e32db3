"""The study's stage calls behind one small interface, so the orchestration can be tested alone.

A :class:`Stages` object does the work of one study; the runner only moves files between its
methods. Every method reads and writes files (never in-memory handles), so a job runs the same in
this process, a process pool or a Ray worker on another machine. Implementations:

* ``"real"``: :class:`twingap.study.real.RealStages`: twins, renderer, Mask R-CNN, COCO AP.
* ``"fake"``: :class:`twingap.study.fake.FakeStages`: a fast deterministic stand-in for testing the
  orchestration and the report layout. **Its numbers are made up and never results.**
* ``"package.module:attribute"``: any other implementation (a class or an instance).
"""

from __future__ import annotations

import importlib
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from twingap.errors import TwingapError

if TYPE_CHECKING:
    import numpy as np

    from twingap.study.config import StudyConfig, TestSetConfig


class PerImage(Protocol):
    """Per-image evaluation records of one model on one test set, re-accumulable on subsets."""

    n_images: int

    def ap_weights(self, weights: np.ndarray) -> np.ndarray:
        """(B,) AP@[.5:.95] in [0, 1] for (B, n_images) int image draw counts (a bootstrap batch)."""
        ...

    def metrics(self) -> dict[str, float]:
        """AP, AP50, AP75 over all images, in [0, 1]."""
        ...


class TrainFailed(Exception):
    """The training of one job of a group failed (the others went on).

    Attributes:
        error: One line, ``Type: message``.
        traceback: The failure's traceback.
    """

    def __init__(self, error: str, traceback: str) -> None:
        super().__init__(error)
        self.error, self.traceback = error, traceback


class Stages:
    """Interface of the stage calls a study makes (see the module docstring).

    Attributes:
        name: Short name written into manifests.
        is_fake: True for stand-ins whose numbers must never be reported as results.
        train_knobs: Keys of the study's ``[train] overrides`` these stages read besides the
            :class:`~twingap.train.config.TrainConfig` fields (checked when the config loads).
    """

    name = "abstract"
    is_fake = False
    train_knobs: tuple[str, ...] = ()

    def prepare_scenes(self, cfg: StudyConfig, scenes_dir: Path) -> dict[str, Any]:
        """Build the training scenes once per study into ``scenes_dir``.

        Writes ``scenes_dir/train_scenes.json`` plus whatever the render stage needs (twin
        backgrounds, calibration). Returns ``{"n_scenes", "categories": [obj ids trained],
        "scenes_hash", "timings": {stage: seconds}}``.
        """
        raise NotImplementedError

    def prepare_test_set(self, cfg: StudyConfig, ts: TestSetConfig, out_dir: Path) -> dict[str, Any]:
        """Write the real test set's COCO ground truth ``out_dir/gt.json`` and ``frames.json``.

        Returns ``{"n_images", "n_instances", "categories": [obj ids present]}``.
        """
        raise NotImplementedError

    def render(self, cfg: StudyConfig, scenes_dir: Path, condition: str, out_dir: Path) -> dict[str, Any]:
        """Render the study's training scenes under ``condition`` into ``out_dir`` (COCO + images).

        Must be deterministic for the study's scene seed and resumable in ``out_dir``.
        Returns ``{"n_images", "dataset_hash"}``.
        """
        raise NotImplementedError

    def train(self, cfg: StudyConfig, dataset_dir: Path, model_dir: Path, seed: int) -> dict[str, Any]:
        """Train a detector on ``dataset_dir`` into ``model_dir`` with ``seed``; resumes a partial run."""
        raise NotImplementedError

    def train_group(
        self, cfg: StudyConfig, jobs: list[tuple[Path, Path, int]]
    ) -> list[dict[str, Any] | TrainFailed]:
        """Train several models, ``(dataset_dir, model_dir, seed)`` each, as :meth:`train` would.

        Returns, per job in order, what :meth:`train` returns, or :class:`TrainFailed` (a job
        fails alone). This default trains them one after the other; the real stages train them
        in one process together (:func:`twingap.train.group.train_group`).
        """
        out: list[dict[str, Any] | TrainFailed] = []
        for dataset_dir, model_dir, seed in jobs:
            try:
                out.append(self.train(cfg, dataset_dir, model_dir, seed) or {})
            except Exception as exc:
                out.append(TrainFailed(f"{type(exc).__name__}: {exc}", traceback.format_exc()))
        return out

    def trains_on_cuda(self, cfg: StudyConfig) -> bool:
        """Whether this study's training resolves to a CUDA device here (groups are automatic there)."""
        return False

    def predict(self, cfg: StudyConfig, model_dir: Path, test_dir: Path, out_json: Path) -> dict[str, Any]:
        """Predict on a prepared test set (``test_dir/frames.json``); write COCO results."""
        raise NotImplementedError

    def per_image_eval(self, gt_path: Path, preds_path: Path, iou_type: str, cat_ids: list[int]) -> PerImage:
        """Per-image evaluation records (``iou_type`` = ``"bbox"`` or ``"segm"``) on ``cat_ids``."""
        raise NotImplementedError

    def sample_images(self, dataset_dir: Path, n: int) -> list[Path]:
        """A few training images of a rendered dataset (for the report)."""
        imgs = sorted((dataset_dir / "images").glob("*.png")) or sorted(
            (dataset_dir / "images").glob("*.jpg")
        )
        if not imgs:
            return []
        step = max(1, len(imgs) // max(1, n))
        return imgs[::step][:n]

    def gallery(self, cfg: StudyConfig, model: str, out_png: Path) -> bool:
        """Draw the gallery of all conditions for one model; return False when unavailable."""
        return False


def load_stages(spec: str) -> Stages:
    """Resolve a stage implementation by name (``"real"``, ``"fake"`` or ``"module:attribute"``).

    Raises:
        TwingapError: If the name cannot be resolved.
    """
    if spec == "real":
        from twingap.study.real import RealStages

        return RealStages()
    if spec == "fake":
        from twingap.study.fake import FakeStages

        return FakeStages()
    if ":" not in spec:
        raise TwingapError(f"unknown stages {spec!r} (use 'real', 'fake' or 'module:attribute')")
    mod_name, attr = spec.split(":", 1)
    try:
        obj = getattr(importlib.import_module(mod_name), attr)
    except (ImportError, AttributeError) as exc:
        raise TwingapError(f"cannot load stages {spec!r} ({exc})") from exc
    return obj() if isinstance(obj, type) else obj
