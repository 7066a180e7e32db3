"""Usage mistakes (unknown command or option, missing argument) print click's usage line and exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import twingap.cli
from twingap.cli import main

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.mark.parametrize(
    ("argv", "usage", "error"),
    [
        (["nosuchcommand"], " [OPTIONS] COMMAND [ARGS]...", "Error: No such command 'nosuchcommand'."),
        (["study", "--bogus"], " study [OPTIONS] COMMAND [ARGS]...", "Error: No such option: --bogus"),
        (["predict"], " predict [OPTIONS] ", "Error: Missing argument 'run'."),
    ],
)
def test_usage_error_prints_usage_and_exits_2(capsys, argv, usage, error):
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2
    assert "Traceback" not in err + out
    lines = err.splitlines()
    assert lines[0].startswith("Usage: ") and usage in lines[0], err  # click's usage line first
    assert lines[-1] == error


@pytest.mark.parametrize("module", ["typer._click.exceptions", "click.exceptions"])
def test_usage_errors_of_either_click_exit_2(monkeypatch, capsys, module):
    """typer >= 0.29 raises its vendored click's exceptions, older typer click's own: both exit 2."""
    exceptions = pytest.importorskip(module)

    def raise_usage(*args, **kwargs):
        raise exceptions.UsageError("no such thing")

    monkeypatch.setattr(twingap.cli, "app", raise_usage)
    assert main(["anything"]) == 2
    assert "Error: no such thing" in capsys.readouterr().err


def test_console_entry_exits_2_on_unknown_command():
    proc = subprocess.run(
        [sys.executable, "-m", "twingap", "nosuchcommand"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("Usage: ") and "Error: No such command 'nosuchcommand'." in proc.stderr
    assert "Traceback" not in proc.stderr
