"""The fast kernels compute what the reference ones do (twingap.train.kernels)."""

from __future__ import annotations

import copy
from collections import OrderedDict

import pytest
import torch
from torchvision.models import mobilenet_v2
from torchvision.ops import FrozenBatchNorm2d, MultiScaleRoIAlign, roi_align

from twingap.train.config import ADDED_LATER, PRESETS, TrainConfig
from twingap.train.kernels import (
    SampledRoIAlign,
    float32_depthwise,
    fold_frozen_bn,
    fold_frozen_bn_live,
    roi_align_sampled,
)
from twingap.train.model import build_model


def _rois(n: int, batch: int, w: float, h: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * torch.tensor([w - 4, h - 4])
    wh = torch.rand(n, 2, generator=g) * torch.tensor([w / 2, h / 2]) + 0.3  # some boxes under 1 px
    x2y2 = torch.minimum(xy + wh, torch.tensor([w - 1, h - 1]))
    b = torch.randint(0, batch, (n, 1), generator=g).float()
    b[0] = batch - 1  # the last image always has a box; image 1 of 3 may have none
    return torch.cat([b, xy, x2y2], 1)


@pytest.mark.parametrize("ratio", [1, 2])
def test_roi_align_sampled_matches_torchvision(ratio: int) -> None:
    torch.manual_seed(0)
    feat = torch.randn(3, 8, 15, 20, dtype=torch.float64, requires_grad=True)
    rois = _rois(40, 3, 160.0, 120.0).double()
    ours = roi_align_sampled(feat, rois, (7, 7), 1 / 8, ratio)
    ref = roi_align(feat, rois, (7, 7), 1 / 8, ratio, aligned=False)
    assert ours.shape == (40, 8, 7, 7)
    assert ours.dtype == torch.float64
    torch.testing.assert_close(ours, ref.to(ours.dtype), atol=1e-5, rtol=1e-5)
    weights = torch.randn_like(ref)
    (g_ours,) = torch.autograd.grad((ours * weights).sum(), feat)
    (g_ref,) = torch.autograd.grad((ref * weights).sum(), feat)
    torch.testing.assert_close(g_ours, g_ref, atol=1e-4, rtol=1e-4)


def test_roi_align_sampled_no_boxes() -> None:
    out = roi_align_sampled(torch.zeros(2, 4, 8, 8), torch.zeros(0, 5), (7, 7), 0.25, 1)
    assert out.shape == (0, 4, 7, 7)


def test_sampled_multiscale_pool_matches_torchvision() -> None:
    torch.manual_seed(1)
    x = OrderedDict(
        (name, torch.randn(2, 6, 240 // s, 320 // s)) for name, s in (("0", 8), ("1", 16), ("2", 32))
    )
    g = torch.Generator().manual_seed(3)
    boxes = []
    for _ in range(2):  # small and large boxes, so several levels are used
        xy = torch.rand(30, 2, generator=g) * torch.tensor([200.0, 150.0])
        wh = torch.rand(30, 2, generator=g) * torch.tensor([120.0, 90.0]) + 4
        boxes.append(torch.cat([xy, xy + wh], 1))
    sizes = [(240, 320)] * 2
    ref = MultiScaleRoIAlign(["0", "1", "2"], 7, 1)(x, boxes, sizes)
    ours = SampledRoIAlign(["0", "1", "2"], 7, 1)(x, boxes, sizes)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def test_fold_frozen_bn_same_features() -> None:
    torch.manual_seed(2)
    net = mobilenet_v2(weights=None, norm_layer=FrozenBatchNorm2d).features[:8].eval()
    for m in net.modules():  # non-trivial statistics, so folding has something to do
        if isinstance(m, FrozenBatchNorm2d):
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.2, 0.2)
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    folded = fold_frozen_bn(net)
    assert not any(isinstance(m, FrozenBatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, FrozenBatchNorm2d) for m in net.modules())  # the original is untouched
    x = torch.rand(2, 3, 64, 80)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), net(x), atol=1e-4, rtol=1e-4)
        channels_last = fold_frozen_bn(net.to(memory_format=torch.channels_last))
        torch.testing.assert_close(channels_last(x.contiguous(memory_format=torch.channels_last)), net(x))


def test_float32_depthwise_under_autocast() -> None:
    model = build_model(PRESETS["quick"].replace(weights="none"), 4)
    keys = list(model.state_dict())
    depthwise = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1]
    assert len(depthwise) == 17  # MobileNetV2's 17 inverted residuals
    strided = [m for m in depthwise if m.stride == (2, 2)]
    assert float32_depthwise(model) == len(strided) == 4  # the stride-1 ones stay in bfloat16
    assert list(model.state_dict()) == keys
    x = torch.rand(1, strided[2].in_channels, 12, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert strided[2](x.bfloat16()).dtype == torch.float32
        plain = next(m for m in depthwise if m.stride == (1, 1) and m.in_channels > 32)
        assert plain(torch.rand(1, plain.in_channels, 12, 16)).dtype == torch.bfloat16
        assert torch.nn.functional.conv2d(x, torch.rand(2, x.shape[1], 1, 1)).dtype == torch.bfloat16


def _random_frozen_bn(model: torch.nn.Module) -> None:
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, FrozenBatchNorm2d):
            c = m.weight.shape[0]
            m.weight.copy_(torch.rand(c, generator=g) + 0.5)
            m.bias.copy_(torch.randn(c, generator=g))
            m.running_mean.copy_(torch.randn(c, generator=g))
            m.running_var.copy_(torch.rand(c, generator=g) + 0.5)


def test_fold_frozen_bn_live_same_function_and_gradients() -> None:
    net = mobilenet_v2(norm_layer=FrozenBatchNorm2d).features[7:11]  # 4 trainable inverted residuals
    _random_frozen_bn(net)
    folded = copy.deepcopy(net)
    keys = list(net.state_dict())
    assert fold_frozen_bn_live(folded) == 3 * 4  # expand, depthwise, project per block
    assert list(folded.state_dict()) == keys
    x = torch.rand(2, 32, 12, 16)
    y_ref, y = net(x), folded(x)
    torch.testing.assert_close(y, y_ref, rtol=1e-4, atol=1e-4)
    y_ref.square().sum().backward()
    y.square().sum().backward()
    for (name, p_ref), p in zip(net.named_parameters(), folded.parameters(), strict=True):
        torch.testing.assert_close(p.grad, p_ref.grad, rtol=1e-3, atol=1e-3, msg=name)


def test_fold_frozen_bn_live_keeps_float32_depthwise() -> None:
    net = mobilenet_v2(norm_layer=FrozenBatchNorm2d).features[7:9]
    _random_frozen_bn(net)
    assert float32_depthwise(net) == 1  # block 7's stride-2 depthwise
    fold_frozen_bn_live(net)
    depthwise = net[0].conv[1][0]
    x = torch.rand(1, depthwise.in_channels, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert depthwise(x.bfloat16()).dtype == torch.float32
        assert net[0].conv[0][0](torch.rand(1, 32, 8, 8)).dtype == torch.bfloat16


def test_fast_kernels_setting() -> None:
    assert PRESETS["quick"].fast_kernels
    assert ADDED_LATER["fast_kernels"] is False  # runs written before the setting existed used torchvision's
    old = TrainConfig().to_dict()
    del old["fast_kernels"]
    assert TrainConfig.from_dict(old).fast_kernels is False
    pools = build_model(PRESETS["quick"].replace(weights="none"), 3).roi_heads
    assert isinstance(pools.box_roi_pool, SampledRoIAlign) and isinstance(
        pools.mask_roi_pool, SampledRoIAlign
    )
    ref = build_model(PRESETS["quick"].replace(weights="none", fast_kernels=False), 3).roi_heads
    assert type(ref.box_roi_pool) is MultiScaleRoIAlign
