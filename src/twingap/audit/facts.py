"""The plain facts a user checks first: texture, resolution, face count, manifoldness, unit and size."""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from twingap.assets.asset import Asset
from twingap.audit.geometry import Welded
from twingap.errors import TwingapError

#: A bounding-box diagonal below this (metres) suggests the file is not in metres (e.g. kilometres).
MIN_DIAG_M = 0.005
#: Above this many (metres) twingap refuses a mesh as millimetres (see ``load_mesh_file``).
MAX_DIAG_M = 10.0


def check_auditable(asset: Asset, welded: Welded) -> None:
    """Raise when no measure can be taken.

    Raises:
        TwingapError: If vertices are not finite or the surface has no area.
    """
    source = asset.metadata.get("source") or asset.name
    if not np.all(np.isfinite(asset.vertices)):
        raise TwingapError("cannot audit: vertices contain NaN or inf", source)
    if len(welded.faces) == 0 or float(welded.areas.sum()) <= 0:
        raise TwingapError("cannot audit: the mesh has no surface (every face is degenerate)", source)


def measure(asset: Asset, welded: Welded) -> dict:
    """The facts, with a ``warnings`` list of one-line problems a user should know about.

    Returns:
        ``textured``, ``texture_px`` ([H, W] or None), ``faces``, ``vertices`` (welded),
        ``non_manifold_edges``, ``boundary_edges``, ``components``, ``unit`` ("m"), ``size_cm``
        (bounding-box extent x, y, z), ``diag_cm``, ``surface_cm2``, ``warnings``.
    """
    edges, counts = welded.edges()
    n = len(welded.positions)
    graph = sparse.csr_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    used = np.zeros(n, dtype=bool)
    used[welded.faces.ravel()] = True
    _, label = connected_components(graph, directed=False)
    components = len(np.unique(label[used]))
    textured = bool(asset.textured and asset.texture.shape[0] * asset.texture.shape[1] > 1)
    extent = welded.positions.max(0) - welded.positions.min(0)
    warnings = []
    if not textured:
        warnings.append("no texture map: the mesh renders in one flat colour")
    non_manifold = int((counts > 2).sum())
    if non_manifold:
        warnings.append(f"{non_manifold} non-manifold edge(s) (shared by more than two faces)")
    if welded.diag < MIN_DIAG_M:
        warnings.append(
            f"bounding-box diagonal {1000 * welded.diag:.2f} mm: is the file in metres? "
            "twingap expects metres"
        )
    dropped = len(asset.faces) - len(welded.faces)
    if dropped:
        warnings.append(f"{dropped} degenerate face(s) (zero area after welding) ignored")
    return {
        "textured": textured,
        "texture_px": list(asset.texture.shape[:2]) if textured else None,
        "faces": len(asset.faces),
        "vertices": n,
        "non_manifold_edges": non_manifold,
        "boundary_edges": int((counts == 1).sum()),
        "components": int(components),
        "unit": "m",
        "size_cm": [round(100.0 * float(x), 3) for x in extent],
        "diag_cm": 100.0 * welded.diag,
        "surface_cm2": 1e4 * float(welded.areas.sum()),
        "warnings": warnings,
    }
