"""The training loop: seeded, checkpointed, resumable, with cached frozen-body features.

Randomness is keyed, not streamed: step ``i`` reseeds torch from (seed, i) and draws its data
order from an epoch permutation keyed by (seed, epoch), and each augmentation comes from a
generator keyed by (seed, image, variant) or (seed, step, slot). So a resumed run needs only
the step counter, the weights, the optimiser and the EMA to continue bit-identically, and two
runs with the same seed on datasets of the same length see the same head initialisation, the
same order and the same augmentations (common random numbers): only their data differs.

Structure (as detectron2's trainer and hooks): :func:`train` sets up the run; :func:`_run_loop`
calls :func:`_train_step` (forward, backward, gradient clipping, update: the one place that
touches the optimisation maths) on each step's batch between the hooks of
:mod:`twingap.train.hooks` (learning rate, EMA, loss log, checkpoints).

Run folder (``run_dir``):
    ``config.json``, ``meta.json`` (seed, versions, dataset hash, label map, timings),
    ``checkpoint.pt`` (latest; atomic), ``model_final.pt`` (final, EMA weights when enabled),
    ``train_log.csv`` (losses per step).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from twingap.errors import TwingapError
from twingap.io import atomic_path, read_json, write_json_atomic
from twingap.provenance import package_versions
from twingap.train.config import PRESETS, TrainConfig
from twingap.train.data import (
    AugParams,
    TrainSet,
    apply_geometry_masks,
    apply_image,
    dataset_hash,
    draw_aug,
    load_train_set,
    masks_to_target,
)
from twingap.train.hooks import (
    EMA,
    Checkpointer,
    HookBase,
    LossLog,
    LRSchedule,
    StepOutput,
    TrainState,
    diverged,
    load_checkpoint,
    restore,
)
from twingap.train.kernels import float32_depthwise, fold_frozen_bn, fold_frozen_bn_live
from twingap.train.model import build_model, frozen_body_blocks

_STREAM_AUG, _STREAM_ORDER, _STREAM_STEP, _STREAM_VARIANT = 1, 2, 3, 4
_BOUNDARY = "boundary"


def _key(seed: int, *parts: int) -> int:
    return int(np.random.SeedSequence([seed, *parts]).generate_state(1, dtype=np.uint64)[0] >> 1)


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA if available else CPU; ``"cuda"`` without a GPU raises TwingapError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TwingapError("device cuda requested but no CUDA GPU is available (use --device cpu)")
    return torch.device(name)


def autocast_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The dtype the training forward autocasts to, or None for float32.

    ``cfg.amp_dtype == "bfloat16"`` gives bfloat16 only where it is native: a CPU with AVX512-BF16
    or AMX tiles whose oneDNN is not capped below them (``ONEDNN_MAX_CPU_ISA=AVX2`` made a quick step
    18x slower in emulated bfloat16), or a CUDA GPU that supports bfloat16. Elsewhere float32:
    emulated bfloat16 is slower and would make the run's numbers depend on the emulation.
    """
    if cfg.amp_dtype != "bfloat16":
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    if onednn_isa_cap() not in BF16_ONEDNN_ISAS:
        return None  # oneDNN pinned below AVX512-BF16: its bfloat16 would be emulated (18x slower measured)
    cpu = getattr(torch, "cpu", None)
    native = any(
        bool(getattr(cpu, name, lambda: False)())
        for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    )
    return torch.bfloat16 if native else None


#: Values of ``ONEDNN_MAX_CPU_ISA`` that leave oneDNN its native bfloat16 kernels ("" = not set).
BF16_ONEDNN_ISAS = frozenset(
    {
        "",
        "ALL",
        "DEFAULT",
        "AVX512_CORE_BF16",
        "AVX512_CORE_FP16",
        "AVX512_CORE_AMX",
        "AVX512_CORE_AMX_FP16",
        "AVX10_1_512",
        "AVX10_1_512_AMX",
        "AVX10_1_512_AMX_FP16",
        "AVX10_2_512",
        "AVX10_2_512_AMX_2",
    }
)


def onednn_isa_cap() -> str:
    """The oneDNN ISA cap set by ``ONEDNN_MAX_CPU_ISA`` (or ``DNNL_MAX_CPU_ISA``), upper case; "" if unset."""
    import os

    return (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").strip().upper()


def _autocast(device: torch.device, dtype: torch.dtype | None):
    """``torch.autocast`` to ``dtype`` on ``device``, or a no-op context for None (float32)."""
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def _float32_outputs(_module, _inputs, output):
    """Forward hook: a head's (nested) tensor outputs cast to float32.

    On the RPN head and the box predictor under bfloat16 autocast: torchvision decodes boxes in
    the dtype of the regression output, so bfloat16 deltas would round the anchors and proposals to
    8 significant bits (2 px steps at 256-512 px); one such run went NaN at step 13.
    """
    if isinstance(output, torch.Tensor):
        return output.float()
    return type(output)(_float32_outputs(_module, _inputs, o) for o in output)


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Learning rate of step ``step`` (0-based): linear warm-up, then cosine or step decay."""
    if step < cfg.warmup_iters:
        alpha = step / max(1, cfg.warmup_iters)
        return cfg.lr * (cfg.warmup_factor * (1 - alpha) + alpha)
    if cfg.schedule == "cosine":
        t = (step - cfg.warmup_iters) / max(1, cfg.iterations - cfg.warmup_iters)
        return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))
    factor = 1.0
    for m in (0.7, 0.9):
        if step >= m * cfg.iterations:
            factor *= 0.1
    return cfg.lr * factor


class _Sampler:
    """Keyed data order: the entries of epoch ``e`` are a permutation keyed by (seed, e)."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed = n, seed
        self._epoch, self._perm = -1, np.arange(0)

    def batch(self, step: int, size: int) -> list[int]:
        out = []
        for pos in range(step * size, (step + 1) * size):
            epoch, i = divmod(pos, self.n)
            if epoch != self._epoch:
                self._epoch = epoch
                self._perm = np.random.default_rng(_key(self.seed, _STREAM_ORDER, epoch)).permutation(self.n)
            out.append(int(self._perm[i]))
        return out


def _aug(cfg: TrainConfig, rng: np.random.Generator) -> AugParams:
    return draw_aug(rng, cfg.hflip, cfg.crop_min, cfg.color_jitter, cfg.hue_jitter)


def _to_target(ds: TrainSet, idx: int, p: AugParams, cfg: TrainConfig, device: torch.device) -> dict:
    masks = apply_geometry_masks(ds.masks[idx], p) if not p.is_identity else ds.masks[idx]
    t = masks_to_target(masks, ds.labels[idx], cfg.min_visible_px)
    return {k: torch.from_numpy(v).to(device) for k, v in t.items()}


def _image_tensor(img: np.ndarray, p: AugParams, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(apply_image(img, p)).permute(2, 0, 1).contiguous().to(device)


def _augmented_batch(
    ds: TrainSet, cfg: TrainConfig, entries: list[int], step: int, device: torch.device
) -> tuple[list[torch.Tensor], list[dict]]:
    """The augmented images and targets of uncached step ``step`` (images ``entries``), on ``device``.

    Slot ``j``'s augmentation comes from a generator keyed by (seed, step, j), so the batch is the
    same function of the step wherever it is built (inline or in a data-loading worker process).
    """
    images, targets = [], []
    for slot, i in enumerate(entries):
        p = _aug(cfg, np.random.default_rng(_key(cfg.seed, _STREAM_AUG, step, slot)))
        images.append(_image_tensor(ds.images[i], p, device))
        targets.append(_to_target(ds, i, p, cfg, device))
    return images, targets


class _StepData(torch.utils.data.Dataset):
    """Item ``step``: ``(step, images, targets)`` of uncached training, built on the CPU.

    What a data-loading worker process computes (:class:`_Batches` with ``workers > 0``): the same
    order (:class:`_Sampler`) and keyed augmentations as the inline path, so the batches are equal.
    """

    def __init__(self, ds: TrainSet, cfg: TrainConfig) -> None:
        self.ds, self.cfg = ds, cfg
        self.sampler = _Sampler(len(ds), cfg.seed)

    def __len__(self) -> int:
        return self.cfg.iterations

    def __getitem__(self, step: int) -> tuple[int, list[torch.Tensor], list[dict]]:
        entries = self.sampler.batch(step, self.cfg.batch_size)
        return (step, *_augmented_batch(self.ds, self.cfg, entries, step, torch.device("cpu")))


def _worker_init(_worker_id: int) -> None:
    """A data-loading worker computes on one thread (the workers run side by side)."""
    import cv2

    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def data_workers_for(cfg: TrainConfig, device: torch.device) -> int:
    """How many data-loading worker processes :func:`train` uses when not told: 0 means inline.

    Uncached training on CUDA (the ``paper`` recipe) builds its augmented batches in up to 4 worker
    processes (one CPU core left to the training process); everything else builds its batches
    inline (a cached step reads features already on the device; on a CPU the workers would take
    cores from the training itself).
    """
    import os

    if device.type != "cuda" or cfg.uses_cache:
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(0, min(4, cores - 1))


class _FeatureCache:
    """Frozen-body features per (image, variant), stored in float16 to halve memory.

    With the whole body frozen, the entries are the body's outputs (the FPN inputs). With only
    the first ``k`` blocks frozen, they are the FPN inputs those blocks produce plus the output
    of block ``k - 1`` (key :data:`_BOUNDARY`), on which the trainable blocks run each step.
    """

    def __init__(self, model, ds: TrainSet, cfg: TrainConfig, device: torch.device, progress: bool) -> None:
        self.params: list[AugParams] = []
        self.feats: list[OrderedDict[str, torch.Tensor]] = []
        self.index: list[tuple[int, int]] = []
        body, transform = model.backbone.body, model.transform
        body.eval()
        frozen = frozen_body_blocks(model, cfg)
        self.partial = len(frozen) < len(list(body.children()))
        layout = torch.contiguous_format
        if cfg.fast_kernels:  # the same features: batch norms folded, channels-last (oneDNN) layout
            layout = torch.channels_last
            frozen = [(name, fold_frozen_bn(module)) for name, module in frozen]
            body = body if self.partial else fold_frozen_bn(body)
        returns = body.return_layers
        total = len(ds) * cfg.aug_variants
        with torch.no_grad(), _progress(progress, total, "caching features") as bar:
            for i in range(len(ds)):
                for v in range(cfg.aug_variants):
                    p = (
                        AugParams()
                        if v == 0
                        else _aug(cfg, np.random.default_rng(_key(cfg.seed, _STREAM_VARIANT, i, v)))
                    )
                    x = _image_tensor(ds.images[i], p, device)
                    il, _ = transform([x])
                    if self.partial:
                        f, h = OrderedDict(), il.tensors.contiguous(memory_format=layout)
                        for name, module in frozen:
                            h = module(h)
                            if name in returns:
                                f[returns[name]] = h
                        f[_BOUNDARY] = h
                    else:
                        f = body(il.tensors.contiguous(memory_format=layout))
                    self.feats.append(
                        OrderedDict((k, t[0].to(torch.float16).contiguous()) for k, t in f.items())
                    )
                    self.params.append(p)
                    self.index.append((i, v))
                    bar(1)
        self.num_frozen = len(frozen)
        self.padded = tuple(il.tensors.shape[-2:])
        self.image_hw = (cfg.image_size[1], cfg.image_size[0])

    def __len__(self) -> int:
        return len(self.index)


class _progress:
    """A rich progress bar (or nothing), used as ``with _progress(...) as advance:``."""

    def __init__(self, enabled: bool, total: int, label: str, start: int = 0) -> None:
        self.enabled, self.total, self.label, self.start = enabled, total, label, start
        self._bar = None

    def __enter__(self):
        if not self.enabled:
            return lambda n=1, **kw: None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            transient=False,
        )
        self._bar.__enter__()
        task = self._bar.add_task(self.label, total=self.total, completed=self.start, info="")

        def advance(n: int = 1, **fields: Any) -> None:
            info = "  ".join(f"{k} {v}" for k, v in fields.items())
            self._bar.update(task, advance=n, info=info)

        return advance

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)


def _cached_losses(model, cache: _FeatureCache, entries: list[int], targets: list[dict]) -> dict:
    from torchvision.models.detection.image_list import ImageList

    feats = OrderedDict(
        (k, torch.stack([cache.feats[e][k].float() for e in entries])) for k in cache.feats[entries[0]]
    )
    if cache.partial:
        body = model.backbone.body
        h = feats.pop(_BOUNDARY)
        for name, module in list(body.named_children())[cache.num_frozen :]:
            h = module(h)
            if name in body.return_layers:
                feats[body.return_layers[name]] = h
    feats = model.backbone.fpn(feats)
    b = len(entries)
    h, w = cache.padded
    sizes = [cache.image_hw] * b
    images = ImageList(feats["0"].new_zeros(1, 1, 1, 1).expand(b, 3, h, w), sizes)
    proposals, rpn_losses = model.rpn(images, feats, targets)
    _, roi_losses = model.roi_heads(feats, proposals, images.image_sizes, targets)
    return {**rpn_losses, **roi_losses}


@dataclass
class _Batch:
    """One step's inputs: the targets plus either augmented images or rows of the feature cache.

    Attributes:
        step: The step (0-based).
        targets: Per image, ``boxes`` (N,4) float xyxy px, ``labels`` (N,) int64, ``masks`` (N,H,W) uint8.
        images: Uncached training: augmented images, each (3,H,W) float32 in [0, 1].
        entries: Cached training: rows of ``cache`` (an image under one augmentation variant).
        cache: The frozen-body feature cache the entries index.
        device: Where the step runs.
        amp: The autocast dtype of the forward pass (None: float32).
    """

    step: int
    targets: list[dict]
    images: list[torch.Tensor] | None = None
    entries: list[int] | None = None
    cache: _FeatureCache | None = None
    device: torch.device | None = None
    amp: torch.dtype | None = None


class _Batches:
    """The batch of every step, keyed by (seed, step): rows of the feature cache, or augmented images.

    Builds the feature cache (the slow part of setting up a cached run) when ``cfg.uses_cache``.
    """

    def __init__(
        self,
        model,
        ds: TrainSet,
        cfg: TrainConfig,
        device: torch.device,
        progress: bool,
        amp: torch.dtype | None = None,
        workers: int = 0,
    ) -> None:
        self.ds, self.cfg, self.device, self.amp = ds, cfg, device, amp
        self.cache = None
        if cfg.uses_cache:
            self.cache = _FeatureCache(model, ds, cfg, device, progress)
            model.backbone.body.eval()
        self.sampler = _Sampler(len(self.cache) if self.cache is not None else len(ds), cfg.seed)
        self.workers = 0 if self.cache is not None else max(0, int(workers))
        self._loader: Any = None
        self._next = -1

    def __call__(self, step: int) -> _Batch:
        ds, cfg, cache, device = self.ds, self.cfg, self.cache, self.device
        if self.workers:
            images, targets = self._loaded(step)
            return _Batch(step, targets, images=images, device=device, amp=self.amp)
        entries = self.sampler.batch(step, cfg.batch_size)
        if cache is not None:
            targets = [_to_target(ds, cache.index[e][0], cache.params[e], cfg, device) for e in entries]
            return _Batch(step, targets, entries=entries, cache=cache, device=device, amp=self.amp)
        images, targets = _augmented_batch(ds, cfg, entries, step, device)
        return _Batch(step, targets, images=images, device=device, amp=self.amp)

    def _loaded(self, step: int) -> tuple[list[torch.Tensor], list[dict]]:
        """Step ``step``'s images and targets from the worker processes, copied to the device.

        The loader runs ahead over steps ``step .. iterations - 1`` (restarted if asked out of
        order); on CUDA its batches are in pinned memory and copied without blocking.
        """
        if self._loader is None or step != self._next:
            self.close()
            cuda = self.device.type == "cuda"
            loader = torch.utils.data.DataLoader(
                _StepData(self.ds, self.cfg),
                batch_size=None,
                sampler=range(step, self.cfg.iterations),
                num_workers=self.workers,
                pin_memory=cuda,
                prefetch_factor=4,
                worker_init_fn=_worker_init,
                # spawned, not forked: a fork of a process with OpenCV's or torch's threads (or CUDA)
                # can deadlock in the child (seen: cv2.setNumThreads hung in a forked worker)
                multiprocessing_context="spawn",
                # the loader's own seed draw must not consume the global torch RNG the step reseeded
                generator=torch.Generator().manual_seed(self.cfg.seed),
            )
            self._loader = iter(loader)
        got, images, targets = next(self._loader)
        if got != step:  # cannot happen with a sequential sampler; a wrong batch must never train
            raise TwingapError(f"data loader returned step {got} for step {step}")
        self._next = step + 1
        nb = self.device.type == "cuda"
        images = [x.to(self.device, non_blocking=nb) for x in images]
        targets = [{k: v.to(self.device, non_blocking=nb) for k, v in t.items()} for t in targets]
        return images, targets

    def close(self) -> None:
        """Stop the data-loading worker processes (if any are running)."""
        loader, self._loader = self._loader, None
        if loader is not None and hasattr(loader, "_shutdown_workers"):
            loader._shutdown_workers()


def _forward(model, batch: _Batch) -> dict[str, torch.Tensor]:
    """The model's training losses on a batch (from cached features when the batch has them).

    Under autocast the losses are computed in mixed precision and returned as float32.
    """
    with _autocast(batch.device, batch.amp):
        if batch.cache is not None:
            losses = _cached_losses(model, batch.cache, batch.entries, batch.targets)
        else:
            losses = model(batch.images, batch.targets)
    return {k: v.float() for k, v in losses.items()}


def _train_step(
    model, batch: _Batch, optimizer: torch.optim.Optimizer, cfg: TrainConfig, sync: bool = True
) -> StepOutput:
    """One SGD step on one batch: forward, loss check, backward, gradient clipping, update.

    Args:
        model: The model (training mode).
        batch: The step's inputs.
        optimizer: SGD over the trainable parameters.
        cfg: The training configuration (gradient clipping).
        sync: Check the loss here and return the gradient norm as a float (both read the device).
            False leaves both on the device: the loss log checks the loss when it reads a block of
            steps (:meth:`twingap.train.hooks.TrainState.resolve_log`: a deferred log, every
            ``flush_every`` steps or a group's read) and the gradient
            norm stays a tensor, so a CUDA step queues its kernels without waiting for them.

    Raises:
        TwingapError: If ``sync`` and the loss is not finite (the run diverged).
    """
    losses = _forward(model, batch)
    loss = sum(losses.values())
    if sync and not torch.isfinite(loss):
        raise diverged(batch.step, loss.item())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm: float | torch.Tensor = float("nan")
    if cfg.clip_grad_norm > 0:
        params = [p for g in optimizer.param_groups for p in g["params"]]
        grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad_norm)
        grad_norm = float(grad_norm) if sync else grad_norm.detach()
    optimizer.step()
    return StepOutput(losses, loss, grad_norm)


def log_flush_every(cfg: TrainConfig, device: torch.device) -> int:
    """Steps whose losses the log reads from the device at once: ``cfg.log_every`` on CUDA, else 1.

    Reading a loss waits for the step's kernels; on a CPU that costs nothing, on a GPU it would
    stall the queue every step. The log's rows are the same either way (one per step).
    """
    return max(1, cfg.log_every) if device.type == "cuda" else 1


def _step(state: TrainState, batches: _Batches, hooks: list[HookBase], step: int) -> None:
    """Step ``step`` of a run between its hooks; reseeds torch from (seed, step) first.

    The reseed makes a resumed run draw what an uninterrupted one does, and a run stepped in a
    group (:mod:`twingap.train.group`) draw what it draws alone.
    """
    state.step, state.step_started = step, time.perf_counter()
    torch.manual_seed(_key(state.cfg.seed, _STREAM_STEP, step))
    for h in hooks:
        h.before_step(state)
    state.out = _train_step(state.model, batches(step), state.optimizer, state.cfg, sync=not state.deferred)
    for h in hooks:
        h.after_step(state)


def _run_loop(state: TrainState, batches: _Batches, hooks: list[HookBase]) -> None:
    """Steps ``state.start`` .. ``cfg.iterations - 1``, each a :func:`_step` between the hooks."""
    for h in hooks:
        h.before_train(state)
    for step in range(state.start, state.cfg.iterations):
        _step(state, batches, hooks, step)
    for h in hooks:
        h.after_train(state)


def _hooks(cfg: TrainConfig, run_dir: Path, d_hash: str, show: Any, flush_every: int = 1) -> list[HookBase]:
    """The hooks of a training run, in the order they run: lr, EMA, loss log, checkpoint."""
    hooks: list[HookBase] = [LRSchedule(lambda step: lr_at(cfg, step))]
    if cfg.ema_decay > 0:
        hooks.append(EMA(cfg.ema_decay, int(cfg.ema_start * cfg.iterations)))
    log = LossLog(run_dir / "train_log.csv", show, flush_every)
    return [*hooks, log, Checkpointer(run_dir / "checkpoint.pt", d_hash)]


def _check_run_dir(run_dir: Path, resume: bool) -> None:
    if run_dir.exists() and not run_dir.is_dir():
        raise TwingapError("run folder path exists and is not a folder", run_dir)
    if not resume and run_dir.is_dir() and any(run_dir.iterdir()):
        raise TwingapError("run folder is not empty (use --resume to continue it, or a new folder)", run_dir)


def _run_meta(cfg: TrainConfig, ds: TrainSet, dataset_dir: Path, d_hash: str, device: torch.device) -> dict:
    """The ``meta.json`` of a run as it starts (seed, versions, dataset, label map, device)."""
    return {
        "seed": cfg.seed,
        "versions": package_versions(),
        "dataset": str(dataset_dir.resolve()),
        "dataset_hash": d_hash,
        "num_images": len(ds),
        "num_instances": int(sum(len(x) for x in ds.labels)),
        "label_map": {str(k): v for k, v in ds.label_to_cat.items()},
        "category_names": {str(k): v for k, v in ds.cat_names.items()},
        "device": str(device),
        "threads": torch.get_num_threads(),
        "finished": False,
    }


def _initial_state(
    cfg: TrainConfig, num_classes: int, device: torch.device, amp: torch.dtype | None = None
) -> TrainState:
    """The model (seeded head initialisation) and its SGD optimiser over the trainable parameters.

    With ``cfg.channels_last`` the weights take the NHWC layout; under autocast (``amp``) the RPN head
    and the box predictor return float32, so that box decoding is not rounded to bfloat16, and with
    ``cfg.fast_kernels`` the strided depthwise convolutions compute in float32 (:func:`float32_depthwise`)
    and the frozen batch norms of the trainable blocks are folded into their convolutions on the fly
    (:func:`fold_frozen_bn_live`).
    """
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, num_classes).to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    if amp is not None:  # box coordinates stay float32 (see _float32_outputs)
        if cfg.fast_kernels:
            float32_depthwise(model)
        model.rpn.head.register_forward_hook(_float32_outputs)
        model.roi_heads.box_predictor.register_forward_hook(_float32_outputs)
    if cfg.fast_kernels:
        fold_frozen_bn_live(model)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return TrainState(cfg, model, optim)


@dataclass
class _Run:
    """A training run set up and ready to step (see :func:`_open_run`).

    Attributes:
        cfg: The validated configuration.
        dataset_dir: The training set's folder.
        run_dir: The run folder.
        ds: The loaded training set.
        d_hash: The training set's content hash (stored in checkpoints).
        meta: The ``meta.json`` written at the start (updated by :func:`_close_run`).
        state: The model, optimiser and log (restored from the checkpoint on resume).
        batches: The batch of every step (feature cache built).
        t_start: ``time.perf_counter()`` when the setup began.
        t_cache: Wall seconds of building the batches (feature cache).
        c_cache: Process CPU seconds of building the batches.
    """

    cfg: TrainConfig
    dataset_dir: Path
    run_dir: Path
    ds: TrainSet
    d_hash: str
    meta: dict[str, Any]
    state: TrainState
    batches: _Batches
    t_start: float
    t_cache: float
    c_cache: float


def _open_run(
    dataset_dir: Path,
    run_dir: Path,
    cfg: TrainConfig,
    resume: bool,
    progress: bool,
    data_workers: int | None = None,
) -> _Run | Path:
    """Set a run up to its first step: folder, dataset, config and meta files, model, checkpoint, cache.

    ``data_workers`` as in :func:`train`; the caller closes ``run.batches`` (its worker processes).

    Returns:
        The run, or the final weights' path when ``resume`` finds the run finished.

    Raises:
        TwingapError: As :func:`train`.
    """
    if data_workers is not None and data_workers < 0:
        raise TwingapError(f"data_workers must be >= 0 (0 builds batches inline), got {data_workers}")
    final = run_dir / "model_final.pt"
    _check_run_dir(run_dir, resume)
    if resume and final.is_file():
        return final
    t_start = time.perf_counter()
    ds = load_train_set(dataset_dir, cfg.image_size)
    d_hash = dataset_hash(dataset_dir)
    device = resolve_device(cfg.device)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    ckpt_path = run_dir / "checkpoint.pt"
    ckpt = load_checkpoint(ckpt_path, cfg, d_hash, dataset_dir) if resume and ckpt_path.is_file() else None

    amp = autocast_dtype(cfg, device)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(run_dir / "config.json", cfg.to_dict())
    meta = _run_meta(cfg, ds, dataset_dir, d_hash, device)
    meta["amp_dtype_used"] = str(amp).removeprefix("torch.") if amp is not None else "float32"
    workers = 0 if cfg.uses_cache else data_workers_for(cfg, device) if data_workers is None else data_workers
    meta["data_workers"] = workers
    write_json_atomic(run_dir / "meta.json", meta)

    state = _initial_state(cfg, ds.num_classes, device, amp)
    if ckpt is not None:
        restore(state, ckpt)
    t_cache, c_cache = time.perf_counter(), time.process_time()
    batches = _Batches(state.model, ds, cfg, device, progress, amp, workers)
    t_cache, c_cache = time.perf_counter() - t_cache, time.process_time() - c_cache
    return _Run(cfg, dataset_dir, run_dir, ds, d_hash, meta, state, batches, t_start, t_cache, c_cache)


def _close_run(run: _Run, t_loop: float, c_loop: float, **meta: Any) -> Path:
    """Check a run whose loop finished, save its final weights and finish its ``meta.json``.

    Args:
        run: The run (its loop finished).
        t_loop: Wall seconds of the training loop (this session).
        c_loop: Process CPU seconds of the training loop.
        meta: More entries of ``meta.json``.

    Raises:
        TwingapError: If the run did not converge (:func:`check_converged`).
    """
    cfg, state = run.cfg, run.state
    check_converged(cfg, state.log_rows, run.run_dir)
    final = run.run_dir / "model_final.pt"
    weights = {"model": state.final_weights(), "config": cfg.to_dict(), "label_map": run.ds.label_to_cat}
    with atomic_path(final) as tmp:
        torch.save(weights, tmp)
    run.meta.update(
        finished=True,
        seconds_total=round(time.perf_counter() - run.t_start, 3),
        seconds_cache=round(run.t_cache, 3),
        seconds_loop=round(t_loop, 3),
        cpu_seconds_cache=round(run.c_cache, 3),
        cpu_seconds_loop=round(c_loop, 3),
        steps_this_session=cfg.iterations - state.start,
        **meta,
    )
    write_json_atomic(run.run_dir / "meta.json", run.meta)
    return final


def train(
    dataset_dir: str | Path,
    run_dir: str | Path,
    config: TrainConfig | None = None,
    resume: bool = False,
    progress: bool = True,
    data_workers: int | None = None,
) -> Path:
    """Train a Mask R-CNN on a COCO dataset folder; returns the final weights' path.

    Args:
        dataset_dir: Folder with ``coco.json`` (category ids = YCB-Video class ids) and images.
        run_dir: Output folder (created; must be empty unless ``resume``).
        config: Training configuration (default: the ``quick`` preset).
        resume: Continue from ``run_dir/checkpoint.pt`` (and return at once if finished). A
            resumed run ends with the same weights, bit for bit, as an uninterrupted one on
            the same machine and thread count.
        progress: Show a rich progress bar with loss and images/s.
        data_workers: Worker processes that build uncached training's augmented batches (0: inline;
            None: :func:`data_workers_for`, i.e. up to 4 on CUDA). The batches, and so the run, are
            the same whatever the number; a cached run always builds its batches inline.

    Returns:
        Path of ``run_dir/model_final.pt``.

    Raises:
        TwingapError: On invalid datasets, a non-empty run folder without ``resume``, a resume
            whose config or dataset differs from the checkpoint's, or an unavailable device.
    """
    cfg = (config or PRESETS["quick"]).validate()
    run = _open_run(Path(dataset_dir), Path(run_dir), cfg, resume, progress, data_workers)
    if isinstance(run, Path):
        return run
    flush = log_flush_every(cfg, run.batches.device)
    run.state.deferred = flush > 1  # CUDA: the log reads the device every `flush` steps, not every step
    t_loop, c_loop = time.perf_counter(), time.process_time()
    try:
        with _progress(progress, cfg.iterations, "training", start=run.state.start) as advance:
            _run_loop(run.state, run.batches, _hooks(cfg, run.run_dir, run.d_hash, advance, flush))
    finally:
        run.batches.close()
    t_loop, c_loop = time.perf_counter() - t_loop, time.process_time() - c_loop
    return _close_run(run, t_loop, c_loop)


#: Runs shorter than this are not checked for convergence (too few steps to judge).
MIN_STEPS_CHECKED = 100


def loss_ratio(log_rows: list[dict[str, float]]) -> float:
    """Mean loss of the last 10% of steps over the mean of the first 10% (lower = learned more)."""
    losses = np.array([r["loss"] for r in log_rows], dtype=np.float64)
    k = max(1, len(losses) // 10)
    return float(losses[-k:].mean() / max(losses[:k].mean(), 1e-12))


def check_converged(cfg: TrainConfig, log_rows: list[dict[str, float]], run_dir: Path) -> None:
    """Refuse a run whose loss did not come down (a collapsed run), so it never counts as a result.

    A run at a too-high learning rate can stay finite yet collapse: its classifier loss jumps
    and the model ends up predicting nothing, which a study would otherwise report as an AP
    loss of the condition it was trained on.

    Raises:
        TwingapError: If ``cfg.max_loss_ratio`` > 0, the run has at least
            :data:`MIN_STEPS_CHECKED` steps and :func:`loss_ratio` exceeds ``cfg.max_loss_ratio``.
    """
    if cfg.max_loss_ratio <= 0 or len(log_rows) < MIN_STEPS_CHECKED:
        return
    ratio = loss_ratio(log_rows)
    if ratio > cfg.max_loss_ratio:
        raise TwingapError(
            f"training did not converge: the last 10% of steps kept {ratio:.0%} of the first 10%'s "
            f"loss (limit {cfg.max_loss_ratio:.0%}); see train_log.csv; lower the lr or clip_grad_norm",
            run_dir,
        )


def read_run(run_dir: str | Path) -> tuple[TrainConfig, dict[str, Any], dict[int, int]]:
    """Load a finished run's config, meta and label map (model label -> YCB-Video id).

    Raises:
        TwingapError: If the run folder is missing or has no final weights.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "model_final.pt").is_file():
        raise TwingapError("not a finished training run (model_final.pt missing)", run_dir)
    cfg = TrainConfig.from_dict(read_json(run_dir / "config.json"))
    meta = read_json(run_dir / "meta.json")
    label_map = {int(k): int(v) for k, v in meta["label_map"].items()}
    return cfg, meta, label_map
