"""A generated UV atlas for untextured meshes (box projection + shelf packing).

Faces are grouped by the dominant axis of their normal (6 groups: +-x, +-y, +-z), each group is
split into edge-connected components on the merged mesh, and every component becomes one chart:
its orthographic projection onto the plane of its axis. A patch whose normals all lie within
~55 degrees of one axis is a height field over that plane, so charts do not fold over
themselves. Charts are shelf-packed into a square atlas at one common texel density, with
``pad`` texels between them so that texture filtering only mixes texels of the same surface
(a per-triangle atlas would put unrelated faces side by side and mip-maps would mix them).
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

from twingap.artifacts.base import merge_by_position
from twingap.artifacts.holes import face_adjacency
from twingap.assets.asset import Asset
from twingap.errors import TwingapError

#: For a chart of axis k, the two coordinates kept by the projection.
_PLANE = np.array([[1, 2], [0, 2], [0, 1]])


def _shelf_pack(sizes: np.ndarray, width: int) -> tuple[np.ndarray, int]:
    """Place (N, 2) (w, h) rectangles in rows of ``width``; returns (N, 2) offsets and the height used."""
    order = np.lexsort((-sizes[:, 0], -sizes[:, 1]))  # tallest first (ties: widest), stable
    offsets = np.zeros_like(sizes)
    x = y = row_h = 0
    for i in order:
        w, h = int(sizes[i, 0]), int(sizes[i, 1])
        if x + w > width:
            x, y, row_h = 0, y + row_h, 0
        offsets[i] = (x, y)
        x += w
        row_h = max(row_h, h)
    return offsets, y + row_h


def box_projection_atlas(asset: Asset, atlas_px: int = 1024, pad: int = 3) -> Asset:
    """Give an untextured asset a UV atlas of ``atlas_px`` pixels filled with its uniform colour.

    Face order and geometry are kept; vertices are re-split along chart borders (so the vertex
    count changes). The texture is the asset's (first) texel colour everywhere.

    Args:
        asset: The asset (its texture is normally a 1x1 fallback colour).
        atlas_px: Atlas size in pixels (square).
        pad: Texels between charts.

    Raises:
        TwingapError: If the charts cannot fit the atlas even at 1/8 texel per chart minimum.
    """
    positions, inverse = merge_by_position(asset.vertices)
    merged = inverse[asset.faces]
    tri = asset.vertices[asset.faces]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    axis = np.argmax(np.abs(fn), axis=1)
    group = axis * 2 + (fn[np.arange(len(fn)), axis] < 0)
    adj = face_adjacency(merged, len(positions)).tocoo()
    same = group[adj.row] == group[adj.col]
    graph = sparse.csr_matrix(
        (np.ones(int(same.sum())), (adj.row[same], adj.col[same])), shape=(len(fn), len(fn))
    )
    n_charts, label = csgraph.connected_components(graph, directed=False)
    chart_axis = np.zeros(n_charts, dtype=np.int64)
    chart_axis[label] = axis
    # 2-D coordinates of every face corner in its chart's plane, metres
    plane = _PLANE[chart_axis[label]]  # (F, 2)
    corner2d = np.stack([np.take_along_axis(tri[:, c], plane, axis=1) for c in range(3)], axis=1)  # (F, 3, 2)
    flat_lab = np.repeat(label, 3)
    flat2d = corner2d.reshape(-1, 2)
    lo = np.full((n_charts, 2), np.inf)
    hi = np.full((n_charts, 2), -np.inf)
    np.minimum.at(lo, flat_lab, flat2d)
    np.maximum.at(hi, flat_lab, flat2d)
    extent = np.maximum(hi - lo, 1e-12)
    # texel density: start from a 65% packing efficiency, shrink until the shelves fit
    density = np.sqrt(0.65 * atlas_px**2 / max(float(np.prod(extent, axis=1).sum()), 1e-18))
    for _ in range(60):
        sizes = np.ceil(extent * density).astype(np.int64) + 1 + pad
        if sizes[:, 0].max() <= atlas_px:
            offsets, used = _shelf_pack(sizes, atlas_px)
            if used <= atlas_px:
                break
        density *= 0.95
    else:
        raise TwingapError(f"baked light: {n_charts} charts do not fit a {atlas_px} px atlas; raise atlas_px")
    px = (flat2d - lo[flat_lab]) * density + offsets[flat_lab] + 0.5 + pad / 2
    # one vertex per (chart, merged vertex)
    key = flat_lab.astype(np.int64) * len(positions) + merged.reshape(-1)
    _, first, new_index = np.unique(key, return_index=True, return_inverse=True)
    uv = np.stack([px[first, 0] / atlas_px, 1.0 - px[first, 1] / atlas_px], axis=1)
    colour = asset.texture.reshape(-1, 3)[0]
    return asset.replace(
        vertices=asset.vertices[asset.faces.reshape(-1)[first]],
        faces=new_index.reshape(-1, 3).astype(np.int64),
        uvs=uv,
        texture=np.broadcast_to(colour, (atlas_px, atlas_px, 3)).copy(),
        textured=True,
        metadata={**asset.metadata, "generated_atlas": {"charts": int(n_charts), "px_per_m": float(density)}},
    )
