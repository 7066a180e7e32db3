"""Mesh noise: surface roughness against a locally smoothed copy of the welded surface.

The smooth reference at a vertex is a quadric height field ``h = a + b u + c v + d u^2 + e u v +
f v^2`` fitted (least squares, Gaussian weights of sigma ``r / 2``) to the welded vertices within
``r = NEIGHBOURHOOD_FRAC * diag`` whose normals agree with the vertex's (``n_i . n_j > 0.5``, so the
far side of a thin part is left out), in the frame of the vertex's normal. The vertex's roughness
is its offset ``|a|`` from that surface. A quadric follows the object's curvature but not bumps
narrower than the neighbourhood (the study's ``noise-N`` bumps are about ``0.03 diag`` wide, the
neighbourhood twice that), and the measure does not depend on the mesh resolution, unlike a
number of smoothing steps.

The score is the area-weighted *median* roughness over the diagonal, over an even subsample of at
most :data:`MAX_SAMPLES` vertices: sharp edges and small real features cover little of the
surface, while scan noise is everywhere.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from twingap.audit.geometry import Welded

#: Neighbourhood radius as a fraction of the bounding-box diagonal.
NEIGHBOURHOOD_FRAC = 0.06
#: Vertices at which the fit is made (evenly spaced indices; all if fewer).
MAX_SAMPLES = 3000
#: Fewest agreeing neighbours for a quadric fit (a plane below it; no fit below 4).
MIN_QUADRIC = 12


def weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The ``q`` quantile (0-1) of ``values`` weighted by ``weights``."""
    order = np.argsort(values)
    cum = np.cumsum(weights[order])
    if cum[-1] <= 0:
        return float(np.quantile(values, q))
    return float(values[order][min(int(np.searchsorted(cum, q * cum[-1])), len(values) - 1)])


def _frames(normals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    helper = np.where(np.abs(normals[:, :1]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]])
    t1 = np.cross(normals, helper)
    t1 /= np.maximum(np.linalg.norm(t1, axis=1, keepdims=True), 1e-30)
    return t1, np.cross(normals, t1)


def local_offsets(welded: Welded, samples: np.ndarray, radius: float) -> np.ndarray:
    """|offset| (metres) of each sampled welded vertex from the quadric fitted around it (NaN: no fit)."""
    pos, nrm = welded.positions, welded.normals
    neigh = cKDTree(pos).query_ball_point(pos[samples], r=radius)
    k_max = max(1, max(len(n) for n in neigh))
    idx = np.zeros((len(samples), k_max), dtype=np.int64)
    valid = np.zeros((len(samples), k_max), dtype=bool)
    for s, n in enumerate(neigh):
        idx[s, : len(n)] = n
        valid[s, : len(n)] = True
    n0 = nrm[samples]
    valid &= np.einsum("skc,sc->sk", nrm[idx], n0) > 0.5
    t1, t2 = _frames(n0)
    d = pos[idx] - pos[samples][:, None, :]
    u, v, h = (np.einsum("skc,sc->sk", d, e) for e in (t1, t2, n0))
    w = np.exp(-(u * u + v * v) / (2 * (radius / 2) ** 2)) * valid
    count = valid.sum(axis=1)
    quad = count >= MIN_QUADRIC
    cols = [np.ones_like(u), u, v, u * u, u * v, v * v]
    design = np.stack(cols, axis=2)
    design[~quad, :, 3:] = 0.0  # plane fit where few neighbours
    lhs = np.einsum("ski,sk,skj->sij", design, w, design)
    lhs[~quad, 3:, 3:] += np.eye(3)  # keep the unused quadric terms solvable (they stay 0)
    lhs += 1e-12 * radius**2 * np.eye(6)
    rhs = np.einsum("ski,sk,sk->si", design, w, h)
    coef = np.linalg.solve(lhs, rhs[..., None])[..., 0]
    return np.where(count >= 4, np.abs(coef[:, 0]), np.nan)


def measure(welded: Welded) -> tuple[dict, dict]:
    """Roughness of the welded surface.

    Returns:
        ``(record, maps)``: ``record`` has ``score`` (area-weighted median |offset| / diag),
        ``roughness_mm`` (the same median in millimetres), ``p90_mm``, ``radius_mm`` and
        ``samples``; ``maps`` has ``roughness`` ((M,) |offset| per welded vertex, metres: each
        vertex takes its nearest sample's value) for the pictures.
    """
    n = len(welded.positions)
    samples = np.unique(np.linspace(0, n - 1, min(n, MAX_SAMPLES)).round().astype(np.int64))
    radius = NEIGHBOURHOOD_FRAC * welded.diag
    offset = local_offsets(welded, samples, radius)
    ok = np.isfinite(offset)
    weights = welded.vertex_areas[samples][ok]
    values = offset[ok]
    if len(values) == 0:
        return {"score": None, "reason": "mesh too coarse for a local fit"}, {"roughness": np.zeros(n)}
    median = weighted_quantile(values, weights, 0.5)
    nearest = cKDTree(welded.positions[samples[ok]]).query(welded.positions)[1]
    record = {
        "score": median / welded.diag if welded.diag > 0 else 0.0,
        "roughness_mm": 1000.0 * median,
        "p90_mm": 1000.0 * weighted_quantile(values, weights, 0.9),
        "radius_mm": 1000.0 * radius,
        "samples": int(ok.sum()),
    }
    return record, {"roughness": values[nearest]}
