"""Baked lighting: how much of the albedo's brightness the geometry explains.

A clean albedo does not care which way the surface faces; an albedo with light baked in is darker
where the surface turns away from the light and in creases. The audit regresses the log luminance
of the texels (log: shading multiplies the albedo) on the second-order spherical harmonics of the
surface normal (9 terms: any distant lighting, to a good approximation) plus ambient occlusion,
both rasterised into texture space, and reports the variance explained (R^2) as the score.
Saturated and near-black texels are left out (a baked highlight clips at 255).

Ambient occlusion is the cosine-weighted share of :data:`AO_DIRECTIONS` directions each welded
vertex sees past the rest of the mesh (the shadow-map test of
:func:`twingap.artifacts.baked_light.visibility`), averaged over its neighbours twice.
"""

from __future__ import annotations

import cv2
import numpy as np

from twingap.artifacts.baked_light import ambient_occlusion as _ambient_occlusion
from twingap.artifacts.uv_raster import rasterize_uv
from twingap.assets.asset import Asset
from twingap.audit.geometry import Welded

AO_DIRECTIONS = 16
#: Side of the texture-space grid the regression runs on (texels).
GRID_PX = 256
#: Texels darker than this or with a channel at or above SATURATED (0-255) are left out.
DARK, SATURATED = 8.0, 250.0
MIN_TEXELS = 200
#: Gaussian sigma (grid texels) of the log shading that the texture measure divides out.
DELIGHT_SMOOTH_PX = 2.0


def ambient_occlusion(welded: Welded) -> np.ndarray:
    """(M,) ambient occlusion per welded vertex (1 = fully open)."""
    pos, normals = welded.positions, welded.normals
    tri = pos[welded.faces]
    edge = float(np.median(np.linalg.norm(tri[:, [1, 2, 0]] - tri, axis=2)))
    extent = float(np.max(pos.max(0) - pos.min(0)))
    cell = max(1.5 * edge, extent / 256.0, 1e-9)
    occluders = np.concatenate([pos, tri.mean(axis=1)])
    ao = _ambient_occlusion(pos, normals, occluders, cell, AO_DIRECTIONS)
    avg = welded.neighbour_average()
    for _ in range(2):
        ao = 0.5 * (ao + avg @ ao)
    return ao


def sh_basis(n: np.ndarray, order: int = 2) -> np.ndarray:
    """(N, 4 or 9) real spherical-harmonic basis (unnormalised) of unit normals (N, 3)."""
    x, y, z = n[:, 0], n[:, 1], n[:, 2]
    cols = [np.ones_like(x), x, y, z]
    if order >= 2:
        cols += [x * y, y * z, x * z, x * x - y * y, 3 * z * z - 1]
    return np.stack(cols, axis=1)


def _r2(design: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    fit = design @ coef
    var = float(np.var(y))
    return (1.0 - float(np.var(y - fit)) / var if var > 0 else 0.0), coef


def measure(asset: Asset, welded: Welded) -> tuple[dict, dict]:
    """Variance of log luminance explained by normal + occlusion.

    Returns:
        ``(record, maps)``: ``record`` has ``score`` (R^2 with second-order SH + AO), ``r2_order1``
        (first-order SH + AO), ``shading_std`` (std of the fitted log shading) and ``texels``;
        ``maps`` has ``albedo`` ((h, w, 3) uint8) and ``shading`` ((h, w) fitted shade over the
        texels the UV charts cover, NaN elsewhere) and ``shading_filled`` (the same fit continued
        over the whole grid and smoothed by :data:`DELIGHT_SMOOTH_PX`, for dividing it out of
        the albedo).
        An asset of one uniform colour scores 0: nothing can be baked into it.
    """
    h, w = asset.texture.shape[:2]
    if not asset.textured or h * w <= 1:
        return {"score": 0.0, "reason": "one uniform colour: no lighting can be baked into it"}, {}
    scale = min(1.0, GRID_PX / max(h, w))
    gh, gw = max(1, round(h * scale)), max(1, round(w * scale))
    ao = ambient_occlusion(welded)
    values = np.concatenate([welded.normals, ao[:, None]], axis=1)[welded.inverse]
    grid, covered = rasterize_uv(asset.uvs, asset.faces, values, gh, gw, return_coverage=True)
    albedo = cv2.resize(asset.texture, (gw, gh), interpolation=cv2.INTER_AREA)
    lum = albedo.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    ok = covered & (lum > DARK) & (albedo.max(axis=2) < SATURATED)
    if ok.sum() < MIN_TEXELS:
        return {"score": 0.0, "texels": int(ok.sum()), "reason": "too few usable texels"}, {}
    n = grid[..., :3][ok]
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    y = np.log(lum[ok])
    design = np.concatenate([sh_basis(n, 2), grid[..., 3][ok][:, None]], axis=1)
    r2, coef = _r2(design, y)
    r2_1, _ = _r2(np.concatenate([sh_basis(n, 1), grid[..., 3][ok][:, None]], axis=1), y)
    fitted = design @ coef
    # the fitted shading over the whole grid (rasterize_uv fills uncovered texels from the nearest
    # covered one): a map with gaps or steps would put edges into the de-lit albedo the blur reads
    n_all = grid[..., :3].reshape(-1, 3)
    n_all = n_all / np.maximum(np.linalg.norm(n_all, axis=1, keepdims=True), 1e-12)
    design_all = np.concatenate([sh_basis(n_all, 2), grid[..., 3].reshape(-1, 1)], axis=1)
    log_shade = (design_all @ coef - np.median(fitted)).reshape(gh, gw)
    shading = np.where(covered, np.exp(log_shade), np.nan)
    # for dividing out: smoothed, so that fine relief (a can's ridges) adds no edges of its own
    s = DELIGHT_SMOOTH_PX
    filled = np.exp(cv2.GaussianBlur(log_shade.astype(np.float32), (0, 0), sigmaX=s, sigmaY=s))
    record = {
        "score": max(0.0, r2),
        "r2_order1": max(0.0, r2_1),
        "shading_std": float(np.std(fitted)),
        "texels": int(ok.sum()),
    }
    return record, {"albedo": albedo, "shading": shading, "shading_filled": filled}
