"""Camera response: linear rendered radiance -> 8-bit sRGB-like image, per :class:`ResponseSpec`.

The pipeline (per pixel, RGB, all in floating point):

1. ``x = M @ linear`` with the optional 3x3 ``color_matrix`` ``M`` (identity if ``None``);
2. ``x = exposure * white_balance * x``, clipped below at 0;
3. ``x = x ** (1 / gamma)``;
4. ``x = tone(x)`` with ``tone(x) = sum_k c_k x**(k+1)`` per channel (``tone`` is a (3, K)
   list of coefficients, e.g. the quadratic ``[[a, b]] * 3`` gives ``a*x + b*x^2``; a single
   row applies to all channels; ``None``/empty = identity);
5. ``x = clip(x, 0, 1) * 255``; add Gaussian sensor noise of ``noise_sigma`` 8-bit levels drawn
   from ``numpy.random.default_rng(seed)`` (float32 ``standard_normal`` of shape (H, W, 3));
   round to nearest and clip to uint8.

The raster backend evaluates steps 1-5 (without noise) in a shader and adds the same noise
with :func:`add_sensor_noise`; :func:`apply_response` is the NumPy reference that twin
calibration can use to fit the parameters on a linear render.
"""

from __future__ import annotations

import numpy as np

from twingap.errors import TwingapError
from twingap.render.scene import ResponseSpec

#: Maximum number of tone-curve coefficients per channel supported by the raster shader.
MAX_TONE_TERMS = 4


def color_matrix(spec: ResponseSpec) -> np.ndarray:
    """(3, 3) float64 colour matrix of ``spec`` (identity when unset)."""
    if spec.color_matrix is None:
        return np.eye(3)
    m = np.asarray(spec.color_matrix, dtype=np.float64)
    if m.shape != (3, 3) or not np.all(np.isfinite(m)):
        raise TwingapError(f"response color_matrix must be a finite 3x3 matrix, got shape {m.shape}")
    return m


def tone_coefficients(spec: ResponseSpec) -> np.ndarray:
    """(3, MAX_TONE_TERMS) float64 tone-curve coefficients (identity curve when unset).

    Raises:
        TwingapError: If ``tone`` has an unsupported shape.
    """
    out = np.zeros((3, MAX_TONE_TERMS))
    if not spec.tone:
        out[:, 0] = 1.0
        return out
    c = np.asarray(spec.tone, dtype=np.float64)
    if c.ndim == 1:
        c = c[None]
    if c.ndim != 2 or c.shape[0] not in (1, 3) or not 1 <= c.shape[1] <= MAX_TONE_TERMS:
        raise TwingapError(
            f"response tone must be (3, K) or (1, K) coefficients with K <= {MAX_TONE_TERMS}, "
            f"got shape {c.shape}"
        )
    if not np.all(np.isfinite(c)):
        raise TwingapError("response tone has non-finite coefficients")
    out[:, : c.shape[1]] = np.broadcast_to(c, (3, c.shape[1]))
    return out


def check_response(spec: ResponseSpec) -> None:
    """Validate a response spec.

    Raises:
        TwingapError: If a parameter is out of range.
    """
    if not spec.exposure > 0 or not spec.gamma > 0:
        raise TwingapError("response exposure and gamma must be positive")
    if len(spec.white_balance) != 3 or min(spec.white_balance) < 0:
        raise TwingapError("response white_balance must be 3 non-negative gains")
    if spec.noise_sigma < 0:
        raise TwingapError("response noise_sigma must be >= 0")
    color_matrix(spec)
    tone_coefficients(spec)


def response_float(linear: np.ndarray, spec: ResponseSpec) -> np.ndarray:
    """Steps 1-4 of the pipeline: (..., 3) linear radiance -> (..., 3) float values in [0, 1]."""
    x = np.asarray(linear, dtype=np.float64) @ color_matrix(spec).T
    x = np.maximum(x * spec.exposure * np.asarray(spec.white_balance, dtype=np.float64), 0.0)
    x = x ** (1.0 / spec.gamma)
    c = tone_coefficients(spec)
    y = np.zeros_like(x)
    p = np.ones_like(x)
    for k in range(MAX_TONE_TERMS):
        p = p * x
        y = y + c[:, k] * p
    return np.clip(y, 0.0, 1.0)


def add_sensor_noise(values255: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """Add seeded Gaussian noise to (H, W, 3) float values in 0-255 and quantise to uint8."""
    x = np.asarray(values255, dtype=np.float32)
    if sigma > 0:
        rng = np.random.default_rng(seed)
        x = x + np.float32(sigma) * rng.standard_normal(x.shape, dtype=np.float32)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def apply_response(linear: np.ndarray, spec: ResponseSpec, seed: int = 0) -> np.ndarray:
    """Full camera response (NumPy reference): (H, W, 3) linear radiance -> (H, W, 3) uint8."""
    return add_sensor_noise(response_float(linear, spec) * 255.0, spec.noise_sigma, seed)


def srgb_to_linear(srgb: np.ndarray) -> np.ndarray:
    """Convert sRGB values in [0, 1] to linear (the exact piecewise sRGB transfer function)."""
    s = np.asarray(srgb, dtype=np.float64)
    return np.where(s <= 0.04045, s / 12.92, ((s + 0.055) / 1.055) ** 2.4)
