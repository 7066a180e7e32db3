"""Faster CPU kernels for the same maths.

RoI-Align by ``grid_sample``, float32 depthwise convolutions under bfloat16 autocast, and frozen
batch norms folded into their convolutions for inference.

Each is a different way of computing the same function (the results differ by float rounding only),
chosen by :attr:`twingap.train.config.TrainConfig.fast_kernels`. Measured on one core of an AMD EPYC
Zen 4 (AVX512-BF16), shapes of the ``quick`` recipe (``benchmarks/train_speed.py``):

* torchvision's CPU ``roi_align`` backward is a scalar loop: forward + backward of the box head's
  pooling (192 RoIs x 64 channels x 7 x 7 from a stride-8 map of a batch of 4) took 29 ms; the same
  bilinear samples taken with ``torch.nn.functional.grid_sample`` (vectorised forward and backward)
  took 15 ms.
* oneDNN's bfloat16 depthwise 3x3 convolution with stride 2 has a slow backward: 21.5 ms for a
  (4, 576, 16, 20) input against 1.2 ms in float32 (channels-last); at stride 1 the two are alike
  (5.3 / 6.0 ms). Under autocast the strided depthwise convolutions therefore run in float32; the
  stride-1 ones stay in bfloat16 (keeping all 17 in float32 made a training step about 4% slower,
  mostly casting their inputs and outputs).
* The trainable inverted residuals apply each ``FrozenBatchNorm2d`` as a multiply and add over the
  activation map, forward and backward. Recomputing the folded weights every forward
  (:func:`fold_frozen_bn_live`, a weight-sized multiply) removes those passes: a step about 5% faster.
* The cached frozen blocks apply each ``FrozenBatchNorm2d`` as a separate multiply and add over the
  whole feature map (about half of the feature cache's time); folded into the preceding
  convolution's weights they cost nothing (frozen: folding is exact up to rounding). With the input
  in channels-last layout as well, caching an entry took 15 ms instead of 34. (Prediction gained
  nothing measurable from folding, so it does not fold.)
"""

from __future__ import annotations

import copy
import itertools
import types
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import FrozenBatchNorm2d, MultiScaleRoIAlign
from torchvision.ops.poolers import _convert_to_roi_format, _filter_input, _setup_scales


def roi_align_sampled(
    feature: Tensor, rois: Tensor, output_size: tuple[int, int], spatial_scale: float, sampling_ratio: int
) -> Tensor:
    """The ``roi_align`` of torchvision (``aligned=False``, ``sampling_ratio >= 1``) by ``grid_sample``.

    Each output bin averages ``sampling_ratio**2`` bilinear samples at the centres of a regular
    sub-grid of the bin; as in torchvision, sample coordinates inside ``[-1, H] x [-1, W]`` are
    clamped to the feature map and samples further out count 0 (a box narrower than one feature
    pixel is widened to one, which can reach past the map's edge).

    Args:
        feature: Feature map (B, C, H, W), H and W at least 2.
        rois: (R, 5) rows ``[batch_index, x1, y1, x2, y2]`` in input-image pixels.
        output_size: Pooled (height, width).
        spatial_scale: Feature-map pixels per input-image pixel (1 / stride).
        sampling_ratio: Samples per bin side (>= 1).

    Returns:
        (R, C, output_height, output_width) in ``feature``'s dtype.
    """
    b, c, h, w = feature.shape
    ph, pw = output_size
    sr = sampling_ratio
    if rois.numel() == 0:
        return feature.new_zeros((0, c, ph, pw))
    box = rois[:, 1:].float() * spatial_scale
    x1, y1 = box[:, 0], box[:, 1]
    rw = (box[:, 2] - x1).clamp(min=1.0)
    rh = (box[:, 3] - y1).clamp(min=1.0)
    gx = (torch.arange(pw * sr, device=rois.device, dtype=torch.float32) + 0.5) / (pw * sr)
    gy = (torch.arange(ph * sr, device=rois.device, dtype=torch.float32) + 0.5) / (ph * sr)
    xs = x1[:, None] + rw[:, None] * gx  # (R, pw * sr) sample columns, feature-map pixels
    ys = y1[:, None] + rh[:, None] * gy  # (R, ph * sr) sample rows
    in_y = ((ys >= -1) & (ys <= h)).float()
    in_x = ((xs >= -1) & (xs <= w)).float()
    inside = in_y[:, None, :, None] * in_x[:, None, None, :]  # (R, 1, ph * sr, pw * sr)
    # grid_sample with align_corners=True maps -1 / +1 to the centres of the first / last pixel
    xs = xs * (2.0 / (w - 1)) - 1.0
    ys = ys * (2.0 / (h - 1)) - 1.0
    # (R, ph * sr, pw * sr, 2): x then y
    grid = torch.stack(torch.broadcast_tensors(xs[:, None, :], ys[:, :, None]), dim=-1)
    image_of = rois[:, 0].long()
    pooled, order = [], []
    source = feature.float()
    for i in range(b):
        idx = torch.nonzero(image_of == i).squeeze(1)
        if idx.numel() == 0:
            continue
        g = grid[idx].reshape(1, idx.numel() * ph * sr, pw * sr, 2)
        s = F.grid_sample(source[i : i + 1], g, mode="bilinear", padding_mode="border", align_corners=True)
        pooled.append(s.reshape(c, idx.numel(), ph * sr, pw * sr).transpose(0, 1))
        order.append(idx)
    stacked, idx = torch.cat(pooled), torch.cat(order)
    out = torch.empty_like(stacked).index_copy(0, idx, stacked)
    if not bool(inside.all()):  # torchvision's zero for samples beyond one pixel outside the map
        out = out * inside
    if sr > 1:
        out = F.avg_pool2d(out, sr)
    return out.to(feature.dtype)


class SampledRoIAlign(MultiScaleRoIAlign):
    """``MultiScaleRoIAlign`` whose CPU path pools with :func:`roi_align_sampled`.

    Same levels (FPN paper, eq. 1), same samples; on CUDA, with adaptive sampling
    (``sampling_ratio <= 0``) or with a map thinner than 2 pixels it is torchvision's own.
    """

    def forward(
        self, x: dict[str, Tensor], boxes: list[Tensor], image_shapes: list[tuple[int, int]]
    ) -> Tensor:
        """Pool every box from its level; see :class:`torchvision.ops.MultiScaleRoIAlign`."""
        feats = _filter_input(x, self.featmap_names)
        if feats[0].is_cuda or self.sampling_ratio < 1 or min(min(f.shape[-2:]) for f in feats) < 2:
            return super().forward(x, boxes, image_shapes)
        if self.scales is None or self.map_levels is None:
            self.scales, self.map_levels = _setup_scales(
                feats, image_shapes, self.canonical_scale, self.canonical_level
            )
        rois = _convert_to_roi_format(boxes)
        with torch.autocast(feats[0].device.type, enabled=False):
            size, ratio = self.output_size, self.sampling_ratio
            if len(feats) == 1:
                return roi_align_sampled(feats[0], rois, size, self.scales[0], ratio)
            levels = self.map_levels(boxes)
            out = feats[0].new_zeros((len(rois), feats[0].shape[1], *size))
            for level, (feat, scale) in enumerate(zip(feats, self.scales, strict=True)):
                idx = torch.where(levels == level)[0]
                if idx.numel():
                    pooled = roi_align_sampled(feat, rois[idx], size, scale, ratio)
                    out[idx] = pooled.to(out.dtype)
        return out


def _float32_forward(self: nn.Conv2d, x: Tensor) -> Tensor:
    with torch.autocast(x.device.type, enabled=False):
        return nn.Conv2d.forward(self, x.float())


def float32_depthwise(model: nn.Module) -> int:
    """Make every strided depthwise ``Conv2d`` of ``model`` compute in float32 even under autocast.

    oneDNN's bfloat16 backward is slow only for the strided ones; a stride-1 depthwise convolution
    stays in bfloat16, which also saves the casts of its input and output. The modules keep their
    parameters and state-dict keys; only their ``forward`` changes.

    Returns:
        How many convolutions were changed.
    """
    n = 0
    for m in model.modules():
        depthwise = type(m) is nn.Conv2d and m.groups > 1 and m.groups == m.in_channels == m.out_channels
        if depthwise and m.stride != (1, 1):
            m.forward = types.MethodType(_float32_forward, m)
            n += 1
    return n


def fold_frozen_bn(module: nn.Module) -> nn.Module:
    """A copy of ``module`` with each frozen batch norm folded into the convolution before it.

    Each ``Conv2d`` directly followed by a ``FrozenBatchNorm2d`` inside an ``nn.Sequential`` absorbs
    it: weights scaled per output channel, a bias added, the norm replaced by ``nn.Identity``. For
    inference (the copy's parameters do not require grad); the weights keep their memory layout.
    """
    folded = copy.deepcopy(module)
    for seq, a, b in _conv_bn_pairs(folded):
        conv, bn = seq._modules[a], seq._modules[b]
        scale, shift = _bn_scale_shift(bn)
        fused = nn.Conv2d(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            conv.stride,
            conv.padding,
            conv.dilation,
            conv.groups,
            bias=True,
            padding_mode=conv.padding_mode,
        ).to(conv.weight.device)
        with torch.no_grad():
            fused.weight.copy_(conv.weight * scale[:, None, None, None])
            fused.bias.copy_(_folded_bias(conv, scale, shift))
            if _is_channels_last(conv.weight):
                fused.weight.data = fused.weight.data.contiguous(memory_format=torch.channels_last)
        seq._modules[a], seq._modules[b] = fused, nn.Identity()
    for p in folded.parameters():
        p.requires_grad_(False)
    return folded


def _live_folded_forward(self: nn.Conv2d, x: Tensor) -> Tensor:
    scale, shift = _bn_scale_shift(self._twingap_frozen_bn[0])
    return self._conv_forward(x, self.weight * scale[:, None, None, None], _folded_bias(self, scale, shift))


def _live_folded_float32_forward(self: nn.Conv2d, x: Tensor) -> Tensor:
    with torch.autocast(x.device.type, enabled=False):
        return _live_folded_forward(self, x.float())


def _identity_forward(self: nn.Module, x: Tensor) -> Tensor:
    return x


def fold_frozen_bn_live(model: nn.Module) -> int:
    """Fold each frozen batch norm into the trainable convolution before it, recomputed every forward.

    For training: a ``Conv2d`` directly followed by a ``FrozenBatchNorm2d`` (inside an ``nn.Sequential``)
    convolves with its weights scaled per output channel and adds the norm's shift as a bias, and the
    norm passes its input through. The weights stay the trained parameters (their gradient flows
    through the per-channel scale, a weight-sized multiply), so the function and its gradients are
    those of convolution then norm, up to float rounding; what goes is the norm's multiply and add
    over the whole activation map, forward and backward. Parameters, buffers and state-dict keys are
    unchanged. A depthwise convolution already set to float32 by :func:`float32_depthwise` stays in
    float32. Call after :func:`float32_depthwise`.

    Returns:
        How many convolution / norm pairs were folded.
    """
    n = 0
    for seq, a, b in _conv_bn_pairs(model):
        conv, bn = seq._modules[a], seq._modules[b]
        float32 = getattr(conv.forward, "__func__", None) is _float32_forward
        conv._twingap_frozen_bn = (bn,)  # a tuple: not registered as a submodule (keys unchanged)
        forward = _live_folded_float32_forward if float32 else _live_folded_forward
        conv.forward = types.MethodType(forward, conv)
        bn.forward = types.MethodType(_identity_forward, bn)
        n += 1
    return n


def _conv_bn_pairs(module: nn.Module) -> Iterator[tuple[nn.Sequential, str, str]]:
    """``(sequential, conv name, norm name)`` per ``Conv2d`` directly followed by a ``FrozenBatchNorm2d``.

    The modules of a pair are looked up when it is reached, so a caller may replace earlier pairs.
    """
    for seq in [m for m in module.modules() if isinstance(m, nn.Sequential)]:
        for a, b in itertools.pairwise(list(seq._modules)):
            if type(seq._modules[a]) is nn.Conv2d and isinstance(seq._modules[b], FrozenBatchNorm2d):
                yield seq, a, b


def _bn_scale_shift(bn: FrozenBatchNorm2d) -> tuple[Tensor, Tensor]:
    """Per-channel ``(scale, shift)`` with ``bn(x) == x * scale + shift``."""
    scale = bn.weight * (bn.running_var + bn.eps).rsqrt()
    return scale, bn.bias - bn.running_mean * scale


def _folded_bias(conv: nn.Conv2d, scale: Tensor, shift: Tensor) -> Tensor:
    """The bias of ``conv`` followed by a norm of ``(scale, shift)``, as one convolution's bias."""
    return shift if conv.bias is None else conv.bias * scale + shift


def _is_channels_last(t: Tensor) -> bool:
    return t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last)
