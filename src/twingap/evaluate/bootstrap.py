"""COCO AP re-accumulated on any weighting of the test images (subsets, multisets, leave-one-scene-out).

The study's intervals (:mod:`twingap.study.stats`) need AP on many image subsets: every test scene
left out in turn (the cluster jackknife), for every model. Recomputing COCOeval for each is slow.
Instead the per-image matching is run once
(pycocotools ``COCOeval.evaluate``: for every image x category, the detections' scores, which
ground truth each matched at each IoU threshold, and which are ignored), and AP is re-accumulated
for a resampled **multiset** of images in numpy. A weighting is a vector ``w`` (how many
times each image was drawn); each detection and ground truth of image ``i`` counts ``w[i]`` times.

The accumulation is COCO's (101-point interpolated precision, area ``all``, ``maxDets`` = 100 per
image and category): detections of a category are ranked by score with a stable sort in image
order, cumulative TP/FP counts give precision and recall, precision is made monotone from the
right, and read at the first rank whose recall reaches each threshold. On the original image set
(all weights 1) this reproduces pycocotools' AP bit for bit (tested). With repeated images, the
copies of a detection sit next to each other in the ranking; their intermediate ranks cannot change
the interpolated precision, so counting them by weight is exact for the multiset too, up to the
order of exactly tied scores within one image.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class _CategoryRecords:
    """Detections of one category over all images, in COCO's ranking order."""

    det_img: np.ndarray  # (D,) int64 image index of each detection
    tp: np.ndarray  # (T, D) bool matched and not ignored
    fp: np.ndarray  # (T, D) bool unmatched and not ignored
    gt_count: np.ndarray  # (I,) int64 non-ignored ground truths per image


class PerImageEval:
    """Per-image COCO matching of one prediction set, re-accumulable on any image multiset.

    Build with :meth:`from_coco`. ``image_indices`` arguments index :attr:`img_ids` (0..I-1) and may
    repeat (a bootstrap resample); None means every image once.

    Attributes:
        img_ids: (I,) sorted COCO image ids.
        cat_ids: Evaluated category ids (sorted).
        iou_thrs: (T,) IoU thresholds (0.50:0.05:0.95).
        rec_thrs: (R,) recall thresholds (0:0.01:1).
        iou_type: ``"bbox"`` or ``"segm"``.
    """

    def __init__(
        self,
        img_ids: np.ndarray,
        cat_ids: list[int],
        iou_thrs: np.ndarray,
        rec_thrs: np.ndarray,
        records: list[_CategoryRecords],
        iou_type: str,
    ) -> None:
        self.img_ids = np.asarray(img_ids, dtype=np.int64)
        self.cat_ids = list(cat_ids)
        self.iou_thrs = np.asarray(iou_thrs, dtype=np.float64)
        self.rec_thrs = np.asarray(rec_thrs, dtype=np.float64)
        self._records = records
        self.iou_type = iou_type
        self._t50 = int(np.argmin(np.abs(self.iou_thrs - 0.5)))

    @property
    def num_images(self) -> int:
        """Number of images I."""
        return len(self.img_ids)

    @classmethod
    def from_coco(
        cls,
        gt: dict[str, Any],
        preds: Sequence[dict[str, Any]],
        iou_type: str = "segm",
        cat_ids: Iterable[int] | None = None,
        img_ids: Iterable[int] | None = None,
        max_dets: int = 100,
    ) -> PerImageEval:
        """Run the per-image COCO matching once.

        Args:
            gt: COCO ground-truth dict.
            preds: COCO results (may be empty).
            iou_type: ``"bbox"`` or ``"segm"``.
            cat_ids: Categories to score (None = all of ``gt``).
            img_ids: Images to score (None = all of ``gt``).
            max_dets: Detections kept per image and category (COCO: 100).
        """
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        from twingap.evaluate.coco_map import _pycoco_from_dict, prepare_results

        with contextlib.redirect_stdout(io.StringIO()):
            coco_gt = _pycoco_from_dict(COCO, gt)
            dets = prepare_results(preds, iou_type)
            coco_dt = coco_gt.loadRes(dets) if dets else _pycoco_from_dict(COCO, {**gt, "annotations": []})
            ev = COCOeval(coco_gt, coco_dt, iou_type)
            p = ev.params
            if cat_ids is not None:
                p.catIds = sorted(int(c) for c in cat_ids)
            if img_ids is not None:
                p.imgIds = sorted(int(i) for i in img_ids)
            p.areaRng = [p.areaRng[p.areaRngLbl.index("all")]]
            p.areaRngLbl = ["all"]
            p.maxDets = [max_dets]
            ev.evaluate()
        p = ev.params
        img_list = list(p.imgIds)  # sorted, unique
        n_img = len(img_list)
        T = len(p.iouThrs)
        records = []
        for k in range(len(p.catIds)):
            scores, matched, ignored, det_img = [], [], [], []
            gt_count = np.zeros(n_img, dtype=np.int64)
            for i in range(n_img):
                e = ev.evalImgs[k * n_img + i]  # one area range: index [k][0][i]
                if e is None:
                    continue
                gt_count[i] = int(np.count_nonzero(np.asarray(e["gtIgnore"]) == 0))
                s = np.asarray(e["dtScores"][:max_dets], dtype=np.float64)
                if len(s) == 0:
                    continue
                scores.append(s)
                matched.append(np.asarray(e["dtMatches"])[:, :max_dets].reshape(T, -1))
                ignored.append(np.asarray(e["dtIgnore"])[:, :max_dets].reshape(T, -1))
                det_img.append(np.full(len(s), i, dtype=np.int64))
            if scores:
                s = np.concatenate(scores)
                order = np.argsort(-s, kind="mergesort")  # as pycocotools accumulate
                dtm = np.concatenate(matched, axis=1)[:, order]
                dti = np.concatenate(ignored, axis=1)[:, order].astype(bool)
                di = np.concatenate(det_img)[order]
                tp = np.logical_and(dtm, ~dti)
                fp = np.logical_and(np.logical_not(dtm), ~dti)
            else:
                di = np.zeros(0, dtype=np.int64)
                tp = fp = np.zeros((T, 0), dtype=bool)
            records.append(_CategoryRecords(det_img=di, tp=tp, fp=fp, gt_count=gt_count))
        return cls(np.asarray(img_list), list(p.catIds), p.iouThrs, p.recThrs, records, iou_type)

    # ------------------------------------------------------------------------------------------

    def weights(self, image_indices: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """(I,) int64 draw counts of a multiset of image indices (None = each image once)."""
        if image_indices is None:
            return np.ones(self.num_images, dtype=np.int64)
        idx = np.asarray(image_indices, dtype=np.int64).ravel()
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_images):
            raise IndexError(f"image index out of range 0..{self.num_images - 1}")
        return np.bincount(idx, minlength=self.num_images).astype(np.int64)

    def precision(self, weights: np.ndarray, batch: int = 64) -> np.ndarray:
        """Interpolated precision for image weight vectors.

        Args:
            weights: (B, I) or (I,) non-negative int draw counts per image.
            batch: Resamples processed at once (bounds memory to ~batch x T x D).

        Returns:
            (B, T, R, K) float64 precision; -1 where a category has no (weighted) ground truth.
        """
        W = np.atleast_2d(np.asarray(weights, dtype=np.int64))
        ks = list(range(len(self._records)))
        return np.concatenate(
            [self._precision_batch(W[b0 : b0 + batch], ks) for b0 in range(0, len(W), batch)]
        )

    def _precision_batch(self, Wb: np.ndarray, ks: list[int]) -> np.ndarray:
        """(nb, T, R, len(ks)) precision of categories ``ks`` for (nb, I) weights."""
        nb = len(Wb)
        T, R = len(self.iou_thrs), len(self.rec_thrs)
        out = np.full((nb, T, R, len(ks)), -1.0)
        for kk, k in enumerate(ks):
            rec = self._records[k]
            npig = Wb @ rec.gt_count  # (nb,)
            D = len(rec.det_img)
            valid = npig > 0
            if not np.any(valid):
                continue
            if D == 0:
                out[valid, :, :, kk] = 0.0
                continue
            w = Wb[:, rec.det_img]  # (nb, D)
            tpc = np.cumsum(w[:, None, :] * rec.tp[None], axis=2)  # (nb, T, D) int64
            fpc = np.cumsum(w[:, None, :] * rec.fp[None], axis=2)
            tpf = tpc.astype(np.float64)
            pr = tpf / (fpc.astype(np.float64) + tpf + np.spacing(1))  # as COCO: tp / (fp + tp + eps)
            env = np.maximum.accumulate(pr[:, :, ::-1], axis=2)[:, :, ::-1]
            # first rank j with recall tpc[j] / npig >= r  <=>  tpc[j] >= m_r, with m_r the smallest
            # integer m such that float(m / npig) >= r (the same float division as COCO's rc)
            m = np.zeros((nb, R), dtype=np.int64)
            for n in np.unique(npig[valid]):
                levels = np.arange(n + 1, dtype=np.float64) / n
                m[npig == n] = np.searchsorted(levels, self.rec_thrs, side="left")
            # one searchsorted for all (resample, threshold) rows: shift row r by r * span (exact ints)
            span = int(tpc.max(initial=0)) + int(m.max(initial=0)) + 2
            offsets = np.arange(nb * T, dtype=np.int64) * span
            flat = (tpc.reshape(nb * T, D) + offsets[:, None]).ravel()
            query = (np.repeat(m, T, axis=0) + offsets[:, None]).ravel()  # (nb*T*R,)
            pos = np.searchsorted(flat, query, side="left").reshape(nb * T, R)
            local = pos - (np.arange(nb * T) * D)[:, None]
            env2 = env.reshape(nb * T, D)
            q = np.where(local < D, np.take_along_axis(env2, np.minimum(local, D - 1), axis=1), 0.0)
            q = q.reshape(nb, T, R)
            q[~valid] = -1.0
            out[:, :, :, kk] = q
        return out

    @staticmethod
    def _coco_mean(s: np.ndarray) -> float:
        """COCO's summary: mean over entries > -1 (NaN if none)."""
        vals = s[s > -1]
        return float(np.mean(vals)) if vals.size else float("nan")

    def ap_from_weights(self, weights: np.ndarray, batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """mAP@[.5:.95] and AP50 for each row of (B, I) weights; each (B,) float64 (NaN if no GT)."""
        W = np.atleast_2d(np.asarray(weights, dtype=np.int64))
        # categories without any ground truth are -1 in every resample: COCO's mean skips them
        ks = [k for k, r in enumerate(self._records) if r.gt_count.sum() > 0]
        ap = np.full(len(W), np.nan)
        ap50 = np.full(len(W), np.nan)
        for b0 in range(0, len(W), batch):
            P = self._precision_batch(W[b0 : b0 + batch], ks)
            for j in range(len(P)):
                ap[b0 + j] = self._coco_mean(P[j])
                ap50[b0 + j] = self._coco_mean(P[j, self._t50])
        return ap, ap50

    def ap(self, image_indices: Sequence[int] | np.ndarray | None = None) -> float:
        """COCO mAP@[.5:.95] (area all, 100 dets) on a multiset of image indices (None = all once)."""
        return float(self.ap_from_weights(self.weights(image_indices)[None])[0][0])

    def ap50(self, image_indices: Sequence[int] | np.ndarray | None = None) -> float:
        """COCO AP at IoU 0.5 on a multiset of image indices (None = all once)."""
        return float(self.ap_from_weights(self.weights(image_indices)[None])[1][0])
