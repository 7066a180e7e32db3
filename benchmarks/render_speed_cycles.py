"""Cycles vs raster on twins of real sample frames: speed (s/image, ratio) and mask agreement.

Renders the twins of a few YCB-Video sample frames (annotated poses, default lights) with the
raster backend (in this process) and the Cycles backend (a Blender worker process, default
quality: 8 samples + OpenImageDenoise) and prints, per frame, the per-object mask IoU between
the two backends and the time per image; then the mean/min IoU and the raster/Cycles speed
ratio, both measured in this run.

Usage (bpy in its own environment, driven from the main one)::

    TWINGAP_BPY_PYTHON=.venv-cycles/bin/python .venv/bin/python benchmarks/render_speed_cycles.py \
        --frames 3 --scale 1.0 --samples 8 --threads 2
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from twingap.assets.asset import ModelLibrary, default_sample_root
from twingap.data.loader import load_frames
from twingap.render.backend import get_renderer
from twingap.render.twin import twin_scene


def mask_ious(a: np.ndarray, b: np.ndarray, n: int) -> list[float]:
    """IoU of the instance masks 1..n of two id maps (objects absent from both are skipped)."""
    out = []
    for i in range(1, n + 1):
        ma, mb = a == i, b == i
        union = np.count_nonzero(ma | mb)
        if union:
            out.append(np.count_nonzero(ma & mb) / union)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=3, help="number of sample frames (spread over videos)")
    ap.add_argument("--scale", type=float, default=1.0, help="image scale (1.0 = 640x480)")
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--no-denoise", action="store_true")
    ap.add_argument("--threads", type=int, default=0, help="Cycles CPU threads (0 = all)")
    args = ap.parse_args()

    root = default_sample_root()
    library = ModelLibrary(root / "models")
    frames = load_frames(root / "ycbv_real_frames", load_depth=False)
    step = max(1, len(frames) // max(1, args.frames))
    frames = frames[::step][: args.frames]
    scenes = [twin_scene(f, library, scale=args.scale, seed=k) for k, f in enumerate(frames)]
    assets = {o.model: library.load(o.model) for s in scenes for o in s.objects}
    size = f"{scenes[0].camera.width}x{scenes[0].camera.height}"
    print(
        f"{len(scenes)} twin frames at {size}; Cycles: {args.samples} samples, denoise={not args.no_denoise}"
    )

    raster = get_renderer("raster", width=scenes[0].camera.width, height=scenes[0].camera.height)
    raster.render(scenes[0], assets)  # warm-up: context, uploads
    cycles = get_renderer("cycles", samples=args.samples, denoise=not args.no_denoise, threads=args.threads)
    t0 = time.perf_counter()
    cycles.render(scenes[0], assets)  # warm-up: worker start, bpy import, kernels
    cycles_startup = time.perf_counter() - t0

    t_r, t_c, ious = [], [], []
    for scene, frame in zip(scenes, frames, strict=True):
        t0 = time.perf_counter()
        r = raster.render(scene, assets)
        t_r.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        c = cycles.render(scene, assets)
        t_c.append(time.perf_counter() - t0)
        iou = mask_ious(c.instance_ids, r.instance_ids, len(scene.objects))
        ious += iou
        both = (c.instance_ids > 0) & (c.instance_ids == r.instance_ids)
        dzs = np.abs(c.depth[both] - r.depth[both]) if both.any() else np.zeros(1)
        dz, dz99 = float(dzs.max()), float(np.percentile(dzs, 99))
        print(
            f"  {frame.frame_id}: {len(scene.objects)} objects, mask IoU cycles vs raster "
            f"min {min(iou):.4f} mean {np.mean(iou):.4f}, "
            f"|depth diff| p99 {dz99 * 1000:.3f} max {dz * 1000:.2f} mm, "
            f"raster {t_r[-1]:.3f} s, cycles {t_c[-1]:.2f} s"
        )
    raster.release()
    cycles.close()
    mr, mc = float(np.mean(t_r)), float(np.mean(t_c))
    print(
        f"mask IoU cycles vs raster over {len(ious)} objects: mean {np.mean(ious):.4f}, min {min(ious):.4f}"
    )
    print(f"raster: {mr:.3f} s/image ({1 / mr:.1f} images/s)")
    print(
        f"cycles: {mc:.2f} s/image ({1 / mc:.2f} images/s), worker start + first image {cycles_startup:.1f} s"
    )
    print(f"raster/cycles speed ratio: {mc / mr:.0f}x (raster faster)")
    print("(timings on a shared machine under contention)")


if __name__ == "__main__":
    main()
