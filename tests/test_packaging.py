"""Packaging: the Python versions the package admits, and the Blender venv pinned to Python 3.11."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

REPO = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


@pytest.mark.parametrize("version", ["3.11.0", "3.12.0", "3.12.3", "3.13.0"])
def test_supported_pythons_are_admitted(version):
    # Ubuntu 24.04 and Debian 13 default to 3.12 / 3.13; only bpy (own venv) needs 3.11
    assert version in SpecifierSet(PROJECT["requires-python"])


@pytest.mark.parametrize("version", ["3.10.14", "3.14.0"])
def test_untested_pythons_are_refused(version):
    assert version not in SpecifierSet(PROJECT["requires-python"])


def test_classifiers_name_the_admitted_versions():
    spec = SpecifierSet(PROJECT["requires-python"])
    listed = {c.removeprefix("Programming Language :: Python :: ") for c in PROJECT["classifiers"]}
    minors = sorted(v for v in listed if v.startswith("3.") and v[2:].isdigit())
    assert minors == [f"3.{m}" for m in range(11, 14)]
    assert all(f"{v}.0" in spec for v in minors), minors


def _make_dry_run(target: str) -> str:
    """What ``make -n -B TARGET`` would run with Python 3.12 asked for (nothing is run)."""
    cmd = ["make", "-n", "-B", target, "PYTHON=python3.12", "VENV=.venv312"]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60).stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_cycles_venv_stays_on_python_311_whatever_python_is():
    out = _make_dry_run("setup-cycles")
    assert "python3.11 -m venv .venv-cycles" in out
    assert "python3.12" not in out
    main = _make_dry_run("setup")
    assert "python3.12 -m venv .venv312" in main  # the package's own venv follows PYTHON
