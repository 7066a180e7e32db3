"""Holes: boundary loops of the welded mesh, the area that would close them, and the outer cut.

Every connected set of boundary edges (edges of one face only) is one hole. Its perimeter is the
sum of its edge lengths and its closing area the fan of triangles from its centroid to each edge
(exact for a flat convex hole, close for gently curved ones).

A scan cut off where the object stood (an open bottom) is a boundary too, but a deliberate one; it
is reported apart as the *outer cut* when the hole is flat (its points within
:data:`PLANAR_FRAC` of the diagonal from their plane), the whole mesh lies on one side of that plane
(within :data:`EXTREME_FRAC`), and it closes at least :data:`FOOTPRINT_FRAC` of the mesh's
silhouette on that plane. The score counts interior holes only: their closing area over the
surface the closed mesh would have.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from scipy.spatial import ConvexHull, QhullError

from twingap.audit.geometry import Welded

PLANAR_FRAC = 0.01
EXTREME_FRAC = 0.02
FOOTPRINT_FRAC = 0.5
#: Holes listed one by one in audit.json (largest first); the rest are only counted.
MAX_LISTED = 20


def boundary_components(welded: Welded) -> list[np.ndarray]:
    """Boundary edges grouped into holes.

    Returns:
        One (k, 2) array of welded-vertex pairs per hole, largest first (by edge count).
    """
    edges, counts = welded.edges()
    bnd = edges[counts == 1]
    if len(bnd) == 0:
        return []
    n = len(welded.positions)
    graph = sparse.csr_matrix((np.ones(len(bnd)), (bnd[:, 0], bnd[:, 1])), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    comp = label[bnd[:, 0]]
    groups = [bnd[comp == c] for c in np.unique(comp)]
    return sorted(groups, key=len, reverse=True)


def closing_area(points: np.ndarray, edges: np.ndarray) -> float:
    """Fan area from the centroid of the hole's vertices to each of its edges, square metres."""
    centre = points[np.unique(edges)].mean(axis=0)
    a, b = points[edges[:, 0]] - centre, points[edges[:, 1]] - centre
    return float(0.5 * np.linalg.norm(np.cross(a, b), axis=1).sum())


def _footprint_area(points: np.ndarray, normal: np.ndarray) -> float:
    helper = np.array([1.0, 0.0, 0.0]) if abs(normal[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = np.cross(normal, helper)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(normal, e1)
    flat = points @ np.stack([e1, e2], axis=1)
    try:
        return float(ConvexHull(flat).volume)  # in 2-D, "volume" is the area
    except QhullError:
        return 0.0


def is_outer_cut(welded: Welded, edges: np.ndarray, area: float) -> bool:
    """Whether a hole is a flat cut at the extreme of the object (see the module docstring)."""
    ring = welded.positions[np.unique(edges)]
    if len(ring) < 3:
        return False
    centre = ring.mean(axis=0)
    _, _, vt = np.linalg.svd(ring - centre, full_matrices=False)
    normal = vt[-1]
    if np.sqrt(np.mean(((ring - centre) @ normal) ** 2)) > PLANAR_FRAC * welded.diag:
        return False
    side = (welded.positions - centre) @ normal
    tol = EXTREME_FRAC * welded.diag
    if side.min() < -tol and side.max() > tol:
        return False
    return area >= FOOTPRINT_FRAC * _footprint_area(welded.positions, normal)


def measure(welded: Welded) -> tuple[dict, dict]:
    """Holes of the welded mesh.

    Returns:
        ``(record, maps)``: ``record`` has ``score`` (interior closing area / closed surface),
        ``interior_holes``, ``interior_area_cm2``, ``interior_perimeter_cm``, ``outer_cut``
        (None or ``{"area_cm2", "perimeter_cm"}``) and ``holes`` (the largest, one dict each);
        ``maps`` has ``boundary`` ((k, 2) welded-vertex pairs of every boundary edge) and
        ``outer`` (those of the outer cut).
    """
    pos = welded.positions
    holes = []
    outer_edges = np.zeros((0, 2), dtype=np.int64)
    outer = None
    for edges in boundary_components(welded):
        area = closing_area(pos, edges)
        perim = float(np.linalg.norm(pos[edges[:, 0]] - pos[edges[:, 1]], axis=1).sum())
        if outer is None and is_outer_cut(welded, edges, area):
            outer = {"area_cm2": 1e4 * area, "perimeter_cm": 100.0 * perim}
            outer_edges = edges
            continue
        holes.append({"area_cm2": 1e4 * area, "perimeter_cm": 100.0 * perim, "edges": len(edges)})
    holes.sort(key=lambda h: -h["area_cm2"])
    surface = 1e4 * float(welded.areas.sum())
    interior = float(sum(h["area_cm2"] for h in holes))
    closed = surface + interior + (outer["area_cm2"] if outer else 0.0)
    record = {
        "score": interior / closed if closed > 0 else 0.0,
        "interior_holes": len(holes),
        "interior_area_cm2": interior,
        "interior_perimeter_cm": float(sum(h["perimeter_cm"] for h in holes)),
        "outer_cut": outer,
        "holes": holes[:MAX_LISTED],
    }
    edges, counts = welded.edges()
    return record, {"boundary": edges[counts == 1], "outer": outer_edges}
