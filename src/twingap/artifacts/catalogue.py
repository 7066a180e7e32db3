"""The condition catalogue: the one list of the study's conditions.

Each condition is defined once, in the packaged ``configs/conditions.toml``: its name, family,
level, one-line description, default artist hours (with a rationale), the op's parameters and
render-time parameters. The file's order is the display order used by the reports, the tables
and a study's default condition list. Everything else (artifacts, study config, cost model,
report) reads it through this module:

* :func:`load_catalogue` / :func:`default_catalogue`: name -> :class:`Condition`, in display order;
* :func:`condition_names`: the names in display order;
* :func:`get_condition`: one condition by name;
* :func:`load_artist_hours`: the default hours, or a user's hours table (``[<name>] hours = ...``).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from twingap.configfile import check_keys, did_you_mean, read_toml
from twingap.errors import TwingapError

#: Keys of a ``[conditions.<name>]`` table.
CONDITION_KEYS = ("family", "level", "description", "hours", "rationale", "params", "render_params")


@dataclass(frozen=True)
class Condition:
    """One artifact condition of the study.

    Attributes:
        name: Condition name, e.g. ``"noise-2"`` (see :func:`condition_names`).
        family: Family implementing it (``"clean"``, ``"noise"``, ``"holes"``, ``"texture"``,
            ``"baked_light"``, ``"ambient"``).
        level: Severity level; 0 is the identity.
        params: The op's parameters (JSON-serialisable; do not mutate).
        artist_hours: Estimated artist hours to fix this artifact on one object.
        render_params: Render-time parameters; for ``ambient-N`` ``{"ambient_add": float}`` (extra
            uniform ambient light the renderer adds to the scene's ambient term), else empty.
        description: One line saying what the flaw looks like (documentation only: not part of
            :meth:`to_dict` nor of equality, so it never changes a dataset's identity).
    """

    name: str
    family: str
    level: int
    params: dict = field(default_factory=dict)
    artist_hours: float = 0.0
    render_params: dict = field(default_factory=dict)
    description: str = field(default="", compare=False)

    def to_dict(self) -> dict:
        """Plain-JSON form (a deep copy)."""
        return {
            "name": self.name,
            "family": self.family,
            "level": int(self.level),
            "params": copy.deepcopy(self.params),
            "artist_hours": float(self.artist_hours),
            "render_params": copy.deepcopy(self.render_params),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Condition:
        """Inverse of :meth:`to_dict`.

        Raises:
            TwingapError: If a field is missing or has the wrong type.
        """
        try:
            cond = cls(
                name=str(d["name"]),
                family=str(d["family"]),
                level=int(d["level"]),
                params=copy.deepcopy(dict(d.get("params", {}))),
                artist_hours=float(d.get("artist_hours", 0.0)),
                render_params=copy.deepcopy(dict(d.get("render_params", {}))),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise TwingapError(f"invalid condition {d.get('name')!r}: {exc!r}") from exc
        json.dumps(cond.params)  # must stay JSON-serialisable
        return cond


def _config_path(filename: str) -> Path:
    return Path(str(resources.files("twingap") / "configs" / filename))


def _hours_value(name: str, value: object, path: Path) -> float:
    try:
        hours = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise TwingapError(f"artist hours for {name!r}: not a number ({value!r})", path) from exc
    if isinstance(value, bool) or not math.isfinite(hours) or hours < 0:
        raise TwingapError(f"artist hours for {name!r}: must be finite and >= 0, got {value!r}", path)
    return hours


def load_artist_hours(path: str | Path | None = None) -> dict[str, float]:
    """Artist hours per condition: the catalogue's defaults, or a user's hours table.

    A user table has one TOML table per condition name with ``hours`` (float >= 0) and an
    optional ``rationale``; names must be catalogue conditions.

    Args:
        path: A user's hours table; ``None``: the default hours of :func:`default_catalogue`.

    Returns:
        Condition name -> hours.

    Raises:
        TwingapError: If the file is missing or invalid, names an unknown condition, an entry
            lacks ``hours``, or hours are negative or not finite.
    """
    if path is None:
        return {name: cond.artist_hours for name, cond in default_catalogue().items()}
    return _read_hours_table(Path(path), default_catalogue())


def _read_hours_table(path: Path, names: Iterable[str]) -> dict[str, float]:
    data = read_toml(path, "artist-hours table")
    check_keys(data, names, "artist hours", path)
    out: dict[str, float] = {}
    for name, entry in data.items():
        if not isinstance(entry, dict) or "hours" not in entry:
            raise TwingapError(f"artist hours for {name!r}: missing 'hours'", path)
        out[name] = _hours_value(name, entry["hours"], path)
    return out


def _condition(name: str, entry: object, families: dict, path: Path) -> Condition:
    if not isinstance(entry, dict):
        raise TwingapError(f"[conditions.{name}] must be a table", path)
    check_keys(entry, CONDITION_KEYS, f"[conditions.{name}]", path)
    family = entry.get("family")
    if family not in families:
        raise TwingapError(
            f"condition {name!r}: unknown family {family!r} (have: {', '.join(sorted(families))})", path
        )
    if "hours" not in entry:
        raise TwingapError(f"condition {name!r} has no artist hours ('hours')", path)
    try:
        level = int(entry.get("level", 0))
    except (TypeError, ValueError) as exc:
        raise TwingapError(f"condition {name!r}: level must be an integer", path) from exc
    return Condition(
        name=name,
        family=family,
        level=level,
        params=copy.deepcopy(dict(entry.get("params", {}))),
        artist_hours=_hours_value(name, entry["hours"], path),
        render_params=copy.deepcopy(dict(entry.get("render_params", {}))),
        description=str(entry.get("description", "")),
    )


def load_catalogue(
    path: str | Path | None = None, hours_path: str | Path | None = None
) -> dict[str, Condition]:
    """Read a condition catalogue (default: the packaged ``configs/conditions.toml``).

    Args:
        path: A conditions TOML file (``[conditions.<name>]`` tables with the keys of
            :data:`CONDITION_KEYS`; ``family`` and ``hours`` are required).
        hours_path: A user's artist-hours table whose entries replace the catalogue's hours.

    Returns:
        Condition name -> :class:`Condition`, in file (display) order.

    Raises:
        TwingapError: If a file is invalid, a key or family is unknown, or a condition has no hours.
    """
    from twingap.artifacts.base import families

    if path is None and hours_path is None:
        return dict(default_catalogue())
    path = Path(path) if path is not None else _config_path("conditions.toml")
    data = read_toml(path, "condition catalogue").get("conditions")
    if not isinstance(data, dict) or not data:
        raise TwingapError("no [conditions.<name>] tables", path)
    fams = families()
    out = {name: _condition(name, entry, fams, path) for name, entry in data.items()}
    if hours_path is not None:
        for name, hours in _read_hours_table(Path(hours_path), out).items():
            out[name] = dataclasses.replace(out[name], artist_hours=hours)
    return out


@functools.cache
def _packaged_catalogue() -> dict[str, Condition]:
    return load_catalogue(_config_path("conditions.toml"))


def default_catalogue() -> dict[str, Condition]:
    """The packaged catalogue, read once per process (do not mutate the returned dict)."""
    return _packaged_catalogue()


def condition_names(catalogue: dict[str, Condition] | None = None) -> tuple[str, ...]:
    """Condition names in display order (default: the packaged catalogue's 13)."""
    return tuple(catalogue if catalogue is not None else default_catalogue())


def get_condition(name: str, catalogue: dict[str, Condition] | None = None) -> Condition:
    """Look a condition up by name (default: the packaged catalogue).

    Raises:
        TwingapError: If the name is unknown (the message suggests the closest and lists the valid names).
    """
    catalogue = catalogue if catalogue is not None else default_catalogue()
    if name not in catalogue:
        raise TwingapError(
            f"unknown condition {name!r}{did_you_mean(name, catalogue)} (valid: {', '.join(catalogue)})"
        )
    return catalogue[name]
