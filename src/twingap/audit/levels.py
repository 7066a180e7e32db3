"""Score -> level (0 = clean, 1-3) with thresholds fitted on the study's own flawed assets.

The thresholds live in ``calibration.json`` next to this module, written by
``python -m twingap.audit.calibrate`` (see :mod:`twingap.audit.calibrate`). A family's level is the
number of its thresholds the score reaches. Thresholds between adjacent levels are fitted one pair
at a time as the cut with the lowest balanced error (the share of the lower level at or above it
plus the share of the higher level below it, so that the many clean samples do not push every cut
up); cuts are midpoints between sorted scores, geometric for positive ones; ties: the middle one
of the best cuts. The thresholds are then made increasing.
"""

from __future__ import annotations

import json
from importlib import resources
from itertools import pairwise
from pathlib import Path

import numpy as np

from twingap.errors import TwingapError

#: The flaw families the audit grades (each has a measure in this package).
GRADED_FAMILIES = ("noise", "holes", "texture", "baked_light")


def _families() -> dict[str, dict[int, str]]:
    """Per graded family, the catalogue's condition name of each level >= 1 (e.g. noise: 1 -> noise-1)."""
    from twingap.artifacts.catalogue import default_catalogue

    out: dict[str, dict[int, str]] = {f: {} for f in GRADED_FAMILIES}
    for name, cond in default_catalogue().items():
        if cond.family in out and cond.level >= 1:
            out[cond.family][cond.level] = name
    return {f: dict(sorted(levels.items())) for f, levels in out.items()}


#: The flaw families the audit grades and their condition names per level, from the condition catalogue.
FAMILIES: dict[str, dict[int, str]] = _families()

CALIBRATION_FILE = "calibration.json"


def calibration_path() -> Path:
    """The packaged calibration file."""
    return Path(str(resources.files("twingap.audit") / CALIBRATION_FILE))


def load_calibration(path: str | Path | None = None) -> dict:
    """Read the thresholds (default: the packaged file).

    Returns:
        ``{"families": {family: {"thresholds": [...], ...}}, ...}``.

    Raises:
        TwingapError: If the file is missing or lacks a family.
    """
    path = Path(path) if path is not None else calibration_path()
    if not path.is_file():
        raise TwingapError("audit calibration not found (run: python -m twingap.audit.calibrate)", path)
    data = json.loads(path.read_text(encoding="utf-8"))
    for fam, levels in FAMILIES.items():
        th = data.get("families", {}).get(fam, {}).get("thresholds")
        if not isinstance(th, list) or len(th) != len(levels):
            raise TwingapError(f"calibration: family {fam!r} needs {len(levels)} thresholds", path)
    return data


def level_of(score: float | None, thresholds: list[float]) -> int | None:
    """Number of thresholds ``score`` reaches (None stays None)."""
    if score is None or not np.isfinite(score):
        return None
    return int(sum(score >= t for t in thresholds))


def _midpoint(a: float, b: float) -> float:
    return float(np.sqrt(a * b)) if a > 0 and b > 0 else 0.5 * (a + b)


def fit_threshold(low: np.ndarray, high: np.ndarray) -> float:
    """The cut between the scores of two adjacent levels with the lowest balanced error rate.

    Args:
        low: Scores of the lower level (should fall below the cut).
        high: Scores of the higher level (should reach it).

    Returns:
        The threshold (deterministic for the same inputs, whatever their order).
    """
    values = np.unique(np.concatenate([low, high]))
    if len(values) == 1:
        return float(values[0])
    cuts = np.array([_midpoint(a, b) for a, b in pairwise(values)])
    # balanced: each level's error rate counts the same, however many samples it has
    errors = np.array([(low >= c).mean() + (high < c).mean() for c in cuts])
    best = np.flatnonzero(errors == errors.min())
    return float(cuts[best[(len(best) - 1) // 2]])


def fit_thresholds(scores: np.ndarray, levels: np.ndarray, n_levels: int) -> list[float]:
    """Increasing thresholds for levels 1..n_levels from (score, true level) samples.

    Raises:
        TwingapError: If a level has no sample.
    """
    out: list[float] = []
    for k in range(n_levels):
        low, high = scores[levels == k], scores[levels == k + 1]
        if len(low) == 0 or len(high) == 0:
            raise TwingapError(f"calibration: no samples at level {k if len(low) == 0 else k + 1}")
        t = fit_threshold(low, high)
        out.append(max(t, out[-1]) if out else t)
    return out
