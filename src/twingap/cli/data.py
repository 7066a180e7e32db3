"""``twingap data ...``: real frames in, COCO / BOP out (placeholder until the readers land)."""

from __future__ import annotations

import typer

from twingap.cli import app

data_app = typer.Typer(
    help="Read real annotated frames; write COCO ground truth and BOP.", no_args_is_help=True
)
app.add_typer(data_app, name="data")


@data_app.command("info")
def info() -> None:
    """Print the sample data location."""
    from twingap.assets.asset import default_sample_root

    typer.echo(str(default_sample_root()))
