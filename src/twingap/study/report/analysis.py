"""The report's analysis: read a run folder and compute everything the report shows, as plain data.

This is the one place that turns the study's files (job manifests, predictions, the test sets'
ground truth) and its statistics (:mod:`twingap.study.stats`) and cost model
(:mod:`twingap.study.cost`) into report data (:class:`StudyResults`). The tables, figures and
writers only read a :class:`StudyResults`; nothing here formats text or draws.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twingap.io import dumps_json, read_json
from twingap.study.byod import category_names, not_scored
from twingap.study.config import StudyConfig
from twingap.study.cost import FixItem, artist_hours, rank_fixes
from twingap.study.replication import split_half
from twingap.study.runner import IOU_TYPES, STAGES, job_states, load_run_config, scored_categories
from twingap.study.seeding import read_record
from twingap.study.stages import Stages, load_stages
from twingap.study.stats import (
    ConditionResult,
    SeedSpread,
    condition_results,
    kendall_tau,
    mean_over_test_sets,
)

#: The IoU type the headline, Figure 1 and the fix ranking use.
PRIMARY_IOU = "bbox"

#: test set -> IoU type -> condition -> category id -> AP points.
PerCategory = dict[str, dict[str, dict[str, dict[int, float]]]]


@dataclass
class StudyResults:
    """Everything the report shows, computed from a run folder.

    AP values are in points (AP x 100); differences are condition minus clean.
    """

    run_dir: Path
    cfg: StudyConfig
    fake: bool
    jobs: list[dict[str, Any]]
    states: dict[str, str]
    shared: dict[str, Any]
    results: list[ConditionResult]
    spreads: list[SeedSpread]
    taus: list[dict[str, Any]]
    hours: dict[str, float]
    fixes: list[FixItem]
    categories: dict[str, list[int]]
    timings: dict[str, Any]
    versions: dict[str, str]
    failed: dict[str, str] = field(default_factory=dict)
    #: test set -> IoU type -> condition -> category id -> AP points of the first seed's model
    #: (real stages only; the fake stages have no categories).
    per_category: PerCategory = field(default_factory=dict)
    #: job id -> its ``metrics.json`` (test set -> IoU type -> AP, AP50, AP75 as fractions).
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Split-half replication (even vs odd seeds) per IoU type (see
    #: :func:`twingap.study.replication.split_half`); None with fewer than 3 seeds.
    replication: dict[str, Any] | None = None
    #: What the machines that trained the jobs compute floats with (one entry per distinct machine).
    machines: list[dict[str, Any]] = field(default_factory=list)
    #: Category id -> name, from the run's manifests (the model library and the test sets' data).
    category_names: dict[int, str] = field(default_factory=dict)
    #: Test set -> its annotated categories that no trained model scores (listed, not scored).
    not_scored: dict[str, list[str]] = field(default_factory=dict)
    #: How the study's seeds came about (``seeds.json``, see :mod:`twingap.study.seeding`): the seed
    #: policy, the seeds asked and finished, why the last invocation stopped; None if not recorded.
    seeding: dict[str, Any] | None = None

    def get(self, test_set: str, iou: str, cond: str) -> ConditionResult | None:
        """The result of one condition on one test set and IoU type."""
        for r in self.results:
            if r.test_set == test_set and r.iou_type == iou and r.condition == cond:
                return r
        return None

    def test_set_kind(self, name: str) -> str:
        """How a test set's intervals treat its scenes (``seeds+scenes`` or ``seeds (scenes fixed)``)."""
        r = next((r for r in self.results if r.test_set == name and r.condition != "clean"), None)
        return r.interval if r else ""


def collect(run_dir: str | Path) -> StudyResults:
    """Read a run folder and compute every statistic of the report.

    Raises:
        TwingapError: If the folder holds no study, or no finished clean job to compare against.
    """
    from twingap.errors import TwingapError

    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    states = {s.id: s for s in job_states(run_dir)}
    jobs = [
        read_json(run_dir / "jobs" / jid / "manifest.json") for jid, s in states.items() if s.state == "done"
    ]
    if not any(j["condition"] == "clean" for j in jobs):
        raise TwingapError("no finished clean job yet: nothing to compare against", run_dir)
    inconsistent = _not_comparable(run_dir, cfg, jobs)
    jobs = [j for j in jobs if j["id"] not in inconsistent]
    shared = {
        "scenes": read_json(run_dir / "scenes" / "manifest.json"),
        "testsets": {
            ts.name: read_json(run_dir / "testsets" / ts.name / "manifest.json") for ts in cfg.test_sets
        },
    }
    categories = {ts.name: scored_categories(shared, ts.name) for ts in cfg.test_sets}
    results, spreads, per_cat = _evaluate(run_dir, cfg, load_stages(cfg.stages), jobs, categories)
    hours = artist_hours(cfg)
    fixes = rank_fixes(rank_deltas(cfg, results), hours)
    failed = {jid: s.detail for jid, s in states.items() if s.state == "failed"}
    failed.update(inconsistent)
    return StudyResults(
        run_dir=run_dir,
        cfg=cfg,
        fake=bool(jobs and jobs[0].get("fake")),
        jobs=jobs,
        states={k: v.state for k, v in states.items()},
        shared=shared,
        results=results,
        spreads=spreads,
        taus=_rank_agreement(cfg, results),
        hours=hours,
        fixes=fixes,
        categories=categories,
        timings=_timings(run_dir, shared, jobs),
        versions=jobs[0].get("versions", {}) if jobs else {},
        failed=failed,
        per_category=per_cat,
        metrics={j["id"]: read_json(run_dir / "jobs" / j["id"] / "metrics.json") for j in jobs},
        replication=_split_half(results, cfg),
        machines=_machines(jobs),
        category_names=category_names(run_dir),
        not_scored={ts.name: not_scored(run_dir, ts.name) for ts in cfg.test_sets},
        seeding=read_record(run_dir),
    )


def _split_half(results: list[ConditionResult], cfg: StudyConfig) -> dict[str, Any] | None:
    """Split-half replication per IoU type (None with fewer than 3 seeds)."""
    out = {iou: split_half([r for r in results if r.iou_type == iou], cfg.stats.ci) for iou in IOU_TYPES}
    return None if all(v is None for v in out.values()) else out


def _machines(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The distinct machines (float-relevant facts) the jobs were trained on, with their job ids."""
    out: list[dict[str, Any]] = []
    for j in jobs:
        info = j.get("machine")
        if not info:
            continue
        same = next((m for m in out if m["info"] == info), None)
        if same is None:
            out.append({"info": info, "jobs": [j["id"]]})
        else:
            same["jobs"].append(j["id"])
    return out


def _not_comparable(run_dir: Path, cfg: StudyConfig, jobs: list[dict[str, Any]]) -> dict[str, str]:
    """Jobs trained with other settings than their seed's clean job: job id -> why.

    Such a job (e.g. the training code changed between jobs) is left out of every statistic and listed.
    """
    prints = {j["id"]: train_fingerprint(run_dir, j) for j in jobs}
    inconsistent = {}
    for j in jobs:
        ref = prints.get(f"clean__s{j['seed']}", prints.get(f"clean__s{cfg.seeds[0]}"))
        if prints[j["id"]] != ref:
            inconsistent[j["id"]] = f"trained with other settings ({prints[j['id']]} vs clean {ref})"
    return inconsistent


def _evaluate(
    run_dir: Path,
    cfg: StudyConfig,
    stages: Stages,
    jobs: list[dict[str, Any]],
    categories: dict[str, list[int]],
) -> tuple[list[ConditionResult], list[SeedSpread], PerCategory]:
    """Score every job on every test set and IoU type; the paired statistics of each condition."""
    results: list[ConditionResult] = []
    spreads: list[SeedSpread] = []
    order = {c: i for i, c in enumerate(cfg.conditions)}
    ordered = sorted(jobs, key=lambda j: (order.get(j["condition"], 99), j["seed"]))
    per_cat: PerCategory = {}
    for ts in cfg.test_sets:
        gt = run_dir / "testsets" / ts.name / "gt.json"
        for iou in IOU_TYPES:
            evals: dict[str, dict[int, Any]] = {}
            for j in ordered:
                preds = run_dir / "jobs" / j["id"] / "preds" / f"{ts.name}.json"
                pe = stages.per_image_eval(gt, preds, iou, categories[ts.name])
                evals.setdefault(j["condition"], {})[j["seed"]] = pe
                if j["seed"] == cfg.seeds[0] and hasattr(pe, "per_category"):
                    per_cat.setdefault(ts.name, {}).setdefault(iou, {})[j["condition"]] = {
                        c: 100 * ap for c, ap in pe.per_category().items()
                    }
            res, spread = condition_results(
                ts.name,
                iou,
                evals,
                scene_labels(run_dir / "testsets" / ts.name),
                cfg.stats.ci,
                cfg.stats.min_scenes,
                cfg.stats.pool_seed_variance,
            )
            results.extend(res)
            if spread:
                spreads.append(spread)
    return results, spreads, per_cat


def scene_labels(test_dir: Path) -> list[str]:
    """The scene (video / BOP scene) of each image of a prepared test set, in image-id order.

    Read from ``frames.json`` (``scene_id``; for test sets prepared before it was recorded, the part
    of ``frame_id`` before its last ``/``, i.e. the video). Images are ordered by ``image_id``, the
    order of the per-image evaluations.
    """
    frames = read_json(test_dir / "frames.json")
    frames = sorted(frames, key=lambda f: f.get("image_id", 0))
    return [str(f.get("scene_id") or f["frame_id"].rsplit("/", 1)[0]) for f in frames]


def _rank_agreement(cfg: StudyConfig, results: list[ConditionResult]) -> list[dict[str, Any]]:
    """Kendall tau of the conditions' AP differences between every pair of test sets, per IoU type."""
    taus = []
    names = [ts.name for ts in cfg.test_sets]

    def deltas(test_set: str, iou: str) -> dict[str, float]:
        return {
            r.condition: r.delta
            for r in results
            if r.test_set == test_set and r.iou_type == iou and r.condition != "clean"
        }

    for iou in IOU_TYPES:
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                taus.append({"iou_type": iou, "a": a, "b": b, **kendall_tau(deltas(a, iou), deltas(b, iou))})
    return taus


def _timings(run_dir: Path, shared: dict[str, Any], jobs: list[dict[str, Any]]) -> dict[str, Any]:
    """Seconds per stage (summed over jobs; a condition's rendering counted once) and wall time."""
    scenes_s = shared["scenes"].get("seconds", 0.0)
    test_s = sum(t.get("seconds", 0.0) for t in shared["testsets"].values())
    per_stage = {k: 0.0 for k in STAGES}
    render_once: dict[str, float] = {}
    for j in jobs:
        for k in STAGES:
            if k != "render":
                per_stage[k] += j["timings"].get(k, 0.0)
        render_once[j["condition"]] = max(render_once.get(j["condition"], 0.0), j.get("render_seconds", 0.0))
    per_stage["render"] = sum(render_once.values())
    return {
        "scenes": scenes_s,
        "scene_parts": shared["scenes"].get("timings", {}),
        "testsets": test_s,
        "stages": per_stage,
        "per_job": {j["id"]: j["timings"] for j in jobs},
        "total": scenes_s + test_s + sum(per_stage.values()),
        **_wall_time(run_dir),
    }


def train_fingerprint(run_dir: Path, job: dict[str, Any]) -> str | None:
    """Short hash of the training settings a job used (manifest, or its model's config.json)."""
    if job.get("train_config_hash"):
        return str(job["train_config_hash"])
    cfg_path = run_dir / "jobs" / job["id"] / "model" / "config.json"
    if cfg_path.is_file():
        from twingap.io import sha256_bytes

        return sha256_bytes(dumps_json(read_json(cfg_path), indent=None).encode())[:12]
    return None


def _wall_time(run_dir: Path) -> dict[str, Any]:
    """Wall-clock seconds of the study over all its sessions (``twingap study`` invocations)."""
    sessions_path = run_dir / "results" / "sessions.json"
    last_path = run_dir / "results" / "last_session.json"
    sessions = read_json(sessions_path) if sessions_path.is_file() else []
    wall = sum(s.get("seconds", 0.0) for s in sessions)
    n = len(sessions)
    if last_path.is_file():
        last = read_json(last_path)
        if "seconds" not in last:  # the session writing this report: count its jobs so far
            wall += last.get("jobs_seconds", 0.0)
            n += 1
    return {"wall": wall, "sessions": n}


def rank_deltas(
    cfg: StudyConfig, results: list[ConditionResult]
) -> dict[str, tuple[float, float, float, bool]]:
    """Per condition (delta, lo, hi, significant) on the ranking test set (or the mean over test sets).

    The mean over test sets pairs seeds across test sets (the same models are scored on each) and
    is Holm-corrected over the conditions like each test set's own verdicts. ``lo``, ``hi`` is the
    Holm-adjusted interval (:func:`twingap.study.stats.holm_levels`): it excludes 0 exactly when
    ``significant``, as the fix list shows it beside its verdict.
    """
    rows = [r for r in results if r.iou_type == PRIMARY_IOU and not math.isnan(r.delta)]
    if cfg.cost.rank_by != "mean":
        rows = [r for r in rows if r.test_set == cfg.cost.rank_by]
    combined = mean_over_test_sets(rows, cfg.stats.ci, cfg.stats.pool_seed_variance)
    out = {}
    for cond in cfg.conditions:
        if cond in combined:
            c = combined[cond]
            out[cond] = (c.estimate.value, c.adj_lo, c.adj_hi, c.significant)
    return out


def interval_note(res: StudyResults) -> str:
    """One sentence saying what the study's intervals cover (seeds, and scenes where measurable)."""
    n_seeds = len(res.cfg.seeds)
    if n_seeds < 2:
        return (
            "One training seed: its training noise is not measured, so there are no intervals and no "
            "verdicts; run at least 2 seeds (3 for the split-half replication check)."
        )
    parts = []
    for ts in res.cfg.test_sets:
        r = next((r for r in res.results if r.test_set == ts.name and r.condition != "clean"), None)
        if r is None:
            continue
        if r.se_scene > 0 or r.interval.startswith("seeds+"):
            parts.append(f"{ts.name}: {r.n_scenes} scenes, resampled (new scenes like these)")
        else:
            parts.append(
                f"{ts.name}: {r.n_scenes} scene(s) < {res.cfg.stats.min_scenes}, held fixed "
                "(covers a rerun on these frames, not new scenes)"
            )
    pooled = "pooled over conditions" if res.cfg.stats.pool_seed_variance else "per condition"
    return (
        f"Intervals are t-intervals over {n_seeds} training seeds (seed variance {pooled}) plus scene "
        "sampling where a test set has enough scenes; " + "; ".join(parts) + "."
    )


def noise_note(res: StudyResults) -> str:
    """Whether the pooled seed variance is supported (Bartlett's test), as one sentence."""
    if len(res.cfg.seeds) < 2:
        return "One seed: no training noise measured."
    uneven = [
        f"{s.test_set} {s.iou_type} (p = {s.bartlett_p:.3f})"
        for s in res.spreads
        if not math.isnan(s.bartlett_p) and s.bartlett_p < 0.05
    ]
    if not uneven or not res.cfg.stats.pool_seed_variance:
        return (
            "The sd of a paired difference is the training noise each condition's difference carries; "
            "pairing by seed removes the part that all conditions share."
        )
    return (
        "The conditions' seed variances differ on " + ", ".join(uneven) + ": the pooled intervals may be too "
        "narrow for the noisiest conditions (see the per-seed table); set stats.pool_seed_variance = false "
        "for per-condition intervals."
    )


def adjusted_note(res: StudyResults) -> str:
    """Which intervals the report shows where, as one paragraph (said once per page)."""
    if len(res.cfg.seeds) < 2:
        return ""
    ci = res.cfg.stats.ci
    pct = f"{100 * ci:.0f}%"
    return (
        "Which intervals are which: every difference to clean (fix list, results tables, Figure 1, bar "
        "chart) stands beside a Holm-corrected verdict, so its interval is Holm-adjusted: it is made at the "
        "level of the Holm step that decided the verdict (1 − α/m for the smallest of the m p-values of its "
        "family, the conditions on one test set and IoU type or, for the fix list, on what it ranks by; "
        f"up to 1 − α/(m − k) for those left after k distinguishable ones; α = {1 - ci:.2g}), so it excludes "
        "0 exactly when the verdict says distinguishable, and it is never narrower than a per-comparison "
        f"{pct} interval. The clean AP's interval is a plain {pct} interval. results/summary.csv has both "
        "(delta_lo, delta_hi: per comparison; delta_adj_lo, delta_adj_hi: Holm-adjusted)."
    )


def stop_note(res: StudyResults) -> str:
    """Why the study stopped with the seeds it has, as one sentence ("" when it ran as asked).

    E.g. ``stopped: projected tau 0.72 >= 0.7 with 6 seeds (...)`` or ``stopped by the budget (30m)
    after 2 of 3 seed blocks: fewer seeds than asked; ...`` (see :mod:`twingap.study.seeding`).
    """
    return str((res.seeding or {}).get("message") or "")
