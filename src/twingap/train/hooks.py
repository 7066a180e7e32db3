"""The training loop's shared state and its hooks (learning rate, EMA, loss log, checkpoints).

As in detectron2's ``HookBase``: the loop in :func:`twingap.train.engine.train` calls
``before_train``, then ``before_step`` / ``after_step`` around every step, then ``after_train``
(only when the loop finishes; an interrupted run leaves its last checkpoint). Hooks run in list
order and read or write the :class:`TrainState`; everything that a resume needs (step, weights,
optimiser, EMA, loss log) lives there and goes into the checkpoint.
"""

from __future__ import annotations

import csv
import io
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch

from twingap.errors import TwingapError
from twingap.io import atomic_path, write_text_atomic
from twingap.train.config import TrainConfig

LOSS_KEYS = ("loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg")


class StepOutput(NamedTuple):
    """What one training step returns.

    Attributes:
        losses: The model's loss terms (scalar tensors, keys among :data:`LOSS_KEYS`).
        loss: Their sum, the loss that was back-propagated.
        grad_norm: Global L2 norm of the gradients before clipping (NaN when clipping is off); a
            0-d tensor when the step left host reads to the log (:attr:`TrainState.deferred`).
    """

    losses: dict[str, torch.Tensor]
    loss: torch.Tensor
    grad_norm: float | torch.Tensor


def diverged(step: int, loss: float) -> TwingapError:
    """The error of a run whose loss at ``step`` is not finite."""
    return TwingapError(f"training diverged at step {step} (loss {loss}); lower the lr")


@dataclass
class TrainState:
    """What the loop and its hooks share.

    Attributes:
        cfg: The training configuration.
        model: The model (in training mode).
        optimizer: SGD over the trainable parameters (one parameter group).
        start: First step of this session (0, or the checkpoint's step on resume).
        step: The step in progress (0-based).
        step_started: ``time.perf_counter()`` when the step began.
        lr: Learning rate of the step in progress.
        out: The last step's output.
        ema: Exponential moving average of the trainable weights (None until it starts).
        log_rows: One row per finished step (``step``, ``lr``, ``loss``, loss terms, ``grad_norm``,
            ``seconds``).
        deferred: Leave the step's losses and gradient norm on the device (no host sync per step,
            for the CUDA group trainer): the log rows hold 0-d tensors until :meth:`resolve_log`
            reads them all at once (the same values, so the log and the weights do not change).
    """

    cfg: TrainConfig
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    start: int = 0
    step: int = 0
    step_started: float = 0.0
    lr: float = float("nan")
    out: StepOutput | None = None
    ema: dict[str, torch.Tensor] | None = None
    log_rows: list[dict[str, float]] = field(default_factory=list)
    deferred: bool = False
    _pending: int = 0  # log rows at the end of ``log_rows`` that may still hold tensors

    def resolve_log(self) -> None:
        """Read the log's pending tensors to floats (one host transfer) and check the losses.

        Raises:
            TwingapError: If a pending step's loss is not finite (the run diverged).
        """
        if not self._pending:
            return
        rows = self.log_rows[-self._pending :]
        slots = [(r, k) for r in rows for k, v in r.items() if isinstance(v, torch.Tensor)]
        self._pending = 0
        if slots:
            values = torch.stack([r[k].detach().float().reshape(()) for r, k in slots]).tolist()
            for (r, k), v in zip(slots, values, strict=True):
                r[k] = v
        for r in rows:
            if not math.isfinite(r["loss"]):
                raise diverged(r["step"], r["loss"])

    def final_weights(self) -> dict[str, torch.Tensor]:
        """The model's state dict with the EMA weights in place of the trained ones when kept."""
        state = self.model.state_dict()
        if self.ema is not None:
            state = OrderedDict(state)
            for n, w in self.ema.items():
                state[n] = w.clone()
        return state


class HookBase:
    """A hook of the training loop; every method does nothing unless overridden."""

    def before_train(self, state: TrainState) -> None:
        """Called once before the first step of this session."""

    def before_step(self, state: TrainState) -> None:
        """Called before each step (``state.step`` is set)."""

    def after_step(self, state: TrainState) -> None:
        """Called after each step (``state.out`` holds its output)."""

    def after_train(self, state: TrainState) -> None:
        """Called once after the last step, when the loop completed."""


class LRSchedule(HookBase):
    """Sets the optimiser's learning rate of each step from a schedule ``step -> lr``."""

    def __init__(self, schedule: Callable[[int], float]) -> None:
        self.schedule = schedule

    def before_step(self, state: TrainState) -> None:
        """Set ``state.lr`` and the optimiser's learning rate for ``state.step``."""
        state.lr = self.schedule(state.step)
        for g in state.optimizer.param_groups:
            g["lr"] = state.lr


class EMA(HookBase):
    """Exponential moving average of the trainable weights, from step ``begin`` on.

    Args:
        decay: Weight of the running average per step, in (0, 1).
        begin: First step (0-based) whose weights enter the average (the average starts as a copy).
    """

    def __init__(self, decay: float, begin: int) -> None:
        self.decay, self.begin = decay, begin
        self._params: list[tuple[str, torch.nn.Parameter]] = []

    def before_train(self, state: TrainState) -> None:
        """Note the trainable parameters (the ones averaged)."""
        self._params = [(n, p) for n, p in state.model.named_parameters() if p.requires_grad]

    def after_step(self, state: TrainState) -> None:
        """Fold the step's weights into ``state.ema`` (a copy at step ``begin``)."""
        if state.step < self.begin:
            return
        with torch.no_grad():
            if state.ema is None:
                state.ema = {n: p.detach().clone() for n, p in self._params}
            else:
                for n, p in self._params:
                    state.ema[n].mul_(self.decay).add_(p.detach(), alpha=1 - self.decay)


class LossLog(HookBase):
    """Appends a row per step to ``state.log_rows``, shows it, and writes ``train_log.csv`` at the end.

    With :attr:`TrainState.deferred` (CUDA) the step's losses stay on the device and
    :meth:`TrainState.resolve_log` reads them every ``flush_every`` steps, before each checkpoint and
    after the last step, all at once (one wait for the device instead of one per step): the rows are
    the same, and the divergence check happens on the read (a non-finite loss raises naming its step).

    Args:
        path: The CSV file written after the last step.
        show: Called as ``show(1, loss=..., img_s=...)`` after each step (a progress bar's advance;
            without ``loss`` for a deferred step not read yet).
        flush_every: Steps between reads of a deferred log (1: every step).
    """

    def __init__(self, path: Path, show: Callable[..., None], flush_every: int = 1) -> None:
        self.path, self.show, self.flush_every = path, show, max(1, int(flush_every))

    def after_step(self, state: TrainState) -> None:
        """Log the step's losses, learning rate, gradient norm and seconds (or queue them)."""
        out = state.out
        dt = time.perf_counter() - state.step_started
        # deferred: the tensors themselves, read later all at once (TrainState.resolve_log)
        read = (lambda t: t.detach()) if state.deferred else (lambda t: float(t.detach()))
        row = {"step": state.step, "lr": state.lr, "loss": read(out.loss), "seconds": dt}
        row["grad_norm"] = out.grad_norm
        row.update({k: read(out.losses[k]) for k in LOSS_KEYS if k in out.losses})
        state.log_rows.append(row)
        if state.deferred:
            state._pending += 1
            if (state.step + 1) % self.flush_every == 0 or state.step + 1 >= state.cfg.iterations:
                state.resolve_log()  # fills this row (and the pending ones before it) in place
        shown = {"img_s": f"{state.cfg.batch_size / dt:.1f}"}
        if not isinstance(row["loss"], torch.Tensor):
            shown["loss"] = f"{row['loss']:.3f}"
        self.show(1, **shown)

    def after_train(self, state: TrainState) -> None:
        """Write the whole log (resumed steps included) to the CSV file."""
        state.resolve_log()
        write_log(self.path, state.log_rows)


class Checkpointer(HookBase):
    """Saves a checkpoint every ``cfg.checkpoint_every`` steps (not after the last one).

    Args:
        path: The checkpoint file (replaced atomically).
        dataset_hash: Hash of the training set, stored so a resume on other data is refused.
    """

    def __init__(self, path: Path, dataset_hash: str) -> None:
        self.path, self.dataset_hash = path, dataset_hash

    def after_step(self, state: TrainState) -> None:
        """Save a checkpoint when the number of finished steps is a multiple of the period."""
        done, every = state.step + 1, state.cfg.checkpoint_every
        if every and done % every == 0 and done < state.cfg.iterations:
            state.resolve_log()  # a diverged run keeps its last finite checkpoint
            save_checkpoint(self.path, state, done, self.dataset_hash)


# ---------------------------------------------------------------------- checkpoint and log files
def save_checkpoint(path: Path, state: TrainState, step: int, dataset_hash: str) -> None:
    """Write what a resume needs after ``step`` finished steps (atomic)."""
    payload = {
        "step": step,
        "model": state.model.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "ema": state.ema,
        "log": state.log_rows,
        "config": state.cfg.to_dict(),
        "dataset_hash": dataset_hash,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: Path, cfg: TrainConfig, dataset_hash: str, dataset_dir: Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` for the same config and dataset.

    Raises:
        TwingapError: If the checkpoint's config or dataset differs.
    """
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if ckpt["config"] != cfg.to_dict():
        raise TwingapError("config differs from the checkpoint's; resume with the same config", path)
    if ckpt["dataset_hash"] != dataset_hash:
        raise TwingapError("dataset changed since the checkpoint was written", dataset_dir)
    return ckpt


def restore(state: TrainState, ckpt: dict[str, Any]) -> None:
    """Put a checkpoint's weights, optimiser, EMA, loss log and step into ``state``."""
    state.model.load_state_dict(ckpt["model"])
    state.optimizer.load_state_dict(ckpt["optimizer"])
    device = next(state.model.parameters()).device
    state.ema = None if ckpt["ema"] is None else {n: w.to(device) for n, w in ckpt["ema"].items()}
    state.log_rows = ckpt["log"]
    state.start = ckpt["step"]


def write_log(path: Path, rows: list[dict[str, float]]) -> None:
    """Write the loss log as CSV (floats with 6 significant digits; atomic)."""
    keys = ["step", "lr", "loss", *LOSS_KEYS, "grad_norm", "seconds"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{r[k]:.6g}" if isinstance(r.get(k), float) else r.get(k, "")) for k in keys})
    write_text_atomic(path, buf.getvalue())
