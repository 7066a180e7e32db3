"""The study's render backend: config section, CLI option, early and clear errors."""

from __future__ import annotations

import importlib.util
import os

import pytest

from twingap.cli import main
from twingap.study.config import StudyConfig, load_study_config


def _write(tmp_path, body: str):
    path = tmp_path / "s.toml"
    path.write_text(f'preset = "tiny"\nstages = "fake"\n{body}')
    return path


def test_render_section_round_trips(tmp_path):
    cfg = load_study_config(_write(tmp_path, '[render]\nbackend = "raster"\noptions = { msaa = 1 }\n'))
    assert cfg.render.backend == "raster"
    assert cfg.render.options == {"msaa": 1}
    again = StudyConfig.from_dict(cfg.to_dict())
    assert again.render == cfg.render
    assert load_study_config(None, "quick").render.backend == "raster"  # the default backend


def test_unknown_backend_is_one_line_exit_2(tmp_path, capsys):
    code = main(
        [
            "study",
            "--config",
            str(_write(tmp_path, '[render]\nbackend = "povray"\n')),
            "-o",
            str(tmp_path / "r"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "backend 'povray' is unknown" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


@pytest.mark.skipif(
    importlib.util.find_spec("bpy") is not None or bool(os.environ.get("TWINGAP_BPY_PYTHON")),
    reason="bpy is available here: the missing-extra message cannot be shown",
)
def test_cycles_without_bpy_says_how_to_install(tmp_path, capsys):
    code = main(
        ["study", "--config", str(_write(tmp_path, "")), "--backend", "cycles", "-o", str(tmp_path / "r")]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "twingap[cycles]" in err
    assert not (tmp_path / "r").exists()
