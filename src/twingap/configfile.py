"""Configuration files: the one TOML reader and the one check of a table's keys.

Every TOML file twingap reads (the condition catalogue, artist-hours tables, study and training
configs) goes through :func:`read_toml`, and every table whose keys are fixed (a dataclass's
fields, a backend's options, the catalogue's names) goes through :func:`check_keys`, so that a
typo stops before any work with one line naming the file, the key and the closest valid key.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from twingap.errors import TwingapError


def read_toml(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """Parse a TOML file.

    Args:
        path: The file.
        what: What the file is, for the "not found" message (e.g. ``"study config"``).

    Returns:
        The parsed tables (insertion order is the file's order).

    Raises:
        TwingapError: If the file is missing, unreadable or not valid TOML (UTF-8).
    """
    path = Path(path)
    if not path.is_file():
        raise TwingapError(f"{what} not found", path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError) as exc:
        raise TwingapError(f"not valid TOML ({exc})", path) from exc


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` for the closest of ``choices`` to ``name``, or ``""`` if none is close."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_keys(
    given: Iterable[str], allowed: Iterable[str], what: str, source: str | Path | None = None
) -> None:
    """Fail on the first key of ``given`` that is not in ``allowed``.

    Args:
        given: Keys found in the file (e.g. a table's keys).
        allowed: Valid keys.
        what: The table, as the user wrote it (e.g. ``"[train] overrides"``).
        source: The file, printed first.

    Raises:
        TwingapError: One line: ``"<file>: <what>: unknown key 'k' (did you mean 'key'?)"``; without a
            close match, the valid keys are listed instead.
    """
    allowed = list(allowed)
    for key in given:
        if key not in allowed:
            hint = did_you_mean(key, allowed) or f" (allowed: {', '.join(sorted(allowed))})"
            raise TwingapError(f"{what}: unknown key {key!r}{hint}", source)


def check_choice(name: str, choices: Iterable[str], what: str, source: str | Path | None = None) -> None:
    """Fail unless ``name`` is one of ``choices``.

    Args:
        name: The value the user wrote.
        choices: Valid values, listed in the message in their order.
        what: What the value names, as the user wrote it (e.g. ``"[render] backend"``).
        source: The file, printed first.

    Raises:
        TwingapError: One line: ``"<file>: <what> 'x' is unknown (did you mean 'y'?) (have: a, b)"``.
    """
    choices = list(choices)
    if name not in choices:
        raise TwingapError(
            f"{what} {name!r} is unknown{did_you_mean(name, choices)} (have: {', '.join(choices)})", source
        )
