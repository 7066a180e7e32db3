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
    delta_boot: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        """Plain-data form (without the bootstrap replicates)."""
        d = asdict(self)
        d.pop("delta_boot", None)
        return d


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
    samples = samples[~np.isnan(samples)]
    if samples.size == 0:
        return math.nan, math.nan
    lo, hi = np.quantile(samples, [a, 1 - a])
    return float(lo), float(hi)


def resample_weights(n_images: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n_images) int64 draw counts: each row a bootstrap resample of the images."""
    idx = rng.integers(0, n_images, size=(n_boot, n_images))
    W = np.zeros((n_boot, n_images), dtype=np.int64)
    np.add.at(W, (np.repeat(np.arange(n_boot), n_images), idx.ravel()), 1)
    return W


def _draw_seeds(u: np.ndarray, seeds: list) -> np.ndarray:
    """(B, len(seeds)) indices into ``seeds`` from shared uniforms ``u`` (B, >= len(seeds))."""
    k = len(seeds)
    if k == 1:
        return np.zeros((len(u), 1), dtype=np.int64)
    return np.minimum((u[:, :k] * k).astype(np.int64), k - 1)


def paired_bootstrap(
    evals: dict[str, dict[int, PerImage]],
    reference: str = "clean",
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
) -> dict[str, dict[str, object]]:
    """Bootstrap AP and the paired difference to ``reference`` over test images and seeds.

    One replicate draws a multiset of test images (shared by every condition and seed) and, with
    several seeds, a multiset of seeds (shared by a condition and the reference, so the pairing by
    seed is kept); the replicate's difference is the mean over drawn seeds of
    ``AP(condition, seed) - AP(reference, seed)`` on the drawn images.

    Args:
        evals: ``{condition: {seed: per-image evaluation}}`` on one test set and IoU type; every
            evaluation covers the same images in the same order.
        reference: The condition differences are taken against.
        n_boot: Bootstrap replicates.
        ci: Two-sided interval level (percentile intervals).
        seed: Seed of the resampler (the intervals are reproducible).

    Returns:
        ``{condition: {"seeds", "ap", "ap_lo", "ap_hi", "ap_per_seed", "paired_seeds", "delta",
        "delta_lo", "delta_hi", "delta_per_seed", "image_ci_half"}}`` in AP points; differences
        use only seeds that both the condition and the reference have (NaN when there are none).
    """
    ref = evals.get(reference, {})
    any_eval = next(pe for per in evals.values() for pe in per.values())
    n = any_eval.n_images
    rng = np.random.default_rng(seed)
    W = resample_weights(n, n_boot, rng)
    U = rng.random((n_boot, max(len(per) for per in evals.values())))
    ones = np.ones((1, n), dtype=np.int64)
    point = {c: {s: 100 * float(pe.ap_weights(ones)[0]) for s, pe in per.items()} for c, per in evals.items()}
    boot = {
        c: {s: 100 * np.asarray(pe.ap_weights(W), dtype=np.float64) for s, pe in per.items()}
        for c, per in evals.items()
    }
    rows = np.arange(n_boot)[:, None]
    out: dict[str, dict[str, object]] = {}
    for c, per in evals.items():
        seeds = sorted(per)
        M = np.stack([boot[c][s] for s in seeds], axis=1)  # (B, S)
        ap_b = np.nanmean(M[rows, _draw_seeds(U, seeds)], axis=1)
        ap_lo, ap_hi = _percentile_ci(ap_b, ci)
        i_lo, i_hi = _percentile_ci(M[:, 0], ci)
        paired = sorted(set(per) & set(ref))
        if paired:
            D = np.stack([boot[c][s] - boot[reference][s] for s in paired], axis=1)
            d_b = np.nanmean(D[rows, _draw_seeds(U, paired)], axis=1)
            d_lo, d_hi = _percentile_ci(d_b, ci)
            d_seed = [point[c][s] - point[reference][s] for s in paired]
            d = float(np.mean(d_seed))
        else:
            d_seed, d, d_lo, d_hi, d_b = [], math.nan, math.nan, math.nan, None
        out[c] = {
            "seeds": seeds,
            "ap": float(np.mean([point[c][s] for s in seeds])),
            "ap_per_seed": [point[c][s] for s in seeds],
            "ap_lo": ap_lo,
            "ap_hi": ap_hi,
            "paired_seeds": paired,
            "delta": d,
            "delta_lo": d_lo,
            "delta_hi": d_hi,
            "delta_per_seed": d_seed,
            "image_ci_half": (i_hi - i_lo) / 2,
            "delta_boot": d_b,
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
                delta_boot=b["delta_boot"],  # type: ignore[arg-type]
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


def mean_over_test_sets(results: list[ConditionResult], ci: float = 0.95) -> tuple[float, float, float, bool]:
    """Mean difference to clean over several test sets with its bootstrap interval.

    The test sets are resampled independently, so replicate ``b`` of the mean is the mean of
    every test set's replicate ``b``.

    Returns:
        ``(delta, lo, hi, significant)`` in AP points.
    """
    d = float(np.mean([r.delta for r in results]))
    boots = [r.delta_boot for r in results]
    if any(b is None for b in boots) or len({len(b) for b in boots}) != 1:  # type: ignore[arg-type]
        lo = float(np.mean([r.delta_lo for r in results]))
        hi = float(np.mean([r.delta_hi for r in results]))
    else:
        lo, hi = _percentile_ci(np.mean(np.stack(boots), axis=0), ci)  # type: ignore[arg-type]
    return d, lo, hi, bool(lo > 0 or hi < 0)


def with_extra_seeds(spread: SeedSpread, extra: dict[int, PerImage]) -> SeedSpread:
    """Add clean models of extra seeds (trained only to measure noise) to a seed spread."""
    ones = None
    seeds, aps = list(spread.seeds), list(spread.ap_per_seed)
    for s, pe in sorted(extra.items()):
        ones = np.ones((1, pe.n_images), dtype=np.int64) if ones is None else ones
        seeds.append(s)
        aps.append(100 * float(pe.ap_weights(ones)[0]))
    std = float(np.std(aps, ddof=1)) if len(aps) > 1 else math.nan
    return SeedSpread(
        spread.test_set, spread.iou_type, seeds, aps, std, float(max(aps) - min(aps)), spread.image_ci_half
    )


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
