"""Twin fidelity: how closely a twin render reproduces its real frame.

Per frame (and averaged per video and overall), comparing the twin render with the photo:

* ``mask_iou``: mean over objects of the visible-mask IoU (twin instance ids vs real masks).
* ``depth_mae_mm``: mean absolute depth difference (millimetres) on pixels that both call the same
  object and where the real depth is valid.
* ``color_err_srgb`` / ``color_err_de2000``: per object, the distance between the mean colour of
  the twin and of the photo on the pixels both call that object (sRGB 0-255 Euclidean, and
  CIEDE2000), averaged over objects.
* ``blur_err``: mean absolute error (8-bit levels) on those object pixels after a Gaussian blur
  of sigma 4 px on both images (raw pixel error is dominated by sub-pixel texture misalignment).
* ``bg_err``: mean absolute error on pixels that neither image calls an object.

Appearance metrics are reported ``_before`` (uncalibrated twin) and ``_after`` (calibrated);
``split`` says whether the frame was used to fit the calibration (``fit``) or held out.
"""

from __future__ import annotations

import numpy as np

#: Sigma of the Gaussian blur before the pixel error, pixels.
BLUR_SIGMA = 4.0


def srgb_to_lab(rgb255: np.ndarray) -> np.ndarray:
    """Convert sRGB (..., 3) in 0-255 -> CIE L*a*b* (D65 white)."""
    c = np.asarray(rgb255, dtype=np.float64) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array(
        [
            [0.4124564, 0.3575761, 0.1804375],
            [0.2126729, 0.7151522, 0.0721750],
            [0.0193339, 0.1191920, 0.9503041],
        ]
    )
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883])
    eps, kappa = 216 / 24389, 24389 / 27
    f = np.where(xyz > eps, np.cbrt(xyz), (kappa * xyz + 16) / 116)
    L = 116 * f[..., 1] - 16
    a = 500 * (f[..., 0] - f[..., 1])
    b = 200 * (f[..., 1] - f[..., 2])
    return np.stack([L, a, b], axis=-1)


def ciede2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 colour difference of (..., 3) L*a*b* arrays (kL = kC = kH = 1)."""
    L1, a1, b1 = np.moveaxis(np.asarray(lab1, np.float64), -1, 0)
    L2, a2, b2 = np.moveaxis(np.asarray(lab2, np.float64), -1, 0)
    C1, C2 = np.hypot(a1, b1), np.hypot(a2, b2)
    Cm = (C1 + C2) / 2
    G = 0.5 * (1 - np.sqrt(Cm**7 / (Cm**7 + 25.0**7)))
    a1p, a2p = (1 + G) * a1, (1 + G) * a2
    C1p, C2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360
    dLp = L2 - L1
    dCp = C2p - C1p
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(C1p * C2p == 0, 0.0, dh)
    dHp = 2 * np.sqrt(C1p * C2p) * np.sin(np.radians(dh) / 2)
    Lpm = (L1 + L2) / 2
    Cpm = (C1p + C2p) / 2
    hsum = h1p + h2p
    hpm = np.where(
        np.abs(h1p - h2p) > 180, np.where(hsum < 360, (hsum + 360) / 2, (hsum - 360) / 2), hsum / 2
    )
    hpm = np.where(C1p * C2p == 0, hsum, hpm)
    T = (
        1
        - 0.17 * np.cos(np.radians(hpm - 30))
        + 0.24 * np.cos(np.radians(2 * hpm))
        + 0.32 * np.cos(np.radians(3 * hpm + 6))
        - 0.20 * np.cos(np.radians(4 * hpm - 63))
    )
    dtheta = 30 * np.exp(-(((hpm - 275) / 25) ** 2))
    Rc = 2 * np.sqrt(Cpm**7 / (Cpm**7 + 25.0**7))
    Sl = 1 + 0.015 * (Lpm - 50) ** 2 / np.sqrt(20 + (Lpm - 50) ** 2)
    Sc = 1 + 0.045 * Cpm
    Sh = 1 + 0.015 * Cpm * T
    Rt = -np.sin(np.radians(2 * dtheta)) * Rc
    return np.sqrt((dLp / Sl) ** 2 + (dCp / Sc) ** 2 + (dHp / Sh) ** 2 + Rt * (dCp / Sc) * (dHp / Sh))


def mask_ious(instance_ids: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """(N,) IoU of each rendered instance mask (``ids == i + 1``) with the real mask ``i``.

    An object absent from both counts as IoU 1.
    """
    out = np.ones(len(masks))
    for i, m in enumerate(masks):
        r = instance_ids == i + 1
        union = np.count_nonzero(r | m)
        if union:
            out[i] = np.count_nonzero(r & m) / union
    return out


def depth_error_mm(depth_twin: np.ndarray, depth_real: np.ndarray, agree: np.ndarray) -> float:
    """Mean absolute depth difference (mm) on ``agree`` pixels with valid real and twin depth."""
    sel = agree & (depth_real > 0) & (depth_twin > 0)
    if not sel.any():
        return float("nan")
    return float(np.mean(np.abs(depth_twin[sel].astype(np.float64) - depth_real[sel])) * 1000)


def appearance_errors(
    twin_rgb: np.ndarray, real_rgb: np.ndarray, agree: np.ndarray, background: np.ndarray
) -> dict:
    """Colour errors of a twin render against its photo.

    Args:
        twin_rgb: (H, W, 3) uint8 twin render.
        real_rgb: (H, W, 3) uint8 photo.
        agree: (H, W) int32, ``i + 1`` where both images show object ``i`` (see
            :func:`twingap.render.calibration.agreeing_pixels`).
        background: (H, W) bool pixels that neither image calls an object.

    Returns:
        ``color_err_srgb``, ``color_err_de2000`` (mean over objects), ``blur_err`` and ``bg_err``
        (mean absolute error, 8-bit levels).
    """
    import cv2

    t = twin_rgb.astype(np.float64)
    r = real_rgb.astype(np.float64)
    e_rgb, e_de = [], []
    for i in np.unique(agree[agree > 0]):
        sel = agree == i
        mt, mr = t[sel].mean(0), r[sel].mean(0)
        e_rgb.append(float(np.linalg.norm(mt - mr)))
        e_de.append(float(ciede2000(srgb_to_lab(mt), srgb_to_lab(mr))))
    tb = cv2.GaussianBlur(t, (0, 0), BLUR_SIGMA)
    rb = cv2.GaussianBlur(r, (0, 0), BLUR_SIGMA)
    obj = agree > 0
    nan = float("nan")
    return {
        "color_err_srgb": float(np.mean(e_rgb)) if e_rgb else nan,
        "color_err_de2000": float(np.mean(e_de)) if e_de else nan,
        "blur_err": float(np.mean(np.abs(tb[obj] - rb[obj]))) if obj.any() else nan,
        "bg_err": float(np.mean(np.abs(t[background] - r[background]))) if background.any() else nan,
    }


def _side_by_side(real: np.ndarray, before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Picture: real | twin before calibration | twin after | 3x absolute difference (after)."""
    diff = np.clip(np.abs(after.astype(np.int16) - real.astype(np.int16)) * 3, 0, 255).astype(np.uint8)
    return np.concatenate([real, before, after, diff], axis=1)


def _mean(rows: list[dict], key: str) -> float:
    vals = [r[key] for r in rows if r.get(key) is not None and np.isfinite(r[key])]
    return float(np.mean(vals)) if vals else float("nan")


METRIC_KEYS = (
    "mask_iou",
    "depth_mae_mm",
    "color_err_srgb_before",
    "color_err_srgb_after",
    "color_err_de2000_before",
    "color_err_de2000_after",
    "blur_err_before",
    "blur_err_after",
    "bg_err_before",
    "bg_err_after",
)


def summarize(rows: list[dict], split: str | None = "held_out") -> dict:
    """Mean of every metric over ``rows`` (restricted to a split; falls back to all rows)."""
    sel = [r for r in rows if split is None or r["split"] == split] or rows
    out = {k: _mean(sel, k) for k in METRIC_KEYS}
    out["frames"] = len(sel)
    return out


def run_twin_check(
    frames,
    library,
    out_dir,
    scale: float = 1.0,
    calib_scale: float = 0.5,
    renderer=None,
    progress: bool = True,
) -> dict:
    """Twins of all frames: calibrate per video (even frames), score every frame, write a report.

    Writes into ``out_dir``: ``env/<video>/...`` (twin environments and ``calibration.json``),
    ``twin_scenes.json`` (calibrated twins, image background), ``frames.csv``, ``videos.csv``,
    ``report.json`` and ``<video>.png`` (real | twin before | twin after | 3x difference, first
    held-out frame).

    Args:
        frames: Real frames with depth.
        library: Model library.
        out_dir: Report folder.
        scale: Image scale of the scored renders.
        calib_scale: Image scale of the calibration renders.
        renderer: A renderer with ``return_linear`` support (default: the raster backend).
        progress: Show progress bars.

    Returns:
        The report dict (``videos``, ``overall``, ``frames``).
    """
    import dataclasses
    from pathlib import Path

    from twingap.io import write_json_atomic, write_text_atomic
    from twingap.render.background import save_png
    from twingap.render.calibration import agreeing_pixels, apply_calibration, calibrate_video, resize_real
    from twingap.render.scene import save_scenes
    from twingap.render.twin import build_twins, group_by_video

    out_dir = Path(out_dir)
    if renderer is None:
        from twingap.render.raster import RasterRenderer

        renderer = RasterRenderer()
    twins, envs = build_twins(frames, library, out_dir / "env", background="image", progress=progress)
    by_id = dict(zip([f.frame_id for f in frames], twins, strict=True))
    assets = {name: library.load(name) for name in sorted({o.model for s in twins for o in s.objects})}
    groups = group_by_video(frames)
    rows: list[dict] = []
    calibrated: list = []
    cals = {}
    videos = sorted(groups)
    it = videos
    if progress:
        from rich.progress import track

        it = track(videos, description="calibrate + score")
    for video in it:
        fs = groups[video]
        fit_idx = list(range(0, len(fs), 2))
        fit_f = [fs[i] for i in fit_idx]
        cal = calibrate_video(fit_f, [by_id[f.frame_id] for f in fit_f], assets, renderer, scale=calib_scale)
        cals[video] = cal
        write_json_atomic(envs[video].folder / "calibration.json", cal)
        picture = None
        for i, f in enumerate(fs):
            split = "fit" if (i in fit_idx and len(fs) > 1) else ("held_out" if len(fs) > 1 else "fit")
            before_s = by_id[f.frame_id]
            from twingap.render.twin import scale_scene

            before_s = scale_scene(before_s, scale)
            after_s = apply_calibration(before_s, cal)
            calibrated.append(apply_calibration(by_id[f.frame_id], cal))
            rb = renderer.render(before_s, assets)
            # scored without sensor noise: the background photo already has the real noise
            quiet = dataclasses.replace(
                after_s, response=dataclasses.replace(after_s.response, noise_sigma=0.0)
            )
            ra = renderer.render(quiet, assets)
            h, w = ra.instance_ids.shape
            real, masks = resize_real(f, w, h)
            depth = f.depth
            if depth is not None and depth.shape != (h, w):
                import cv2

                depth = cv2.resize(depth, (w, h), interpolation=cv2.INTER_NEAREST)
            agree = agreeing_pixels(ra.instance_ids, masks, erode_px=1)
            bg = (ra.instance_ids == 0) & ~np.any(masks, axis=0) if len(masks) else ra.instance_ids == 0
            eb = appearance_errors(rb.rgb, real, agree, bg)
            ea = appearance_errors(ra.rgb, real, agree, bg)
            row = {
                "video": video,
                "frame": f.frame_id,
                "split": split,
                "objects": int(f.num_instances),
                "mask_iou": float(np.mean(mask_ious(ra.instance_ids, masks))) if len(masks) else float("nan"),
                "depth_mae_mm": depth_error_mm(ra.depth, depth, agree > 0)
                if depth is not None
                else float("nan"),
            }
            for k, v in eb.items():
                row[f"{k}_before"] = v
            for k, v in ea.items():
                row[f"{k}_after"] = v
            rows.append(row)
            if picture is None and (split == "held_out" or i == len(fs) - 1):
                picture = _side_by_side(real, rb.rgb, renderer.render(after_s, assets).rgb)
        save_png(out_dir / f"{video}.png", picture)
    save_scenes(out_dir / "twin_scenes.json", calibrated)
    report = {
        "scale": scale,
        "calibration_scale": calib_scale,
        "fit_split": "even frames of each video (0-based position); metrics on the odd (held_out) ones",
        "overall": summarize(rows),
        "overall_all_frames": summarize(rows, None),
        "videos": {v: summarize([r for r in rows if r["video"] == v]) for v in videos},
        "calibration": cals,
        "frames": rows,
    }
    write_json_atomic(out_dir / "report.json", report)
    cols = ["video", "frame", "split", "objects", *METRIC_KEYS]
    lines = [",".join(cols)] + [",".join(_fmt(r[c]) for c in cols) for r in rows]
    write_text_atomic(out_dir / "frames.csv", "\n".join(lines) + "\n")
    vcols = ["video", "frames", *METRIC_KEYS]
    vlines = [",".join(vcols)]
    for v in [*videos, "overall"]:
        s = report["overall"] if v == "overall" else report["videos"][v]
        vlines.append(",".join([v] + [_fmt(s[c]) for c in vcols[1:]]))
    write_text_atomic(out_dir / "videos.csv", "\n".join(vlines) + "\n")
    return report


def _fmt(x) -> str:
    if isinstance(x, float):
        return f"{x:.4f}"
    return str(x)
