"""Statistics of a study: paired differences to clean with bootstrap intervals, seed spread, Kendall tau.

The design is paired twice over: every condition is scored on the same real test images, and for
each seed every condition trains with the same seed (same initialisation, data order and
augmentation draws). The difference of a condition to clean is therefore computed per seed and per
image set, and its interval comes from a bootstrap that resamples **test images** (the same
resampled images for every condition and seed in a replicate) and, when there are several seeds,
**seeds** (the same resampled seeds for the condition and clean). A difference is distinguishable
from zero when its interval excludes zero.

All AP values here are in AP points (AP x 100).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from twingap.study.stages import PerImage


@dataclass
class ConditionResult:
    """One condition on one test set and IoU type.

    Attributes:
        test_set: Test set name.
        iou_type: ``"bbox"`` or ``"segm"``.
        condition: Condition name.
        seeds: Seeds with a finished job (paired with clean).
        ap: AP, AP50, AP75 (mean over seeds, all images), AP points.
        ap_per_seed: AP per seed.
        ap_lo: Lower end of the AP interval (bootstrap over images and seeds).
        ap_hi: Upper end.
        delta: AP difference to clean (condition minus clean), mean over paired seeds.
        delta_lo: Lower end of its interval.
        delta_hi: Upper end.
        delta_per_seed: The paired difference of each seed.
        significant: The interval excludes zero.
    """

    test_set: str
    iou_type: str
    condition: str
    seeds: list[int]
    ap: dict[str, float]
    ap_per_seed: list[float]
    ap_lo: float
    ap_hi: float
    delta: float = 0.0
    delta_lo: float = 0.0
    delta_hi: float = 0.0
    delta_per_seed: list[float] = field(default_factory=list)
    significant: bool = False

    def to_dict(self) -> dict:
        """Plain-data form."""
        return asdict(self)


@dataclass
class SeedSpread:
    """Seed-to-seed spread of the clean model on a test set (AP points).

    ``std`` is the sample standard deviation over seeds (NaN with one seed); ``range`` is max - min.
    ``image_ci_half`` is the half-width of clean AP's bootstrap interval over images alone, the
    noise a single seed carries from the finite test set.
    """

    test_set: str
    iou_type: str
    seeds: list[int]
    ap_per_seed: list[float]
    std: float
    range: float
    image_ci_half: float


def _percentile_ci(samples: np.ndarray, ci: float) -> tuple[float, float]:
    a = (1 - ci) / 2
    lo, hi = np.quantile(samples, [a, 1 - a])
    return float(lo), float(hi)


def paired_bootstrap(
    evals: dict[str, dict[int, PerImage]],
    reference: str = "clean",
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
) -> dict[str, dict[str, object]]:
    """Bootstrap AP and the paired difference to ``reference`` over test images and seeds.

    Args:
        evals: ``{condition: {seed: per-image evaluation}}`` on one test set and IoU type; every
            evaluation covers the same images in the same order.
        reference: The condition differences are taken against.
        n_boot: Bootstrap replicates.
        ci: Two-sided interval level.
        seed: Seed of the resampler (the intervals are reproducible).

    Returns:
        ``{condition: {"seeds", "ap", "ap_lo", "ap_hi", "delta", "delta_lo", "delta_hi",
        "ap_per_seed", "delta_per_seed", "image_ci_half"}}`` in AP points; differences only for
        seeds that both the condition and the reference have (NaN when there are none).
    """
    ref = evals.get(reference, {})
    any_eval = next(pe for per in evals.values() for pe in per.values())
    n = any_eval.n_images
    all_idx = np.arange(n)
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, object]] = {}
    point = {c: {s: 100 * pe.ap(all_idx) for s, pe in per.items()} for c, per in evals.items()}
    conds = list(evals)
    seeds_of = {c: sorted(evals[c]) for c in conds}
    paired_of = {c: sorted(set(evals[c]) & set(ref)) for c in conds}
    ap_boot = {c: np.empty(n_boot) for c in conds}
    delta_boot = {c: np.empty(n_boot) for c in conds}
    img_only = {c: np.empty(n_boot) for c in conds}  # first seed only, images resampled
    for b in range(n_boot):
        idx = rng.integers(0, n, n)
        seed_draw = rng.random(64)  # the same seed resampling for every condition in this replicate
        cache: dict[tuple[str, int], float] = {}

        def ap_at(c: str, s: int, idx: np.ndarray = idx, cache: dict = cache) -> float:
            key = (c, s)
            if key not in cache:
                cache[key] = 100 * evals[c][s].ap(idx)
            return cache[key]

        for c in conds:
            seeds = seeds_of[c]
            drawn = [seeds[int(u * len(seeds))] for u in seed_draw[: len(seeds)]] if len(seeds) > 1 else seeds
            ap_boot[c][b] = np.mean([ap_at(c, s) for s in drawn])
            img_only[c][b] = ap_at(c, seeds[0])
            paired = paired_of[c]
            if paired:
                drawn_p = (
                    [paired[int(u * len(paired))] for u in seed_draw[: len(paired)]]
                    if len(paired) > 1
                    else paired
                )
                delta_boot[c][b] = np.mean([ap_at(c, s) - ap_at(reference, s) for s in drawn_p])
            else:
                delta_boot[c][b] = math.nan
    for c in conds:
        paired = paired_of[c]
        ap_lo, ap_hi = _percentile_ci(ap_boot[c], ci)
        i_lo, i_hi = _percentile_ci(img_only[c], ci)
        if paired:
            d_seed = [point[c][s] - point[reference][s] for s in paired]
            d_lo, d_hi = _percentile_ci(delta_boot[c], ci)
            d = float(np.mean(d_seed))
        else:
            d_seed, d, d_lo, d_hi = [], math.nan, math.nan, math.nan
        out[c] = {
            "seeds": seeds_of[c],
            "ap": float(np.mean([point[c][s] for s in seeds_of[c]])),
            "ap_per_seed": [point[c][s] for s in seeds_of[c]],
            "ap_lo": ap_lo,
            "ap_hi": ap_hi,
            "paired_seeds": paired,
            "delta": d,
            "delta_lo": d_lo,
            "delta_hi": d_hi,
            "delta_per_seed": d_seed,
            "image_ci_half": (i_hi - i_lo) / 2,
        }
    return out


def condition_results(
    test_set: str,
    iou_type: str,
    evals: dict[str, dict[int, PerImage]],
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
) -> tuple[list[ConditionResult], SeedSpread | None]:
    """Results of every condition on one test set and IoU type, and the clean seed spread."""
    boot = paired_bootstrap(evals, "clean", n_boot, ci, seed)
    results = []
    for cond, per in evals.items():
        b = boot[cond]
        seeds = list(b["seeds"])  # type: ignore[arg-type]
        mets = [per[s].metrics() for s in seeds]
        ap = {k: float(np.mean([100 * m[k] for m in mets])) for k in ("AP", "AP50", "AP75")}
        d, lo, hi = float(b["delta"]), float(b["delta_lo"]), float(b["delta_hi"])  # type: ignore[arg-type]
        sig = cond != "clean" and not math.isnan(d) and (lo > 0 or hi < 0)
        results.append(
            ConditionResult(
                test_set,
                iou_type,
                cond,
                seeds,
                ap,
                list(b["ap_per_seed"]),
                float(b["ap_lo"]),  # type: ignore[arg-type]
                float(b["ap_hi"]),
                d,
                lo,
                hi,
                list(b["delta_per_seed"]),
                bool(sig),  # type: ignore[arg-type]
            )
        )
    spread = None
    if "clean" in boot:
        aps = list(boot["clean"]["ap_per_seed"])  # type: ignore[arg-type]
        spread = SeedSpread(
            test_set,
            iou_type,
            list(boot["clean"]["seeds"]),  # type: ignore[arg-type]
            aps,
            float(np.std(aps, ddof=1)) if len(aps) > 1 else math.nan,
            float(max(aps) - min(aps)) if aps else math.nan,
            float(boot["clean"]["image_ci_half"]),  # type: ignore[arg-type]
        )
    return results, spread


def kendall_tau(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    """Kendall's tau-b between two rankings of the same conditions (NaN values dropped).

    Returns:
        ``{"tau", "p_value", "n"}``; tau is NaN with fewer than 3 conditions in common.
    """
    from scipy.stats import kendalltau

    common = [c for c in a if c in b and not (math.isnan(a[c]) or math.isnan(b[c]))]
    if len(common) < 3:
        return {"tau": math.nan, "p_value": math.nan, "n": len(common)}
    res = kendalltau([a[c] for c in common], [b[c] for c in common])
    return {"tau": float(res.statistic), "p_value": float(res.pvalue), "n": len(common)}
