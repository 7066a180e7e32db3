"""Simulated studies with known effects: the intervals cover the truth at their level.

A fake study draws, per condition, seed and test image, a per-image AP score

    score = mu + effect_c + seed_s + seed_cs + scene_k + scene_ck + frame_noise

with a shared seed effect (what pairing by seed removes), condition-specific training noise
(what it cannot), a scene difficulty shared by all models, a condition x scene interaction (the
true difference varies by scene; the truth is its population mean), and small frame noise: frames
of one scene are near-copies, as consecutive video frames are. AP of a model = mean of its scores
(:class:`~twingap.study.fake.FakePerImage`). The study's intervals must cover ``effect_c`` at 95%
+- 5%; the naive frame-level bootstrap of one seed, what twingap reported before, must not.
"""

from __future__ import annotations

import numpy as np

from twingap.study.fake import FakePerImage
from twingap.study.stats import condition_results

EFFECTS = {"clean": 0.0, "a": 0.0, "b": -0.01, "c": -0.03, "d": -0.06, "e": 0.02}
N_DRAWS = 150


def _pi(x: np.ndarray) -> FakePerImage:
    return FakePerImage({"AP": x, "AP50": x, "AP75": x})


def simulate(
    rng: np.random.Generator, seeds: int, scenes: int, frames: int
) -> tuple[dict, list[int], dict[str, float]]:
    """One study: ``{condition: {seed: FakePerImage}}``, the scene label of each image, and each
    condition's true difference *on these frames* (AP points: effect + mean interaction)."""
    clusters = np.repeat(np.arange(scenes), frames)
    scene = rng.normal(0, 0.08, scenes)
    evals: dict[str, dict[int, FakePerImage]] = {c: {} for c in EFFECTS}
    inter = {c: rng.normal(0, 0.015, scenes) for c in EFFECTS}
    for s in range(seeds):
        shared = rng.normal(0, 0.03)
        for c, eff in EFFECTS.items():
            own = rng.normal(0, 0.015)
            x = 0.6 + eff + shared + own + (scene + inter[c])[clusters] + rng.normal(0, 0.004, clusters.size)
            evals[c][s] = _pi(x)
    fixed = {c: 100 * (eff + (inter[c] - inter["clean"])[clusters].mean()) for c, eff in EFFECTS.items()}
    return evals, clusters.tolist(), fixed


def naive_frame_bootstrap(evals: dict, cond: str, rng: np.random.Generator, n_boot: int = 300) -> tuple:
    """95% percentile interval of seed 0's difference, resampling frames as if independent."""
    d = 100 * (evals[cond][0].scores["AP"] - evals["clean"][0].scores["AP"])
    idx = rng.integers(0, d.size, size=(n_boot, d.size))
    lo, hi = np.quantile(d[idx].mean(axis=1), [0.025, 0.975])
    return lo, hi


def coverage(seeds: int, scenes: int, frames: int) -> tuple[float, float]:
    rng = np.random.default_rng(1234)
    hits = naive_hits = total = 0
    for _ in range(N_DRAWS):
        evals, clusters, _ = simulate(rng, seeds, scenes, frames)
        res, _ = condition_results("sim", "bbox", evals, clusters)
        for r in res:
            if r.condition == "clean":
                continue
            truth = 100 * EFFECTS[r.condition]
            total += 1
            hits += r.delta_lo <= truth <= r.delta_hi
            lo, hi = naive_frame_bootstrap(evals, r.condition, rng)
            naive_hits += lo <= truth <= hi
    return hits / total, naive_hits / total


def test_intervals_cover_the_truth_and_the_naive_bootstrap_does_not():
    cov, naive = coverage(seeds=3, scenes=8, frames=6)
    assert 0.90 <= cov <= 1.0, f"two-level interval coverage {cov:.3f}"
    assert naive < 0.6, f"naive frame bootstrap coverage {naive:.3f} (expected far below 95%)"


def test_intervals_with_few_scenes_cover_a_rerun_on_the_same_frames():
    """With < 5 scenes the scenes are held fixed: the target is the difference on these frames,
    what a rerun on another machine (new training draws, same test frames) estimates."""
    rng = np.random.default_rng(99)
    hits = total = 0
    for _ in range(N_DRAWS):
        evals, clusters, fixed = simulate(rng, 3, 2, 10)
        res, _ = condition_results("sim", "bbox", evals, clusters)
        for r in res:
            if r.condition != "clean":
                total += 1
                hits += r.delta_lo <= fixed[r.condition] <= r.delta_hi
    assert 0.90 <= hits / total <= 1.0, f"coverage {hits / total:.3f}"
