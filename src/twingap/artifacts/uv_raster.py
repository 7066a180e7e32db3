"""Rasterisation of per-vertex values into texture (UV) space, shared by the texture ops."""

from __future__ import annotations

import cv2
import numpy as np


def rasterize_uv(
    uvs: np.ndarray,
    faces: np.ndarray,
    values: np.ndarray,
    height: int,
    width: int,
    return_coverage: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Rasterise per-vertex values into texture space, then fill uncovered texels by nearest.

    Args:
        uvs: (V, 2) OBJ-convention UVs (texel ``(row, col)`` centre at ``((row + .5) / H, ...)``
            with ``v = 1 - (row + 0.5) / H``).
        faces: (F, 3) indices into ``uvs`` / ``values``.
        values: (V, C) per-vertex values, interpolated barycentrically.
        height: Texture rows.
        width: Texture columns.
        return_coverage: Also return the (H, W) bool mask of texels whose centre lies in a triangle.

    Returns:
        (H, W, C) float64 (and the coverage mask if asked).
    """
    chans = values.shape[1]
    img = np.zeros((height, width, chans))
    covered = np.zeros((height, width), dtype=bool)
    px = uvs[:, 0] * width - 0.5
    py = (1.0 - uvs[:, 1]) * height - 0.5
    tx, ty = px[faces], py[faces]
    x0 = np.clip(np.ceil(tx.min(1)), 0, width - 1).astype(np.int64)
    x1 = np.clip(np.floor(tx.max(1)), 0, width - 1).astype(np.int64)
    y0 = np.clip(np.ceil(ty.min(1)), 0, height - 1).astype(np.int64)
    y1 = np.clip(np.floor(ty.max(1)), 0, height - 1).astype(np.int64)
    bw = np.maximum(x1 - x0 + 1, 0)
    bh = np.maximum(y1 - y0 + 1, 0)
    counts = bw * bh
    denom = (ty[:, 1] - ty[:, 2]) * (tx[:, 0] - tx[:, 2]) + (tx[:, 2] - tx[:, 1]) * (ty[:, 0] - ty[:, 2])
    ok = np.abs(denom) > 1e-12
    counts = np.where(ok, counts, 0)
    d = np.where(ok, denom, 1.0)
    # barycentrics as affine functions of the texel centre: l_k = a_k x + b_k y + c_k
    a0, b0 = (ty[:, 1] - ty[:, 2]) / d, (tx[:, 2] - tx[:, 1]) / d
    a1, b1 = (ty[:, 2] - ty[:, 0]) / d, (tx[:, 0] - tx[:, 2]) / d
    c0 = -a0 * tx[:, 2] - b0 * ty[:, 2]
    c1 = -a1 * tx[:, 2] - b1 * ty[:, 2]
    # the interpolated value is affine too: v = l0 v0 + l1 v1 + (1 - l0 - l1) v2
    fv = values[faces]  # (F, 3, C)
    dv0, dv1 = fv[:, 0] - fv[:, 2], fv[:, 1] - fv[:, 2]
    va = a0[:, None] * dv0 + a1[:, None] * dv1
    vb = b0[:, None] * dv0 + b1[:, None] * dv1
    vc = c0[:, None] * dv0 + c1[:, None] * dv1 + fv[:, 2]
    budget = 4_000_000  # candidate texels per chunk (bounds memory)
    start = 0
    cum = np.cumsum(counts)
    while start < len(faces):
        base = cum[start - 1] if start > 0 else 0
        stop = int(np.searchsorted(cum, base + budget, side="right"))
        stop = max(stop, start + 1)
        idx = np.arange(start, stop)
        c = counts[idx]
        total = int(c.sum())
        start = stop
        if total == 0:
            continue
        tri = np.repeat(idx, c)
        offs = np.arange(total) - np.repeat(np.cumsum(c) - c, c)
        w = bw[tri]
        cx = x0[tri] + offs % w
        cy = y0[tri] + offs // w
        l0 = a0[tri] * cx + b0[tri] * cy + c0[tri]
        l1 = a1[tri] * cx + b1[tri] * cy + c1[tri]
        inside = (l0 >= -1e-9) & (l1 >= -1e-9) & (l0 + l1 <= 1.0 + 1e-9)
        t_in, x_in, y_in = tri[inside], cx[inside], cy[inside]
        img[y_in, x_in] = va[t_in] * x_in[:, None] + vb[t_in] * y_in[:, None] + vc[t_in]
        covered[y_in, x_in] = True
    if not covered.any():
        # every triangle is smaller than a texel: splat vertex values instead
        col = np.clip(np.round(px).astype(np.int64), 0, width - 1)
        row = np.clip(np.round(py).astype(np.int64), 0, height - 1)
        img[row, col] = values
        covered[row, col] = True
    if not covered.all():
        img = fill_uncovered(img, covered)
    return (img, covered) if return_coverage else img


def fill_uncovered(img: np.ndarray, covered: np.ndarray, iterations: int = 8) -> np.ndarray:
    """Extend covered texels outwards (mean of covered 3x3 neighbours, ``iterations`` rings).

    Enough for bilinear / mip-mapped lookups near chart borders not to mix in unset texels;
    texels further away (unused atlas space) get the mean covered value.

    Args:
        img: (H, W, C) values, valid where ``covered``.
        covered: (H, W) bool.
        iterations: Rings of texels to fill.

    Returns:
        (H, W, C) float64.
    """
    vals = np.where(covered[..., None], img, 0.0).astype(np.float32)
    mask = covered.astype(np.float32)
    for _ in range(iterations):
        if mask.all():
            break
        num = cv2.boxFilter(vals, -1, (3, 3), normalize=False, borderType=cv2.BORDER_CONSTANT)
        den = cv2.boxFilter(mask, -1, (3, 3), normalize=False, borderType=cv2.BORDER_CONSTANT)
        if num.ndim == 2:
            num = num[..., None]
        grow = (mask == 0) & (den > 0)
        vals = np.where(grow[..., None], num / np.maximum(den, 1.0)[..., None], vals)
        mask = np.maximum(mask, grow.astype(np.float32))
    rest = mask == 0
    if rest.any():
        vals[rest] = img[covered].mean(axis=0)
    return vals.astype(np.float64)
