"""twingap.artifacts: the "break" stage, the study's 13 asset-artifact conditions.

Usage::

    from twingap.artifacts import apply_condition, damage, get_condition, load_catalogue

    cond = get_condition("noise-2")
    flawed = apply_condition(asset, cond, seed=0)
    print(damage(asset, flawed, cond))
"""

from twingap.artifacts.base import (
    CONDITION_NAMES,
    Condition,
    apply_condition,
    damage,
    get_condition,
    load_artist_hours,
    load_catalogue,
    render_params_of,
)

__all__ = [
    "CONDITION_NAMES",
    "Condition",
    "apply_condition",
    "damage",
    "get_condition",
    "load_artist_hours",
    "load_catalogue",
    "render_params_of",
]
