"""Many models in one process: step a group of training runs in lockstep (the GPU path of a study).

On a GPU one Mask R-CNN step of the ``quick`` recipe is hundreds of tiny kernels, so one process
per training leaves the GPU idle between launches, and a dozen processes time-slice it. The group
trainer sets up every member's run (model, optimiser, hooks, feature cache) in one process and
steps them together: step ``i`` of every member, then step ``i + 1``. Each member step is exactly
the step of :func:`twingap.train.engine.train` (:func:`~twingap.train.engine._step`: reseed torch
from (seed, step), hooks, forward, backward, update), so a member is the same function as the run
trained alone: on CPU bit for bit (tested), on CUDA up to the GPU's own run-to-run nondeterminism.

On CUDA every member steps on its own CUDA stream, so the kernels of different members overlap,
and the members leave their loss and gradient-norm reads on the device
(:attr:`~twingap.train.hooks.TrainState.deferred`): no host sync per step; the log is read every
:data:`RESOLVE_EVERY` steps, before each checkpoint and at the end, with the same values. bf16
autocast applies where the device has it (:func:`~twingap.train.engine.autocast_dtype`).

Each member writes its own run folder with the cadence of a single run (checkpoints, log, final
weights), so a group killed mid-way resumes to the weights of an uninterrupted one. A member that
already finished is skipped; a member that fails (bad input, divergence, no convergence) fails
alone and the others go on.
"""

from __future__ import annotations

import contextlib
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from twingap.train.config import TrainConfig
from twingap.train.engine import _close_run, _hooks, _open_run, _progress, _Run, _step
from twingap.train.hooks import HookBase

#: A member of a group: (dataset folder, run folder, training config, resume).
Member = tuple[str | Path, str | Path, TrainConfig, bool]

#: Steps between reads of a deferred log (bounds the pending tensors; finds a divergence early).
RESOLVE_EVERY = 50


@dataclass
class MemberResult:
    """What became of one member of a group.

    Attributes:
        run_dir: The member's run folder.
        final: Its final weights (``model_final.pt``), or None when it failed.
        status: ``"done"`` (trained now), ``"skipped"`` (had finished before) or ``"failed"``.
        error: One line ``Type: message`` when it failed.
        traceback: The failure's traceback.
    """

    run_dir: Path
    final: Path | None
    status: str
    error: str | None = None
    traceback: str | None = None


class _Active:
    """A member being stepped: its run, hooks and CUDA stream (None off CUDA)."""

    def __init__(self, index: int, run: _Run, hooks: list[HookBase], stream) -> None:
        self.index, self.run, self.hooks, self.stream = index, run, hooks, stream

    def on_stream(self):
        """The member's CUDA stream as the current stream (a no-op without one)."""
        return torch.cuda.stream(self.stream) if self.stream is not None else contextlib.nullcontext()


def _failed(run_dir: Path, exc: BaseException) -> MemberResult:
    err = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
    return MemberResult(run_dir, None, "failed", err, traceback.format_exc())


def train_group(
    members: Sequence[Member], progress: bool = True, defer_sync: bool | None = None
) -> list[MemberResult]:
    """Train several models in this process, in lockstep; returns one result per member, in order.

    Args:
        members: ``(dataset_dir, run_dir, config, resume)`` per model, as the arguments of
            :func:`twingap.train.engine.train`. Run folders must differ.
        progress: Show one progress bar for the group (feature caches and steps).
        defer_sync: Leave the members' loss reads on the device between log reads (no host sync
            per step). None: on CUDA only. The weights and the log are the same either way.

    Returns:
        A :class:`MemberResult` per member. A member fails alone: its error is recorded, its run
        folder keeps its last checkpoint (resumable), and the others train on.

    Raises:
        TwingapError: If two members share a run folder or differ in ``threads``.
        KeyboardInterrupt: Propagated (every member keeps its last checkpoint).
    """
    from twingap.errors import TwingapError

    dirs = [Path(m[1]).resolve() for m in members]
    if len(set(dirs)) != len(dirs):
        raise TwingapError("the members of a training group need distinct run folders")
    if len({m[2].threads for m in members}) > 1:  # one process, one thread count: each as it trains alone
        raise TwingapError("the members of a training group need the same threads setting")
    results: list[MemberResult | None] = [None] * len(members)
    active: list[_Active] = []
    opened: list[_Run] = []
    for i, (dataset_dir, run_dir, config, resume) in enumerate(members):
        run_dir = Path(run_dir)
        try:
            run = _open_run(Path(dataset_dir), run_dir, config.validate(), resume, progress)
        except Exception as exc:
            results[i] = _failed(run_dir, exc)
            continue
        if isinstance(run, Path):
            results[i] = MemberResult(run_dir, run, "skipped")
            continue
        opened.append(run)
        device = run.batches.device
        run.state.deferred = device.type == "cuda" if defer_sync is None else defer_sync
        stream = None
        if device.type == "cuda":  # its own stream, after the setup's work on the default stream
            stream = torch.cuda.Stream(device)
            stream.wait_stream(torch.cuda.current_stream(device))
        # a deferred log is read every RESOLVE_EVERY steps (LossLog), before checkpoints and at the end
        hooks = _hooks(run.cfg, run_dir, run.d_hash, lambda n=1, **kw: None, flush_every=RESOLVE_EVERY)
        active.append(_Active(i, run, hooks, stream))

    def fail(m: _Active, exc: BaseException) -> None:
        results[m.index] = _failed(m.run.run_dir, exc)
        active.remove(m)

    try:
        for m in list(active):
            try:
                with m.on_stream():
                    for h in m.hooks:
                        h.before_train(m.run.state)
            except Exception as exc:
                fail(m, exc)
        lo = min((m.run.state.start for m in active), default=0)
        hi = max((m.run.cfg.iterations for m in active), default=0)
        t_loop, c_loop = time.perf_counter(), time.process_time()
        label = f"training {len(active)} models"
        with _progress(progress and bool(active), hi - lo, label) as advance:
            for step in range(lo, hi):
                for m in list(active):
                    state = m.run.state
                    if not state.start <= step < m.run.cfg.iterations:
                        continue
                    try:
                        with m.on_stream():
                            _step(state, m.run.batches, m.hooks, step)
                            if step == m.run.cfg.iterations - 1:
                                for h in m.hooks:
                                    h.after_train(state)
                    except Exception as exc:
                        fail(m, exc)
                advance(1)
        for m in active:
            if m.stream is not None:
                m.stream.synchronize()
        t_loop, c_loop = time.perf_counter() - t_loop, time.process_time() - c_loop
        for m in list(active):
            try:
                final = _close_run(m.run, t_loop, c_loop, group_size=len(members))
            except Exception as exc:
                fail(m, exc)
                continue
            results[m.index] = MemberResult(m.run.run_dir, final, "done")
    finally:  # data-loading workers (uncached recipes) of every member that set up
        for m in opened:
            m.batches.close()
    return [r for r in results if r is not None]
