"""``twingap train`` and ``twingap predict``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from twingap.cli import app

Opt = typer.Option


@app.command("train")
def train_cmd(
    dataset: Annotated[Path, typer.Argument(help="Dataset folder with coco.json and images.")],
    out: Annotated[Path, Opt("-o", "--out", help="Run folder to create (or continue with --resume).")],
    preset: Annotated[str, Opt(help="quick (2-core CPU recipe) or paper (ResNet-50-FPN, GPU).")] = "quick",
    config: Annotated[Path | None, Opt("--config", help="TOML file with training options.")] = None,
    iterations: Annotated[int | None, Opt(help="Override the number of SGD steps.")] = None,
    batch_size: Annotated[int | None, Opt(help="Override the batch size.")] = None,
    lr: Annotated[float | None, Opt(help="Override the peak learning rate.")] = None,
    seed: Annotated[int | None, Opt(help="The one seed (init, data order, augmentation).")] = None,
    model: Annotated[str | None, Opt(help="mobilenet_v2_fpn_lite or resnet50_fpn.")] = None,
    weights: Annotated[str | None, Opt(help="imagenet, coco (resnet50_fpn, online) or none.")] = None,
    device: Annotated[str | None, Opt(help="auto, cpu or cuda.")] = None,
    threads: Annotated[int | None, Opt(help="torch CPU threads (0: torch default).")] = None,
    checkpoint_every: Annotated[int | None, Opt(help="Steps between checkpoints.")] = None,
    resume: Annotated[bool, Opt("--resume", help="Continue a killed run from its checkpoint.")] = False,
    progress: Annotated[bool, Opt("--progress/--no-progress", help="Show a progress bar.")] = True,
) -> None:
    """Train a Mask R-CNN on a COCO dataset folder (category ids = YCB-Video ids)."""
    from twingap.train.config import load_config
    from twingap.train.engine import train

    cfg = load_config(
        preset,
        config,
        iterations=iterations,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        model=model,
        weights=weights,
        device=device,
        threads=threads,
        checkpoint_every=checkpoint_every,
    )
    final = train(dataset, out, cfg, resume=resume, progress=progress)
    typer.echo(f"weights: {final}")


@app.command("predict")
def predict_cmd(
    run: Annotated[Path, typer.Argument(help="A finished training run folder.")],
    frames: Annotated[Path, Opt("--frames", help="Real frames (YCB-Video or BOP layout).")],
    out: Annotated[Path, Opt("-o", "--out", help="COCO results JSON to write.")],
    device: Annotated[str | None, Opt(help="auto, cpu or cuda (default: the run's).")] = None,
    score_threshold: Annotated[float, Opt(help="Drop detections scoring lower.")] = 0.05,
    box_from_mask: Annotated[
        bool | None,
        Opt("--box-from-mask/--box-regressed", help="Boxes from masks or regressed (default: the run's)."),
    ] = None,
    progress: Annotated[bool, Opt("--progress/--no-progress", help="Show a progress bar.")] = True,
) -> None:
    """Predict boxes and masks on every frame (image ids as in ``twingap data coco``)."""
    from twingap.data.loader import load_frames
    from twingap.io import write_json_atomic
    from twingap.train.predict import predict

    frame_list = load_frames(frames, load_depth=False)
    results = predict(
        run,
        frame_list,
        device=device,
        score_threshold=score_threshold,
        progress=progress,
        box_from_mask=box_from_mask,
    )
    write_json_atomic(out, results, indent=None)
    typer.echo(f"{len(results)} detections on {len(frame_list)} frames -> {out}")
