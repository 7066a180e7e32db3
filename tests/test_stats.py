"""Study statistics: paired bootstrap with known answers, seed spread, Kendall tau, cost ranking."""

from __future__ import annotations

import math

import numpy as np
import pytest

from twingap.study.cost import rank_fixes
from twingap.study.fake import FakePerImage
from twingap.study.stats import condition_results, kendall_tau, paired_bootstrap, resample_weights


def per_image(ap: np.ndarray) -> FakePerImage:
    ap = np.asarray(ap, dtype=np.float64)
    return FakePerImage({"AP": ap, "AP50": ap, "AP75": ap})


def test_resample_weights_are_multisets():
    W = resample_weights(7, 50, np.random.default_rng(0))
    assert W.shape == (50, 7)
    assert (W.sum(axis=1) == 7).all() and (W >= 0).all()


def test_identical_condition_has_zero_delta_and_zero_width():
    rng = np.random.default_rng(1)
    scores = rng.random(40)
    evals = {"clean": {0: per_image(scores)}, "same": {0: per_image(scores)}}
    out = paired_bootstrap(evals, n_boot=200)
    assert out["same"]["delta"] == 0 and out["same"]["delta_lo"] == 0 and out["same"]["delta_hi"] == 0
    assert out["clean"]["ap"] == pytest.approx(100 * scores.mean())


def test_constant_shift_is_recovered_exactly_thanks_to_pairing():
    rng = np.random.default_rng(2)
    scores = rng.random(30) * 0.5 + 0.3
    evals = {"clean": {0: per_image(scores)}, "worse": {0: per_image(scores - 0.05)}}
    out = paired_bootstrap(evals, n_boot=300)
    assert out["worse"]["delta"] == pytest.approx(-5.0)
    # every replicate shares the images: the paired interval collapses to the shift
    assert out["worse"]["delta_lo"] == pytest.approx(-5.0) and out["worse"]["delta_hi"] == pytest.approx(-5.0)
    # while AP itself varies over the resampled images
    assert out["worse"]["ap_hi"] - out["worse"]["ap_lo"] > 2


def test_interval_covers_noise_and_significance():
    rng = np.random.default_rng(3)
    base = rng.random(60)
    evals = {
        "clean": {0: per_image(base)},
        "noise": {0: per_image(np.clip(base + rng.normal(0, 0.05, 60), 0, 1))},
        "bad": {0: per_image(np.clip(base - 0.2 + rng.normal(0, 0.05, 60), 0, 1))},
    }
    res, spread = condition_results("t", "bbox", evals, n_boot=400)
    by = {r.condition: r for r in res}
    assert by["noise"].delta_lo < 0 < by["noise"].delta_hi and not by["noise"].significant
    assert by["bad"].delta_hi < 0 and by["bad"].significant
    assert not by["clean"].significant
    assert spread is not None and math.isnan(spread.std) and spread.image_ci_half > 0


def test_seed_bootstrap_and_spread():
    rng = np.random.default_rng(4)
    base = rng.random(50)
    clean = {s: per_image(np.clip(base + 0.1 * s, 0, 1)) for s in range(3)}
    cond = {s: per_image(np.clip(base + 0.1 * s - 0.03, 0, 1)) for s in range(3)}
    res, spread = condition_results("t", "bbox", {"clean": clean, "c": cond}, n_boot=300)
    c = next(r for r in res if r.condition == "c")
    assert c.seeds == [0, 1, 2]
    assert len(c.delta_per_seed) == 3
    assert c.delta == pytest.approx(np.mean(c.delta_per_seed))
    assert spread.std > 5  # seeds differ by 10 AP points
    # the AP interval includes seed variation, the paired delta interval stays narrow
    assert (c.ap_hi - c.ap_lo) > 3 * (c.delta_hi - c.delta_lo)


def test_missing_seed_pairs_only_common_seeds():
    base = np.linspace(0.2, 0.8, 20)
    evals = {
        "clean": {0: per_image(base), 1: per_image(base)},
        "c": {1: per_image(base - 0.1)},
        "orphan": {},
    }
    evals.pop("orphan")
    out = paired_bootstrap(evals, n_boot=100)
    assert out["c"]["paired_seeds"] == [1]
    assert out["c"]["delta"] == pytest.approx(-10.0)


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


def test_mean_over_test_sets_combines_replicates():
    from twingap.study.stats import mean_over_test_sets

    rng = np.random.default_rng(5)
    rows = []
    for shift in (0.02, 0.06):
        base = rng.random(40)
        evals = {
            "clean": {0: per_image(base)},
            "c": {0: per_image(np.clip(base - shift + rng.normal(0, 0.02, 40), 0, 1))},
        }
        res, _ = condition_results("t", "bbox", evals, n_boot=300)
        rows.append(next(r for r in res if r.condition == "c"))
    d, lo, hi, sig = mean_over_test_sets(rows)
    assert d == pytest.approx(np.mean([r.delta for r in rows]))
    assert lo < d < hi and sig
    # averaging independent test sets narrows the interval below the mean of the two widths
    assert hi - lo < np.mean([r.delta_hi - r.delta_lo for r in rows])


def test_fix_verdicts():
    deltas = {
        "hurts": (-5.0, -7.0, -3.0, True),
        "flat": (-1.0, -3.0, 1.0, False),
        "helps": (2.0, 1.0, 3.0, True),
    }
    items = {it.condition: it for it in rank_fixes(deltas, {"hurts": 1.0, "flat": 1.0, "helps": 1.0})}
    assert items["hurts"].verdict == "fix recovers AP"
    assert items["flat"].verdict == "no measurable difference"
    assert items["helps"].verdict == "scored above clean"


def test_recoveries_within_seed_noise_rank_with_the_unmeasured():
    deltas = {
        "big": (-10.0, -12.0, -8.0, True),
        "small": (-3.0, -4.0, -2.0, True),  # distinguishable over images, but below the seed noise
        "flat": (-1.0, -3.0, 1.0, False),
    }
    hours = {"big": 9.0, "small": 0.5, "flat": 1.0}
    items = rank_fixes(deltas, hours, seed_noise=4.8)
    assert [it.condition for it in items] == ["big", "small", "flat"]
    assert items[0].verdict == "fix recovers AP" and items[0].significant
    assert items[1].verdict == "within seed noise" and not items[1].significant
    # without a seed-noise estimate the cheap fix ranks first again
    assert [it.condition for it in rank_fixes(deltas, hours)] == ["small", "big", "flat"]
