"""Texture blur: how blurred the albedo is over the texels the UV charts use, and texel density.

No clean reference exists, so the measure compares the texture with blurred copies of itself: the
gradient energy ``E(s)`` of the luminance after a Gaussian blur of sigma ``s`` (normalised
convolution inside the charts, so the unused atlas background never counts), relative to
``E(0)``. A texture already blurred by ``b`` texels keeps its gradient energy until ``s`` passes
``b``; for the usual ``1/f`` spectrum of natural images ``E(s) / E(0) = sqrt(b^2 + e^2) /
sqrt(b^2 + e^2 + s^2)`` (``e``: the texture's own sharpness limit), so the scale ``s_half``
where half the energy is gone gives ``sqrt(b^2 + e^2) = s_half / sqrt(3)``. The score is that
blur in pixels of a 2048 px texture (the unit of the ``texture-N`` conditions' ``sigma_px_at_2048``).

Texel density is ``sqrt(UV area in texels / surface area in cm^2)`` (pixels per centimetre); the
blur divided by it is the size of the finest detail left on the object, in millimetres.
"""

from __future__ import annotations

import cv2
import numpy as np

from twingap.artifacts.base import face_areas
from twingap.artifacts.texture_blur import chart_mask
from twingap.assets.asset import Asset

#: Blur scales tried, in texels: 0.35 * 2^(k/2).
SCALES = 0.35 * 2.0 ** (np.arange(15) / 2.0)
#: Below this mean squared gradient (grey levels^2 per texel^2) the texture has no detail to judge.
MIN_GRADIENT_ENERGY = 0.2
#: Width of the window's fall-off at the chart borders (texels at 1024 px): see :func:`taper`.
TAPER_AT_1024 = 8
#: High-pass sigma (texels at 1024 px) applied before measuring: see :func:`detail`.
HIGHPASS_AT_1024 = 48.0
#: Tile size (texels at 1024 px) of the blurry-regions map, and the probe blur (texels).
TILE_AT_1024, PROBE_SIGMA_AT_1024 = 32, 2.0


def _gray(texture: np.ndarray) -> np.ndarray:
    return texture.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _blur_in_mask(gray: np.ndarray, mask: np.ndarray, sigma: float) -> np.ndarray:
    """Normalised Gaussian blur inside ``mask``; wide blurs run on a copy shrunk by ``sigma / 4``."""
    step = int(sigma // 4)
    if step >= 2:
        h, w = gray.shape
        small = (max(1, w // step), max(1, h // step))
        g = cv2.resize(gray * mask, small, interpolation=cv2.INTER_AREA)
        m = cv2.resize(mask, small, interpolation=cv2.INTER_AREA)
        s = sigma * small[0] / w
        num = cv2.GaussianBlur(g, (0, 0), sigmaX=s, sigmaY=s, borderType=cv2.BORDER_REFLECT)
        den = cv2.GaussianBlur(m, (0, 0), sigmaX=s, sigmaY=s, borderType=cv2.BORDER_REFLECT)
        low = num / np.maximum(den, 1e-6)
        return cv2.resize(low, (w, h), interpolation=cv2.INTER_LINEAR)
    num = cv2.GaussianBlur(gray * mask, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)
    den = cv2.GaussianBlur(mask, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)
    return num / np.maximum(den, 1e-6)


def _grad2(img: np.ndarray) -> np.ndarray:
    gx = cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    return gx * gx + gy * gy


def detail(gray: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The luminance minus its low-pass (sigma :data:`HIGHPASS_AT_1024`, inside the charts), 0 outside.

    The high-pass takes out slow brightness changes (shading baked into the albedo, large colour
    fields) that would otherwise read as blur; what is left is the detail the blur acts on.
    """
    sigma = HIGHPASS_AT_1024 * max(gray.shape) / 1024.0
    return (gray - _blur_in_mask(gray, mask, sigma)) * mask


def taper(mask: np.ndarray) -> np.ndarray:
    """A window that falls smoothly to 0 over :data:`TAPER_AT_1024` texels inside the chart borders.

    Cutting the detail image off at the chart border would add a step edge there, read as sharp
    detail however blurred the texture is.
    """
    t = max(1, round(TAPER_AT_1024 * max(mask.shape) / 1024.0))
    inner = cv2.erode(mask, np.ones((2 * t + 1, 2 * t + 1), np.uint8))
    return cv2.GaussianBlur(inner, (0, 0), sigmaX=t / 2.0, sigmaY=t / 2.0) * mask


def energy_curve(gray: np.ndarray, mask: np.ndarray) -> tuple[float, np.ndarray]:
    """Gradient energy of the :func:`detail` image and its fall-off with blur.

    Returns ``(E0, ratios)``: ``E0`` the mean squared gradient per chart texel (grey levels^2 per
    texel^2), ``ratios`` ``E(s) / E(0)`` for each of :data:`SCALES`. ``E(s)`` is computed from
    one FFT: the gradient power spectrum (central-difference transfer), less the flat floor of
    uint8 rounding noise, weighted by the Gaussian's squared transfer ``exp(-|k|^2 s^2)``.
    """
    d = detail(gray, mask) * taper(mask)
    e0 = float(_grad2(d).sum() / max(float(mask.sum()), 1.0))
    if e0 <= 0:
        return 0.0, np.zeros(len(SCALES))
    power = np.abs(np.fft.rfft2(d.astype(np.float64))) ** 2
    ky = 2 * np.pi * np.fft.fftfreq(d.shape[0])[:, None]
    kx = 2 * np.pi * np.fft.rfftfreq(d.shape[1])[None, :]
    # uint8 rounding adds white noise of variance 1/12 per texel: its flat floor would read as detail
    power = np.maximum(power - float(mask.sum()) / 12.0, 0.0)
    grad = power * (np.sin(kx) ** 2 + np.sin(ky) ** 2)
    k2 = kx**2 + ky**2
    total = float(grad.sum())
    ratios = [float((grad * np.exp(-k2 * s * s)).sum()) / total for s in SCALES]
    return e0, np.asarray(ratios)


def half_energy_scale(ratios: np.ndarray) -> float:
    """The scale (texels) where ``E(s) / E(0)`` falls to 0.5, interpolated in log scale."""
    below = np.flatnonzero(ratios < 0.5)
    if len(below) == 0:
        return float(SCALES[-1])
    k = int(below[0])
    if k == 0:
        return float(SCALES[0])
    r0, r1 = ratios[k - 1], ratios[k]
    t = (r0 - 0.5) / max(r0 - r1, 1e-12)
    return float(np.exp(np.log(SCALES[k - 1]) + t * (np.log(SCALES[k]) - np.log(SCALES[k - 1]))))


def texel_density(asset: Asset) -> float:
    """Texels per centimetre of surface: ``sqrt(sum UV area in texels / sum surface area in cm^2)``."""
    h, w = asset.texture.shape[:2]
    uv = asset.uvs[asset.faces]
    d1, d2 = uv[:, 1] - uv[:, 0], uv[:, 2] - uv[:, 0]
    uv_area = 0.5 * np.abs(d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0]).sum() * w * h
    surf_cm2 = 1e4 * float(face_areas(asset.vertices, asset.faces).sum())
    return float(np.sqrt(uv_area / surf_cm2)) if surf_cm2 > 0 else 0.0


def blur_map(gray: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-tile share of gradient energy a small probe blur keeps (1 = blurry; NaN = no detail/outside).

    Returns:
        (H / tile, W / tile) float array.
    """
    scale = max(gray.shape) / 1024.0
    tile = max(4, round(TILE_AT_1024 * scale))
    g0 = _grad2(gray) * mask
    g1 = _grad2(_blur_in_mask(gray, mask, PROBE_SIGMA_AT_1024 * scale)) * mask
    th, tw = gray.shape[0] // tile, gray.shape[1] // tile

    def tiles(a: np.ndarray) -> np.ndarray:
        return a[: th * tile, : tw * tile].reshape(th, tile, tw, tile).sum(axis=(1, 3))

    m, e0, e1 = tiles(mask), tiles(g0), tiles(g1)
    ok = (m > 0.25 * tile * tile) & (e0 > MIN_GRADIENT_ENERGY * np.maximum(m, 1))
    return np.where(ok, e1 / np.maximum(e0, 1e-12), np.nan)


def _upsample_shading(shading: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    filled = np.where(np.isfinite(shading), shading, 1.0).astype(np.float32)
    up = cv2.resize(filled, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    return np.clip(up, 0.2, 5.0)


def measure(asset: Asset, shading: np.ndarray | None = None) -> tuple[dict, dict]:
    """Blur and texel density of a textured asset.

    Args:
        asset: The asset.
        shading: Optional (h, w) fitted shading (:mod:`twingap.audit.baked_light`'s map; NaN where
            unknown): the luminance is divided by it first, so baked light does not read as blur.

    Returns:
        ``(record, maps)``. Without a texture map (or with no detail in it) ``record["score"]`` is
        None and ``record["reason"]`` says why. Otherwise ``score`` is the blur in pixels at 2048,
        with ``blur_texels``, ``blur_mm``, ``texel_density_px_per_cm``, ``gradient_energy``;
        ``maps`` has ``blur_map`` (see :func:`blur_map`) and ``mask`` (the chart mask).
    """
    h, w = asset.texture.shape[:2]
    if not asset.textured or h * w <= 1:
        return {"score": None, "reason": "no texture map (one uniform colour)"}, {}
    mask = chart_mask(asset)
    gray = _gray(asset.texture)
    if shading is not None:
        gray = gray / _upsample_shading(shading, gray.shape)
    e0, ratios = energy_curve(gray, mask)
    density = texel_density(asset)
    record: dict = {"texture_px": [h, w], "texel_density_px_per_cm": density, "gradient_energy": e0}
    if e0 < MIN_GRADIENT_ENERGY:
        return {
            **record,
            "score": None,
            "reason": "texture has no detail (one colour): blur cannot be judged",
        }, {}
    blur_texels = half_energy_scale(ratios) / np.sqrt(3.0)
    record.update(
        score=blur_texels * 2048.0 / max(h, w),
        blur_texels=blur_texels,
        blur_mm=10.0 * blur_texels / density if density > 0 else None,
        energy_ratios=[round(float(r), 4) for r in ratios],
    )
    return record, {"blur_map": blur_map(gray, mask), "mask": mask}
