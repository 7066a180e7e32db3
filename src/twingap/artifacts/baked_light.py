"""Baked light: a directional key light and ambient occlusion multiplied into the albedo.

Photogrammetry textures are photographs, so the capture lighting (a bright side, a shadowed
side, dark creases) ends up in the albedo, and the renderer then lights the object a second
time, inconsistently. This op reproduces that:

1. On the merged mesh (seam duplicates merged), per vertex: Lambert term ``max(0, n . l)`` of a
   key light from ``light_from`` (object frame, jittered by up to ``jitter_deg`` per seed and
   object), a hard shadow for the key light, and ambient occlusion over ``ao_dirs`` Fibonacci
   directions. Visibility along a direction uses an orthographic max-height map of the surface
   (vertices and face centroids splatted on a grid about 1.5 median edges per cell): a cheap
   shadow-map, no ray casting. Shadow and occlusion are then averaged over vertex neighbours
   ``smooth_iters`` times (soft penumbra, less sampling noise).
2. ``shade = gain * (floor + (1 - floor) * lambert * shadow) * ao ** ao_strength`` per vertex.
3. The shade is rasterised into texture space through the UVs (barycentric interpolation per
   texel centre; at most ``shade_px`` pixels, then bilinearly upsampled: the shade is smooth),
   texels outside all triangles take the nearest covered value (no dark seams under bilinear
   filtering), and ``albedo * shade`` is clipped to 0-255.

Untextured assets (a 1x1 fallback colour) must still change appearance, so they first get a
generated UV atlas of ``atlas_px`` pixels filled with the fallback colour
(:func:`twingap.artifacts.atlas.box_projection_atlas`: box-projected charts, shelf-packed; face
order and geometry kept, vertices re-split along chart borders), then the light is baked in.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

from twingap.artifacts.atlas import box_projection_atlas
from twingap.artifacts.base import check_mesh, merge_by_position, surface_albedo, vertex_normals
from twingap.artifacts.uv_raster import rasterize_uv
from twingap.assets.asset import Asset
from twingap.errors import TwingapError


def fibonacci_directions(n: int) -> np.ndarray:
    """(n, 3) near-uniform unit directions on the sphere (deterministic)."""
    i = np.arange(n) + 0.5
    z = 1.0 - 2.0 * i / n
    r = np.sqrt(np.maximum(0.0, 1.0 - z * z))
    phi = i * np.pi * (3.0 - np.sqrt(5.0))
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def jitter_direction(d: np.ndarray, max_deg: float, rng: np.random.Generator) -> np.ndarray:
    """Rotate unit ``d`` by a random angle in [0, max_deg] about a random perpendicular axis."""
    d = d / np.linalg.norm(d)
    helper = np.array([1.0, 0.0, 0.0]) if abs(d[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = np.cross(d, helper)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(d, e1)
    phi = rng.uniform(0, 2 * np.pi)
    theta = np.deg2rad(max_deg) * rng.uniform(0, 1)
    axis = np.cos(phi) * e1 + np.sin(phi) * e2
    # Rodrigues with axis perpendicular to d: d' = d cos + (axis x d) sin
    out = d * np.cos(theta) + np.cross(axis, d) * np.sin(theta)
    return out / np.linalg.norm(out)


def visibility(
    points: np.ndarray, normals: np.ndarray, occluders: np.ndarray, direction: np.ndarray, cell: float
) -> np.ndarray:
    """Whether each surface point sees along ``direction`` (unit) past the occluder samples.

    An orthographic height map along ``direction`` keeps, per grid cell of size ``cell``
    (metres), the highest occluder (2x2 neighbourhood max, to close sub-cell gaps between the
    splatted samples). A point is visible when, moved ``3 cell`` out along its normal
    (normal-offset shadow mapping: this clears its own surface by ``3 cell / cos`` whatever the
    slope), it is within ``cell`` of the height in its cell.

    Returns:
        (N,) bool.
    """
    helper = np.array([1.0, 0.0, 0.0]) if abs(direction[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = np.cross(direction, helper)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(direction, e1)
    basis = np.stack([e1, e2], axis=1)
    query = points + 3.0 * cell * normals
    o2 = occluders @ basis
    q2 = query @ basis
    lo = np.minimum(o2.min(0), q2.min(0))
    shape = (np.ceil((np.maximum(o2.max(0), q2.max(0)) - lo) / cell).astype(np.int64) + 1).tolist()
    oc = np.floor((o2 - lo) / cell).astype(np.int64)
    height = np.full(shape, -np.inf)
    np.maximum.at(height, (oc[:, 0], oc[:, 1]), occluders @ direction)
    height = ndimage.maximum_filter(height, size=2, mode="nearest")
    qc = np.floor((q2 - lo) / cell).astype(np.int64)
    return query @ direction >= height[qc[:, 0], qc[:, 1]] - cell


def smoothing_operator(faces: np.ndarray, n_vertices: int):
    """(M, M) sparse row-stochastic matrix averaging each vertex with its edge neighbours."""
    from scipy import sparse

    e = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    e = np.concatenate([e, e[:, ::-1], np.stack([np.arange(n_vertices)] * 2, axis=1)])
    adj = sparse.csr_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n_vertices, n_vertices))
    adj.data[:] = 1.0
    deg = np.asarray(adj.sum(axis=1)).ravel()
    return sparse.diags(1.0 / deg) @ adj


def vertex_shading(asset: Asset, params: dict, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per split-vertex shade factor and the key light's direction (towards the light).

    Returns:
        ``(shade (V,), light_dir (3,))``.
    """
    positions, inverse = merge_by_position(asset.vertices)
    merged_faces = inverse[asset.faces]
    normals = vertex_normals(positions, merged_faces)
    light = jitter_direction(
        np.asarray(params.get("light_from", [0.6, -0.5, 0.6]), dtype=np.float64),
        float(params.get("jitter_deg", 25.0)),
        rng,
    )
    floor = float(params.get("floor", 0.4))
    gain = float(params.get("gain", 1.35))
    ao_strength = float(params.get("ao_strength", 1.0))
    n_dirs = int(params.get("ao_dirs", 32))
    if not 0 <= floor <= 1 or gain <= 0 or ao_strength < 0 or n_dirs < 0:
        raise TwingapError(f"baked light: invalid parameters {params}")
    tri = positions[merged_faces]
    edge = float(np.median(np.linalg.norm(tri[:, [1, 2, 0]] - tri, axis=2)))
    extent = float(np.max(positions.max(0) - positions.min(0)))
    cell = max(1.5 * edge, extent / 256.0, 1e-9)
    occluders = np.concatenate([positions, tri.mean(axis=1)])
    lambert = np.clip(normals @ light, 0.0, None)
    smooth = smoothing_operator(merged_faces, len(positions))
    n_smooth = int(params.get("smooth_iters", 2))
    if params.get("shadow", True):
        shadow = visibility(positions, normals, occluders, light, cell).astype(np.float64)
        for _ in range(n_smooth):  # soften the binary shadow-map test into a penumbra
            shadow = smooth @ shadow
        lambert = lambert * shadow
    ao = np.ones(len(positions))
    if n_dirs > 0:
        ao = ambient_occlusion(positions, normals, occluders, cell, n_dirs)
        for _ in range(n_smooth):  # average out the sampling noise of the binary visibility tests
            ao = smooth @ ao
    shade = gain * (floor + (1.0 - floor) * lambert) * ao**ao_strength
    return shade[inverse], light


def apply(asset: Asset, params: dict, rng: np.random.Generator) -> Asset:
    """Bake the key light and ambient occlusion into the albedo (see the module docstring)."""
    check_mesh(asset)
    base = asset
    if asset.texture.shape[0] * asset.texture.shape[1] == 1 or not asset.textured:
        base = box_projection_atlas(asset, int(params.get("atlas_px", 1024)))
    shade, light = vertex_shading(base, params, rng)
    h, w = base.texture.shape[:2]
    # the shade is smooth (interpolated per vertex): rasterise it at <= shade_px and upsample
    scale = min(1.0, int(params.get("shade_px", 512)) / max(h, w))
    sh, sw = max(1, round(h * scale)), max(1, round(w * scale))
    shade_map = rasterize_uv(base.uvs, base.faces, shade[:, None], sh, sw)
    if (sh, sw) != (h, w):
        shade_map = cv2.resize(shade_map[..., 0].astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
        shade_map = shade_map.astype(np.float64)[..., None]
    texture = np.clip(np.rint(base.texture.astype(np.float64) * shade_map), 0, 255).astype(np.uint8)
    meta = {**base.metadata, "baked_light_from": [round(float(x), 6) for x in light]}
    return base.replace(texture=texture, metadata=meta)


def damage(before: Asset, after: Asset, params: dict) -> dict[str, float]:
    """Area-weighted mean and 95th-percentile albedo change over the surface (0-1 of full scale).

    Sampled at face centroids; :func:`apply` keeps the face order even when it builds an atlas.
    """
    rgb0, area = surface_albedo(before)
    rgb1, _ = surface_albedo(after)
    if len(rgb0) != len(rgb1):
        raise TwingapError("baked light damage: face counts differ between before and after")
    diff = np.abs(rgb1 - rgb0).mean(axis=1) / 255.0
    order = np.argsort(diff)
    cum = np.cumsum(area[order]) / max(area.sum(), 1e-300)
    p95 = float(diff[order][min(int(np.searchsorted(cum, 0.95)), len(diff) - 1)])
    return {
        "mean_albedo_change": float((diff * area).sum() / max(area.sum(), 1e-300)),
        "p95_albedo_change": p95,
    }


def ambient_occlusion(
    positions: np.ndarray, normals: np.ndarray, occluders: np.ndarray, cell: float, n_dirs: int
) -> np.ndarray:
    """(V,) cosine-weighted share of ``n_dirs`` hemisphere directions in which each vertex is open.

    Args:
        positions: (V, 3) vertex positions (object frame, metres).
        normals: (V, 3) unit vertex normals.
        occluders: (P, 3) points that block rays (vertices and face centroids).
        cell: Grid cell of the visibility test (metres), as :func:`visibility` takes it.
        n_dirs: Fibonacci directions on the sphere; those below a vertex's horizon do not count.

    Returns:
        1 = fully open, 0 = fully occluded (1 where no direction is above the horizon).
    """
    num = np.zeros(len(positions))
    den = np.zeros(len(positions))
    for d in fibonacci_directions(n_dirs):
        w = np.clip(normals @ d, 0.0, None)
        front = w > 0
        if not front.any():
            continue
        vis = np.zeros(len(positions), dtype=bool)
        vis[front] = visibility(positions[front], normals[front], occluders, d, cell)
        num += w * vis
        den += w
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), 1.0)
