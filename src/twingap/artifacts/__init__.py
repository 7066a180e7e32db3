"""twingap.artifacts: the "break" stage, the study's 13 asset-artifact conditions.

The conditions are defined once, in ``configs/conditions.toml``, read by :mod:`.catalogue`.

Usage::

    from twingap.artifacts import apply_condition, damage, get_condition, load_catalogue

    cond = get_condition("noise-2")
    flawed = apply_condition(asset, cond, seed=0)
    print(damage(asset, flawed, cond))
"""

from twingap.artifacts.base import apply_condition, damage, render_params_of
from twingap.artifacts.catalogue import (
    Condition,
    condition_names,
    default_catalogue,
    get_condition,
    load_artist_hours,
    load_catalogue,
)

__all__ = [
    "Condition",
    "apply_condition",
    "condition_names",
    "damage",
    "default_catalogue",
    "get_condition",
    "load_artist_hours",
    "load_catalogue",
    "render_params_of",
]
