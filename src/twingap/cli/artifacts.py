"""``twingap artifacts ...``: list, apply and look at the 13 asset-artifact conditions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from twingap.cli import app

artifacts_app = typer.Typer(
    help="The 'break' stage: graded, seeded asset artifacts (noise, holes, blur, baked light, ambient).",
    no_args_is_help=True,
)
app.add_typer(artifacts_app, name="artifacts")

ConditionsOpt = Annotated[Path | None, typer.Option(help="Conditions TOML (default: packaged catalogue).")]
HoursOpt = Annotated[Path | None, typer.Option(help="Artist-hours TOML (default: packaged estimates).")]
ModelsOpt = Annotated[Path | None, typer.Option(help="Model library folder (default: data/sample/models).")]

MESH_SUFFIXES = (".obj", ".ply", ".glb", ".gltf", ".stl", ".off")


def resolve_model(model: str, models: Path | None = None):
    """Load ``model``: a mesh file path, or a model name in the model library.

    Args:
        model: A path to an OBJ/PLY/GLB file, or a name like ``"011_banana"``.
        models: Model library folder (default: the shipped sample's ``models/``).

    Raises:
        TwingapError: If the file is missing/bad or the name is unknown.
    """
    from twingap.assets.asset import ModelLibrary, default_sample_root, load_mesh_file

    path = Path(model)
    if path.suffix.lower() in MESH_SUFFIXES or path.exists():
        return load_mesh_file(path)
    return ModelLibrary(models or default_sample_root() / "models").load(model)


def _catalogue(conditions: Path | None, hours: Path | None):
    from twingap.artifacts.base import load_catalogue

    return load_catalogue(conditions, hours)


@artifacts_app.command("list")
def list_conditions(
    conditions: ConditionsOpt = None,
    hours: HoursOpt = None,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Print the condition catalogue: family, level, parameters, render parameters, artist hours."""
    from rich.console import Console
    from rich.table import Table

    cat = _catalogue(conditions, hours)
    if as_json:
        typer.echo(json.dumps([c.to_dict() for c in cat.values()], indent=2))
        return
    table = Table(title="twingap artifact conditions (artist hours: placeholder estimates)")
    for col in ("condition", "family", "level", "params", "render params", "artist h"):
        table.add_column(col, overflow="fold")
    for c in cat.values():
        table.add_row(
            c.name,
            c.family,
            str(c.level),
            json.dumps(c.params, separators=(",", ":")) if c.params else "",
            json.dumps(c.render_params, separators=(",", ":")) if c.render_params else "",
            f"{c.artist_hours:g}",
        )
    Console(width=160).print(table)


@artifacts_app.command("apply")
def apply_cmd(
    model: str = typer.Argument(
        ..., help="Sample model name (e.g. 011_banana) or a mesh file (OBJ/PLY/GLB)."
    ),
    condition: str = typer.Option(..., "--condition", "-c", help="Condition name (see `artifacts list`)."),
    seed: int = typer.Option(0, help="Study seed."),
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("out"),
    models: ModelsOpt = None,
    conditions: ConditionsOpt = None,
    hours: HoursOpt = None,
) -> None:
    """Apply one condition; write OBJ+MTL+PNG and a JSON with the parameters and the damage."""
    from twingap.artifacts.base import apply_condition, damage, get_condition
    from twingap.assets.io import save_obj
    from twingap.io import write_json_atomic

    cond = get_condition(condition, _catalogue(conditions, hours))
    asset = resolve_model(model, models)
    flawed = apply_condition(asset, cond, seed)
    dmg = damage(asset, flawed, cond)
    stem = f"{asset.name}__{cond.name}__s{seed}"
    obj = save_obj(flawed, out / f"{stem}.obj")
    record = {
        "model": asset.name,
        "source": asset.metadata.get("source"),
        "condition": cond.to_dict(),
        "seed": seed,
        "damage": dmg,
        "input_hash": asset.content_hash,
        "output_hash": flawed.content_hash,
        "vertices": len(flawed.vertices),
        "faces": len(flawed.faces),
        "texture_px": list(flawed.texture.shape[:2]),
        "metadata": flawed.metadata,
    }
    write_json_atomic(out / f"{stem}.json", record)
    typer.echo(f"{obj}  damage: " + ", ".join(f"{k}={v:.4g}" for k, v in dmg.items()))


@artifacts_app.command("gallery")
def gallery_cmd(
    model: str = typer.Argument(..., help="Sample model name or a mesh file."),
    out: Annotated[Path, typer.Option("--out", "-o", help="Output PNG.")] = Path("gallery.png"),
    seed: int = typer.Option(0, help="Study seed."),
    size: int = typer.Option(320, help="Tile size in pixels."),
    models: ModelsOpt = None,
    conditions: ConditionsOpt = None,
    hours: HoursOpt = None,
) -> None:
    """Render the object under all conditions into one labelled PNG (rows: noise, holes, texture, light)."""
    from twingap.artifacts.gallery import render_gallery

    asset = resolve_model(model, models)
    render_gallery(asset, out, seed=seed, catalogue=_catalogue(conditions, hours), size=size)
    typer.echo(str(out))
