"""Study statistics: known answers for the interval code, Holm, pooling, Kendall tau, cost ranking."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from twingap.study.cost import rank_fixes
from twingap.study.fake import FakePerImage
from twingap.study.stats import (
    INTERVAL_NONE,
    INTERVAL_SEEDS,
    INTERVAL_SEEDS_SCENES,
    condition_results,
    holm,
    holm_levels,
    jackknife_variance,
    jackknife_weights,
    kendall_tau,
    mean_over_test_sets,
    pooled_variance,
    seed_variance_check,
    t_estimate,
)


def per_image(ap: np.ndarray) -> FakePerImage:
    ap = np.asarray(ap, dtype=np.float64)
    return FakePerImage({"AP": ap, "AP50": ap, "AP75": ap})


def test_t_estimate_known_answer():
    # 3 seeds with differences -4, -6, -5: mean -5, sd 1, se 1/sqrt(3), t(2) = 4.3027
    d = [-4.0, -6.0, -5.0]
    e = t_estimate(float(np.mean(d)), float(np.var(d, ddof=1)) / 3, 2, 0.0, 0, 0.95)
    half = 4.302652729911275 / math.sqrt(3)
    assert e.value == -5.0 and e.lo == pytest.approx(-5 - half) and e.hi == pytest.approx(-5 + half)
    assert e.p_value == pytest.approx(st.ttest_1samp(d, 0).pvalue)
    assert e.se_scene == 0 and e.df == 2


def test_t_estimate_welch_satterthwaite():
    e = t_estimate(1.0, 1.0, 4, 1.0, 9, 0.95)
    df = 4.0 / (1 / 4 + 1 / 9)
    assert e.df == pytest.approx(df) and e.se == pytest.approx(math.sqrt(2))
    assert e.hi - e.value == pytest.approx(st.t.ppf(0.975, df) * math.sqrt(2))


def test_t_estimate_without_seed_noise_has_no_interval():
    e = t_estimate(-3.0, math.nan, 0, 0.5, 9, 0.95)
    assert math.isnan(e.lo) and math.isnan(e.hi) and math.isnan(e.p_value)


def test_holm_known_answer():
    # p sorted: 0.01*3, 0.02*2, 0.04*1 -> 0.03, 0.04, 0.04 (monotone)
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    out = holm([0.5, math.nan, 0.001])
    assert out[0] == pytest.approx(0.5) and math.isnan(out[1]) and out[2] == pytest.approx(0.002)
    assert holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])  # 0.8 * 2 caps at 1; monotone


def test_holm_levels_known_answer():
    # all three rejected (adjusted 0.03, 0.04, 0.04 < 0.05): each at the level of its own step
    assert holm_levels([0.04, 0.01, 0.02], 0.05) == pytest.approx([0.95, 1 - 0.05 / 3, 0.975])
    # none rejected (0.03 * 2 = 0.06): every interval at the first step's level, 1 - alpha / 2,
    # although 0.04 alone would pass at 0.05 (its per-comparison 95% interval excludes 0)
    assert holm_levels([0.03, 0.04], 0.05) == pytest.approx([0.975, 0.975])
    # one of three rejected: the rest at the level where Holm stopped, 1 - alpha / 2
    out = holm_levels([0.001, 0.4, math.nan, 0.03], 0.05)
    assert out[0] == pytest.approx(1 - 0.05 / 3) and out[1] == out[3] == pytest.approx(0.975)
    assert math.isnan(out[2])


def _excludes_zero(lo: float, hi: float) -> bool:
    return lo > 0 or hi < 0


def test_adjusted_intervals_agree_with_the_holm_verdicts():
    rng = np.random.default_rng(11)
    per_comparison_disagrees = 0
    for _ in range(40):
        evals: dict[str, dict[int, FakePerImage]] = {"clean": {}}
        shifts = rng.choice([0.0, 0.004, 0.008, 0.03], size=8)
        for s in range(3):
            base = rng.random(30)
            evals["clean"][s] = per_image(base)
            for i, shift in enumerate(shifts):
                evals.setdefault(f"c{i}", {})[s] = per_image(base - shift + rng.normal(0, 0.005))
        res, _ = condition_results("t", "bbox", evals)
        for r in res:
            if r.condition == "clean":
                continue
            assert _excludes_zero(r.adj_lo, r.adj_hi) == r.significant, r
            assert r.adj_lo <= r.delta_lo and r.delta_hi <= r.adj_hi  # wider than per comparison
            per_comparison_disagrees += _excludes_zero(r.delta_lo, r.delta_hi) != r.significant
        for c in mean_over_test_sets(res).values():
            assert _excludes_zero(c.adj_lo, c.adj_hi) == c.significant
    # the case of the issue ("+4.4 [+0.7, +8.1] ... no measurable difference") does occur here
    assert per_comparison_disagrees > 0


def test_jackknife_of_a_mean_is_the_classic_variance():
    x = np.array([1.0, 4.0, 2.0, 8.0, 5.0])
    theta = np.array([np.delete(x, i).mean() for i in range(5)])
    assert jackknife_variance(theta) == pytest.approx(np.var(x, ddof=1) / 5)
    W = jackknife_weights(np.array([0, 0, 1, 2, 2]))
    assert W.tolist() == [[0, 0, 1, 1, 1], [1, 1, 0, 1, 1], [1, 1, 1, 0, 0]]


def test_pooled_variance_and_bartlett():
    var, df = pooled_variance({"a": [1.0, 3.0], "b": [0.0, 4.0, 2.0], "c": [7.0]})
    assert df == 3 and var == pytest.approx((2.0 * 1 + 4.0 * 2) / 3)
    rng = np.random.default_rng(0)
    alike = seed_variance_check({c: rng.normal(0, 1, 6).tolist() for c in "abcd"})
    unlike = seed_variance_check({"a": rng.normal(0, 1, 6).tolist(), "b": rng.normal(0, 20, 6).tolist()})
    assert alike.bartlett_p > 0.05 and unlike.bartlett_p < 0.01 and unlike.largest == "b"


def test_identical_condition_has_zero_delta_and_zero_width():
    rng = np.random.default_rng(1)
    evals = {"clean": {}, "same": {}}
    for s in range(3):
        scores = rng.random(40)
        evals["clean"][s] = evals["same"][s] = per_image(scores)
    res, _ = condition_results("t", "bbox", evals)
    same = next(r for r in res if r.condition == "same")
    assert same.delta == 0 and same.delta_lo == 0 and same.delta_hi == 0 and not same.significant


def test_one_seed_gives_no_interval_and_no_verdict():
    rng = np.random.default_rng(2)
    base = rng.random(30)
    evals = {"clean": {0: per_image(base)}, "bad": {0: per_image(base - 0.2)}}
    res, spread = condition_results("t", "bbox", evals)
    bad = next(r for r in res if r.condition == "bad")
    assert bad.delta == pytest.approx(-20.0)
    assert math.isnan(bad.delta_lo) and not bad.significant and bad.interval == INTERVAL_NONE
    assert spread is not None and math.isnan(spread.std) and math.isnan(spread.diff_sd)


def test_paired_seed_interval_known_answer_with_fixed_scenes():
    # two scenes (< min_scenes): the interval is the t-interval over seeds of the paired differences
    rng = np.random.default_rng(3)
    shifts = {0: 0.04, 1: 0.06, 2: 0.05}
    evals = {"clean": {}, "c": {}}
    for s, shift in shifts.items():
        base = rng.random(20)
        evals["clean"][s] = per_image(base)
        evals["c"][s] = per_image(base - shift)
    clusters = ["v0"] * 10 + ["v1"] * 10
    res, spread = condition_results("t", "bbox", evals, clusters, pool_seed_variance=False)
    c = next(r for r in res if r.condition == "c")
    assert c.delta_per_seed == pytest.approx([-4.0, -6.0, -5.0])
    assert c.interval == INTERVAL_SEEDS and c.n_scenes == 2 and c.se_scene == 0
    half = 4.302652729911275 / math.sqrt(3)
    assert c.delta_lo == pytest.approx(-5 - half) and c.delta_hi == pytest.approx(-5 + half)
    assert c.seed_sd == pytest.approx(1.0) and spread.std > 0


def test_scene_term_enters_with_enough_scenes():
    rng = np.random.default_rng(4)
    n_scenes, frames = 8, 5
    clusters = np.repeat(np.arange(n_scenes), frames)
    evals = {"clean": {}, "c": {}}
    scene_effect = rng.normal(0, 0.05, n_scenes)[clusters]  # the difference varies by scene
    for s in range(3):
        base = rng.random(n_scenes * frames)
        evals["clean"][s] = per_image(base)
        evals["c"][s] = per_image(base - 0.05 + scene_effect + rng.normal(0, 0.002))
    res, _ = condition_results("t", "bbox", evals, clusters.tolist())
    c = next(r for r in res if r.condition == "c")
    assert c.interval == INTERVAL_SEEDS_SCENES and c.n_scenes == n_scenes
    theta = np.array([-100 * (0.05 - np.delete(scene_effect, clusters == k).mean()) for k in range(n_scenes)])
    assert c.se_scene == pytest.approx(math.sqrt(jackknife_variance(theta)), rel=1e-6)
    assert c.se == pytest.approx(math.hypot(c.se_seed, c.se_scene))


def test_holm_controls_the_verdicts():
    rng = np.random.default_rng(5)
    evals = {"clean": {}}
    names = [f"c{i}" for i in range(12)]
    for s in range(3):
        base = rng.random(30)
        evals["clean"][s] = per_image(base)
        for i, n in enumerate(names):
            shift = 0.1 if i == 0 else 0.0
            evals.setdefault(n, {})[s] = per_image(base - shift + rng.normal(0, 0.01))
    res, _ = condition_results("t", "bbox", evals)
    by = {r.condition: r for r in res}
    assert by["c0"].significant and by["c0"].p_holm <= 12 * by["c0"].p_value
    assert all(r.p_holm >= r.p_value for r in res if r.condition != "clean")


def test_mean_over_test_sets_pairs_seeds_across_test_sets():
    rng = np.random.default_rng(6)
    rows = []
    for shift in (0.02, 0.06):
        evals = {"clean": {}, "c": {}, "d": {}}
        for s in range(3):
            base = rng.random(30)
            evals["clean"][s] = per_image(base)
            evals["c"][s] = per_image(base - shift + rng.normal(0, 0.005))
            evals["d"][s] = per_image(base + rng.normal(0, 0.005))
        res, _ = condition_results("t", "bbox", evals)
        rows.extend(res)
    out = mean_over_test_sets(rows)
    c = [r for r in rows if r.condition == "c"]
    per_seed = np.mean([r.delta_per_seed for r in c], axis=0)
    assert out["c"].estimate.value == pytest.approx(per_seed.mean())
    assert out["c"].significant and out["c"].n_seeds == 3
    assert out["d"].estimate.lo < 0 < out["d"].estimate.hi


def test_kendall_tau():
    a = {"x": -1.0, "y": -2.0, "z": -3.0, "w": -4.0}
    assert kendall_tau(a, a)["tau"] == pytest.approx(1.0)
    rev = {k: -v for k, v in a.items()}
    assert kendall_tau(a, rev)["tau"] == pytest.approx(-1.0)
    assert math.isnan(kendall_tau({"x": 1.0, "y": 2.0}, {"x": 1.0, "y": 2.0})["tau"])
    assert kendall_tau(a, {**a, "w": math.nan})["n"] == 3


def test_rank_fixes_per_hour_and_significance_first():
    deltas = {
        "clean": (0.0, 0.0, 0.0, False),
        "cheap": (-2.0, -3.0, -1.0, True),  # 4 AP/h at 0.5 h
        "costly": (-10.0, -12.0, -8.0, True),  # 1 AP/h at 10 h
        "noise": (-8.0, -20.0, 4.0, False),  # large but not distinguishable from zero
        "better": (1.0, 0.5, 1.5, True),  # condition beats clean: nothing to recover
    }
    hours = {"cheap": 0.5, "costly": 10.0, "noise": 1.0, "better": 1.0, "clean": 0.0}
    items = rank_fixes(deltas, hours)
    assert [it.condition for it in items] == ["cheap", "costly", "noise", "better"]
    assert items[0].per_hour == pytest.approx(4.0)
    assert items[0].per_hour_lo == pytest.approx(2.0) and items[0].per_hour_hi == pytest.approx(6.0)
    assert items[0].rank == 1 and not items[3].significant


def test_fix_verdicts():
    deltas = {
        "hurts": (-5.0, -7.0, -3.0, True),
        "flat": (-1.0, -3.0, 1.0, False),
        "helps": (2.0, 1.0, 3.0, True),
        "single": (-9.0, math.nan, math.nan, False),
    }
    items = {it.condition: it for it in rank_fixes(deltas, dict.fromkeys(deltas, 1.0))}
    assert items["hurts"].verdict == "fix recovers AP"
    assert items["flat"].verdict == "no measurable difference"
    assert items["helps"].verdict == "scored above clean"
    assert items["single"].verdict == "not measured (1 seed)" and not items["single"].significant
