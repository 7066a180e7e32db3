"""Shared fixtures: the shipped sample and small writable copies of it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE_FRAMES = REPO / "data" / "sample" / "ycbv_real_frames"


@pytest.fixture(scope="session")
def ycbv_root() -> Path:
    """The 60 real YCB-Video frames shipped in ``data/sample`` (read-only: do not modify)."""
    assert SAMPLE_FRAMES.is_dir(), SAMPLE_FRAMES
    return SAMPLE_FRAMES


def copy_ycbv_frames(dst: Path, frames: dict[str, list[str]]) -> Path:
    """Copy selected sample frames ``{video: [frame, ...]}`` into ``dst`` (YCB-Video layout)."""
    for video, names in frames.items():
        (dst / video).mkdir(parents=True, exist_ok=True)
        for name in names:
            for suffix in ("color.png", "depth.png", "label.png", "meta.mat", "box.txt"):
                shutil.copy2(SAMPLE_FRAMES / video / f"{name}-{suffix}", dst / video / f"{name}-{suffix}")
    return dst


@pytest.fixture
def small_ycbv(tmp_path: Path) -> Path:
    """A writable YCB-Video root with 2 frames of video 0000 and 1 of video 0001."""
    return copy_ycbv_frames(tmp_path / "ycbv", {"0000": ["000001", "000002"], "0001": ["000001"]})
