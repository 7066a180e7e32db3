"""Statistics of a study: paired differences to clean whose intervals cover a rerun.

A study's differences are small (a few AP points) and its noise has two sources that a
frame-level bootstrap misses:

* **Training noise.** Which model a seed produces depends on floating-point details, so the
  same seed on another CPU is another draw. Seeds are therefore *blocks*: every condition trains
  with every seed of the study, and the paired difference ``d_s = AP(condition, s) - AP(clean, s)``
  is one observation per seed. Its spread across seeds is the training noise of that difference.
* **Scene sampling.** The frames of a test set are consecutive views of a few videos (or BOP
  scenes): near-copies of each other. The sampling unit is the scene, not the frame.

The interval of a difference is a t-interval that combines both:

``se^2 = s_seed^2 / S + v_scene``

* ``s_seed^2``: the variance of ``d_s`` over the S seeds (with ``pool_seed_variance``, pooled over
  every condition of the test set: ``sum (S_c - 1) s_c^2 / sum (S_c - 1)``, which assumes the seed
  noise of a paired difference is alike across conditions; the Bartlett test in
  :class:`SeedVarianceCheck` says when it is not).
* ``v_scene``: the cluster jackknife variance of the seed-averaged difference, leaving out one
  scene (all its frames) at a time. Only with at least ``min_scenes`` scenes; with fewer, the
  scenes are held fixed and the interval says so: it then covers a rerun on the *same* frames
  (new training draws), not new scenes.
* degrees of freedom by Welch-Satterthwaite from ``S - 1`` (or the pooled df) and ``K - 1``.

With one seed there is no measured training noise and no interval (NaN): a single seed's
difference is a draw, not a finding. Calls of "distinguishable from zero" are controlled for the
number of conditions with Holm's step-down procedure per test set and IoU type.

**Holm-adjusted intervals.** A per-comparison 95% interval can exclude 0 while Holm's verdict says
"no measurable difference" (or the other way round). Wherever a verdict stands beside an interval,
the report shows the Holm-adjusted interval instead (:func:`holm_levels`): with the m p-values
sorted ascending and Holm stopping after k rejections, the i-th smallest (i <= k, distinguishable)
gets the level ``1 - alpha / (m - i + 1)`` of the step that rejected it, and every other one the
level ``1 - alpha / (m - k)`` of the step where Holm stopped (Bonferroni over the m - k hypotheses
left, as in the simultaneous intervals of Strassburger & Bretz 2008). An adjusted interval
therefore excludes 0 exactly when the verdict says distinguishable.

All AP values here are in AP points (AP x 100).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from scipy import stats as _st

if TYPE_CHECKING:
    from twingap.study.stages import PerImage

#: How an interval was obtained (``ConditionResult.interval``).
INTERVAL_SEEDS_SCENES = "seeds+scenes"
INTERVAL_SEEDS = "seeds (scenes fixed)"
INTERVAL_NONE = "none (1 seed)"


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its two-level t-interval (AP points).

    Attributes:
        value: The estimate (mean over seeds).
        lo: Lower end of the interval (NaN without measured training noise).
        hi: Upper end.
        se: Standard error, ``sqrt(se_seed^2 + se_scene^2)``.
        se_seed: Training-noise part of the standard error (the part independent between runs).
        se_scene: Scene-sampling part (0 when the scenes are held fixed).
        df: Welch-Satterthwaite degrees of freedom.
        p_value: Two-sided p-value of ``value == 0`` (NaN without an interval).
    """

    value: float
    lo: float = math.nan
    hi: float = math.nan
    se: float = math.nan
    se_seed: float = math.nan
    se_scene: float = 0.0
    df: float = math.nan
    p_value: float = math.nan


def t_estimate(
    value: float, var_seed: float, df_seed: float, var_scene: float, df_scene: float, ci: float
) -> Estimate:
    """Combine a seed and a scene variance (of the mean) into a t-interval.

    Args:
        value: Point estimate.
        var_seed: Variance of the mean due to training seeds (NaN when unmeasured).
        df_seed: Its degrees of freedom.
        var_scene: Variance due to scene sampling (0 when scenes are fixed).
        df_scene: Its degrees of freedom (ignored when ``var_scene`` is 0).
        ci: Two-sided level.

    Returns:
        The :class:`Estimate`; NaN bounds when ``var_seed`` is NaN or ``df_seed < 1``.
    """
    if math.isnan(value) or math.isnan(var_seed) or df_seed < 1:
        return Estimate(value, se_scene=math.sqrt(var_scene) if var_scene > 0 else 0.0)
    var = var_seed + var_scene
    if var_scene > 0 and df_scene >= 1:
        den = var_seed**2 / df_seed + var_scene**2 / df_scene
        df = var**2 / den if den > 0 else df_seed
    else:
        df = df_seed
    se = math.sqrt(var)
    if se == 0:
        p = 1.0 if value == 0 else 0.0
        return Estimate(value, value, value, 0.0, 0.0, 0.0, df, p)
    q = float(_st.t.ppf(0.5 + ci / 2, df))
    p = float(2 * _st.t.sf(abs(value) / se, df))
    return Estimate(
        value, value - q * se, value + q * se, se, math.sqrt(var_seed), math.sqrt(var_scene), df, p
    )


def holm_levels(p_values: Sequence[float], alpha: float) -> list[float]:
    """Per p-value, the two-sided level of its Holm-adjusted interval (see the module docstring).

    Args:
        p_values: Unadjusted two-sided p-values (NaN entries stay NaN and do not count as tests).
        alpha: Family-wise error rate (``1 - ci``).

    Returns:
        Levels in (0, 1): ``1 - alpha / (m - i + 1)`` for the i-th smallest p-value if Holm rejects it
        (``holm(p)[i] < alpha``), else ``1 - alpha / (m - k)`` with k the number of rejections.
    """
    adj = holm(p_values)
    out = [math.nan] * len(adj)
    ok = [i for i, p in enumerate(p_values) if not math.isnan(p)]
    m = len(ok)
    order = sorted(ok, key=lambda i: p_values[i])  # stable, as holm()'s argsort
    k = sum(adj[i] < alpha for i in ok)
    for rank, i in enumerate(order, 1):
        out[i] = 1 - alpha / (m - rank + 1) if adj[i] < alpha else 1 - alpha / (m - k)
    return out


def t_interval(value: float, se: float, df: float, level: float) -> tuple[float, float]:
    """The two-sided t-interval ``value -/+ t_df((1 + level) / 2) se`` (NaN without se, df or level)."""
    if any(math.isnan(x) for x in (value, se, df, level)) or df < 1:
        return math.nan, math.nan
    if se == 0:
        return value, value
    q = float(_st.t.ppf(0.5 + level / 2, df))
    return value - q * se, value + q * se


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (NaN entries stay NaN and do not count as tests)."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, math.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = len(ok)
    if m == 0:
        return out.tolist()
    order = ok[np.argsort(p[ok], kind="stable")]
    adj = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    out[order] = adj
    return out.tolist()


@dataclass(frozen=True)
class SeedVarianceCheck:
    """Whether pooling the seed variance over conditions is supported by the data.

    Attributes:
        pooled_sd: Pooled seed sd of a paired difference (AP points).
        df: Its degrees of freedom.
        bartlett_p: Bartlett's test of equal variances over conditions (NaN with < 2 testable).
        largest: The condition with the largest own seed sd.
        largest_sd: Its seed sd.
    """

    pooled_sd: float
    df: int
    bartlett_p: float
    largest: str
    largest_sd: float


def pooled_variance(samples: dict[str, Sequence[float]]) -> tuple[float, int]:
    """Pooled sample variance over groups with at least two values: ``(variance, df)``."""
    num, df = 0.0, 0
    for v in samples.values():
        v = [x for x in v if not math.isnan(x)]
        if len(v) >= 2:
            num += float(np.var(v, ddof=1)) * (len(v) - 1)
            df += len(v) - 1
    return (num / df if df else math.nan), df


def seed_variance_check(samples: dict[str, Sequence[float]]) -> SeedVarianceCheck:
    """Pooled seed sd with Bartlett's homogeneity test over conditions."""
    var, df = pooled_variance(samples)
    groups = {c: [x for x in v if not math.isnan(x)] for c, v in samples.items()}
    groups = {c: v for c, v in groups.items() if len(v) >= 2}
    sds = {c: float(np.std(v, ddof=1)) for c, v in groups.items()}
    p = math.nan
    if len(groups) >= 2 and all(s > 0 for s in sds.values()):
        p = float(_st.bartlett(*groups.values()).pvalue)
    largest = max(sds, key=lambda c: sds[c]) if sds else ""
    return SeedVarianceCheck(
        math.sqrt(var) if not math.isnan(var) else math.nan, df, p, largest, sds.get(largest, math.nan)
    )


def cluster_labels(labels: Sequence[object]) -> np.ndarray:
    """(I,) int64 cluster index per image from any hashable labels (first-seen order)."""
    index: dict[object, int] = {}
    return np.asarray([index.setdefault(lab, len(index)) for lab in labels], dtype=np.int64)


def jackknife_weights(clusters: np.ndarray) -> np.ndarray:
    """(K, I) 0/1 image weights: row k leaves out every image of cluster k."""
    k = int(clusters.max()) + 1 if clusters.size else 0
    return (clusters[None, :] != np.arange(k)[:, None]).astype(np.int64)


def jackknife_variance(theta: np.ndarray) -> float:
    """Delete-one-cluster jackknife variance from the (K,) leave-one-out estimates."""
    k = len(theta)
    if k < 2:
        return math.nan
    return float((k - 1) / k * np.sum((theta - theta.mean()) ** 2))


@dataclass
class ConditionResult:
    """One condition on one test set and IoU type (AP points).

    Attributes:
        test_set: Test set name.
        iou_type: ``"bbox"`` or ``"segm"``.
        condition: Condition name.
        seeds: Seeds with a finished job.
        ap: AP, AP50, AP75 (mean over seeds, all images).
        ap_per_seed: AP per seed.
        ap_lo: Lower end of the AP interval (seeds and, with enough scenes, scenes).
        ap_hi: Upper end.
        delta: AP difference to clean (condition minus clean), mean over paired seeds.
        delta_lo: Lower end of its interval (NaN with one seed).
        delta_hi: Upper end.
        paired_seeds: Seeds that both this condition and clean have (ascending).
        delta_per_seed: The paired difference of each of ``paired_seeds``.
        significant: Distinguishable from zero after Holm's correction over the conditions.
        adj_lo: Lower end of the Holm-adjusted interval of ``delta`` (consistent with
            ``significant``: it excludes 0 exactly when ``significant``; NaN with one seed).
        adj_hi: Upper end.
        adj_level: Two-sided level of the adjusted interval (see :func:`holm_levels`).
        se: Standard error of ``delta``.
        se_seed: Its training-noise part (independent between two runs of the study).
        se_scene: Its scene-sampling part (0 with fewer than ``min_scenes`` scenes).
        df: Degrees of freedom of the interval.
        df_seed: Degrees of freedom of ``se_seed`` (pooled over conditions, or ``S - 1``).
        p_value: Two-sided p-value of ``delta == 0``.
        p_holm: Holm-adjusted p-value.
        seed_sd: Sample sd of ``delta_per_seed`` (this condition alone; NaN with < 2 seeds).
        corr_with_clean: Correlation over seeds of this condition's AP with clean's (what pairing
            by seed buys; NaN with < 3 seeds).
        n_scenes: Scenes (clusters of frames) in the test set.
        interval: How the interval was made (``INTERVAL_*``).
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
    paired_seeds: list[int] = field(default_factory=list)
    delta_per_seed: list[float] = field(default_factory=list)
    significant: bool = False
    adj_lo: float = 0.0
    adj_hi: float = 0.0
    adj_level: float = math.nan
    se: float = math.nan
    se_seed: float = math.nan
    se_scene: float = 0.0
    df: float = math.nan
    df_seed: float = math.nan
    p_value: float = math.nan
    p_holm: float = math.nan
    seed_sd: float = math.nan
    corr_with_clean: float = math.nan
    n_scenes: int = 0
    interval: str = INTERVAL_NONE

    def to_dict(self) -> dict:
        """Plain-data form."""
        return asdict(self)


@dataclass
class SeedSpread:
    """Seed-to-seed spread of the clean model on a test set (AP points).

    ``std`` is the sample standard deviation over seeds (NaN with one seed); ``range`` is max - min.
    ``diff_sd`` is the pooled seed sd of the paired differences to clean on the same test set:
    the training noise that a condition's difference carries (NaN with one seed).
    """

    test_set: str
    iou_type: str
    seeds: list[int]
    ap_per_seed: list[float]
    std: float
    range: float
    diff_sd: float = math.nan
    diff_df: int = 0
    bartlett_p: float = math.nan


def _sd(v: Sequence[float]) -> float:
    return float(np.std(v, ddof=1)) if len(v) > 1 else math.nan


def _corr(a: Sequence[float], b: Sequence[float]) -> float:
    if len(a) < 3 or _sd(a) == 0 or _sd(b) == 0:
        return math.nan
    return float(np.corrcoef(a, b)[0, 1])


def _seed_parts(
    per_seed: dict[str, list[float]], pool: bool
) -> tuple[dict[str, tuple[float, float]], SeedVarianceCheck]:
    """Per group: (variance of the mean over seeds, df), pooled over groups or each its own."""
    check = seed_variance_check(per_seed)
    out = {}
    for c, v in per_seed.items():
        n = len(v)
        if pool and check.df > 0 and n >= 1:
            out[c] = (check.pooled_sd**2 / n, float(check.df))
        elif n >= 2:
            out[c] = (float(np.var(v, ddof=1)) / n, float(n - 1))
        else:
            out[c] = (math.nan, 0.0)
    return out, check


class _TestSetScores:
    """Point APs and leave-one-scene-out APs of every (condition, seed) on one test set."""

    def __init__(
        self, evals: dict[str, dict[int, PerImage]], clusters: Sequence[object] | None, min_scenes: int
    ):
        any_eval = next(pe for per in evals.values() for pe in per.values())
        n = any_eval.n_images
        cl = cluster_labels(list(range(n)) if clusters is None else list(clusters))
        if len(cl) != n:
            raise ValueError(f"{len(cl)} cluster labels for {n} images")
        self.n_scenes = int(cl.max()) + 1 if n else 0
        self.use_scenes = self.n_scenes >= max(2, min_scenes)
        ones = np.ones((1, n), dtype=np.int64)
        self.point = {
            c: {s: 100 * float(pe.ap_weights(ones)[0]) for s, pe in per.items()} for c, per in evals.items()
        }
        self.jack: dict[str, dict[int, np.ndarray]] = {}
        if self.use_scenes:
            jw = jackknife_weights(cl)
            self.jack = {
                c: {s: 100 * np.asarray(pe.ap_weights(jw), np.float64) for s, pe in per.items()}
                for c, per in evals.items()
            }

    def scene_var(self, c: str, seeds: list[int], diff: bool) -> float:
        """Jackknife variance over scenes of the seed-mean AP (or difference to clean)."""
        if not self.use_scenes or not seeds:
            return 0.0
        theta = np.mean([self.jack[c][s] - (self.jack["clean"][s] if diff else 0.0) for s in seeds], axis=0)
        return jackknife_variance(theta)

    @property
    def kind(self) -> str:
        return INTERVAL_SEEDS_SCENES if self.use_scenes else INTERVAL_SEEDS


def condition_results(
    test_set: str,
    iou_type: str,
    evals: dict[str, dict[int, PerImage]],
    clusters: Sequence[object] | None = None,
    ci: float = 0.95,
    min_scenes: int = 5,
    pool_seed_variance: bool = True,
) -> tuple[list[ConditionResult], SeedSpread | None]:
    """Results of every condition on one test set and IoU type, and the clean seed spread.

    Args:
        test_set: Test set name.
        iou_type: ``"bbox"`` or ``"segm"``.
        evals: ``{condition: {seed: per-image evaluation}}``; every evaluation covers the same
            images in the same order. The differences pair ``clean``'s seeds with the condition's.
        clusters: (I,) scene label of each image (frames of one video or BOP scene share one);
            None = every image its own scene.
        ci: Two-sided level.
        min_scenes: Fewest scenes for which scene sampling enters the interval.
        pool_seed_variance: Pool the seed variance over conditions (see the module docstring).

    Returns:
        ``(results, clean_spread)``.
    """
    sc = _TestSetScores(evals, clusters, min_scenes)
    pt, k = sc.point, sc.n_scenes
    ref = evals.get("clean", {})
    paired = {c: sorted(set(per) & set(ref)) for c, per in evals.items()}
    d_seed = {c: [pt[c][s] - pt["clean"][s] for s in paired[c]] for c in evals if c != "clean"}
    ap_seed = {c: [pt[c][s] for s in sorted(per)] for c, per in evals.items()}
    d_parts, d_check = _seed_parts({c: v for c, v in d_seed.items() if v}, pool_seed_variance)
    ap_parts, _ = _seed_parts(ap_seed, pool_seed_variance)
    results = []
    for c, per in evals.items():
        seeds = sorted(per)
        mets = [per[s].metrics() for s in seeds]
        ap = {key: float(np.mean([100 * m[key] for m in mets])) for key in ("AP", "AP50", "AP75")}
        ap_est = t_estimate(
            float(np.mean(ap_seed[c])), *ap_parts[c], sc.scene_var(c, seeds, False), k - 1, ci
        )
        r = ConditionResult(test_set, iou_type, c, seeds, ap, ap_seed[c], ap_est.lo, ap_est.hi, n_scenes=k)
        r.interval = sc.kind if not math.isnan(ap_est.lo) else INTERVAL_NONE
        if c != "clean":
            ds = d_seed.get(c, [])
            est = Estimate(math.nan)
            if ds:
                est = t_estimate(float(np.mean(ds)), *d_parts[c], sc.scene_var(c, paired[c], True), k - 1, ci)
            _set_delta(r, est, paired[c], ds, d_parts[c][1] if ds else math.nan, sc.kind)
            r.corr_with_clean = _corr([pt[c][s] for s in paired[c]], [pt["clean"][s] for s in paired[c]])
        results.append(r)
    _apply_holm(results, ci)
    spread = None
    if "clean" in pt:
        aps = ap_seed["clean"]
        spread = SeedSpread(
            test_set, iou_type, sorted(evals["clean"]), aps, _sd(aps), float(max(aps) - min(aps)),
            d_check.pooled_sd, d_check.df, d_check.bartlett_p,
        )  # fmt: skip
    return results, spread


def _set_delta(
    r: ConditionResult, est: Estimate, paired: list[int], ds: list[float], df_seed: float, kind: str
) -> None:
    r.delta, r.delta_lo, r.delta_hi = est.value, est.lo, est.hi
    r.paired_seeds, r.delta_per_seed = paired, ds
    r.se, r.se_seed, r.se_scene, r.df, r.df_seed = est.se, est.se_seed, est.se_scene, est.df, df_seed
    r.p_value = est.p_value
    r.seed_sd = _sd(ds)
    r.interval = kind if not math.isnan(est.lo) else INTERVAL_NONE


def _apply_holm(results: list[ConditionResult], ci: float) -> None:
    """Set ``p_holm``, ``significant`` and the Holm-adjusted interval of the non-clean results (a family)."""
    rows = [r for r in results if r.condition != "clean"]
    p = [r.p_value for r in rows]
    for r, p_adj, level in zip(rows, holm(p), holm_levels(p, 1 - ci), strict=True):
        r.p_holm = p_adj
        r.significant = bool(not math.isnan(p_adj) and p_adj < 1 - ci)
        r.adj_level = level
        r.adj_lo, r.adj_hi = t_interval(r.delta, r.se, r.df, level)


@dataclass(frozen=True)
class Combined:
    """A condition's difference averaged over test sets (AP points), with its interval and verdict.

    ``estimate`` carries the per-comparison interval; ``adj_lo``, ``adj_hi`` the Holm-adjusted one
    at level ``adj_level`` (it excludes 0 exactly when ``significant``).
    """

    estimate: Estimate
    significant: bool
    p_holm: float
    n_seeds: int
    adj_lo: float = math.nan
    adj_hi: float = math.nan
    adj_level: float = math.nan


def mean_over_test_sets(
    results: list[ConditionResult], ci: float = 0.95, pool_seed_variance: bool = True
) -> dict[str, Combined]:
    """Each condition's difference averaged over several test sets (one IoU type).

    The same models are scored on every test set, so the seed noise is shared: per seed, the
    differences are averaged over the test sets and the seed variance is taken of those averages.
    The test sets' scenes are independent, so their scene variances add (divided by n^2).

    Args:
        results: Rows of one IoU type, any number of test sets; ``clean`` rows are ignored.
        ci: Two-sided level.
        pool_seed_variance: Pool the seed variance over conditions.

    Returns:
        ``{condition: Combined}`` with Holm's correction over the conditions.
    """
    by_cond: dict[str, list[ConditionResult]] = {}
    for r in results:
        if r.condition != "clean" and not math.isnan(r.delta):
            by_cond.setdefault(r.condition, []).append(r)
    per_seed: dict[str, list[float]] = {}
    scene: dict[str, float] = {}
    for c, rows in by_cond.items():
        seeds = sorted(set.intersection(*(set(r.paired_seeds) for r in rows)))
        per_seed[c] = [
            float(np.mean([r.delta_per_seed[r.paired_seeds.index(s)] for r in rows])) for s in seeds
        ]
        scene[c] = sum(r.se_scene**2 for r in rows) / len(rows) ** 2
    parts, _ = _seed_parts({c: v for c, v in per_seed.items() if v}, pool_seed_variance)
    ests = {}
    for c, v in per_seed.items():
        if not v:
            continue
        df_scene = min((r.n_scenes - 1 for r in by_cond[c] if r.se_scene > 0), default=0)
        ests[c] = t_estimate(float(np.mean(v)), *parts[c], scene[c], df_scene, ci)
    names = list(ests)
    p = [ests[c].p_value for c in names]
    out = {}
    for c, p_adj, level in zip(names, holm(p), holm_levels(p, 1 - ci), strict=True):
        e = ests[c]
        lo, hi = t_interval(e.value, e.se, e.df, level)
        out[c] = Combined(
            e, bool(not math.isnan(p_adj) and p_adj < 1 - ci), p_adj, len(per_seed[c]), lo, hi, level
        )
    return out


def kendall_tau(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    """Kendall's tau-b between two rankings of the same conditions (NaN values dropped).

    Returns:
        ``{"tau", "p_value", "n"}``; tau is NaN with fewer than 3 conditions in common.
    """
    common = [c for c in a if c in b and not (math.isnan(a[c]) or math.isnan(b[c]))]
    if len(common) < 3:
        return {"tau": math.nan, "p_value": math.nan, "n": len(common)}
    res = _st.kendalltau([a[c] for c in common], [b[c] for c in common])
    return {"tau": float(res.statistic), "p_value": float(res.pvalue), "n": len(common)}
