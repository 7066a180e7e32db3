"""Mesh noise: displace the surface along its normals, as noisy photogrammetry depth does.

The displacement is a function of the *merged* vertex (position), and normals are computed on
the merged mesh, so seam-split duplicates (same position, different UV) move together and the
texture seams never crack. Two modes:

* ``"iid"``: an independent Gaussian offset per merged vertex (speckle at the mesh resolution).
* ``"correlated"``: a smooth 3-D Gaussian noise field (white noise on a lattice of spacing
  ``corr_frac * diag / 2``, Gaussian-filtered, trilinearly interpolated at the vertices),
  rescaled to zero mean and unit variance over the vertices: bumps about ``corr_frac * diag``
  wide, independent of the mesh resolution.

Either way the offset is ``sigma_frac * diag * n`` (``diag`` = bounding-box diagonal, metres).
Meshes whose median edge is longer than ``max_edge_frac * diag`` are first midpoint-subdivided
(at most ``max_subdiv`` times; UVs interpolated) so that the noise can show.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from twingap.artifacts.base import check_mesh, merge_by_position, vertex_normals
from twingap.assets.asset import Asset
from twingap.errors import TwingapError


def _edge_lengths(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    tri = vertices[faces]
    return np.linalg.norm(tri[:, [1, 2, 0]] - tri, axis=2).ravel()


def subdivide_for_noise(asset: Asset, max_edge_frac: float, max_subdiv: int) -> tuple[Asset, int]:
    """Midpoint-subdivide while the median edge exceeds ``max_edge_frac * diag``.

    Deterministic (a pure function of the mesh and the two parameters). Each step splits every
    triangle into four; seam duplicates stay coincident because edge midpoints of coincident
    endpoints coincide.

    Returns:
        ``(asset, number of subdivisions applied)``.
    """
    import trimesh.remesh

    diag = asset.bbox_diagonal
    vertices, faces, uvs = asset.vertices, asset.faces, asset.uvs
    steps = 0
    while steps < int(max_subdiv) and np.median(_edge_lengths(vertices, faces)) > max_edge_frac * diag:
        vertices, faces, attrs = trimesh.remesh.subdivide(vertices, faces, vertex_attributes={"uv": uvs})
        uvs = np.asarray(attrs["uv"], dtype=np.float64)
        steps += 1
    if steps == 0:
        return asset, 0
    return (
        asset.replace(
            vertices=np.asarray(vertices, dtype=np.float64),
            faces=np.asarray(faces, dtype=np.int64),
            uvs=uvs,
        ),
        steps,
    )


def noise_field(positions: np.ndarray, rng: np.random.Generator, mode: str, corr_length: float) -> np.ndarray:
    """Unit-variance, zero-mean noise values at (M, 3) positions (metres).

    Args:
        positions: Merged vertex positions.
        rng: Random generator (consumed).
        mode: ``"iid"`` or ``"correlated"``.
        corr_length: Bump width for ``"correlated"``, metres.

    Returns:
        (M,) float64.
    """
    if mode == "iid":
        n = rng.standard_normal(len(positions))
    elif mode == "correlated":
        lo, hi = positions.min(0), positions.max(0)
        extent = float(np.max(hi - lo))
        cell = max(corr_length / 2.0, extent / 200.0, 1e-9)
        pad = 4
        shape = tuple(int(n) + 1 + 2 * pad for n in np.ceil((hi - lo) / cell))
        grid = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=1.0, mode="wrap")
        coords = ((positions - lo) / cell + pad).T
        n = ndimage.map_coordinates(grid, coords, order=1, mode="nearest")
    else:
        raise TwingapError(f"mesh noise: unknown mode {mode!r} (use 'iid' or 'correlated')")
    n = n - n.mean()
    std = n.std()
    return n / std if std > 0 else n


def apply(asset: Asset, params: dict, rng: np.random.Generator) -> Asset:
    """Displace the (possibly subdivided) mesh along merged-vertex normals.

    Args:
        asset: Input asset (unchanged).
        params: ``sigma_frac`` (noise std / bbox diagonal), ``mode`` (``"correlated"`` or
            ``"iid"``), ``corr_frac`` (bump width / diagonal), ``max_edge_frac``, ``max_subdiv``.
        rng: Seeded generator.

    Returns:
        The noisy asset (same texture; vertices, and faces/UVs if subdivided, new).
    """
    check_mesh(asset)
    sigma_frac = float(params.get("sigma_frac", 0.005))
    if sigma_frac < 0:
        raise TwingapError(f"mesh noise: sigma_frac must be >= 0, got {sigma_frac}")
    base, steps = subdivide_for_noise(
        asset, float(params.get("max_edge_frac", 0.02)), int(params.get("max_subdiv", 2))
    )
    diag = base.bbox_diagonal
    positions, inverse = merge_by_position(base.vertices)
    merged_faces = inverse[base.faces]
    normals = vertex_normals(positions, merged_faces)
    n = noise_field(
        positions, rng, str(params.get("mode", "correlated")), float(params.get("corr_frac", 0.03)) * diag
    )
    moved = positions + normals * (sigma_frac * diag * n)[:, None]
    meta = {**base.metadata, "noise_subdivisions": steps}
    return base.replace(vertices=moved[inverse], metadata=meta)


def damage(before: Asset, after: Asset, params: dict) -> dict[str, float]:
    """Mean / max vertex displacement and vertex-set Hausdorff distance, as fractions of the diagonal.

    ``before`` is subdivided exactly as :func:`apply` did, so displacements are per vertex.
    """
    base, _ = subdivide_for_noise(
        before, float(params.get("max_edge_frac", 0.02)), int(params.get("max_subdiv", 2))
    )
    diag = before.bbox_diagonal or 1.0
    d_ab = cKDTree(after.vertices).query(base.vertices)[0]
    d_ba = cKDTree(base.vertices).query(after.vertices)[0]
    hausdorff = max(float(d_ab.max()), float(d_ba.max()))
    if base.vertices.shape == after.vertices.shape:
        disp = np.linalg.norm(after.vertices - base.vertices, axis=1)
    else:  # not produced by apply(): fall back to nearest-vertex distances
        disp = d_ba
    return {
        "mean_displacement_frac": float(disp.mean()) / diag,
        "max_displacement_frac": float(disp.max()) / diag,
        "hausdorff_frac": hausdorff / diag,
    }
