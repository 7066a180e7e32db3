"""A fast, deterministic stand-in for the study's stages: for tests and report layout only.

**Every number it produces is made up.** It exists so the orchestration (planning, resume,
executors, statistics, report) can be exercised in seconds without rendering or training. Runs
made with it carry ``"stages": "fake"`` in every manifest and a banner in the report.

Knobs (``[train] overrides`` of the study config, so they reach every executor):
``fake_fail = ["cond__s0", ...]`` makes those jobs raise in training; ``fake_sleep = seconds``
slows every training call (to test interrupting a study); ``fake_gate = "path"`` then holds it
while that file exists (a job kept in flight); ``fake_subprocess = true`` sleeps and waits in a
subprocess (:func:`twingap.study.real.in_subprocess`, as the real stages render) to test that a
killed study leaves no process behind; ``fake_effects = {cond = -0.05, ...}``
sets conditions' true effect on AP (a fraction; default: a fixed draw per condition).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from twingap.io import dumps_json, read_json, write_json_atomic
from twingap.study.stages import Stages

if TYPE_CHECKING:
    from twingap.study.config import StudyConfig, TestSetConfig


def _unit(*keys: object) -> float:
    """A deterministic number in [0, 1) from keys."""
    h = hashlib.sha256("|".join(map(str, keys)).encode()).digest()
    return int.from_bytes(h[:8], "little") / 2**64


def _hold(seconds: float, gate: str | None) -> None:
    """Sleep ``seconds``, then wait while the file ``gate`` exists (if given)."""
    if seconds:
        time.sleep(seconds)
    while gate and Path(gate).exists():
        time.sleep(0.05)


class FakePerImage:
    """Per-image scores; ``ap_weights`` is their weighted mean (a stand-in for COCO re-accumulation)."""

    def __init__(self, scores: dict[str, np.ndarray]) -> None:
        self.scores = scores
        self.n_images = len(scores["AP"])

    def ap_weights(self, weights: np.ndarray) -> np.ndarray:
        """Weighted mean per-image AP for each row of (B, I) draw counts."""
        W = np.atleast_2d(np.asarray(weights, dtype=np.float64))
        return (W @ self.scores["AP"]) / W.sum(axis=1)

    def metrics(self) -> dict[str, float]:
        """Mean AP, AP50, AP75 over all images."""
        return {k: float(v.mean()) for k, v in self.scores.items()}


class FakeStages(Stages):
    """Deterministic fake stages (see the module docstring). Never real results."""

    name = "fake"
    is_fake = True
    train_knobs = ("fake_fail", "fake_sleep", "fake_gate", "fake_subprocess", "fake_effects")
    n_test_images = 24
    frames_per_scene = 4

    def prepare_scenes(self, cfg: StudyConfig, scenes_dir: Path) -> dict[str, Any]:
        """Write a list of placeholder scenes."""
        n = cfg.scenes.twin_views + cfg.scenes.composed
        scenes = [{"scene_id": f"fake-{i:05d}", "seed": cfg.scenes.seed * 100003 + i} for i in range(n)]
        write_json_atomic(scenes_dir / "train_scenes.json", scenes)
        digest = hashlib.sha256(dumps_json(scenes, indent=None).encode()).hexdigest()
        return {"n_scenes": n, "categories": [1, 2, 3], "scenes_hash": digest, "timings": {"scenes": 0.0}}

    def prepare_test_set(self, cfg: StudyConfig, ts: TestSetConfig, out_dir: Path) -> dict[str, Any]:
        """Write placeholder ground truth with one record per image."""
        n = self.n_test_images
        images = [{"id": i + 1, "file_name": f"{ts.name}-{i:03d}.png"} for i in range(n)]
        write_json_atomic(out_dir / "gt.json", {"images": images, "fake": True, "test_set": ts.name})
        frames = [
            {
                "image_id": im["id"],
                "frame_id": im["file_name"],
                "scene_id": f"{ts.name}-{i // self.frames_per_scene}",
            }
            for i, im in enumerate(images)
        ]
        write_json_atomic(out_dir / "frames.json", frames)
        return {"n_images": n, "n_instances": 2 * n, "categories": [1, 2, 3]}

    def render(self, cfg: StudyConfig, scenes_dir: Path, condition: str, out_dir: Path) -> dict[str, Any]:
        """Write a few tiny coloured PNGs and a COCO stub."""
        from PIL import Image

        scenes = read_json(scenes_dir / "train_scenes.json")
        (out_dir / "images").mkdir(parents=True, exist_ok=True)
        for i in range(min(4, len(scenes))):
            rgb = tuple(int(255 * _unit(condition, i, c)) for c in range(3))
            Image.new("RGB", (32, 24), rgb).save(out_dir / "images" / f"{i:06d}.png")
        write_json_atomic(out_dir / "coco.json", {"images": len(scenes), "condition": condition})
        return {"n_images": len(scenes), "dataset_hash": hashlib.sha256(condition.encode()).hexdigest()}

    def train(self, cfg: StudyConfig, dataset_dir: Path, model_dir: Path, seed: int) -> dict[str, Any]:
        """Write a 'model' whose quality depends on the condition and the seed."""
        condition = read_json(dataset_dir / "coco.json")["condition"]
        over = cfg.train.overrides
        hold = (float(over.get("fake_sleep", 0.0)), over.get("fake_gate"))
        if over.get("fake_subprocess"):
            from twingap.study.real import in_subprocess

            in_subprocess(_hold, *hold)
        else:
            _hold(*hold)
        if f"{condition}__s{seed}" in over.get("fake_fail", []):
            raise RuntimeError(f"fake failure of {condition}__s{seed} (requested by fake_fail)")
        effect = 0.0 if condition == "clean" else -0.12 * _unit("effect", condition)
        effect = float(over.get("fake_effects", {}).get(condition, effect))
        # a seed effect shared by every condition (what pairing removes) and training noise of
        # this condition x seed (what it cannot): the paired differences vary between seeds
        quality = (
            0.75
            + effect
            + 0.03 * (_unit("seed", seed) - 0.5)
            + 0.01 * (_unit("train", condition, seed) - 0.5)
        )
        write_json_atomic(
            model_dir / "model.json", {"quality": quality, "condition": condition, "seed": seed}
        )
        return {"iterations": 1}

    def predict(self, cfg: StudyConfig, model_dir: Path, test_dir: Path, out_json: Path) -> dict[str, Any]:
        """Write per-image scores: model quality minus an image difficulty shared by all models."""
        model = read_json(model_dir / "model.json")
        frames = read_json(test_dir / "frames.json")
        n = len(frames)
        diff = np.array([0.3 * (_unit("difficulty", test_dir.name, i) - 0.5) for i in range(n)])
        noise = np.array(
            [0.04 * (_unit("noise", model["condition"], model["seed"], i) - 0.5) for i in range(n)]
        )
        ap = np.clip(model["quality"] - diff + noise, 0, 1)
        scores = {"AP": ap, "AP50": np.clip(ap + 0.15, 0, 1), "AP75": np.clip(ap - 0.05, 0, 1)}
        write_json_atomic(out_json, {k: v.round(6).tolist() for k, v in scores.items()})
        return {"n_images": n}

    def per_image_eval(
        self, gt_path: Path, preds_path: Path, iou_type: str, cat_ids: list[int]
    ) -> FakePerImage:
        """Read the per-image scores (segm = bbox minus a constant)."""
        data = read_json(preds_path)
        shift = 0.05 if iou_type == "segm" else 0.0
        return FakePerImage({k: np.clip(np.asarray(v) - shift, 0, 1) for k, v in data.items()})
