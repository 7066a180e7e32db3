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
    """Train a Mask R-CNN on a COCO dataset folder (category ids = the objects' ids)."""
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


#: Image files ``twingap predict --images DIR`` picks up.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def _image_folder(folder: Path) -> list[tuple[int, Path]]:
    """``(image_id, path)`` of the images in a folder: ids 1..N in sorted file-name order."""
    from twingap.errors import TwingapError

    if not folder.is_dir():
        raise TwingapError("images folder not found", folder)
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise TwingapError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in the folder", folder)
    return list(enumerate(files, start=1))


@app.command("predict")
def predict_cmd(
    run: Annotated[Path, typer.Argument(help="A finished training run folder.")],
    out: Annotated[Path, Opt("-o", "--out", help="COCO results JSON to write.")],
    frames: Annotated[Path | None, Opt("--frames", help="Real frames (YCB-Video or BOP layout).")] = None,
    images: Annotated[
        Path | None,
        Opt("--images", help="A folder of images (ids 1..N in file-name order), or the images of --coco."),
    ] = None,
    coco: Annotated[
        Path | None,
        Opt("--coco", help="A COCO file: its images (next to it, or under --images) with its image ids."),
    ] = None,
    device: Annotated[str | None, Opt(help="auto, cpu or cuda (default: the run's).")] = None,
    score_threshold: Annotated[float, Opt(help="Drop detections scoring lower.")] = 0.05,
    box_from_mask: Annotated[
        bool | None,
        Opt("--box-from-mask/--box-regressed", help="Boxes from masks or regressed (default: the run's)."),
    ] = None,
    progress: Annotated[bool, Opt("--progress/--no-progress", help="Show a progress bar.")] = True,
) -> None:
    """Predict boxes and masks on frames, a folder of images, or the images of a COCO file.

    Image ids: with --frames as in ``twingap data coco``; with --coco the file's own ids; with
    --images alone 1..N in file-name order (listed in ``OUT.images.json``).
    """
    from twingap.errors import TwingapError
    from twingap.io import write_json_atomic
    from twingap.train.predict import predict

    if frames is not None and (images is not None or coco is not None):
        raise TwingapError("give --frames, or --images / --coco, not both")
    items: list
    if frames is not None:
        from twingap.data.loader import load_frames

        items = load_frames(frames, load_depth=False)
    elif coco is not None:
        from twingap.data.coco_real import coco_images

        items = coco_images(coco, images)
    elif images is not None:
        items = _image_folder(images)
        listing = [{"id": i, "file_name": p.name} for i, p in items]
        write_json_atomic(out.with_name(out.stem + ".images.json"), listing)
    else:
        raise TwingapError("say what to predict on: --frames ROOT, --images DIR or --coco FILE")
    results = predict(
        run,
        items,
        device=device,
        score_threshold=score_threshold,
        progress=progress,
        box_from_mask=box_from_mask,
    )
    write_json_atomic(out, results, indent=None)
    typer.echo(f"{len(results)} detections on {len(items)} images -> {out}")
