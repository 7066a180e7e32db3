"""Replication checks: agreement of two estimates, split-half, ``twingap compare`` on fake runs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from twingap.study.fake import FakePerImage
from twingap.study.replication import SideEstimate, agree, compare_estimates, split_half
from twingap.study.stats import condition_results


def test_agree_known_answer():
    a = SideEstimate(-5.0, 1.0, 10, 3)
    b = SideEstimate(-2.0, 1.0, 10, 3)
    se, df, thr, ok = agree(a, b)
    assert se == pytest.approx(math.sqrt(2)) and df == pytest.approx(20)
    assert thr == pytest.approx(st.t.ppf(0.975, 20) * math.sqrt(2))
    assert ok is False  # |-3| > 2.95
    assert agree(a, SideEstimate(-3.0, 1.0, 10, 3))[3] is True
    assert agree(a, SideEstimate(-3.0, math.nan, 0, 1))[3] is None  # one seed: not checkable


def test_compare_estimates_share_and_tau():
    conds = ["a", "b", "c", "d"]
    A = {(c, "ts", "bbox"): SideEstimate(-float(i), 0.5, 20, 3) for i, c in enumerate(conds)}
    same = compare_estimates(A, dict(A))
    assert same["share"] == 1.0 and same["n"] == 4 and same["tau"][0]["tau"] == pytest.approx(1.0)
    flipped = {k: SideEstimate(-v.delta + 10, 0.5, 20, 3) for k, v in A.items()}
    res = compare_estimates(A, flipped)
    assert res["share"] < 0.5 and res["tau"][0]["tau"] == pytest.approx(-1.0)


def _evals(rng: np.random.Generator, seeds: list[int], effects: dict[str, float], noise: float) -> dict:
    evals: dict[str, dict[int, FakePerImage]] = {c: {} for c in effects}
    for s in seeds:
        base = rng.random(20)
        for c, e in effects.items():
            x = base + e + rng.normal(0, noise)
            evals[c][s] = FakePerImage({"AP": x, "AP50": x, "AP75": x})
    return evals


def test_split_half_agrees_on_noise_and_needs_three_seeds():
    rng = np.random.default_rng(0)
    effects = {"clean": 0.0, "a": -0.01, "b": -0.05, "c": -0.1, "d": 0.0}
    res, _ = condition_results("ts", "bbox", _evals(rng, [0, 1, 2, 3], effects, 0.005))
    half = split_half(res)
    assert half is not None and half["seeds_a"] == [0, 2] and half["seeds_b"] == [1, 3]
    assert half["n"] == 4 and half["share"] >= 0.75
    res2, _ = condition_results("ts", "bbox", _evals(rng, [0, 1], effects, 0.005))
    assert split_half(res2) is None
