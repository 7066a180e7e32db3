"""The tiny training configuration the training tests share (6 steps on 96x72 toy images, 1 thread)."""

from __future__ import annotations

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
