"""Texture blur: a Gaussian blur of the albedo map, as low-resolution or misaligned photos give.

The sigma is given for a 2048 px texture and scaled linearly with the texture's larger side
(``sigma = sigma_px_at_2048 * max(H, W) / 2048``), so the blur is the same on the object
whatever the atlas resolution (the sample textures are 1024 px: sigma 1 / 3 / 8 px).

With ``respect_charts`` (default) the blur is a normalised convolution over the texels the UV
charts cover (dilated by one texel): ``G * (tex m) / G * m``. A plain blur would bleed the unused
atlas background into every chart border and draw dark lines along the texture seams, a flaw
of its own rather than loss of detail. Texels far from any chart are left as they were.

A 1x1 uniform fallback texture (six sample models have no texture map) is left unchanged and its
damage is 0: a uniform colour has no detail to lose. That is the correct answer, not a bug.
"""

from __future__ import annotations

import cv2
import numpy as np

from twingap.artifacts.base import surface_albedo
from twingap.assets.asset import Asset
from twingap.errors import TwingapError


def blur_sigma_px(texture_shape: tuple[int, ...], sigma_px_at_2048: float) -> float:
    """The Gaussian sigma in pixels for a texture of this shape."""
    return float(sigma_px_at_2048) * max(texture_shape[0], texture_shape[1]) / 2048.0


def apply(asset: Asset, params: dict, rng: np.random.Generator) -> Asset:
    """Blur the texture (``params["sigma_px_at_2048"]``); geometry unchanged; ``rng`` unused."""
    sigma = blur_sigma_px(asset.texture.shape, params.get("sigma_px_at_2048", 6.0))
    if sigma < 0:
        raise TwingapError(f"texture blur: sigma must be >= 0, got {sigma}")
    if sigma == 0 or asset.texture.shape[0] * asset.texture.shape[1] == 1:
        return asset.replace(texture=asset.texture.copy())
    tex = asset.texture
    if not params.get("respect_charts", True):
        blurred = cv2.GaussianBlur(tex, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)
        return asset.replace(texture=np.ascontiguousarray(blurred))
    mask = chart_mask(asset)
    num = cv2.GaussianBlur(
        tex.astype(np.float32) * mask[..., None], (0, 0), sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT
    )
    den = cv2.GaussianBlur(mask, (0, 0), sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)
    out = np.where((den > 1e-3)[..., None], num / np.maximum(den, 1e-3)[..., None], tex)
    return asset.replace(texture=np.ascontiguousarray(np.clip(np.rint(out), 0, 255).astype(np.uint8)))


#: Detail finer than this Gaussian sigma (pixels at 2048 px) counts as high frequency.
HF_REFERENCE_SIGMA_AT_2048 = 4.0


def chart_mask(asset: Asset) -> np.ndarray:
    """(H, W) float32 mask of the texels the UV charts touch, dilated by one texel."""
    h, w = asset.texture.shape[:2]
    # texel (row, col) centre at u = (col + .5) / W, v = 1 - (row + .5) / H; 4 bits of sub-texel precision
    px = np.stack([asset.uvs[:, 0] * w - 0.5, (1.0 - asset.uvs[:, 1]) * h - 0.5], axis=1)
    tris = np.round(px[asset.faces] * 16).astype(np.int32)
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, list(tris), 1, lineType=cv2.LINE_8, shift=4)
    return cv2.dilate(mask, np.ones((3, 3), np.uint8)).astype(np.float32)


def hf_energy(texture: np.ndarray, mask: np.ndarray | None = None) -> float:
    """High-frequency energy: mean squared luminance residual after a reference Gaussian blur.

    The reference sigma is :data:`HF_REFERENCE_SIGMA_AT_2048` scaled like the blur, so the
    measure means the same on 1024 px and 2048 px atlases (0-255 units squared). With ``mask``
    ((H, W), 1 = texel in a UV chart) the low-pass is a normalised convolution over the mask and
    only masked texels count, so chart borders against the unused background do not count as
    detail.
    """
    if texture.shape[0] < 3 or texture.shape[1] < 3:
        return 0.0
    gray = texture.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    m = np.ones(gray.shape, np.float32) if mask is None else mask.astype(np.float32)
    if m.sum() <= 0:
        return 0.0
    sigma = blur_sigma_px(texture.shape, HF_REFERENCE_SIGMA_AT_2048)
    num = cv2.GaussianBlur(gray * m, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)
    den = cv2.GaussianBlur(m, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)
    low = num / np.maximum(den, 1e-6)
    resid = (gray.astype(np.float64) - low) * m
    return float((resid**2).sum() / m.sum())


def damage(before: Asset, after: Asset, params: dict) -> dict[str, float]:
    """Fraction of high-frequency texture energy lost (within the UV charts) and mean albedo change.

    The albedo change (0-1 of full scale) is area-weighted over the surface (face centroids).
    """
    mask = chart_mask(before) if before.texture.size > 3 else None
    e0, e1 = hf_energy(before.texture, mask), hf_energy(after.texture, mask)
    rgb0, area = surface_albedo(before)
    rgb1, _ = surface_albedo(after)
    change = float((np.abs(rgb1 - rgb0).mean(axis=1) * area).sum() / max(area.sum(), 1e-300)) / 255.0
    return {"hf_energy_lost": 1.0 - e1 / e0 if e0 > 0 else 0.0, "mean_albedo_change": change}
