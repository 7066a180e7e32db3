"""Ambient: a render-time condition; the asset is unchanged.

Too much uniform ambient light flattens shading (the look of an unlit, emissive-like asset).
The condition carries ``render_params = {"ambient_add": a}``: the renderer adds ``a`` to the
scene's ambient term (:attr:`twingap.render.scene.SceneSpec.ambient`) when it draws an object
with this condition. The asset op is the identity (same arrays), recorded in the metadata by
:func:`twingap.artifacts.base.apply_condition` so a renderer can also read it back with
:func:`twingap.artifacts.base.render_params_of`.
"""

from __future__ import annotations

import numpy as np

from twingap.assets.asset import Asset


def apply(asset: Asset, params: dict, rng: np.random.Generator) -> Asset:
    """Identity (the effect happens at render time)."""
    return asset


def damage(before: Asset, after: Asset, params: dict) -> dict[str, float]:
    """The added ambient term (from the recorded render parameters of ``after``)."""
    from twingap.artifacts.base import render_params_of

    return {"ambient_add": float(render_params_of(after).get("ambient_add", 0.0))}
