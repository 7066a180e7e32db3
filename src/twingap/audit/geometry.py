"""The welded mesh every audit measure works on.

Scans store vertices twice along texture seams (same position, different UV). Read as a mesh, each
seam is a crack: a boundary loop, a ridge for smoothing. The audit therefore merges coincident
vertices first (:func:`weld`) and drops the faces that collapse, then measures on that surface.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from twingap.artifacts.base import face_areas, merge_by_position, vertex_normals
from twingap.assets.asset import Asset

#: Vertices closer than this are merged (positions are compared after rounding to 10 nm).
WELD_DECIMALS = 8


@dataclass(frozen=True)
class Welded:
    """A welded copy of an asset's mesh.

    Attributes:
        positions: (M, 3) merged vertex positions, metres.
        faces: (F', 3) faces over ``positions`` (degenerate faces dropped).
        face_index: (F',) index of each kept face in the asset's ``faces``.
        inverse: (V,) asset vertex -> merged vertex.
        normals: (M, 3) area-weighted unit vertex normals.
        areas: (F',) face areas, square metres.
        diag: Bounding-box diagonal, metres.
    """

    positions: np.ndarray
    faces: np.ndarray
    face_index: np.ndarray
    inverse: np.ndarray
    normals: np.ndarray
    areas: np.ndarray
    diag: float

    @property
    def vertex_areas(self) -> np.ndarray:
        """(M,) a third of the area of the faces around each vertex, square metres."""
        out = np.zeros(len(self.positions))
        for k in range(3):
            np.add.at(out, self.faces[:, k], self.areas / 3.0)
        return out

    def edges(self) -> tuple[np.ndarray, np.ndarray]:
        """Unique undirected edges and how many faces share each.

        Returns:
            ``(edges (E, 2) sorted vertex pairs, counts (E,))``.
        """
        e = np.sort(self.faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
        return np.unique(e, axis=0, return_counts=True)

    def neighbour_average(self) -> sparse.csr_matrix:
        """(M, M) row-stochastic matrix: the mean of each vertex's edge neighbours (itself excluded)."""
        n = len(self.positions)
        e = self.faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
        e = np.concatenate([e, e[:, ::-1]])
        adj = sparse.csr_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n, n))
        adj.data[:] = 1.0
        deg = np.asarray(adj.sum(axis=1)).ravel()
        return (sparse.diags(1.0 / np.maximum(deg, 1.0)) @ adj).tocsr()


def weld(asset: Asset) -> Welded:
    """Merge seam duplicates and drop collapsed faces (see the module docstring)."""
    positions, inverse = merge_by_position(asset.vertices, WELD_DECIMALS)
    merged = inverse[asset.faces]
    ok = (merged[:, 0] != merged[:, 1]) & (merged[:, 1] != merged[:, 2]) & (merged[:, 0] != merged[:, 2])
    faces = merged[ok]
    areas = face_areas(positions, faces)
    return Welded(
        positions=positions,
        faces=faces,
        face_index=np.flatnonzero(ok),
        inverse=inverse,
        normals=vertex_normals(positions, faces),
        areas=areas,
        diag=float(np.linalg.norm(positions.max(0) - positions.min(0))),
    )
