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
    returned) and isolates crashes: a job that kills its process is recorded as failed. Workers
    end when this process dies (:func:`twingap.procguard.die_with_parent`), so a killed study
    leaves no job running behind.
    """

    name = "local"

    def __init__(self, workers: int = 1) -> None:
        self.workers = max(1, int(workers))

    def run(self, run_dir: str | Path, job_ids: list[str], progress: bool = True) -> list[dict[str, Any]]:
        """Run the jobs (or their training groups); returns their summaries in completion order."""
        import os

        from twingap.procguard import die_with_parent
        from twingap.study.runner import plan_groups, run_job, run_job_group

        groups = plan_groups(run_dir, job_ids)
        grouped = any(len(g) > 1 for g in groups)
        out: list[dict[str, Any]] = []
        ctx = mp.get_context("spawn")
        pool = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=ctx,
            max_tasks_per_child=1,
            initializer=die_with_parent,
            initargs=(os.getpid(),),
        )
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
                    for fut in finished:  # fut.result() raises when the worker died (segfault, OOM kill)
                        _collect(run_dir, futures[fut], fut.result, grouped, out, bar, task, progress)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return out


def _collect(
    run_dir: str | Path,
    job_ids: list[str],
    get: Any,
    grouped: bool,
    out: list[dict[str, Any]],
    bar: Any,
    task: Any,
    progress: bool,
) -> None:
    """Append the summaries of one finished job (or group) to ``out`` and advance the progress bar.

    ``get()`` returns the job's summary (a list of them for a group) or raises when the process or
    task that ran it died; each of its jobs is then recorded as crashed.
    """
    try:
        res = get()
        results = res if grouped else [res]
    except Exception as exc:
        results = [_record_crash(run_dir, jid, exc) for jid in job_ids]
    for res in results:
        out.append(res)
        if progress:
            bar.console.print(_describe(res))
        bar.advance(task)


def _record_crash(run_dir: str | Path, job_id: str, exc: BaseException) -> dict[str, Any]:
    import time

    from twingap.io import write_json_atomic

    err = f"worker process died: {type(exc).__name__}: {exc}".splitlines()[0]
    write_json_atomic(
        Path(run_dir) / "jobs" / f"{job_id}.failed.json",
        {"id": job_id, "stage": "unknown", "error": err, "traceback": "", "time": time.time()},
    )
    return {"id": job_id, "status": "failed", "seconds": 0.0, "error": err}


#: Environment variable: seconds to wait for a TCP connection to the Ray address (default 5).
RAY_TIMEOUT_ENV = "TWINGAP_RAY_CONNECT_TIMEOUT"
RAY_TIMEOUT_DEFAULT_S = 5.0


def ray_endpoint(address: str | None) -> tuple[str, int, str] | None:
    """Host, port and a label of the address ``ray.init(address=...)`` connects to; None: Ray finds it.

    Follows Ray's reading of an address: None and ``"auto"`` mean ``$RAY_ADDRESS`` when it is set
    (else Ray finds or starts a cluster itself, so there is nothing to check), ``"local"`` starts a
    new local instance; ``"host:port"`` is a cluster's GCS address, ``"ray://host:port"`` a Ray
    Client server. IPv6 hosts are written in brackets (``"[::1]:6379"``). Other schemes (a Ray
    Client plug-in module) are left to Ray.

    Returns:
        ``(host, port, label)``, the label being the address as given (``"RAY_ADDRESS=..."`` when
        it came from the environment).

    Raises:
        TwingapError: If the address is neither of these forms (no port, a port out of range).
    """
    import os

    source = "--address"
    if address in (None, "auto") and os.environ.get("RAY_ADDRESS"):
        address, source = os.environ["RAY_ADDRESS"], "RAY_ADDRESS"
    label = f"RAY_ADDRESS={address}" if source == "RAY_ADDRESS" else str(address)
    if address is None or address in ("auto", "local"):
        return None
    inner = address.strip()
    if "://" in inner:
        scheme, inner = inner.split("://", 1)
        if scheme != "ray":
            return None
    host, sep, port = inner.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise TwingapError(
            f"{source} {address!r} is not a Ray address: give host:port (the head node's GCS port, "
            "usually 6379), ray://host:port (Ray Client, usually 10001), auto or local"
        )
    return host, int(port), label


def connect_timeout() -> float:
    """Seconds to wait for the Ray address to accept a connection (``$TWINGAP_RAY_CONNECT_TIMEOUT``).

    Raises:
        TwingapError: If the variable is set to something other than a positive number.
    """
    import os

    text = os.environ.get(RAY_TIMEOUT_ENV, "").strip()
    if not text:
        return RAY_TIMEOUT_DEFAULT_S
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise TwingapError(f"{RAY_TIMEOUT_ENV} must be a positive number of seconds, got {text!r}")
    return value


def check_ray_address(address: str | None, timeout: float | None = None) -> None:
    """Fail fast if nothing accepts a TCP connection at the Ray address (before ``ray.init``).

    ``ray.init`` retries a wrong address for minutes, printing connection warnings, and rewrites a
    loopback address to this machine's interface address first; this opens one connection to
    exactly the host and port given and closes it again.

    Args:
        address: As given to :class:`RayExecutor` (see :func:`ray_endpoint`).
        timeout: Seconds to wait; None reads ``$TWINGAP_RAY_CONNECT_TIMEOUT`` (default 5 s).

    Raises:
        TwingapError: One line naming the address, the reason and what to try.
    """
    import socket

    endpoint = ray_endpoint(address)
    if endpoint is None:
        return
    timeout = connect_timeout() if timeout is None else timeout
    host, port, label = endpoint
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        reason = f"no answer within {timeout:g} s" if isinstance(exc, TimeoutError) else exc.strerror or exc
        raise TwingapError(
            f"cannot reach the Ray cluster at {label} ({host} port {port}: {reason}); check that the "
            "head node runs (`ray status` there) and the address and port (GCS 6379, ray:// 10001), "
            f"raise {RAY_TIMEOUT_ENV} (seconds) on a slow network, or drop --address to start Ray here"
        ) from exc


class RayExecutor:
    """One Ray task per job, each declaring ``cpus`` and ``gpus``; one task per training group on GPUs.

    With ``gpus`` > 0 (the tasks train on a GPU) and ``[executor] group_size`` 0, each task is a
    seed's jobs trained together (:func:`twingap.study.runner.run_job_group`) on its GPU.

    Args:
        address: Ray cluster address (``"host:6379"``, ``"ray://host:10001"``, ``"auto"``,
            ``"local"``); None starts a local Ray instance (or uses ``$RAY_ADDRESS``, as Ray
            does). The run folder must be on a file system every node sees.
        cpus: CPUs each job declares.
        gpus: GPUs each job declares.

    Raises:
        TwingapError: If Ray is not installed, or nothing answers at a concrete address within
            ``$TWINGAP_RAY_CONNECT_TIMEOUT`` seconds (:func:`check_ray_address`).
    """

    name = "ray"

    def __init__(self, address: str | None = None, cpus: float = 1, gpus: float = 0) -> None:
        try:
            import ray
        except ImportError as exc:
            raise TwingapError(
                "the Ray executor needs Ray: pip install 'twingap[ray]' (or use --executor local)"
            ) from exc
        self.address = address
        self.cpus = cpus
        self.gpus = gpus
        if not ray.is_initialized():  # fail before the study prepares anything
            check_ray_address(address)

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
            check_ray_address(self.address)  # the cluster may have gone since __init__
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
                    for ref in ready:  # ray.get raises when the task's worker died
                        _collect(
                            run_dir,
                            refs.pop(ref),
                            lambda r=ref: ray.get(r),
                            grouped,
                            out,
                            bar,
                            task,
                            progress,
                        )
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
