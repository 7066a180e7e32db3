"""Replication checks: do two runs of the same study (or two halves of one) give the same answers?

Two runs of one study share their test frames and training scenes; what differs between them is
the training noise (other seeds, or the same seeds on another machine, which compute other
floats). So two estimates of the same difference agree when

``|d_A - d_B| <= t(df) * sqrt(se_seed_A^2 + se_seed_B^2)``

with the Welch-Satterthwaite degrees of freedom of the two seed variances (with pooled seed
variances they are large and ``t`` is close to 1.96). The scene-sampling part of the standard
error is shared by the two runs (same frames) and left out. Besides the share of agreeing
estimates, the check reports Kendall's tau between the two rankings of the conditions: agreement
says the intervals are honest, tau says they are precise enough to rank.

How many seeds would make the rankings replicate (:func:`tau_projection`) is projected by simulation
from what the two runs measured: the conditions' effects (both runs' seeds pooled, shrunk toward
their mean by the share of their spread that the estimation noise explains) and each condition's
own training noise (half the seed variance of its paired difference: the other half is clean's,
common to all conditions of a run, which moves every difference alike and leaves the ranking be);
two independent studies of ``S`` seeds each are drawn and the expected Kendall tau between their
rankings is reported per ``S``.

All AP values in AP points.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as _st

from twingap.errors import TwingapError
from twingap.io import read_json
from twingap.study.identity import (
    SceneTolerance,
    identity_differences,
    not_recorded,
    scene_difference,
    study_identity,
)
from twingap.study.stats import ConditionResult, kendall_tau


@dataclass(frozen=True)
class SideEstimate:
    """One run's (or half's) estimate of a difference: value, seed standard error, its df, seeds."""

    delta: float
    se_seed: float
    df_seed: float
    n_seeds: int


@dataclass(frozen=True)
class Agreement:
    """The two estimates of one condition x test set x IoU type, and whether they agree."""

    condition: str
    test_set: str
    iou_type: str
    delta_a: float
    delta_b: float
    diff: float
    se: float
    df: float
    threshold: float
    agree: bool | None  # None: an estimate has no measured training noise (1 seed)


def agree(a: SideEstimate, b: SideEstimate, ci: float = 0.95) -> tuple[float, float, float, bool | None]:
    """``(se, df, threshold, agree)`` for two independent estimates (see the module docstring)."""
    va, vb = a.se_seed**2, b.se_seed**2
    if any(math.isnan(x) for x in (a.delta, b.delta, va, vb)) or a.df_seed < 1 or b.df_seed < 1:
        return math.nan, math.nan, math.nan, None
    var = va + vb
    den = (va**2 / a.df_seed if va else 0.0) + (vb**2 / b.df_seed if vb else 0.0)
    df = var**2 / den if den > 0 else min(a.df_seed, b.df_seed)
    se = math.sqrt(var)
    thr = float(_st.t.ppf(0.5 + ci / 2, df)) * se
    return se, df, thr, bool(abs(a.delta - b.delta) <= thr)


def compare_estimates(
    a: dict[tuple[str, str, str], SideEstimate], b: dict[tuple[str, str, str], SideEstimate], ci: float = 0.95
) -> dict[str, Any]:
    """Agreement per (condition, test set, IoU type) key both sides have, share and Kendall tau.

    Returns:
        ``{"rows": [Agreement...], "n": checked, "n_agree", "share", "tau": [{test_set, iou_type,
        tau, p_value, n}]}``; rows whose estimates lack training noise are listed, not counted.
    """
    rows = []
    for key in [k for k in a if k in b]:
        se, df, thr, ok = agree(a[key], b[key], ci)
        rows.append(Agreement(*key, a[key].delta, b[key].delta, a[key].delta - b[key].delta, se, df, thr, ok))
    checked = [r for r in rows if r.agree is not None]
    n_ok = sum(bool(r.agree) for r in checked)
    taus = []
    for ts, iou in sorted({(k[1], k[2]) for k in a if k in b}):
        da = {k[0]: v.delta for k, v in a.items() if k[1:] == (ts, iou)}
        db = {k[0]: v.delta for k, v in b.items() if k[1:] == (ts, iou)}
        taus.append({"test_set": ts, "iou_type": iou, **kendall_tau(da, db)})
    return {
        "rows": rows,
        "n": len(checked),
        "n_agree": n_ok,
        "share": n_ok / len(checked) if checked else math.nan,
        "tau": taus,
    }


def expected_tau(effects: np.ndarray, sd: np.ndarray, seeds: int, n_sim: int = 4000, seed: int = 0) -> float:
    """Expected Kendall tau (tau-a) between the rankings of two independent studies.

    Each study estimates ``effects`` (one per condition) with independent normal noise of sd
    ``sd / sqrt(seeds)`` (``sd``: each condition's own per-seed training noise).

    Args:
        effects: (C,) true effects, AP points.
        sd: (C,) per-seed sd of each condition's own training noise, AP points.
        seeds: Seeds per study.
        n_sim: Simulated pairs of studies.
        seed: Seed of the simulation (the answer is deterministic).

    Returns:
        The mean tau over the simulated pairs; NaN with fewer than 3 conditions.
    """
    c = len(effects)
    if c < 3:
        return math.nan
    rng = np.random.default_rng(seed)
    noise = sd / math.sqrt(seeds)
    x = effects + rng.standard_normal((n_sim, c)) * noise
    y = effects + rng.standard_normal((n_sim, c)) * noise
    i, j = np.triu_indices(c, 1)
    concord = np.sign(x[:, i] - x[:, j]) * np.sign(y[:, i] - y[:, j])
    return float(concord.mean())


def _project(
    est: np.ndarray, var: np.ndarray, n: np.ndarray, now: int, target: float, max_seeds: int
) -> dict[str, Any]:
    """Expected tau at a few seed counts and the seeds reaching ``target`` (see :func:`tau_projection`).

    Args:
        est: (C,) estimated effects, AP points.
        var: (C,) per-seed variance of each condition's paired difference.
        n: (C,) seeds behind each estimate.
        now: The seed count of the run(s) measured.
        target: Tau to reach.
        max_seeds: The largest seed count tried.
    """
    # A paired difference's noise is the condition's own plus clean's; clean's part is common to every
    # condition of a run and does not change their ranking. With conditions alike (the premise of
    # pooling the seed variance), each condition's own part is half the paired difference's variance.
    own = var / 2
    noise = float(np.mean(own / n))
    spread = float(est.var(ddof=1))
    shrink = max(0.0, 1.0 - noise / spread) if spread > 0 else 0.0
    effects = est.mean() + shrink * (est - est.mean())
    sd = np.sqrt(own)
    tau_at = {s: expected_tau(effects, sd, s) for s in sorted({now, 3, 5, 10, 20})}
    need = None
    lo, hi = 1, max_seeds
    if expected_tau(effects, sd, hi) >= target:
        while lo < hi:  # expected tau grows with the seed count
            mid = (lo + hi) // 2
            if expected_tau(effects, sd, mid) >= target:
                hi = mid
            else:
                lo = mid + 1
        need = lo
    return {
        "n": len(est),
        "seeds_now": now,
        "shrink": shrink,
        "tau_at": tau_at,
        "seeds_for_target": need,
        "target": target,
        "max_seeds": max_seeds,
    }


def tau_projection(
    a: dict[tuple[str, str, str], SideEstimate],
    b: dict[tuple[str, str, str], SideEstimate],
    target: float = 0.7,
    max_seeds: int = 50,
) -> list[dict[str, Any]]:
    """Per test set x IoU type: expected tau of two runs of S seeds each, and the S reaching ``target``.

    The effects are both sides' estimates pooled (weighted by seeds) and shrunk toward their mean by
    ``max(0, 1 - noise variance / observed variance)``, so that noise is not taken for spread
    between conditions; the sd per condition pools both sides' seed sds.

    Returns:
        ``[{test_set, iou_type, n, seeds_now, shrink, tau_at: {S: tau}, seeds_for_target, target,
        max_seeds}]``;
        ``seeds_for_target`` is None if even ``max_seeds`` seeds per run do not reach ``target``.
    """
    out = []
    for ts, iou in sorted({(k[1], k[2]) for k in a if k in b}):
        keys = [k for k in a if k in b and k[1:] == (ts, iou)]
        rows = []
        for k in keys:
            ea, eb = a[k], b[k]
            if min(ea.n_seeds, eb.n_seeds) < 2 or any(
                math.isnan(v) for v in (ea.delta, eb.delta, ea.se_seed, eb.se_seed)
            ):
                continue
            n = ea.n_seeds + eb.n_seeds
            ss = ea.se_seed**2 * ea.n_seeds * (ea.n_seeds - 1) + eb.se_seed**2 * eb.n_seeds * (eb.n_seeds - 1)
            rows.append(((ea.delta * ea.n_seeds + eb.delta * eb.n_seeds) / n, ss / (n - 2), n))
        if len(rows) < 3:
            continue
        est, var, n_arr = (np.array(col, dtype=float) for col in zip(*rows, strict=True))
        now = min(a[keys[0]].n_seeds, b[keys[0]].n_seeds)
        out.append({"test_set": ts, "iou_type": iou, **_project(est, var, n_arr, now, target, max_seeds)})
    return out


def rerun_projection(
    results: list[ConditionResult], target: float = 0.7, max_seeds: int = 50
) -> list[dict[str, Any]]:
    """As :func:`tau_projection`, from one study: would a rerun of S seeds rank its conditions alike?

    Per test set x IoU type of ``results`` (conditions with at least 2 paired seeds; the seed sd as
    the study's intervals use it, pooled where they pool).
    """
    out = []
    for ts, iou in sorted({(r.test_set, r.iou_type) for r in results}):
        rows = [
            r
            for r in results
            if (r.test_set, r.iou_type) == (ts, iou)
            and r.condition != "clean"
            and len(r.paired_seeds) >= 2
            and not math.isnan(r.se_seed)
        ]
        if len(rows) < 3:
            continue
        n = np.array([len(r.paired_seeds) for r in rows], dtype=float)
        est = np.array([r.delta for r in rows])
        var = np.array([r.se_seed**2 for r in rows]) * n
        now = int(n.min())
        out.append({"test_set": ts, "iou_type": iou, **_project(est, var, n, now, target, max_seeds)})
    return out


def split_half(results: list[ConditionResult], ci: float = 0.95) -> dict[str, Any] | None:
    """Split-half replication inside one study: seeds 0, 2, 4... against seeds 1, 3, 5...

    Each half's estimate is the mean of its seeds' paired differences; its standard error uses the
    seed sd the whole study measured (pooled as in the study's intervals) divided by the root of
    the half's seed count. Needs at least 3 paired seeds.

    Returns:
        As :func:`compare_estimates`, plus ``"seeds_a"`` and ``"seeds_b"``, and ``"rerun"``: the
        :func:`rerun_projection` of the whole study; None with < 3 seeds.
    """
    a: dict[tuple[str, str, str], SideEstimate] = {}
    b: dict[tuple[str, str, str], SideEstimate] = {}
    halves: tuple[list[int], list[int]] = ([], [])
    for r in results:
        if r.condition == "clean" or len(r.paired_seeds) < 3 or math.isnan(r.se_seed):
            continue
        sd = r.se_seed * math.sqrt(len(r.paired_seeds))  # back to the per-seed sd
        key = (r.condition, r.test_set, r.iou_type)
        for half, side in ((0, a), (1, b)):
            idx = list(range(half, len(r.paired_seeds), 2))
            vals = [r.delta_per_seed[i] for i in idx]
            side[key] = SideEstimate(float(np.mean(vals)), sd / math.sqrt(len(vals)), r.df_seed, len(vals))
            halves[half][:] = [r.paired_seeds[i] for i in idx]
    if not a:
        return None
    return {
        **compare_estimates(a, b, ci),
        "seeds_a": halves[0],
        "seeds_b": halves[1],
        "rerun": rerun_projection(results),
    }


def _run_rows(run_dir: Path) -> tuple[dict[str, Any], dict[tuple[str, str, str], SideEstimate]]:
    path = run_dir / "results" / "stats.json"
    if not path.is_file():
        raise TwingapError("no results/stats.json: run `twingap report` on this run first", run_dir)
    stats = read_json(path)
    rows = {}
    for r in stats.get("results", []):
        if r["condition"] == "clean":
            continue
        nan = math.nan
        rows[(r["condition"], r["test_set"], r["iou_type"])] = SideEstimate(
            nan if r.get("delta") is None else float(r["delta"]),
            nan if r.get("se_seed") is None else float(r["se_seed"]),
            nan if r.get("df_seed") is None else float(r["df_seed"]),
            len(r.get("paired_seeds") or []),
        )
    return stats, rows


def compare_runs(
    run_a: str | Path, run_b: str | Path, ci: float = 0.95, tol: SceneTolerance | None = None
) -> dict[str, Any]:
    """Replication check of two runs of the same study (``twingap compare``).

    Two runs are of one study when their identities (:func:`twingap.study.identity.study_identity`:
    configuration without seeds, input content hashes, twingap version, test sets' ground truth,
    training recipe) agree in every part both recorded. Their derived training scenes may still
    differ in the last bits of their floats (another machine): when the scenes hashes differ, how
    far the scenes differ is measured (:func:`~twingap.study.identity.scene_difference`) and must
    be within ``tol``.

    Returns:
        As :func:`compare_estimates`, plus ``projection``, ``seeds_a``/``seeds_b``, ``run_a``/``run_b``,
        ``fake``, ``identity`` (``{"a", "b", "not_recorded": {"a": [...], "b": [...]}}``) and
        ``scenes``: ``{"same_hash": bool, "difference": SceneDiff dict or None, "tolerance"}``.

    Raises:
        TwingapError: A folder is not a finished study run, or the two are different studies
            (the message names what differs, or the measured scene difference above ``tol``).
    """
    tol = tol or SceneTolerance()
    run_a, run_b = Path(run_a), Path(run_b)
    id_a, id_b = study_identity(run_a), study_identity(run_b)
    diffs = identity_differences(id_a, id_b)
    if diffs:
        raise TwingapError(f"{run_b} is another study: {'; '.join(diffs)}", run_a)
    scenes: dict[str, Any] = {
        "same_hash": id_a["scenes_hash"] == id_b["scenes_hash"],
        "difference": None,
        "tolerance": asdict(tol),
    }
    if not scenes["same_hash"]:
        if not all((r / "scenes" / "train_scenes.json").is_file() for r in (run_a, run_b)):
            raise TwingapError(f"{run_b} is another study: its training scenes differ (scenes_hash)", run_a)
        sd = scene_difference(run_a, run_b)
        if sd.structure:
            raise TwingapError(
                f"{run_b}: same configuration and inputs, but its training scenes differ in content, "
                f"not only in float noise ({'; '.join(sd.structure[:2])})",
                run_a,
            )
        over = sd.exceeded(tol)
        if over:
            px = (
                f"projected object points up to {sd.projection_px:.3g} px apart, "
                f"in scene {sd.worst_scene!r}; "
                if sd.projection_px > 0
                else ""
            )
            raise TwingapError(
                f"{run_b}'s training scenes differ from these beyond the tolerance: {'; '.join(over)} "
                f"({px}see --scene-tol, --float-tol)",
                run_a,
            )
        scenes["difference"] = sd.to_dict()
    stats_a, a = _run_rows(run_a)
    stats_b, b = _run_rows(run_b)
    res = compare_estimates(a, b, ci)
    res["projection"] = tau_projection(a, b)
    res["seeds_a"] = sorted({n for n in _seeds(stats_a)})
    res["seeds_b"] = sorted({n for n in _seeds(stats_b)})
    res["run_a"], res["run_b"] = str(run_a), str(run_b)
    res["fake"] = bool(stats_a.get("fake") or stats_b.get("fake"))
    res["identity"] = {
        "a": id_a,
        "b": id_b,
        "not_recorded": {"a": not_recorded(id_a), "b": not_recorded(id_b)},
    }
    res["scenes"] = scenes
    return res


def _seeds(stats: dict[str, Any]) -> set[int]:
    return {int(s) for r in stats.get("results", []) for s in (r.get("paired_seeds") or [])}


def agreement_to_dict(res: dict[str, Any]) -> dict[str, Any]:
    """JSON-ready form of a :func:`compare_estimates` / :func:`compare_runs` result."""
    return {**res, "rows": [asdict(r) for r in res["rows"]]}
