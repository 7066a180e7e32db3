"""The ``twingap`` command line: one sub-command per stage, plus ``study``.

Each stage lives in its own module and registers a Typer app here. User-input problems raise
:class:`~twingap.errors.TwingapError`, printed as one line with exit code 2; ``--debug``
shows the full traceback.
"""

from __future__ import annotations

import os
import sys

import typer

from twingap import __version__
from twingap.errors import TwingapError

app = typer.Typer(
    name="twingap",
    help=(
        "Measure the sim-to-real gap of digital-twin synthetic data and rank 3D asset fixes "
        "by detector mAP recovered per artist hour."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"twingap {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """twingap: sim-to-real gap of digital twins, measured by experiment."""
    # --debug is read by main() from argv (not stored in the environment, which would leak
    # into later calls of main() in the same process).


def _register() -> None:
    """Import the stage modules so that they add their commands to :data:`app`."""
    import importlib

    for module in ("data", "evaluate", "artifacts", "twin", "render", "train", "study", "audit"):
        try:
            importlib.import_module(f"twingap.cli.{module}")
        except ModuleNotFoundError as exc:  # a stage not built yet
            if exc.name != f"twingap.cli.{module}":
                raise


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``twingap`` console script; returns the exit code."""
    _register()
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        rv = app(args=argv, standalone_mode=False)
        if isinstance(rv, int) and not isinstance(rv, bool):  # typer.Exit(code) in non-standalone mode
            return rv
    except TwingapError as exc:
        if debug or os.environ.get("TWINGAP_DEBUG") == "1":
            raise
        typer.secho(f"error: {exc.one_line()}", err=True, fg=typer.colors.RED)
        return exc.exit_code
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    except _click_exception_types() as exc:  # usage errors: click's usage line + "Error: ...", exit 2
        exc.show()  # type: ignore[attr-defined]
        return int(exc.exit_code)  # type: ignore[attr-defined]
    return 0


def _click_exception_types() -> tuple[type[Exception], ...]:
    """``ClickException`` of every click the CLI may run on.

    typer >= 0.29 vendors click as ``typer._click`` (its exceptions are not ``click``'s); older
    typer uses ``click`` itself. Both are caught so that a usage mistake (unknown command or
    option, missing argument) prints the usage line and exits 2 with either.
    """
    import importlib

    found: list[type[Exception]] = []
    for module in ("typer._click.exceptions", "click.exceptions"):
        try:
            found.append(importlib.import_module(module).ClickException)
        except (ImportError, AttributeError):
            continue
    return tuple(found)


def entry() -> None:
    """Console-script wrapper that exits with :func:`main`'s code."""
    sys.exit(main())
