"""The tiny training configuration the training tests share (6 steps on 96x72 toy images, 1 thread)."""

from __future__ import annotations

from pathlib import Path

import pytest

from twingap.train import engine
from twingap.train.config import TrainConfig

#: The quick recipe in miniature: float32, NCHW, a checkpoint every 3 steps, EMA from step 3.
TINY = TrainConfig(
    image_size=(96, 72),
    iterations=6,
    batch_size=2,
    lr=0.01,
    warmup_iters=2,
    aug_variants=2,
    checkpoint_every=3,
    threads=1,
    ema_start=0.5,
    amp_dtype="none",
    channels_last=False,
)


def train_interrupted(monkeypatch, step: int, dataset: Path, run_dir: Path, cfg: TrainConfig) -> None:
    """Train until step ``step`` begins, then stop as Ctrl-C would (the run keeps its last checkpoint)."""
    real_lr_at = engine.lr_at

    def interrupted_at(c, i):
        if i == step:
            raise KeyboardInterrupt
        return real_lr_at(c, i)

    monkeypatch.setattr(engine, "lr_at", interrupted_at)
    with pytest.raises(KeyboardInterrupt):
        engine.train(dataset, run_dir, cfg, progress=False)
    monkeypatch.setattr(engine, "lr_at", real_lr_at)
