"""Reader and writer for the BOP scenewise layout (work in progress: reader/writer land next)."""

from __future__ import annotations

from pathlib import Path

from twingap.errors import TwingapError


def is_bop_root(root: str | Path) -> bool:
    """Return True if ``root`` holds BOP scenes (``<scene>/scene_gt.json``) or is one."""
    root = Path(root)
    if not root.is_dir():
        return False
    if (root / "scene_gt.json").is_file():
        return True
    return any((p / "scene_gt.json").is_file() for p in root.iterdir() if p.is_dir())


def load_bop(root: str | Path, load_depth: bool = True, **kwargs):  # pragma: no cover - replaced next
    """Placeholder until the BOP reader lands."""
    raise TwingapError("BOP reader not implemented yet", root)
