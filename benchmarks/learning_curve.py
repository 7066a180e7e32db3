"""Learning-curve / variance check of the default detector on the shipped sample.

Builds a cut-and-paste training set from the 60 real sample frames (optimistic: real object
appearance and real backgrounds), trains the default model for each seed, predicts on the
real frames and prints bbox / segm AP with pycocotools, the wall time per stage and the
seed-to-seed spread. With ``--blur S`` it also trains on the same layouts with the pasted
objects blurred (Gaussian sigma S px) and prints the paired difference per seed.

Usage:
    nice .venv/bin/python benchmarks/learning_curve.py --seeds 0 1 --iterations 300 --blur 2
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from twingap.data.coco import frames_to_coco
from twingap.data.loader import load_frames
from twingap.train.config import load_config
from twingap.train.engine import train
from twingap.train.paste import paste_dataset
from twingap.train.predict import predict

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample" / "ycbv_real_frames"


def coco_ap(gt: dict, results: list[dict]) -> dict[str, float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    out = {}
    with contextlib.redirect_stdout(io.StringIO()):
        cgt = COCO()
        cgt.dataset = gt
        cgt.createIndex()
        for kind in ("bbox", "segm"):
            if not results:
                out.update({kind: 0.0, f"{kind}50": 0.0, f"{kind}75": 0.0})
                continue
            cdt = cgt.loadRes(results)
            ev = COCOeval(cgt, cdt, kind)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            out.update({kind: ev.stats[0], f"{kind}50": ev.stats[1], f"{kind}75": ev.stats[2]})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--images", type=int, default=200, help="cut-and-paste training images")
    ap.add_argument(
        "--blur", type=float, default=0.0, help="also train with pasted objects blurred (sigma px)"
    )
    ap.add_argument("--skip-clean", action="store_true", help="with --blur, train only the blurred set")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--set", nargs="*", default=[], help="config overrides key=value (JSON values)")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    overrides = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)}
    cfg = load_config("quick", threads=args.threads, **overrides)
    print("config:", json.dumps({k: v for k, v in cfg.to_dict().items() if k != "extra"}))
    work = args.workdir or Path(tempfile.mkdtemp(prefix="twingap_lc_"))
    frames = load_frames(SAMPLE, load_depth=False)
    gt = frames_to_coco(frames)
    conds = {"clean": 0.0} | ({f"blur{args.blur:g}": args.blur} if args.blur > 0 else {})
    t = time.perf_counter()
    for name, sigma in conds.items():
        if not (work / name / "coco.json").is_file():
            paste_dataset(frames, work / name, n_images=args.images, seed=1234, blur_sigma=sigma)
    print(f"paste datasets: {time.perf_counter() - t:.1f} s ({args.images} images each) in {work}")
    table: dict[str, dict[int, dict[str, float]]] = {c: {} for c in conds}
    for seed in args.seeds:
        for name in conds:
            if args.skip_clean and name == "clean" and len(conds) > 1:
                continue
            run = work / f"run_{name}_s{seed}_{int(time.time())}"
            t0 = time.perf_counter()
            train(work / name, run, cfg.replace(seed=seed), progress=False)
            t1 = time.perf_counter()
            res = predict(run, frames)
            t2 = time.perf_counter()
            ap_ = coco_ap(gt, res)
            meta = json.loads((run / "meta.json").read_text())
            table[name][seed] = ap_
            print(
                f"{name:>8} seed {seed}: bbox AP {ap_['bbox']:.3f} (AP50 {ap_['bbox50']:.3f}"
                f" AP75 {ap_['bbox75']:.3f})"
                f"  segm AP {ap_['segm']:.3f}  | train {t1 - t0:.1f} s (cache {meta['seconds_cache']:.1f} s,"
                f" loop {meta['seconds_loop']:.1f} s = {meta['seconds_loop'] / cfg.iterations:.3f} s/it)"
                f"  predict 60 frames {t2 - t1:.1f} s",
                flush=True,
            )
    for name in (c for c in conds if table[c]):
        for kind in ("bbox", "segm"):
            v = [table[name][s][kind] for s in args.seeds]
            print(
                f"{name} {kind} AP over seeds {args.seeds}: mean {np.mean(v):.3f},"
                f" spread (max-min) {np.ptp(v):.3f}"
            )
    if len(conds) == 2 and all(table.values()):
        other = next(c for c in conds if c != "clean")
        for kind in ("bbox", "segm"):
            d = [table[other][s][kind] - table["clean"][s][kind] for s in args.seeds]
            print(f"paired {other} - clean {kind} AP per seed: {[round(x, 3) for x in d]}")


if __name__ == "__main__":
    main()
