"""Twin fidelity table (``run_twin_check``) with the raster and the Cycles backend, same frames.

Both backends calibrate and score the twins of the same real sample frames (fit on even frames,
scored on the odd ones); the table prints the overall metrics side by side plus the wall time.
Cycles renders in a Blender worker process (``TWINGAP_BPY_PYTHON`` when bpy is not importable
here).

Usage::

    TWINGAP_BPY_PYTHON=.venv-cycles/bin/python .venv/bin/python benchmarks/twin_fidelity_cycles.py \
        --max-frames 4 --scale 0.5
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from twingap.assets.asset import ModelLibrary, default_sample_root
from twingap.data.loader import load_frames
from twingap.render.backend import get_renderer
from twingap.render.fidelity import METRIC_KEYS, run_twin_check
from twingap.render.twin import group_by_video


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-frames", type=int, default=4, help="frames per video")
    ap.add_argument("--scale", type=float, default=0.5, help="image scale of fit and scored renders")
    ap.add_argument("--samples", type=int, default=8, help="Cycles samples")
    ap.add_argument("--out", type=Path, default=None, help="report folder (default: a temp folder)")
    args = ap.parse_args()

    root = default_sample_root()
    library = ModelLibrary(root / "models")
    frames = load_frames(root / "ycbv_real_frames")
    frames = [f for fs in group_by_video(frames).values() for f in fs[: args.max_frames]]
    out = args.out or Path(tempfile.mkdtemp(prefix="twin-fidelity-"))
    results = {}
    for backend in ("raster", "cycles"):
        opts = {"samples": args.samples} if backend == "cycles" else {}
        renderer = get_renderer(backend, **opts)
        t0 = time.perf_counter()
        report = run_twin_check(
            frames, library, out / backend, scale=args.scale, calib_scale=args.scale, renderer=renderer
        )
        results[backend] = (report["overall"], time.perf_counter() - t0)
        renderer.release()
    n = results["raster"][0]["frames"]
    print(f"twin fidelity, {len(frames)} frames ({n} held out), scale {args.scale}; reports in {out}")
    print(f"{'metric':28s} {'raster':>10s} {'cycles':>10s}")
    for key in METRIC_KEYS:
        print(f"{key:28s} {results['raster'][0][key]:10.4f} {results['cycles'][0][key]:10.4f}")
    print(f"{'wall time, s':28s} {results['raster'][1]:10.1f} {results['cycles'][1]:10.1f}")
    print("(timings on a shared machine under contention)")


if __name__ == "__main__":
    main()
