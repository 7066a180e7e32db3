"""Re-accumulation speed: AP on 1000 image multisets from one per-image matching vs full COCOeval each.

Prints, for bbox and segm on the sample's 60 real frames (noisy synthetic predictions made from
the ground truth), the time of 1000 bootstrap resamples with twingap's re-accumulation and the
extrapolated time of running faster-coco-eval on each resample, measured in the same run.

Run: ``.venv/bin/python benchmarks/eval_bootstrap.py``
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import make_predictions  # noqa: E402
from test_eval_bootstrap import _duplicated  # noqa: E402
from twingap.data.coco import frames_to_coco  # noqa: E402
from twingap.data.ycbv import load_ycbv  # noqa: E402
from twingap.evaluate.bootstrap import PerImageEval  # noqa: E402
from twingap.evaluate.coco_map import evaluate_coco  # noqa: E402


def main() -> None:
    gt = frames_to_coco(load_ycbv(ROOT / "data/sample/ycbv_real_frames", load_depth=False))
    preds = make_predictions(gt, seed=0)
    n_img = len(gt["images"])
    for iou_type in ("bbox", "segm"):
        t0 = time.perf_counter()
        pe = PerImageEval.from_coco(gt, preds, iou_type)
        t1 = time.perf_counter()
        rng = np.random.default_rng(0)
        draws = rng.integers(0, n_img, size=(1000, n_img))
        W = np.stack([np.bincount(r, minlength=n_img) for r in draws]).astype(np.int64)
        ap = pe.ap_from_weights(W)[0]
        est = (pe.ap(), *np.quantile(ap, [0.025, 0.975]))
        t2 = time.perf_counter()
        n_ref = 5
        for _ in range(n_ref):
            idx = rng.integers(0, n_img, n_img)
            g2, d2 = _duplicated(gt, preds, idx, pe.img_ids)
            evaluate_coco(g2, d2, iou_types=[iou_type], backend="faster")
        per_ref = (time.perf_counter() - t2) / n_ref
        print(
            f"{iou_type}: matching once {t1 - t0:.3f} s; 1000 resamples re-accumulated {t2 - t1:.2f} s; "
            f"full faster-coco-eval {per_ref:.3f} s per resample -> 1000 in {1000 * per_ref:.0f} s; "
            f"speed-up {1000 * per_ref / (t2 - t1):.0f}x; AP (est,lo,hi)={tuple(round(x, 4) for x in est)}"
        )


if __name__ == "__main__":
    main()
