"""Twin calibration: fit a video's camera response and lighting to its real frames.

Photogrammetry textures and a real camera disagree (the real frames are warmer, more contrasted,
with blown-out whites and sensor noise). Per video we fit, on the object pixels of some frames
(by default the even ones; the odd ones are held out for :mod:`twingap.render.fidelity`):

* **lights**: an ambient term plus one directional key light (direction in the video's world
  frame, i.e. fixed in the room, and its strength). The raster backend's lit radiance is linear in
  the lights, so one render with ``ambient = 1`` and no light (the albedo ``A``) and one render per
  candidate direction with only that light (``D_k``) give every combination ``A + r D_k`` without
  re-rendering. 17 candidate directions (elevations 30 and 55 degrees x 8 azimuths, plus overhead)
  x 8 strengths relative to the ambient are scored with a linear least-squares colour fit; the best
  pair is kept.
* **camera response** (:class:`~twingap.render.scene.ResponseSpec`): a 3x3 colour matrix
  ``M = diag(g) (I + O)`` (channel gains ``g`` absorb exposure, white balance and the light's
  overall scale, so ``exposure = 1`` and ``white_balance = 1``; the off-diagonal cross-talk ``O`` is
  ridge-regularised), gamma 2.2 and a per-channel quadratic tone curve ``a t + (1 - a) t^2``, fitted
  by bounded non-linear least squares in sRGB on per-pixel (twin linear radiance, real sRGB)
  pairs plus per-object mean colours (equal weight per object)
  (a linear fit in linear space, its starting point, weights bright pixels too much and fits the
  object mean colours about twice worse).
* **sensor noise** ``noise_sigma``: from the high-frequency residual of the real object pixels,
  minus that of the (noise-free) calibrated twin, in 8-bit levels.

Result (JSON, also written as ``ENV/<video>/calibration.json``)::

    {"response": {...ResponseSpec fields...}, "lights": [{...LightSpec...}], "ambient": 1.0,
     "fit": {"frames": [...], "key_direction_candidates": 17, "train_rmse_srgb": ...}}

:func:`twingap.render.twin.twin_scene` applies it to a scene.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from twingap.data.frame import Frame
from twingap.errors import TwingapError
from twingap.render.scene import BackgroundSpec, LightSpec, ResponseSpec, SceneSpec
from twingap.render.twin import scale_camera

GAMMA = 2.2
#: Candidate key-light strengths relative to the ambient term.
RATIOS = (0.0, 0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
#: Ridge weight of the off-diagonal colour-matrix terms (per sqrt(pixel)). At 0.1, YCB-Video 0000
#: (all-red objects) got 86% red-from-green cross-talk, which turned blue cans magenta and white
#: paper pink in composed scenes; at 1.0 its matrix is near-diagonal (blue stays blue) for a 1%
#: higher fit error (57.4 -> 58.0 sRGB levels), and 0001's (varied colours) fit is unchanged.
RIDGE = 1.0
#: Weight of the per-object mean-colour residuals relative to the per-pixel ones.
MEAN_WEIGHT = 3.0


def candidate_directions() -> np.ndarray:
    """(17, 3) unit directions in which candidate key lights travel (world, +z up: all go down)."""
    dirs = [np.array([0.0, 0.0, -1.0])]
    for el in (30.0, 55.0):
        for az in np.arange(8) * 45.0:
            e, a = np.radians(el), np.radians(az)
            dirs.append(-np.array([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)]))
    return np.array(dirs)


def resize_real(frame: Frame, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """The real image and masks at a render size.

    Returns:
        ``(rgb (H,W,3) uint8, masks (N,H,W) bool)``.
    """
    import cv2

    rgb = frame.load_rgb()
    if (frame.width, frame.height) == (width, height):
        return rgb, frame.masks
    rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
    masks = (
        np.stack(
            [
                cv2.resize(m.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST) > 0
                for m in frame.masks
            ]
        )
        if frame.num_instances
        else np.zeros((0, height, width), bool)
    )
    return rgb, masks


def agreeing_pixels(ids: np.ndarray, masks: np.ndarray, erode_px: int = 1) -> np.ndarray:
    """Object pixels where the twin and the real masks agree (eroded to avoid edges).

    Args:
        ids: (H, W) int32 rendered instance ids.
        masks: (N, H, W) bool real visible masks (same order as the scene's objects).
        erode_px: Erosion of each agreeing region, pixels.

    Returns:
        (H, W) int32 map: ``i + 1`` where object ``i`` is seen in both, 0 elsewhere.
    """
    import cv2

    out = np.zeros(ids.shape, np.int32)
    k = np.ones((2 * erode_px + 1, 2 * erode_px + 1), np.uint8)
    for i, m in enumerate(masks):
        both = ((ids == i + 1) & m).astype(np.uint8)
        if erode_px > 0:
            both = cv2.erode(both, k)
        out[both > 0] = i + 1
    return out


def _variant(scene: SceneSpec, scale: float, ambient: float, lights: list[LightSpec]) -> SceneSpec:
    return dataclasses.replace(
        scene,
        camera=scale_camera(scene.camera, scale),
        ambient=ambient,
        lights=lights,
        background=BackgroundSpec(),
        response=ResponseSpec(),
    )


def _pairs(renderer, scene, assets, frame, scale, lights, rng, max_px):
    """Render ambient-only + each light alone; return sampled (A, D (K,N,3), real (N,3)) pairs."""
    base = renderer.render(_variant(scene, scale, 1.0, []), assets, return_linear=True)
    h, w = base.instance_ids.shape
    real, masks = resize_real(frame, w, h)
    sel = agreeing_pixels(base.instance_ids, masks) > 0
    sel &= base.coverage > 0.999
    idx = np.flatnonzero(sel)
    if len(idx) > max_px:
        idx = np.sort(rng.choice(idx, max_px, replace=False))
    A = base.linear.reshape(-1, 3)[idx].astype(np.float64)
    Ds = []
    for light in lights:
        r = renderer.render(_variant(scene, scale, 0.0, [light]), assets, return_linear=True)
        Ds.append(r.linear.reshape(-1, 3)[idx].astype(np.float64))
    Y = real.reshape(-1, 3)[idx].astype(np.float64) / 255.0
    labels = base.instance_ids.reshape(-1)[idx].astype(np.int64)
    return A, np.stack(Ds) if Ds else np.zeros((0, len(idx), 3)), Y, labels


def _lin_fit(X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, float]:
    """Colour matrix ``M`` with ``Y_lin ~ X M^T``; returns M and the mean abs sRGB error."""
    Yl = Y**GAMMA
    Mt, *_ = np.linalg.lstsq(X, Yl, rcond=None)
    pred = np.clip(X @ Mt, 0, 1) ** (1 / GAMMA)
    return Mt.T, float(np.mean(np.abs(pred - Y)))


def _unpack(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Parameters -> (colour matrix (3, 3), tone (3, 2)).

    ``theta`` = log channel gains ``g`` (3), off-diagonal terms ``O`` (6), tone slopes ``a`` (3):
    ``M = diag(g) (I + O)`` and ``tone(t) = a t + (1 - a) t^2`` per channel, which keeps
    ``tone(1) = 1`` so that gains and tone do not trade scale (the fit stays well posed).
    """
    g = np.exp(theta[:3])
    cross = np.zeros(9)
    cross[~np.eye(3, dtype=bool).ravel()] = theta[3:9]
    M = np.diag(g) @ (np.eye(3) + cross.reshape(3, 3))
    a = theta[9:12]
    return M, np.stack([a, 1.0 - a], axis=1)


def _predict(theta: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Predicted sRGB in [0, 1] of linear twin radiance ``X`` (N, 3) under parameters ``theta``."""
    M, tone = _unpack(theta)
    t = np.maximum(X @ M.T, 1e-9) ** (1 / GAMMA)
    return np.clip(tone[:, 0] * t + tone[:, 1] * t * t, 0, 1)


def highpass_sigma(rgb: np.ndarray, region: np.ndarray) -> float:
    """Robust standard deviation (8-bit levels) of the pixel-to-pixel noise inside ``region``.

    Uses horizontal neighbour differences (``std = sqrt(2) sigma`` for white noise) with a MAD
    estimate, so edges and texture contribute little.
    """
    x = rgb.astype(np.float64)
    d = x[:, 1:] - x[:, :-1]
    m = region[:, 1:] & region[:, :-1]
    v = d[m].ravel()
    if len(v) < 50:
        return 0.0
    mad = np.median(np.abs(v - np.median(v)))
    return float(1.4826 * mad / np.sqrt(2))


def calibrate_video(
    frames: list[Frame],
    twins: list[SceneSpec],
    assets: dict,
    renderer,
    scale: float = 0.5,
    light_search_frames: int = 3,
    max_px: int = 6000,
    seed: int = 0,
) -> dict:
    """Fit response, key light, ambient and sensor noise of one video.

    Args:
        frames: The real frames to fit on (one video).
        twins: Their twin scenes (same order; world = the video's world).
        assets: Model name -> :class:`~twingap.assets.asset.Asset`.
        renderer: A renderer whose ``render(scene, assets, return_linear=True)`` returns linear
            radiance and coverage (the raster backend).
        scale: Image scale of the fitting renders (0.5 = 320x240 for YCB-Video).
        light_search_frames: Frames (evenly spread) used to choose the key-light direction.
        max_px: Object pixels sampled per frame.
        seed: Pixel-sampling seed (the fit is deterministic for a seed).

    Returns:
        The calibration dict (``response``, ``lights``, ``ambient``, ``fit``).

    Raises:
        TwingapError: If no frame has object pixels where twin and real masks agree.
    """
    from scipy.optimize import least_squares

    if not frames:
        raise TwingapError("calibration needs at least one frame")
    rng = np.random.default_rng(seed)
    dirs = candidate_directions()
    lights = [LightSpec(kind="directional", direction=tuple(d), intensity=1.0) for d in dirs]
    search = sorted(
        set(np.linspace(0, len(frames) - 1, min(light_search_frames, len(frames))).round().astype(int))
    )
    # 1. key-light direction and strength ratio: linear least squares over a grid
    A_s, D_s, Y_s = [], [], []
    for i in search:
        A, D, Y, _ = _pairs(renderer, twins[i], assets, frames[i], scale, lights, rng, max_px)
        A_s.append(A)
        D_s.append(D)
        Y_s.append(Y)
    A_all, D_all, Y_all = np.concatenate(A_s), np.concatenate(D_s, axis=1), np.concatenate(Y_s)
    if len(Y_all) < 30:
        raise TwingapError(f"video {frames[0].scene_id}: too few object pixels to calibrate")
    best = (np.inf, 0, 1.0)
    for k in range(len(dirs)):
        for r in RATIOS:
            _, err = _lin_fit(A_all + r * D_all[k], Y_all)
            if err < best[0]:
                best = (err, k, r)
    _, kbest, rbest = best
    key = lights[kbest]
    # 2. all fit frames with the chosen light: joint fit of M and the tone curve
    A_f, D_f, Y_f, G_f = [], [], [], []
    for j, (f, s) in enumerate(zip(frames, twins, strict=True)):
        A, D, Y, lab = _pairs(renderer, s, assets, f, scale, [key], rng, max_px)
        A_f.append(A)
        D_f.append(D[0])
        Y_f.append(Y)
        G_f.append(lab + 1000 * j)  # one group per (frame, object)
    A_f, D_f, Y_f = np.concatenate(A_f), np.concatenate(D_f), np.concatenate(Y_f)
    groups = np.concatenate(G_f)
    X_f = A_f + rbest * D_f
    M0, _ = _lin_fit(X_f, Y_f)
    g0 = np.clip(np.diag(M0), 0.05, 20.0)
    theta0 = np.concatenate([np.log(g0), np.zeros(6), np.ones(3)])
    sub = rng.choice(len(Y_f), min(len(Y_f), 30000), replace=False)
    sub.sort()
    # Ridge on the off-diagonal terms: a video whose objects share one hue (all red in YCB-Video
    # 0000) would otherwise get a matrix that turns other colours (white, blue) into nonsense in
    # composed scenes. The weight is relative to the pixel residuals.
    ridge_w = RIDGE * np.sqrt(len(sub))
    # Per-object mean-colour terms, equal weight per (frame, object): the pixel terms alone are
    # dominated by large objects and by sub-pixel texture misalignment.
    gid = np.unique(groups[sub], return_inverse=True)[1]
    count = np.bincount(gid).astype(np.float64)
    mean_w = MEAN_WEIGHT * np.sqrt(len(sub) / len(count))
    Xs, Ys = X_f[sub], Y_f[sub]
    Y_mean = np.stack([np.bincount(gid, Ys[:, c]) / count for c in range(3)], axis=1)

    def resid(th: np.ndarray) -> np.ndarray:
        pred = _predict(th, Xs)
        p_mean = np.stack([np.bincount(gid, pred[:, c]) / count for c in range(3)], axis=1)
        return np.concatenate([(pred - Ys).ravel(), mean_w * (p_mean - Y_mean).ravel(), ridge_w * th[3:9]])

    # plain squared error in sRGB: robust losses were tried and fit the object means worse
    # bounds: gains within e^+-5, cross-talk within +-1, tone slope in [0, 2] (monotone on [0, 1])
    lo = np.concatenate([np.full(3, -5.0), np.full(6, -1.0), np.zeros(3)])
    hi = np.concatenate([np.full(3, 5.0), np.full(6, 1.0), np.full(3, 2.0)])
    theta0 = np.clip(theta0, lo + 1e-6, hi - 1e-6)
    sol = least_squares(resid, theta0, bounds=(lo, hi), max_nfev=200)
    theta = sol.x
    pred = _predict(theta, X_f)
    rmse = float(np.sqrt(np.mean((pred - Y_f) ** 2)) * 255)
    M, tone = _unpack(theta)
    strength = float(rbest)
    cal = {
        "response": {
            "exposure": 1.0,
            "white_balance": [1.0, 1.0, 1.0],
            "gamma": GAMMA,
            "color_matrix": np.round(M, 6).tolist(),
            "tone": np.round(tone, 6).tolist(),
            "noise_sigma": 0.0,
        },
        "lights": [
            {
                "kind": "directional",
                "direction": [round(float(x), 6) for x in dirs[kbest]],
                "position": [0.0, 0.0, 0.0],
                "color": [1.0, 1.0, 1.0],
                "intensity": round(strength, 6),
            }
        ],
        "ambient": 1.0,
        "fit": {
            "frames": [f.frame_id for f in frames],
            "scale": scale,
            "key_direction_candidates": len(dirs),
            "light_search_mean_abs_srgb": round(best[0] * 255, 3),
            "train_rmse_srgb": round(rmse, 3),
        },
    }
    cal["response"]["noise_sigma"] = round(_noise_sigma(frames, twins, assets, renderer, cal), 3)
    return cal


def apply_calibration(scene: SceneSpec, cal: dict) -> SceneSpec:
    """Return a copy of ``scene`` with the calibration's response, lights and ambient."""
    return dataclasses.replace(
        scene,
        response=ResponseSpec(**cal["response"]),
        lights=[
            LightSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in li.items()})
            for li in cal["lights"]
        ],
        ambient=float(cal["ambient"]),
        meta={**scene.meta, "calibrated": True},
    )


def _noise_sigma(frames, twins, assets, renderer, cal, max_frames: int = 3) -> float:
    """Sensor noise (8-bit levels) the twin lacks: real minus twin high-frequency residual."""
    sig = []
    for i in np.linspace(0, len(frames) - 1, min(max_frames, len(frames))).round().astype(int):
        s = apply_calibration(twins[i], cal)
        s = dataclasses.replace(
            s, background=BackgroundSpec(), response=ResponseSpec(**{**cal["response"], "noise_sigma": 0.0})
        )
        res = renderer.render(s, assets)
        real, masks = resize_real(frames[i], res.rgb.shape[1], res.rgb.shape[0])
        region = agreeing_pixels(res.instance_ids, masks, erode_px=2) > 0
        sr, st = highpass_sigma(real, region), highpass_sigma(res.rgb, region)
        sig.append(np.sqrt(max(sr * sr - st * st, 0.0)))
    return float(np.median(sig)) if sig else 0.0
