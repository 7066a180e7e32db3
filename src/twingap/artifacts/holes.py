"""Holes: delete connected surface patches, as unobserved regions of a scan leave them.

Each of ``n_holes`` patches starts at a seed face drawn with probability proportional to its
area (among faces still present) and grows over face adjacency of the *merged* mesh (so a patch
crosses texture seams) in order of distance from the seed's centroid, each face's distance
scaled by ``1 + irregularity * u`` (``u`` uniform per face) for a ragged outline, until it covers
``area_frac`` of the original surface area (or its connected component runs out). The removed
faces are dropped, unused vertices removed and face indices remapped, so UVs stay consistent.

The result is an open surface: renderers must draw back faces so that one sees into the object
through a hole, as in a broken scan (``metadata["double_sided"] = True``).
"""

from __future__ import annotations

import heapq

import numpy as np
from scipy import sparse

from twingap.artifacts.base import check_mesh, face_areas, merge_by_position
from twingap.assets.asset import Asset
from twingap.errors import TwingapError


def face_adjacency(faces: np.ndarray, n_vertices: int) -> sparse.csr_matrix:
    """(F, F) boolean CSR adjacency of faces sharing an edge (non-manifold edges: all pairs)."""
    edges = np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    edge_key = edges[:, 0] * np.int64(n_vertices) + edges[:, 1]
    _, edge_id = np.unique(edge_key, return_inverse=True)
    n_faces = len(faces)
    incidence = sparse.csr_matrix(
        (np.ones(len(edge_id), dtype=np.int32), (np.repeat(np.arange(n_faces), 3), edge_id.reshape(-1))),
        shape=(n_faces, int(edge_id.max()) + 1),
    )
    adj = (incidence @ incidence.T).tocsr()
    adj.setdiag(0)
    adj.eliminate_zeros()
    adj.sort_indices()
    return adj


def select_hole_faces(asset: Asset, params: dict, rng: np.random.Generator) -> np.ndarray:
    """Choose the faces to delete.

    Returns:
        (F,) bool mask, True for removed faces.
    """
    n_holes = int(params.get("n_holes", 1))
    area_frac = float(params.get("area_frac", 0.01))
    irregularity = float(params.get("irregularity", 0.5))
    if n_holes < 0 or not 0 <= area_frac < 1 or n_holes * area_frac >= 1:
        raise TwingapError(f"holes: invalid n_holes={n_holes}, area_frac={area_frac} (need n*frac < 1)")
    positions, inverse = merge_by_position(asset.vertices)
    merged = inverse[asset.faces]
    areas = face_areas(asset.vertices, asset.faces)
    total = areas.sum()
    centroids = asset.vertices[asset.faces].mean(axis=1)
    adj = face_adjacency(merged, len(positions))
    indptr, indices = adj.indptr, adj.indices
    jitter = 1.0 + irregularity * rng.random(len(areas))
    removed = np.zeros(len(areas), dtype=bool)
    for _ in range(n_holes):
        avail = np.where(~removed, areas, 0.0)
        if avail.sum() <= 0:
            break
        seed = int(rng.choice(len(areas), p=avail / avail.sum()))
        origin = centroids[seed]
        target = area_frac * total
        covered = 0.0
        seen = {seed}
        heap = [(0.0, seed)]
        while heap and covered < target:
            _, f = heapq.heappop(heap)
            removed[f] = True
            covered += areas[f]
            for g in indices[indptr[f] : indptr[f + 1]]:
                g = int(g)
                if g not in seen and not removed[g]:
                    seen.add(g)
                    d = float(np.linalg.norm(centroids[g] - origin)) * jitter[g]
                    heapq.heappush(heap, (d, g))
    return removed


def remove_faces(asset: Asset, removed: np.ndarray) -> Asset:
    """Drop faces (bool mask), then unused vertices, remapping face indices."""
    keep_faces = asset.faces[~removed]
    if len(keep_faces) == 0:
        raise TwingapError(f"holes: all faces of {asset.name!r} would be removed")
    used = np.unique(keep_faces)
    remap = np.full(len(asset.vertices), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    return asset.replace(
        vertices=asset.vertices[used],
        faces=remap[keep_faces],
        uvs=asset.uvs[used],
        metadata={**asset.metadata, "double_sided": True},
    )


def apply(asset: Asset, params: dict, rng: np.random.Generator) -> Asset:
    """Cut ``n_holes`` patches of ``area_frac`` each (see the module docstring)."""
    check_mesh(asset)
    return remove_faces(asset, select_hole_faces(asset, params, rng))


def damage(before: Asset, after: Asset, params: dict) -> dict[str, float]:
    """Removed fraction of the surface area and of the faces."""
    a0 = float(face_areas(before.vertices, before.faces).sum())
    a1 = float(face_areas(after.vertices, after.faces).sum())
    return {
        "removed_area_frac": 1.0 - a1 / a0 if a0 > 0 else 0.0,
        "removed_face_frac": 1.0 - len(after.faces) / len(before.faces),
    }
