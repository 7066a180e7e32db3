"""Plan a study's jobs, run them resumably, and collect their results.

Layout of a run folder (everything a user can open)::

    RUN_DIR/
      study.json  study.toml      the configuration, frozen when the study starts
      plan.json                   the jobs: one per (condition, seed)
      seeds.json                  how the seeds came about, why the study stopped (twingap.study.seeding)
      deadline.json               while a budgeted invocation runs: no job starts after its deadline
      scenes/                     training scenes, built once (train_scenes.json, manifest.json, caches)
      testsets/<name>/            real test sets: gt.json (COCO), frames.json, manifest.json
      datasets/<condition>/       rendered training set (shared by every seed of the condition)
      jobs/<condition>__s<seed>/  a finished job: manifest.json, metrics.json, preds/, samples/, model/
      jobs/<id>.partial/          a job in flight (RUNNING.json names its host and pid)
      jobs/<id>.failed.json       the last failure of a job (error and traceback)
      jobs/<id>.log               the job's stage output
      results/                    CSVs and stats.json (see :mod:`twingap.study.report`)
      report.html  report.md

A job's folder appears under its final name only when the job has finished (rename of the
``.partial`` folder), so a killed study loses at most the jobs in flight, and a rerun skips every
finished job. A job is a list of stages (:data:`JOB_STAGES`: render, train, predict, evaluate) run
by one loop (:func:`run_stages`): inside the ``.partial`` folder each stage writes a
``<stage>.done.json`` marker when it finishes and is skipped when its marker exists, so an
interrupted job resumes at the stage it was in (training itself resumes from its checkpoint).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from twingap.data.coco import gt_content_hash
from twingap.errors import TwingapError
from twingap.io import dumps_json, read_json, sha256_bytes, write_json_atomic, write_text_atomic
from twingap.provenance import machine_info, package_versions
from twingap.study import seeding
from twingap.study.config import StudyConfig, config_to_toml, validate
from twingap.study.identity import input_hashes
from twingap.study.seeding import SeedPolicy, deadline_passed
from twingap.study.stages import Stages, TrainFailed, load_stages

IOU_TYPES = ("bbox", "segm")
METRICS = ("AP", "AP50", "AP75")
N_SAMPLES = 3

#: Keys of the configuration that change what a job computes; a run folder refuses a config
#: that differs in any of them (conditions and seeds may be added).
_JOB_KEYS = ("frames_root", "models_root", "twin_videos", "scenes", "train", "test_sets", "stages")


@dataclass(frozen=True)
class Job:
    """One unit of work: train and score one condition with one seed."""

    condition: str
    seed: int

    @property
    def id(self) -> str:
        """Folder name ``<condition>__s<seed>``."""
        return f"{self.condition}__s{self.seed}"

    @staticmethod
    def parse(job_id: str) -> Job:
        """Inverse of :attr:`id`."""
        cond, _, seed = job_id.rpartition("__s")
        return Job(cond, int(seed))


def plan_jobs(cfg: StudyConfig) -> list[Job]:
    """All jobs of a study: every condition with every seed (seeds are blocks), seed-major.

    Seed-major order (every condition of seed 0 first) gives a complete first replicate early.
    """
    return [Job(c, s) for s in cfg.seeds for c in cfg.conditions]


# ---------------------------------------------------------------------- versions, hashes
def config_hash(cfg_dict: dict) -> str:
    """Hash of the job-relevant part of a configuration."""
    return sha256_bytes(dumps_json({k: cfg_dict.get(k) for k in _JOB_KEYS}, indent=None).encode())[:16]


# ---------------------------------------------------------------------- run folder
def load_run_config(run_dir: str | Path) -> StudyConfig:
    """The configuration stored in a run folder.

    Raises:
        TwingapError: If the folder holds no study.
    """
    path = Path(run_dir) / "study.json"
    if not path.is_file():
        raise TwingapError("not a study run folder (no study.json)", run_dir)
    return StudyConfig.from_dict(read_json(path), path)


def init_run(run_dir: str | Path, cfg: StudyConfig | None) -> StudyConfig:
    """Create or reopen a run folder; store the configuration and the plan.

    Args:
        run_dir: The run folder.
        cfg: The configuration; None = reuse the one stored in ``run_dir`` (resume).

    Returns:
        The configuration in effect.

    Raises:
        TwingapError: If ``cfg`` is None and the folder holds no study, or ``cfg`` changes what
            finished jobs computed (scenes, training, test sets, data).
    """
    run_dir = Path(run_dir)
    stored = run_dir / "study.json"
    if cfg is None:
        cfg = load_run_config(run_dir)
        validate(cfg, stored)
    elif stored.is_file():
        old = read_json(stored)
        new = cfg.to_dict()
        if config_hash(old) != config_hash(new):
            diff = [k for k in _JOB_KEYS if dumps_json(old.get(k)) != dumps_json(new.get(k))]
            raise TwingapError(
                f"this run folder was started with a different configuration ({', '.join(diff)} differ); "
                "use a new output folder, or rerun without --preset/--config to resume",
                run_dir,
            )
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "jobs").mkdir(exist_ok=True)
    write_json_atomic(stored, cfg.to_dict())
    write_text_atomic(run_dir / "study.toml", config_to_toml(cfg))
    write_json_atomic(run_dir / "plan.json", {"jobs": [j.id for j in plan_jobs(cfg)]})
    return cfg


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host runs (a zombie, dead but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # Linux: a killed job's process is a zombie until its new parent (init) reaps it
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


@dataclass
class JobState:
    """Where a job stands: ``done``, ``running``, ``failed`` or ``left``."""

    id: str
    state: str
    detail: str = ""


def job_states(run_dir: str | Path) -> list[JobState]:
    """The state of every planned job of a run folder (see :func:`twingap.study.runner`).

    A ``.partial`` folder whose process is gone counts as ``left`` (it resumes where it stopped).
    """
    run_dir = Path(run_dir)
    plan = read_json(run_dir / "plan.json")["jobs"] if (run_dir / "plan.json").is_file() else []
    jobs_dir = run_dir / "jobs"
    out = []
    for jid in plan:
        final = jobs_dir / jid / "manifest.json"
        partial = jobs_dir / f"{jid}.partial"
        failed = jobs_dir / f"{jid}.failed.json"
        if final.is_file():
            m = read_json(final)
            out.append(JobState(jid, "done", f"{m.get('seconds', 0):.0f} s"))
            continue
        running = partial / "RUNNING.json"
        if running.is_file():
            with contextlib.suppress(TwingapError):
                r = read_json(running)
                here = r.get("host") == socket.gethostname()
                if not here or _pid_alive(int(r.get("pid", -1))):
                    stage = r.get("stage", "")
                    out.append(JobState(jid, "running", f"{stage} on {r.get('host')} pid {r.get('pid')}"))
                    continue
        if failed.is_file():
            f = read_json(failed)
            out.append(JobState(jid, "failed", f"{f.get('stage')}: {f.get('error')}"))
            continue
        stages_done = (
            sorted(p.name.split(".")[0] for p in partial.glob("*.done.json")) if partial.is_dir() else []
        )
        out.append(
            JobState(jid, "left", f"interrupted after {', '.join(stages_done)}" if stages_done else "")
        )
    return out


# ---------------------------------------------------------------------- shared preparation
def prepare_shared(run_dir: str | Path, cfg: StudyConfig, stages: Stages | None = None) -> dict[str, Any]:
    """Build what every job shares, once: the training scenes and the test sets' ground truth.

    Skips any part already built (its ``manifest.json`` exists). Returns ``{"scenes": manifest,
    "testsets": {name: manifest}}``.
    """
    run_dir = Path(run_dir)
    stages = stages or load_stages(cfg.stages)
    scenes_dir = run_dir / "scenes"
    man_path = scenes_dir / "manifest.json"
    if not man_path.is_file():
        scenes_dir.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        info = stages.prepare_scenes(cfg, scenes_dir)
        info["seconds"] = time.perf_counter() - t0
        info.update(stages=stages.name, versions=package_versions(), seed=cfg.scenes.seed)
        info["identity"] = input_hashes(cfg)  # what `twingap compare` identifies the study by
        write_json_atomic(man_path, info)
    out: dict[str, Any] = {"scenes": read_json(man_path), "testsets": {}}
    for ts in cfg.test_sets:
        tdir = run_dir / "testsets" / ts.name
        tman = tdir / "manifest.json"
        if not tman.is_file():
            tdir.mkdir(parents=True, exist_ok=True)
            t0 = time.perf_counter()
            info = stages.prepare_test_set(cfg, ts, tdir)
            info["seconds"] = time.perf_counter() - t0
            info["gt_hash"] = gt_content_hash(tdir / "gt.json")
            info.update(
                name=ts.name, kind=ts.kind, root=str(cfg.test_set_root(ts)), videos=cfg.test_set_videos(ts)
            )
            write_json_atomic(tman, info)
        out["testsets"][ts.name] = read_json(tman)
    return out


def scored_categories(shared: dict[str, Any], test_set: str) -> list[int]:
    """Categories scored on a test set: trained on (present in the training scenes) and present."""
    trained = set(shared["scenes"]["categories"])
    present = set(shared["testsets"][test_set]["categories"])
    return sorted(trained & present)


# ---------------------------------------------------------------------- one job
def _set_threads(cfg: StudyConfig) -> None:
    """Fix the thread count so every executor computes the same floating-point sums."""
    n = cfg.executor.threads_per_job or max(1, int(cfg.executor.cpus_per_job))
    os.environ.setdefault("OMP_NUM_THREADS", str(n))
    if "torch" in sys.modules or cfg.stages != "fake":
        with contextlib.suppress(ImportError):
            import torch

            torch.set_num_threads(n)


@contextlib.contextmanager
def _redirect_output(log_path: Path | None):
    """Send this process's stdout/stderr (file descriptors 1 and 2) to a log file."""
    if log_path is None:
        yield
        return
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_path, "a", encoding="utf-8") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


@contextlib.contextmanager
def _render_lock(lock: Path, done: Path, poll_s: float = 1.0):
    """Hold ``lock`` while rendering a condition, so concurrent jobs of its seeds render it once.

    Waits while another live process on this host holds the lock (it ends when the dataset
    appears); takes over a stale lock; proceeds without waiting for a holder on another host
    (duplicate work, same bytes).
    """
    me = {"host": socket.gethostname(), "pid": os.getpid()}
    owned = False
    while not done.is_file():
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                holder = read_json(lock)
            except TwingapError:  # being written: look again
                time.sleep(0.05)
                continue
            if holder.get("host") == me["host"] and not _pid_alive(int(holder.get("pid", -1))):
                with contextlib.suppress(FileNotFoundError):
                    lock.unlink()
                continue
            if holder.get("host") != me["host"]:
                break
            time.sleep(poll_s)
            continue
        with os.fdopen(fd, "w") as f:
            f.write(dumps_json(me))
        owned = True
        break
    try:
        yield
    finally:
        if owned:
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()


def dataset_path(run_dir: Path, condition: str) -> Path:
    """Folder of a condition's finished training set (shared by every seed of the condition)."""
    return run_dir / "datasets" / condition


def _render_dataset(
    run_dir: Path, cfg: StudyConfig, stages: Stages, condition: str, job_id: str
) -> tuple[Path, dict, bool]:
    """Render (or reuse) the training set of a condition; returns (dir, manifest, was_cached).

    The dataset is rendered into ``datasets/<condition>.partial-<job>`` (resumable by the same job)
    and renamed to ``datasets/<condition>`` when complete; every seed of the condition reuses it.
    """
    final = dataset_path(run_dir, condition)
    man = final / "study_dataset.json"
    if man.is_file():
        return final, read_json(man), True
    final.parent.mkdir(parents=True, exist_ok=True)
    with _render_lock(run_dir / "datasets" / f"{condition}.lock", man):
        if man.is_file():
            return final, read_json(man), True
        partial = run_dir / "datasets" / f"{condition}.partial-{job_id}"
        partial.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        info = stages.render(cfg, run_dir / "scenes", condition, partial)
        info["seconds"] = time.perf_counter() - t0
        info.update(condition=condition, scene_seed=cfg.scenes.seed)
        write_json_atomic(partial / "study_dataset.json", info)
        try:
            os.replace(partial, final)
        except OSError:  # another host finished first: same bytes, keep theirs
            shutil.rmtree(partial, ignore_errors=True)
    return final, read_json(man), False


@dataclass
class JobContext:
    """What the stages of one job share: its inputs and the ``.partial`` folder they write into.

    Attributes:
        run_dir: The study's run folder.
        job: The job.
        cfg: The study's configuration.
        stages: The stage implementation (real or fake).
        shared: What :func:`prepare_shared` returned (scenes and test-set manifests).
        partial: The job's ``jobs/<id>.partial`` folder; every stage writes only there (and the
            render stage into the condition's shared dataset folder).
    """

    run_dir: Path
    job: Job
    cfg: StudyConfig
    stages: Stages
    shared: dict[str, Any]
    partial: Path

    @property
    def dataset_dir(self) -> Path:
        """The condition's rendered training set."""
        return dataset_path(self.run_dir, self.job.condition)

    @property
    def model_dir(self) -> Path:
        """The trained model's folder."""
        return self.partial / "model"

    def test_dir(self, test_set: str) -> Path:
        """A prepared test set (``gt.json``, ``frames.json``)."""
        return self.run_dir / "testsets" / test_set

    def preds_path(self, test_set: str) -> Path:
        """COCO results of the model on a test set."""
        return self.partial / "preds" / f"{test_set}.json"


def _stage_render(ctx: JobContext) -> dict[str, Any]:
    """Render (or reuse) the condition's training set and copy a few of its images to ``samples/``.

    A reused dataset reports 0 seconds: its rendering time belongs to the job that rendered it.
    """
    dataset_dir, info, cached = _render_dataset(
        ctx.run_dir, ctx.cfg, ctx.stages, ctx.job.condition, ctx.job.id
    )
    samples = ctx.partial / "samples"
    samples.mkdir(exist_ok=True)
    for i, img in enumerate(ctx.stages.sample_images(dataset_dir, N_SAMPLES)):
        shutil.copy2(img, samples / f"train_{i}{img.suffix}")
    out = {
        "cached": cached,
        "render_seconds": info.get("seconds", 0.0),
        "dataset_hash": info.get("dataset_hash"),
    }
    return {"seconds": 0.0, **out} if cached else out


def _stage_train(ctx: JobContext) -> dict[str, Any]:
    """Train the detector on the condition's dataset with the job's seed (resumes a partial run)."""
    return ctx.stages.train(ctx.cfg, ctx.dataset_dir, ctx.model_dir, ctx.job.seed) or {}


def _stage_predict(ctx: JobContext) -> dict[str, Any]:
    """Predict on every test set; returns the seconds each took."""
    per_set = {}
    for ts in ctx.cfg.test_sets:
        t0 = time.perf_counter()
        ctx.stages.predict(ctx.cfg, ctx.model_dir, ctx.test_dir(ts.name), ctx.preds_path(ts.name))
        per_set[ts.name] = time.perf_counter() - t0
    return {"per_test_set": per_set}


def _stage_evaluate(ctx: JobContext) -> dict[str, Any]:
    """Score the predictions on every test set (AP, AP50, AP75 per IoU type) into ``metrics.json``."""
    metrics: dict[str, dict] = {}
    for ts in ctx.cfg.test_sets:
        cats = scored_categories(ctx.shared, ts.name)
        gt, preds = ctx.test_dir(ts.name) / "gt.json", ctx.preds_path(ts.name)
        metrics[ts.name] = {"categories": cats}
        for iou in IOU_TYPES:
            metrics[ts.name][iou] = ctx.stages.per_image_eval(gt, preds, iou, cats).metrics()
    write_json_atomic(ctx.partial / "metrics.json", metrics)
    return {}


#: The stages of a job, in order. Each returns the information its done marker records; the
#: marker's ``seconds`` is the stage's wall time unless the stage reports its own.
JOB_STAGES: tuple[tuple[str, Callable[[JobContext], dict[str, Any]]], ...] = (
    ("render", _stage_render),
    ("train", _stage_train),
    ("predict", _stage_predict),
    ("evaluate", _stage_evaluate),
)
STAGES = tuple(name for name, _ in JOB_STAGES)


def read_markers(partial: Path) -> dict[str, dict[str, Any]]:
    """The done markers of a job folder: ``{stage: info}`` for every finished stage."""
    return {p.name.split(".")[0]: read_json(p) for p in partial.glob("*.done.json")}


def run_stages(
    ctx: JobContext, enter: Callable[[str], None], stop: str | None = None
) -> dict[str, dict[str, Any]]:
    """Run the stages of a job that have no done marker yet, marking each as it finishes.

    Args:
        ctx: The job.
        enter: Called with a stage's name before it runs (records where the job is).
        stop: Run only the stages before this one (the group runner trains separately).

    Returns:
        The done markers of every stage run or done, ``{stage: info}``, ``info["seconds"]`` its time.
    """
    done = read_markers(ctx.partial)
    for name, run in JOB_STAGES:
        if name == stop:
            break
        if name in done:
            continue
        enter(name)
        t0 = time.perf_counter()
        info = run(ctx)
        done[name] = {"seconds": time.perf_counter() - t0, **info}
        write_json_atomic(ctx.partial / f"{name}.done.json", done[name])
    return done


def job_manifest(
    ctx: JobContext, done: dict[str, dict[str, Any]], attempt_seconds: float, started: float
) -> dict[str, Any]:
    """The manifest of a finished job: what it computed from which inputs, its timings and versions.

    Args:
        ctx: The job.
        done: The done markers of all its stages (see :func:`run_stages`).
        attempt_seconds: Wall time of this attempt (the stage timings also cover resumed stages).
        started: When this attempt started (Unix time).
    """
    cfg, shared, job = ctx.cfg, ctx.shared, ctx.job
    timings = {k: done[k].get("seconds", 0.0) for k in STAGES}
    return {
        "id": job.id,
        "condition": job.condition,
        "seed": job.seed,
        "status": "done",
        "stages": ctx.stages.name,
        "fake": ctx.stages.is_fake,
        "config_hash": config_hash(cfg.to_dict()),
        "train": {"preset": cfg.train.preset, "overrides": cfg.train.overrides},
        "scene_seed": cfg.scenes.seed,
        "inputs": {
            "scenes_hash": shared["scenes"].get("scenes_hash"),
            "dataset_hash": done["render"].get("dataset_hash"),
            "gt_hashes": {k: v.get("gt_hash") for k, v in shared["testsets"].items()},
        },
        "timings": {k: round(v, 3) for k, v in timings.items()},
        "train_config_hash": done["train"].get("config_hash"),
        "render_cached": done["render"].get("cached", False),
        "render_seconds": done["render"].get("render_seconds", 0.0),
        "seconds": round(sum(timings.values()), 3),
        "attempt_seconds": round(attempt_seconds, 3),
        "versions": package_versions(),
        "machine": machine_info(),
        "host": socket.gethostname(),
        "started": started,
        "finished": time.time(),
    }


class _Running:
    """The ``RUNNING.json`` marker of a job in flight: its host, pid, start time and stage."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.started = time.time()
        self.stage = "setup"  # the stage a failure is reported in
        self.marker = {"host": socket.gethostname(), "pid": os.getpid(), "started": self.started}
        write_json_atomic(path, {**self.marker, "stage": "start"})

    def enter(self, stage: str) -> None:
        """Record that the job entered ``stage``."""
        self.stage = stage
        write_json_atomic(self.path, {**self.marker, "stage": stage})

    def clear(self) -> None:
        """Remove the marker (the job finished, failed or was interrupted)."""
        self.path.unlink(missing_ok=True)


def _publish(partial: Path, final: Path, manifest: dict[str, Any], running: _Running) -> None:
    """Write the manifest and rename the ``.partial`` folder to its final name (atomic)."""
    write_json_atomic(partial / "manifest.json", manifest)
    running.clear()
    with contextlib.suppress(FileNotFoundError):
        (final.parent / f"{final.name}.failed.json").unlink()
    try:
        os.replace(partial, final)
    except OSError:
        if not (final / "manifest.json").is_file():
            raise
        shutil.rmtree(partial, ignore_errors=True)


def run_job(run_dir: str | Path, job_id: str, log: bool = True) -> dict[str, Any]:
    """Run one job to the end (resuming a partial one) and return a summary.

    This is the function every executor calls (in this process, a pool worker or a Ray task):
    it reads everything from ``run_dir`` and writes everything there, so the result depends only
    on the files and the seed. The stages (:data:`JOB_STAGES`) run in ``jobs/<id>.partial``, each
    skipped when its done marker exists; the folder gets its final name with the manifest.
    Exceptions are recorded in ``jobs/<id>.failed.json`` and reported in the summary, never
    raised (a failing job does not stop the study); an interrupt (KeyboardInterrupt, SIGTERM)
    propagates and leaves the ``.partial`` folder to resume.

    A job that has not started is not started once the deadline of a budgeted study has passed
    (:func:`twingap.study.seeding.deadline_passed`): it returns ``deferred`` and stays left.

    Returns:
        ``{"id", "status": "done" | "failed" | "skipped" | "deferred", "seconds", "error"}``.
    """
    run_dir = Path(run_dir)
    jobs_dir = run_dir / "jobs"
    if (jobs_dir / job_id / "manifest.json").is_file():
        return _skipped(job_id)
    if deadline_passed(run_dir):  # a budgeted study's time is spent: start nothing, resume later
        return _deferred(job_id)
    cfg = load_run_config(run_dir)
    running, t_start = _running_marker(jobs_dir, job_id), time.perf_counter()
    try:
        with _redirect_output(jobs_dir / f"{job_id}.log" if log else None):
            ctx = _job_context(run_dir, cfg, load_stages(cfg.stages), job_id)
            return _finish_job(ctx, running, t_start)
    except Exception as exc:
        return _record_failure(jobs_dir, job_id, running, exc, t_start)
    except BaseException:  # interrupted: leave the partial folder to resume, drop the marker
        running.clear()
        raise


def _running_marker(jobs_dir: Path, job_id: str) -> _Running:
    """The ``RUNNING.json`` marker of a job starting now, in its (created) ``.partial`` folder."""
    partial = jobs_dir / f"{job_id}.partial"
    partial.mkdir(parents=True, exist_ok=True)
    return _Running(partial / "RUNNING.json")


def _job_context(run_dir: Path, cfg: StudyConfig, stages: Stages, job_id: str) -> JobContext:
    """A job's context in this process: its thread count set, the study's shared inputs prepared."""
    _set_threads(cfg)
    shared = prepare_shared(run_dir, cfg, stages)
    return JobContext(run_dir, Job.parse(job_id), cfg, stages, shared, run_dir / "jobs" / f"{job_id}.partial")


def _finish_job(ctx: JobContext, running: _Running, t_start: float) -> dict[str, Any]:
    """Run a job's stages not done yet, write its manifest and publish its folder; returns its summary."""
    done = run_stages(ctx, running.enter)
    manifest = job_manifest(ctx, done, time.perf_counter() - t_start, running.started)
    _publish(ctx.partial, ctx.run_dir / "jobs" / ctx.job.id, manifest, running)
    return {"id": ctx.job.id, "status": "done", "seconds": manifest["seconds"], "error": None}


def _record_failure(
    jobs_dir: Path, job_id: str, running: _Running, exc: Exception, t_start: float
) -> dict[str, Any]:
    """Write ``jobs/<id>.failed.json`` for a job that raised (in ``running.stage``); returns its summary.

    A :class:`~twingap.study.stages.TrainFailed` (one job of a training group) brings its own
    error line and traceback.
    """
    if isinstance(exc, TrainFailed):
        err, tb = exc.error, exc.traceback
    else:
        err, tb = f"{type(exc).__name__}: {exc}", traceback.format_exc()
    err = err.splitlines()[0][:500] if err else type(exc).__name__
    failure = {"id": job_id, "stage": running.stage, "error": err, "traceback": tb, "time": time.time()}
    write_json_atomic(jobs_dir / f"{job_id}.failed.json", failure)
    running.clear()
    return {"id": job_id, "status": "failed", "seconds": time.perf_counter() - t_start, "error": err}


def _deferred(job_id: str) -> dict[str, Any]:
    """The summary of a job not started because the study's budget is spent (it resumes later)."""
    return {"id": job_id, "status": "deferred", "seconds": 0.0, "error": "the budget is spent"}


def _skipped(job_id: str) -> dict[str, Any]:
    return {"id": job_id, "status": "skipped", "seconds": 0.0, "error": None}


def run_job_group(run_dir: str | Path, job_ids: list[str], log: bool = True) -> list[dict[str, Any]]:
    """Run several jobs whose models train together in this process; returns a summary per job.

    The group counterpart of :func:`run_job`, with the same folders, markers, manifests and
    failure records per job: each job's stages before training (render) run as in :func:`run_job`;
    then the jobs without a train marker train in one group (:meth:`Stages.train_group`: on the real
    stages, :func:`twingap.train.group.train_group`, many models on one GPU); then each job's
    remaining stages (predict, evaluate) run and the job is published. A job that fails fails alone.
    Each train marker records the group (``group``), its wall time (``group_seconds``) and, as
    ``seconds``, the job's share of it. The group's training output goes to the first trained
    job's log.

    Returns:
        ``[{"id", "status", "seconds", "error"}]`` in the order of ``job_ids``.
    """
    run_dir = Path(run_dir)
    jobs_dir = run_dir / "jobs"
    out: dict[str, dict[str, Any]] = {}
    todo = [j for j in job_ids if not (jobs_dir / j / "manifest.json").is_file()]
    out.update({j: _skipped(j) for j in job_ids if j not in todo})
    if not todo:
        return [out[j] for j in job_ids]
    if deadline_passed(run_dir):  # a budgeted study's time is spent: start nothing, resume later
        out.update({j: _deferred(j) for j in todo})
        return [out[j] for j in job_ids]
    cfg = load_run_config(run_dir)
    stages = load_stages(cfg.stages)
    open_jobs: dict[str, tuple[JobContext, _Running, float]] = {}
    markers: list[_Running] = []

    def job_log(job_id: str) -> Path | None:
        return jobs_dir / f"{job_id}.log" if log else None

    try:
        for jid in todo:  # the stages before training, job by job
            running, t_start = _running_marker(jobs_dir, jid), time.perf_counter()
            markers.append(running)
            try:
                with _redirect_output(job_log(jid)):
                    ctx = _job_context(run_dir, cfg, stages, jid)
                    run_stages(ctx, running.enter, stop="train")
                open_jobs[jid] = (ctx, running, t_start)
            except Exception as exc:
                out[jid] = _record_failure(jobs_dir, jid, running, exc, t_start)
        train = [j for j in open_jobs if not (open_jobs[j][0].partial / "train.done.json").is_file()]
        if train:  # the group: every model in this process
            for jid in train:
                open_jobs[jid][1].enter("train")
            t0 = time.perf_counter()
            with _redirect_output(job_log(train[0])):
                ctxs = [open_jobs[j][0] for j in train]
                try:
                    results = stages.train_group(
                        cfg, [(c.dataset_dir, c.model_dir, c.job.seed) for c in ctxs]
                    )
                except Exception as exc:  # the group itself failed: every job of it did
                    tb = traceback.format_exc()
                    results = [TrainFailed(f"{type(exc).__name__}: {exc}", tb) for _ in train]
            wall = time.perf_counter() - t0
            for jid, info in zip(train, results, strict=True):
                ctx, running, t_start = open_jobs[jid]
                if isinstance(info, Exception):
                    out[jid] = _record_failure(jobs_dir, jid, running, info, t_start)
                    del open_jobs[jid]
                    continue
                marker = {"seconds": wall / len(train), **info, "group": train, "group_seconds": wall}
                write_json_atomic(ctx.partial / "train.done.json", marker)
        for jid, (ctx, running, t_start) in list(open_jobs.items()):  # the stages after, job by job
            try:
                with _redirect_output(job_log(jid)):
                    out[jid] = _finish_job(ctx, running, t_start)
            except Exception as exc:
                out[jid] = _record_failure(jobs_dir, jid, running, exc, t_start)
            del open_jobs[jid]
    except BaseException:  # interrupted: leave the partial folders to resume, drop the markers
        for running in markers:
            running.clear()
        raise
    return [out[j] for j in job_ids]


def plan_groups(run_dir: str | Path, job_ids: list[str], cuda: bool | None = None) -> list[list[str]]:
    """The training groups of a study's jobs (see ``[executor] group_size``); singletons = no groups.

    Args:
        run_dir: The run folder (its stored configuration decides).
        job_ids: The jobs to run, in order.
        cuda: Whether training runs on CUDA where the jobs run; None: ask the stages on this machine.

    Returns:
        Lists of job ids, in the order of ``job_ids``: with ``group_size`` 0 one group per seed
        where training runs on CUDA, else one job each; with N >= 2 consecutive groups of up to N.
    """
    cfg = load_run_config(run_dir)
    size = cfg.executor.group_size
    if size == 0:
        if cuda is None:
            cuda = load_stages(cfg.stages).trains_on_cuda(cfg)
        if not cuda:
            return [[j] for j in job_ids]
        by_seed: dict[int, list[str]] = {}
        for j in job_ids:
            by_seed.setdefault(Job.parse(j).seed, []).append(j)
        return list(by_seed.values())
    return [job_ids[i : i + size] for i in range(0, len(job_ids), size)]


# ---------------------------------------------------------------------- the study
def pending_jobs(run_dir: str | Path) -> list[str]:
    """Planned jobs that are not finished and not running elsewhere (failed ones are retried)."""
    return [s.id for s in job_states(run_dir) if s.state in ("left", "failed")]


def run_study(
    run_dir: str | Path,
    cfg: StudyConfig | None = None,
    executor: Any = None,
    report: bool = True,
    progress: bool = True,
    policy: SeedPolicy | None = None,
    echo: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run (or resume) a study: prepare shared inputs, run the pending jobs, collect, report.

    Without a budget and with a fixed seed list, every pending job is handed to the executor at
    once. With ``--seeds auto`` or a budget, the jobs run seed block by seed block (every condition
    of one seed), the policy deciding after each block whether another starts
    (:mod:`twingap.study.seeding`); the configuration stored at the end lists the finished blocks'
    seeds, and ``seeds.json`` says why the study stopped.

    Args:
        run_dir: Output folder (created; an existing study folder resumes).
        cfg: Configuration; None = resume with the stored one (and the seeds asked before).
        executor: An executor from :mod:`twingap.study.executors` (default: local process pool
            with ``cfg.executor.workers`` workers).
        report: Write the report when every job has finished (or failed).
        progress: Show a progress bar.
        policy: Which seed blocks to run and within what time; None = as the run folder recorded
            (a fixed list otherwise). ``policy.auto`` None = as recorded.
        echo: Called with one line after each seed block (None: silent).

    Returns:
        ``{"done": n, "failed": [ids], "left": [ids], "report": path or None, "seeding": the
        seeds.json record (its "message" says why the study stopped; "" when it ran as asked)}``.

    Raises:
        TwingapError: A configuration or policy the run folder or the study cannot take.
    """
    from twingap.study.executors import LocalExecutor

    run_dir = Path(run_dir)
    t0 = time.perf_counter()
    started = seeding.now()
    cfg, policy, asked = _resolve_seeds(run_dir, cfg, policy)
    policy.check(cfg)
    executor = executor or LocalExecutor(cfg.executor.workers)
    seeding.set_deadline(run_dir, None)  # a killed invocation's deadline is not ours
    results: list[dict] = []
    try:
        if not policy.auto and policy.budget_s is None:
            cfg = init_run(run_dir, cfg)
            prepare_shared(run_dir, cfg, load_stages(cfg.stages))
            todo = pending_jobs(run_dir)
            if todo:
                results = executor.run(run_dir, todo, progress=progress)
            record: dict[str, Any] = {"mode": "fixed", "asked": asked, "seeds": list(cfg.seeds)}
            record.update(budget=None, blocks=[], stopped="complete", message="")
        else:
            record = _run_blocks(run_dir, cfg, asked, policy, executor, progress, echo, started, results)
    finally:
        seeding.set_deadline(run_dir, None)
    record["session_seconds"] = round(seeding.now() - started, 1)
    seeding.write_record(run_dir, record)
    states = job_states(run_dir)
    failed = [s.id for s in states if s.state == "failed"]
    left = [s.id for s in states if s.state in ("left", "running")]
    done = sum(s.state == "done" for s in states)
    session = {
        "started": time.time() - (time.perf_counter() - t0),
        "jobs_seconds": time.perf_counter() - t0,
        "ran": [r["id"] for r in results if r["status"] != "deferred"],
        "failed": failed,
        "left": left,
        "workers": getattr(executor, "workers", None),
        "executor": getattr(executor, "name", type(executor).__name__),
        "stopped": record["stopped"],
    }
    write_json_atomic(run_dir / "results" / "last_session.json", session)
    out: dict[str, Any] = {"done": done, "failed": failed, "left": left, "report": None, "seeding": record}
    clean_done = any(s.state == "done" and Job.parse(s.id).condition == "clean" for s in states)
    if report and clean_done and not left:
        from twingap.study.report import write_report

        t1 = time.perf_counter()
        out["report"] = write_report(run_dir)
        session["report_seconds"] = time.perf_counter() - t1
    session["seconds"] = time.perf_counter() - t0
    sessions_path = run_dir / "results" / "sessions.json"
    sessions = read_json(sessions_path) if sessions_path.is_file() else []
    write_json_atomic(sessions_path, [*sessions, session])
    write_json_atomic(run_dir / "results" / "last_session.json", session)
    return out


def _resolve_seeds(
    run_dir: Path, cfg: StudyConfig | None, policy: SeedPolicy | None
) -> tuple[StudyConfig, SeedPolicy, list[int]]:
    """The configuration, the policy and the seeds asked for, from the arguments and ``seeds.json``.

    A policy whose ``auto`` is None continues the recorded mode; a resumed fixed study (``cfg``
    None) asks for the seeds recorded as asked (a budget may have stored fewer in the configuration).
    Auto asks for the stored seeds, then the configuration's, then the next integers.
    """
    policy = replace(policy) if policy is not None else SeedPolicy(auto=None)
    exists = (run_dir / "study.json").is_file()
    record = seeding.read_record(run_dir) if exists else None
    recorded_auto = bool(record and record.get("mode") == "auto")
    if policy.auto is None:
        policy.auto = recorded_auto
    if policy.auto and recorded_auto and record:
        policy.target = float(record.get("target", policy.target))
        policy.min_seeds = int(record.get("min_seeds", policy.min_seeds))
        if policy.max_seeds is None:
            policy.max_seeds = int(record.get("max_seeds") or seeding.AUTO_MAX_SEEDS)
    if policy.max_seeds is None:
        policy.max_seeds = seeding.AUTO_MAX_SEEDS
    stored = load_run_config(run_dir) if exists else None
    if cfg is None:
        if stored is None:
            raise TwingapError("not a study run folder (no study.json)", run_dir)
        cfg = stored
        if record and record.get("mode") == "fixed" and record.get("asked"):
            cfg.seeds = [int(s) for s in record["asked"]]
    asked = list(cfg.seeds)
    if policy.auto and stored is not None:
        asked = [*stored.seeds, *(s for s in cfg.seeds if s not in stored.seeds)]
    return cfg, policy, asked


def _block_jobs(cfg: StudyConfig, seed: int) -> list[str]:
    return [Job(c, seed).id for c in cfg.conditions]


def _run_blocks(
    run_dir: Path,
    cfg: StudyConfig,
    asked: list[int],
    policy: SeedPolicy,
    executor: Any,
    progress: bool,
    echo: Callable[[str], None] | None,
    started: float,
    results: list[dict],
) -> dict[str, Any]:
    """Run seed blocks one after the other as ``policy`` says; returns the ``seeds.json`` record.

    Appends the executor's job summaries to ``results``. See :mod:`twingap.study.seeding`.
    """
    say = echo or (lambda _line: None)
    budget = policy.budget_s
    finished: list[int] = []
    blocks: list[dict[str, Any]] = []
    proj: dict[str, Any] | None = None
    proj_for: tuple[int, ...] | None = None
    per_job: float | None = None  # wall seconds per job of the last block run in this invocation
    stop, detail, unfinished = "complete", "", None
    shared_ready = False
    deadline_set = False

    def project() -> dict[str, Any] | None:
        nonlocal proj, proj_for
        if proj_for != tuple(finished) and len(finished) >= 2:
            cfg.seeds = list(finished)
            init_run(run_dir, cfg)
            proj, proj_for = seeding.projection_of_run(run_dir, policy.target), tuple(finished)
        return proj

    def candidates():
        yield from asked
        if policy.auto:
            k = max(asked, default=-1) + 1
            while True:
                yield k
                k += 1

    for seed in candidates():
        jobs_dir = run_dir / "jobs"
        pending = [j for j in _block_jobs(cfg, seed) if not (jobs_dir / j / "manifest.json").is_file()]
        if policy.auto:
            if pending and len(finished) >= policy.min_seeds:
                p = project()
                if p is not None and p["tau"] >= policy.target:
                    stop = "target"
                    break
            if len(finished) >= policy.max_seeds:
                stop = "cap"
                break
        if pending and budget is not None and finished:  # the first block always finishes: an answer
            elapsed = seeding.now() - started
            if elapsed >= budget:
                stop, unfinished = "budget", seed
                break
            if per_job is not None and elapsed + per_job * len(pending) > budget:
                stop, unfinished = "budget", seed
                detail = f"the next block would take about {seeding.minutes(per_job * len(pending))}"
                break
        cfg.seeds = [*finished, seed]
        init_run(run_dir, cfg)
        if budget is not None and not deadline_set and finished:
            seeding.set_deadline(run_dir, started + budget, policy.budget_label)
            deadline_set = True
        ran: list[dict] = []
        if pending and not shared_ready:  # once, before the first block's jobs (not timed with them)
            prepare_shared(run_dir, cfg, load_stages(cfg.stages))
            shared_ready = True
        t_block = seeding.now()
        if pending:
            ran = executor.run(run_dir, pending, progress=progress)
            results.extend(ran)
        seconds = seeding.now() - t_block
        n_ran = sum(r["status"] not in ("deferred", "skipped") for r in ran)
        if n_ran:
            per_job = seconds / n_ran
        states = {s.id: s.state for s in job_states(run_dir)}
        ids = _block_jobs(cfg, seed)
        left = [j for j in ids if states.get(j) in ("left", "running")]
        failed = [j for j in ids if states.get(j) == "failed"]
        block = {"seed": seed, "seconds": round(seconds, 1), "jobs_run": n_ran, "left": len(left)}
        if pending:
            blocks.append(block)
        if left:
            unfinished = seed
            passed = budget is not None and seeding.now() - started >= budget
            stop = "budget" if passed else "unfinished"
            if not passed:
                detail = f"seed {seed}'s block did not finish ({len(left)} job(s) left or running elsewhere)"
            break
        finished.append(seed)
        if pending:
            say(
                f"seed block {len(finished)} (seed {seed}): {n_ran} job(s) in {seeding.minutes(seconds)}"
                + (f", {len(failed)} failed" if failed else "")
            )
        if failed and policy.auto:
            stop = "failed"
            detail = f"{len(failed)} job(s) of seed {seed}'s block failed ({', '.join(failed)})"
            detail += "; rerun to retry"
            break
        if policy.auto and pending and len(finished) >= 2:
            p = project()
            block["projected_tau"] = None if p is None else round(p["tau"], 3)
            say(f"  seeds {finished}: {seeding.projection_text(p)}")
    if policy.auto and stop != "target":
        project()
    cfg.seeds = list(finished) if finished else [unfinished if unfinished is not None else asked[0]]
    init_run(run_dir, cfg)
    message = _stop_message(stop, policy, finished, asked, proj, detail)
    return {
        "mode": "auto" if policy.auto else "fixed",
        "asked": None if policy.auto else asked,
        "target": policy.target,
        "min_seeds": policy.min_seeds,
        "max_seeds": policy.max_seeds,
        "budget": policy.budget_label or None,
        "budget_seconds": budget,
        "seeds": list(finished),
        "unfinished": unfinished,
        "blocks": blocks,
        "projection": proj if proj_for == tuple(finished) else None,
        "stopped": stop,
        "message": message,
    }


def _stop_message(
    stop: str,
    policy: SeedPolicy,
    finished: list[int],
    asked: list[int],
    proj: dict[str, Any] | None,
    detail: str,
) -> str:
    """Why the study stopped, in one sentence (the terminal's and the report's status line)."""
    n = len(finished)
    seeds = f"{n} seed{'s' if n != 1 else ''}"
    if proj is not None and policy.auto:
        tau = f"projected tau {proj['tau']:.2f}"
        need = proj["seeds_for_target"]
        need_text = str(need) if need else f"more than {proj['max_seeds']}"
        needs = f"tau {policy.target} needs {need_text} seeds per run"
    else:
        tau, needs = "", ""
    if stop == "target" and proj is not None:
        return f"stopped: {tau} >= {policy.target} with {seeds} ({proj['basis']})"
    if stop == "cap":
        got = f"{tau} < {policy.target} ({proj['basis']}; {needs})" if proj else "no projected tau"
        return f"stopped at the cap of {policy.max_seeds} seeds: {got}"
    if stop == "budget":
        why = f"; {detail}" if detail else ""
        if n == 0:
            return (
                f"stopped by the budget ({policy.budget_label}) before any seed block finished{why}: "
                "no answer yet; rerun the same command to continue"
            )
        if policy.auto:
            got = (
                f"{tau} < {policy.target} ({proj['basis']}; {needs})"
                if proj
                else "no projected tau yet (it needs 2 seeds)"
            )
            return (
                f"stopped by the budget ({policy.budget_label}) after {seeds}{why}: {got}; "
                "rerun the same command to add seeds"
            )
        one = " (one seed: differences without intervals or verdicts)" if n == 1 else ""
        return (
            f"stopped by the budget ({policy.budget_label}) after {n} of {len(asked)} seed blocks{why}: "
            f"fewer seeds than asked{one}; rerun the same command to continue"
        )
    if stop in ("failed", "unfinished"):
        return f"stopped after {seeds}: {detail}"
    if policy.budget_s is not None:
        return f"all {n} seed blocks finished within the budget ({policy.budget_label})"
    return ""
