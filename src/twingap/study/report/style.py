"""How the report shows things, shared by its tables, figures and writers: colours and number format."""

from __future__ import annotations

import math

#: Colour of each artifact family (the condition name's prefix) in tables and figures.
FAMILY_COLORS = {
    "clean": "#444444",
    "noise": "#d1495b",
    "holes": "#edae49",
    "texture": "#00798c",
    "ambient": "#8e7dbe",
    "baked": "#66a182",
}


def family(cond: str) -> str:
    """The artifact family of a condition name (``"noise-2"`` -> ``"noise"``)."""
    return cond.split("-")[0]


def color(cond: str) -> str:
    """The colour of a condition's family (grey for an unknown family)."""
    return FAMILY_COLORS.get(family(cond), "#555555")


def fmt(x: float | None, nd: int = 1, sign: bool = False) -> str:
    """A number with ``nd`` decimals (``"–"`` for None or NaN, never ``"-0.0"``); ``sign`` adds ``+``."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if round(x, nd) == 0:
        x = 0.0  # no "-0.0"
    return f"{x:+.{nd}f}" if sign else f"{x:.{nd}f}"


def category_names(ids: list[int], names: dict[int, str]) -> str:
    """``"1 002_master_chef_can, 5 006_mustard_bottle"``: ids with the run's category names."""
    from twingap.study.byod import name_of

    return ", ".join(f"{i} {name_of(i, names)}" for i in ids)
