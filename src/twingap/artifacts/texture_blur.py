"""Texture blur: a Gaussian blur of the albedo map, as low-resolution or misaligned photos give.

The sigma is given for a 2048 px texture and scaled linearly with the texture's larger side
(``sigma = sigma_px_at_2048 * max(H, W) / 2048``), so the blur is the same on the object
whatever the atlas resolution (the sample textures are 1024 px: sigma 1 / 3 / 8 px). Borders
reflect. Blurring crosses UV-chart borders, which bleeds the atlas background into chart edges,
as real re-projection blur does.

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
    blurred = cv2.GaussianBlur(
        asset.texture, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT
    )
    return asset.replace(texture=np.ascontiguousarray(blurred))


#: Detail finer than this Gaussian sigma (pixels at 2048 px) counts as high frequency.
HF_REFERENCE_SIGMA_AT_2048 = 4.0


def hf_energy(texture: np.ndarray) -> float:
    """High-frequency energy: mean squared luminance residual after a reference Gaussian blur.

    The reference sigma is :data:`HF_REFERENCE_SIGMA_AT_2048` scaled like the blur, so the
    measure means the same on 1024 px and 2048 px atlases (0-255 units squared).
    """
    if texture.shape[0] < 3 or texture.shape[1] < 3:
        return 0.0
    gray = texture.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    sigma = blur_sigma_px(texture.shape, HF_REFERENCE_SIGMA_AT_2048)
    low = cv2.GaussianBlur(gray, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)
    return float(np.mean((gray.astype(np.float64) - low) ** 2))


def damage(before: Asset, after: Asset, params: dict) -> dict[str, float]:
    """Fraction of high-frequency texture energy lost, and mean albedo change (0-1) over the surface."""
    e0, e1 = hf_energy(before.texture), hf_energy(after.texture)
    rgb0, area = surface_albedo(before)
    rgb1, _ = surface_albedo(after)
    change = float((np.abs(rgb1 - rgb0).mean(axis=1) * area).sum() / max(area.sum(), 1e-300)) / 255.0
    return {"hf_energy_lost": 1.0 - e1 / e0 if e0 > 0 else 0.0, "mean_albedo_change": change}
