"""Executors: run a study's jobs in this process, a local process pool, or as Ray tasks.

Every executor calls the same function, :func:`twingap.study.runner.run_job`, with the run folder
and a job id; jobs read and write only files in the run folder, and each job fixes its own
thread count, so the executors give identical results for the same seeds.

Where the jobs' training runs on CUDA (or ``[executor] group_size`` asks for it), the local and
Ray executors run groups of jobs instead (:func:`twingap.study.runner.plan_groups`): one process
or Ray task per group calls :func:`twingap.study.runner.run_job_group`, which trains the group's
models together on one GPU. On CPU, by default, nothing changes: one job per process.
"""

from __future__ import annotations

import multiprocessing as mp
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from twingap.errors import TwingapError


def _progress(total: int, enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[bold]study[/bold] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not enabled,
        transient=False,
    )


def _describe(result: dict[str, Any]) -> str:
    if result["status"] == "failed":
        return f"{result['id']} FAILED: {result['error']}"
    return f"{result['id']} {result['status']} ({result['seconds']:.0f} s)"


class InlineExecutor:
    """Runs jobs one after the other in this process (debugging, tests, benchmarks)."""

    name = "inline"

    def run(self, run_dir: str | Path, job_ids: list[str], progress: bool = True) -> list[dict[str, Any]]:
        """Run the jobs; returns their summaries in completion order."""
        from twingap.study.runner import run_job

        out = []
        with _progress(len(job_ids), progress) as bar:
            task = bar.add_task("jobs", total=len(job_ids))
            for jid in job_ids:
                bar.update(task, description=jid)
                res = run_job(str(run_dir), jid)
                out.append(res)
                bar.console.print(_describe(res)) if progress else None
                bar.advance(task)
        return out


class LocalExecutor:
    """A local process pool: ``workers`` jobs at a time, each in a fresh process.

    A fresh (spawned) process per job keeps jobs independent (no state carried over, memory
    returned) and isolates crashes: a job that kills its process is recorded as failed.
    """

    name = "local"

    def __init__(self, workers: int = 1) -> None:
        self.workers = max(1, int(workers))

    def run(self, run_dir: str | Path, job_ids: list[str], progress: bool = True) -> list[dict[str, Any]]:
        """Run the jobs (or their training groups); returns their summaries in completion order."""
        from twingap.study.runner import plan_groups, run_job, run_job_group

        groups = plan_groups(run_dir, job_ids)
        grouped = any(len(g) > 1 for g in groups)
        out: list[dict[str, Any]] = []
        ctx = mp.get_context("spawn")
        pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx, max_tasks_per_child=1)
        try:
            with _progress(len(job_ids), progress) as bar:
                task = bar.add_task(
                    "jobs" if not grouped else f"jobs ({len(groups)} groups)", total=len(job_ids)
                )
                futures: dict[Future, list[str]] = {
                    (
                        pool.submit(run_job_group, str(run_dir), g)
                        if grouped
                        else pool.submit(run_job, str(run_dir), g[0])
                    ): g
                    for g in groups
                }
                pending = set(futures)
                while pending:
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        jids = futures[fut]
                        try:
                            res = fut.result()
                            results = res if grouped else [res]
                        except Exception as exc:  # the worker process died (segfault, OOM kill)
                            results = [_record_crash(run_dir, jid, exc) for jid in jids]
                        for res in results:
                            out.append(res)
                            if progress:
                                bar.console.print(_describe(res))
                            bar.advance(task)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return out


def _record_crash(run_dir: str | Path, job_id: str, exc: BaseException) -> dict[str, Any]:
    import time

    from twingap.io import write_json_atomic

    err = f"worker process died: {type(exc).__name__}: {exc}".splitlines()[0]
    write_json_atomic(
        Path(run_dir) / "jobs" / f"{job_id}.failed.json",
        {"id": job_id, "stage": "unknown", "error": err, "traceback": "", "time": time.time()},
    )
    return {"id": job_id, "status": "failed", "seconds": 0.0, "error": err}


class RayExecutor:
    """One Ray task per job, each declaring ``cpus`` and ``gpus``; one task per training group on GPUs.

    With ``gpus`` > 0 (the tasks train on a GPU) and ``[executor] group_size`` 0, each task is a
    seed's jobs trained together (:func:`twingap.study.runner.run_job_group`) on its GPU.

    Args:
        address: Ray cluster address (``"auto"``, ``"ray://host:10001"``); None starts a local
            Ray instance. The run folder must be on a file system every node sees.
        cpus: CPUs each job declares.
        gpus: GPUs each job declares.

    Raises:
        TwingapError: If Ray is not installed.
    """

    name = "ray"

    def __init__(self, address: str | None = None, cpus: float = 1, gpus: float = 0) -> None:
        try:
            import ray  # noqa: F401
        except ImportError as exc:
            raise TwingapError(
                "the Ray executor needs Ray: pip install 'twingap[ray]' (or use --executor local)"
            ) from exc
        self.address = address
        self.cpus = cpus
        self.gpus = gpus

    def run(self, run_dir: str | Path, job_ids: list[str], progress: bool = True) -> list[dict[str, Any]]:
        """Submit every job as a task and wait for them; returns summaries in completion order."""
        import os

        import ray

        from twingap.study.runner import plan_groups, run_job, run_job_group

        groups = plan_groups(run_dir, job_ids, cuda=bool(self.gpus))
        grouped = any(len(g) > 1 for g in groups)
        started_here = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if self.address:
                kwargs["address"] = self.address
            else:
                kwargs["num_cpus"] = max(os.cpu_count() or 1, int(self.cpus))
                kwargs["num_gpus"] = int(self.gpus) if self.gpus else None
            ray.init(**{k: v for k, v in kwargs.items() if v is not None})
            started_here = True
        fn = run_job_group if grouped else run_job
        remote = ray.remote(num_cpus=self.cpus, num_gpus=self.gpus, max_retries=0)(fn)
        run_dir = str(Path(run_dir).resolve())
        out = []
        try:
            with _progress(len(job_ids), progress) as bar:
                task = bar.add_task("jobs (ray)", total=len(job_ids))
                refs = {remote.remote(run_dir, g if grouped else g[0]): g for g in groups}
                while refs:
                    ready, _ = ray.wait(list(refs), num_returns=1)
                    for ref in ready:
                        jids = refs.pop(ref)
                        try:
                            res = ray.get(ref)
                            results = res if grouped else [res]
                        except Exception as exc:  # the task's worker died
                            results = [_record_crash(run_dir, jid, exc) for jid in jids]
                        for res in results:
                            out.append(res)
                            if progress:
                                bar.console.print(_describe(res))
                            bar.advance(task)
        finally:
            if started_here:
                ray.shutdown()
        return out


def make_executor(kind: str, workers: int = 1, address: str | None = None, cpus: float = 1, gpus: float = 0):
    """Build an executor by name (``local``, ``inline`` or ``ray``).

    Raises:
        TwingapError: For an unknown name, or ``ray`` without Ray installed.
    """
    if kind == "local":
        return LocalExecutor(workers)
    if kind == "inline":
        return InlineExecutor()
    if kind == "ray":
        return RayExecutor(address, cpus, gpus)
    raise TwingapError(f"unknown executor {kind!r} (use local, inline or ray)")
