"""Plan a study's jobs, run them resumably, and collect their results.

Layout of a run folder (everything a user can open)::

    RUN_DIR/
      study.json  study.toml      the configuration, frozen when the study starts
      plan.json                   the jobs: one per (condition, seed)
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twingap.data.coco import gt_content_hash
from twingap.errors import TwingapError
from twingap.io import dumps_json, read_json, sha256_bytes, write_json_atomic, write_text_atomic
from twingap.provenance import machine_info, package_versions
from twingap.study.config import StudyConfig, config_to_toml, validate
from twingap.study.stages import Stages, load_stages

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


def run_stages(ctx: JobContext, enter: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    """Run the stages of a job that have no done marker yet, marking each as it finishes.

    Args:
        ctx: The job.
        enter: Called with a stage's name before it runs (records where the job is).

    Returns:
        The done markers of every stage, ``{stage: info}``, ``info["seconds"]`` its time.
    """
    done = read_markers(ctx.partial)
    for name, run in JOB_STAGES:
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

    Returns:
        ``{"id", "status": "done" | "failed" | "skipped", "seconds", "error"}``.
    """
    run_dir = Path(run_dir)
    jobs_dir = run_dir / "jobs"
    final = jobs_dir / job_id
    if (final / "manifest.json").is_file():
        return {"id": job_id, "status": "skipped", "seconds": 0.0, "error": None}
    cfg = load_run_config(run_dir)
    partial = jobs_dir / f"{job_id}.partial"
    partial.mkdir(parents=True, exist_ok=True)
    running = _Running(partial / "RUNNING.json")
    t_start = time.perf_counter()
    try:
        with _redirect_output(jobs_dir / f"{job_id}.log" if log else None):
            _set_threads(cfg)
            stages = load_stages(cfg.stages)
            shared = prepare_shared(run_dir, cfg, stages)
            ctx = JobContext(run_dir, Job.parse(job_id), cfg, stages, shared, partial)
            done = run_stages(ctx, running.enter)
            manifest = job_manifest(ctx, done, time.perf_counter() - t_start, running.started)
            _publish(partial, final, manifest, running)
            return {"id": job_id, "status": "done", "seconds": manifest["seconds"], "error": None}
    except Exception as exc:
        err = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
        failure = {
            "id": job_id,
            "stage": running.stage,
            "error": err,
            "traceback": traceback.format_exc(),
            "time": time.time(),
        }
        write_json_atomic(jobs_dir / f"{job_id}.failed.json", failure)
        running.clear()
        return {"id": job_id, "status": "failed", "seconds": time.perf_counter() - t_start, "error": err}
    except BaseException:  # interrupted: leave the partial folder to resume, drop the marker
        running.clear()
        raise


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
) -> dict[str, Any]:
    """Run (or resume) a study: prepare shared inputs, run the pending jobs, collect, report.

    Args:
        run_dir: Output folder (created; an existing study folder resumes).
        cfg: Configuration; None = resume with the stored one.
        executor: An executor from :mod:`twingap.study.executors` (default: local process pool
            with ``cfg.executor.workers`` workers).
        report: Write the report when every job has finished (or failed).
        progress: Show a progress bar.

    Returns:
        ``{"done": n, "failed": [ids], "left": [ids], "report": path or None}``.
    """
    from twingap.study.executors import LocalExecutor

    run_dir = Path(run_dir)
    cfg = init_run(run_dir, cfg)
    stages = load_stages(cfg.stages)
    t0 = time.perf_counter()
    prepare_shared(run_dir, cfg, stages)
    todo = pending_jobs(run_dir)
    executor = executor or LocalExecutor(cfg.executor.workers)
    results: list[dict] = []
    if todo:
        results = executor.run(run_dir, todo, progress=progress)
    states = job_states(run_dir)
    failed = [s.id for s in states if s.state == "failed"]
    left = [s.id for s in states if s.state in ("left", "running")]
    done = sum(s.state == "done" for s in states)
    session = {
        "started": time.time() - (time.perf_counter() - t0),
        "jobs_seconds": time.perf_counter() - t0,
        "ran": [r["id"] for r in results],
        "failed": failed,
        "left": left,
        "workers": getattr(executor, "workers", None),
        "executor": getattr(executor, "name", type(executor).__name__),
    }
    write_json_atomic(run_dir / "results" / "last_session.json", session)
    out: dict[str, Any] = {"done": done, "failed": failed, "left": left, "report": None}
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
