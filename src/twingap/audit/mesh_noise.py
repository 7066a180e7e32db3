"""Mesh noise: surface roughness against a locally smoothed copy of the welded surface.

The welded surface is Taubin-smoothed (a low-pass that does not shrink the shape) for enough steps
to flatten bumps about :data:`BUMP_FRAC` of the bounding-box diagonal wide (the width of the study's
``noise-N`` bumps), and each vertex's offset from the smoothed surface is measured along the normal.
The score is the area-weighted *median* offset over the diagonal: sharp edges and small real
features move under smoothing too, but they cover little of the surface, while noise is everywhere.
"""

from __future__ import annotations

import numpy as np

from twingap.audit.geometry import Welded

#: Bump width the smoothing must flatten, as a fraction of the bounding-box diagonal.
BUMP_FRAC = 0.03
#: Taubin step sizes (shrink, then inflate).
TAUBIN_LAMBDA, TAUBIN_MU = 0.5, -0.53
#: Bounds on the number of smoothing steps (dense meshes are capped: their score then reads finer bumps).
MIN_STEPS, MAX_STEPS = 5, 200


def smoothing_steps(welded: Welded) -> int:
    """Taubin steps that diffuse over about ``BUMP_FRAC * diag``: ``2 (width / median edge)^2``, clipped."""
    tri = welded.positions[welded.faces]
    edge = float(np.median(np.linalg.norm(tri[:, [1, 2, 0]] - tri, axis=2)))
    if edge <= 0:
        return MIN_STEPS
    return int(np.clip(round(2.0 * (BUMP_FRAC * welded.diag / edge) ** 2), MIN_STEPS, MAX_STEPS))


def taubin(welded: Welded, steps: int) -> np.ndarray:
    """(M, 3) Taubin-smoothed positions (uniform weights), metres."""
    avg = welded.neighbour_average()
    p = welded.positions.copy()
    for _ in range(steps):
        p = p + TAUBIN_LAMBDA * (avg @ p - p)
        p = p + TAUBIN_MU * (avg @ p - p)
    return p


def weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The ``q`` quantile (0-1) of ``values`` weighted by ``weights``."""
    order = np.argsort(values)
    cum = np.cumsum(weights[order])
    if cum[-1] <= 0:
        return float(np.quantile(values, q))
    return float(values[order][min(int(np.searchsorted(cum, q * cum[-1])), len(values) - 1)])


def measure(welded: Welded) -> tuple[dict, dict]:
    """Roughness of the welded surface.

    Returns:
        ``(record, maps)``: ``record`` has ``score`` (area-weighted median |offset| / diag),
        ``roughness_mm`` (the same median in millimetres), ``p90_mm`` and ``smoothing_steps``;
        ``maps`` has ``roughness`` ((M,) |offset| per welded vertex, metres) for the pictures.
    """
    steps = smoothing_steps(welded)
    smooth = taubin(welded, steps)
    offset = np.abs(np.einsum("ij,ij->i", welded.positions - smooth, welded.normals))
    weights = welded.vertex_areas
    median = weighted_quantile(offset, weights, 0.5)
    record = {
        "score": median / welded.diag if welded.diag > 0 else 0.0,
        "roughness_mm": 1000.0 * median,
        "p90_mm": 1000.0 * weighted_quantile(offset, weights, 0.9),
        "smoothing_steps": steps,
    }
    return record, {"roughness": offset}
