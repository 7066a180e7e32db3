"""``twingap twin ...``: twin scenes of real frames, their fidelity, and training scenes around them.

* ``twingap twin check ROOT -o twin_report/``: reconstruct every video's environment, calibrate it
  (even frames), render every twin and write the fidelity report (CSV, JSON, pictures).
* ``twingap twin scenes ROOT -o scenes.json``: the twin scenes (calibrated if ``--calibrate`` or
  if the environment already holds a ``calibration.json``).
* ``twingap twin sample ROOT -o train_scenes.json -n 200``: training scenes around the twins
  (new views) plus composed scenes (``--composed``), deterministic for ``--seed``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from twingap.cli import app

twin_app = typer.Typer(
    help="Twin scenes of real frames: environment, calibration, fidelity, training scenes.",
    no_args_is_help=True,
)
app.add_typer(twin_app, name="twin")


def _library(models: Path | None):
    from twingap.assets.asset import ModelLibrary, default_sample_root

    return ModelLibrary(models if models is not None else default_sample_root() / "models")


def _frames(root: Path, max_frames: int | None = None):
    from twingap.data.loader import load_frames
    from twingap.errors import TwingapError

    frames = load_frames(root)
    if not frames:
        raise TwingapError("no annotated frames found", root)
    if max_frames:
        from twingap.render.twin import group_by_video

        frames = [f for fs in group_by_video(frames).values() for f in fs[:max_frames]]
    return frames


def _twins_with_calibration(frames, library, env: Path, calibrate: bool, background: str, scale: float):
    """Twins of ``frames`` with each video's calibration (fitted now, or read from ``env``)."""
    from twingap.io import read_json, write_json_atomic
    from twingap.render.calibration import apply_calibration, calibrate_video
    from twingap.render.twin import build_twins

    twins, envs = build_twins(frames, library, env, background=background, progress=True)
    by_video: dict[str, list[int]] = {}
    for i, t in enumerate(twins):
        by_video.setdefault(t.meta["video"], []).append(i)
    renderer = None
    for video, idx in sorted(by_video.items()):
        path = envs[video].folder / "calibration.json"
        if calibrate and not path.is_file():
            if renderer is None:
                from twingap.render.raster import RasterRenderer

                renderer = RasterRenderer()
            fit = idx[::2]
            assets = {o.model: library.load(o.model) for i in fit for o in twins[i].objects}
            cal = calibrate_video([frames[i] for i in fit], [twins[i] for i in fit], assets, renderer)
            write_json_atomic(path, cal)
        if path.is_file():
            cal = read_json(path)
            for i in idx:
                twins[i] = apply_calibration(twins[i], cal)
    if scale != 1.0:
        from twingap.render.twin import scale_scene

        twins = [scale_scene(t, scale) for t in twins]
    return twins


RootArg = Annotated[Path, typer.Argument(help="Real frames (YCB-Video or BOP layout).")]
ModelsOpt = Annotated[
    Path | None, typer.Option("--models", help="Model library folder (default: the sample's).")
]
EnvOpt = Annotated[
    Path | None, typer.Option("--env", help="Twin environment folder (default: <out dir>/twin_env).")
]
ScaleOpt = Annotated[float, typer.Option("--scale", help="Image scale (0.5 = 320x240 for YCB-Video).")]
CalibrateOpt = Annotated[
    bool, typer.Option("--calibrate/--no-calibrate", help="Fit the calibration if missing.")
]


@twin_app.command("check")
def check(
    root: RootArg,
    out: Annotated[Path, typer.Option("-o", "--out", help="Report folder.")] = Path("twin_report"),
    models: ModelsOpt = None,
    scale: ScaleOpt = 1.0,
    max_frames: Annotated[
        int, typer.Option("--max-frames", help="At most this many frames per video (0 = all).")
    ] = 0,
) -> None:
    """Render the twin of every real frame and report its fidelity before/after calibration."""
    from rich.console import Console
    from rich.table import Table

    from twingap.render.fidelity import run_twin_check

    library = _library(models)
    frames = _frames(root, max_frames or None)
    report = run_twin_check(frames, library, out, scale=scale)
    table = Table(title=f"twin fidelity ({report['overall']['frames']} held-out frames; fit on even frames)")
    cols = [
        ("mask IoU", "mask_iou", "{:.4f}"),
        ("depth mm", "depth_mae_mm", "{:.1f}"),
        ("colour sRGB before", "color_err_srgb_before", "{:.1f}"),
        ("after", "color_err_srgb_after", "{:.1f}"),
        ("dE2000 before", "color_err_de2000_before", "{:.2f}"),
        ("after", "color_err_de2000_after", "{:.2f}"),
        ("blur before", "blur_err_before", "{:.1f}"),
        ("after", "blur_err_after", "{:.1f}"),
        ("bg", "bg_err_after", "{:.2f}"),
    ]
    table.add_column("video")
    for name, _, _ in cols:
        table.add_column(name, justify="right")
    for video, s in [*report["videos"].items(), ("all", report["overall"])]:
        table.add_row(video, *[fmt.format(s[key]) for _, key, fmt in cols])
    Console().print(table)
    typer.echo(f"wrote {out}/report.json, frames.csv, videos.csv, <video>.png, twin_scenes.json")


@twin_app.command("scenes")
def scenes(
    root: RootArg,
    out: Annotated[Path, typer.Option("-o", "--out", help="Output scenes JSON.")] = Path("scenes.json"),
    env: EnvOpt = None,
    models: ModelsOpt = None,
    background: Annotated[str, typer.Option("--background", help="image | mesh | none.")] = "image",
    calibrate: CalibrateOpt = True,
    scale: ScaleOpt = 1.0,
) -> None:
    """Write the twin scene of every real frame."""
    from twingap.render.scene import save_scenes

    library = _library(models)
    frames = _frames(root)
    env = env or out.resolve().parent / "twin_env"
    twins = _twins_with_calibration(frames, library, env, calibrate, background, scale)
    save_scenes(out, twins)
    typer.echo(f"wrote {len(twins)} twin scenes to {out} (environment: {env})")


@twin_app.command("sample")
def sample(
    root: RootArg,
    out: Annotated[Path, typer.Option("-o", "--out", help="Output scenes JSON.")] = Path("train_scenes.json"),
    n: Annotated[int, typer.Option("-n", help="Views around the real scenes.")] = 200,
    composed: Annotated[int, typer.Option("--composed", help="Composed scenes (catalogue objects).")] = 0,
    objects: Annotated[
        str, typer.Option("--objects", help="Comma-separated models to compose (default: all).")
    ] = "",
    seed: Annotated[int, typer.Option("--seed", help="Sampling seed.")] = 0,
    scale: ScaleOpt = 1.0,
    env: EnvOpt = None,
    models: ModelsOpt = None,
    calibrate: CalibrateOpt = True,
) -> None:
    """Write training scenes: new views around the twins, plus composed scenes."""
    from twingap.render.compose import compose_scenes
    from twingap.render.sampling import sample_scenes
    from twingap.render.scene import save_scenes

    library = _library(models)
    frames = _frames(root)
    env = env or out.resolve().parent / "twin_env"
    twins = _twins_with_calibration(frames, library, env, calibrate, "mesh", 1.0)
    scenes_out = sample_scenes(twins, n, seed=seed, scale=scale)
    if composed:
        names = [s.strip() for s in objects.split(",") if s.strip()] or None
        scenes_out += compose_scenes(
            twins, library, composed, seed=seed, objects=names, scale=scale, cache_dir=env / "stable_poses"
        )
    save_scenes(out, scenes_out)
    typer.echo(f"wrote {len(scenes_out)} scenes to {out} ({n} views, {composed} composed; seed {seed})")
