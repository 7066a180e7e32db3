"""The paper recipe's GPU path, checked on the CPU: worker-loaded batches, deferred loss log, bf16 choice."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from tests.tiny_train import TINY as TINY_TRAIN
from tests.tiny_train import train_interrupted

from twingap.errors import TwingapError
from twingap.train import engine
from twingap.train.config import PRESETS
from twingap.train.data import load_train_set
from twingap.train.engine import train
from twingap.train.paste import toy_dataset

#: The ``paper`` recipe (ResNet-50-FPN, uncached, every step a fresh augmentation) scaled down.
PAPER_TINY = PRESETS["paper"].replace(
    weights="none",
    image_size=(96, 72),
    iterations=4,
    batch_size=2,
    warmup_iters=1,
    rpn_pre_nms_train=200,
    rpn_post_nms_train=100,
    box_batch_per_image=32,
    fpn_channels=32,
    mask_head_channels=(32,),
    checkpoint_every=2,
    threads=1,
    device="cpu",
)

#: The training tests' tiny config, 7 steps.
TINY = TINY_TRAIN.replace(iterations=7)


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    torch.set_num_threads(1)
    return toy_dataset(tmp_path_factory.mktemp("toy") / "ds", n_images=5, size=(96, 72))


def _same_batch(a: engine._Batch, b: engine._Batch) -> None:
    assert a.step == b.step and len(a.images) == len(b.images) == len(a.targets) == len(b.targets)
    for x, y in zip(a.images, b.images, strict=True):
        assert x.dtype == y.dtype == torch.float32 and torch.equal(x, y)
    for s, t in zip(a.targets, b.targets, strict=True):
        assert s.keys() == t.keys()
        assert all(s[k].dtype == t[k].dtype and torch.equal(s[k], t[k]) for k in s)


def test_worker_loaded_batches_equal_inline_batches(toy):
    cfg = PAPER_TINY.replace(iterations=6)
    ds = load_train_set(toy, cfg.image_size)
    cpu = torch.device("cpu")
    inline = engine._Batches(None, ds, cfg, cpu, False)
    loaded = engine._Batches(None, ds, cfg, cpu, False, workers=2)
    try:
        # steps 0-5 cross an epoch (5 images, 2 per step); the loader runs ahead of the loop
        for step in range(6):
            torch.manual_seed(step)
            b = loaded(step)
            drawn = torch.rand(3)  # the loader took nothing from the torch RNG the loop reseeded
            torch.manual_seed(step)
            assert torch.equal(drawn, torch.rand(3))
            _same_batch(inline(step), b)
        # a resumed run asks for a later step first: the loader restarts there
        _same_batch(inline(3), loaded(3))
    finally:
        loaded.close()


def _state(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "model_final.pt", map_location="cpu", weights_only=False)["model"]


def _log(run: Path, drop: tuple[str, ...] = ("seconds",)) -> list[dict[str, str]]:
    with open(run / "train_log.csv") as f:
        return [{k: v for k, v in r.items() if k not in drop} for r in csv.DictReader(f)]


def test_paper_recipe_trains_the_same_with_data_workers(toy, tmp_path):
    inline = train(toy, tmp_path / "inline", PAPER_TINY, progress=False, data_workers=0).parent
    loaded = train(toy, tmp_path / "loaded", PAPER_TINY, progress=False, data_workers=2).parent
    a, b = _state(inline), _state(loaded)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _log(inline) == _log(loaded)
    assert json.loads((loaded / "meta.json").read_text())["data_workers"] == 2
    with pytest.raises(TwingapError, match="data_workers"):
        train(toy, tmp_path / "bad", PAPER_TINY, progress=False, data_workers=-1)


def test_paper_preset_bf16_on_cuda_float32_on_cpu_without_native_bf16(toy, tmp_path, monkeypatch):
    paper = PRESETS["paper"]
    assert paper.amp_dtype == "bfloat16" and paper.channels_last
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert engine.autocast_dtype(paper, torch.device("cuda")) == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert engine.autocast_dtype(paper, torch.device("cuda")) is None
    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.setattr(torch.cpu, name, lambda: False, raising=False)
    assert engine.autocast_dtype(paper, torch.device("cpu")) is None
    run = train(toy, tmp_path / "run", PAPER_TINY.replace(iterations=1), progress=False).parent
    meta = json.loads((run / "meta.json").read_text())
    assert meta["amp_dtype_used"] == "float32" and meta["data_workers"] == 0  # CPU: inline


def test_data_workers_only_for_uncached_training_on_cuda():
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert 0 <= engine.data_workers_for(PRESETS["paper"], cuda) <= 4
    assert engine.data_workers_for(PRESETS["paper"], cpu) == 0
    assert engine.data_workers_for(PRESETS["quick"], cuda) == 0  # cached: features already on the device
    assert engine.log_flush_every(PRESETS["paper"], cuda) == 10
    assert engine.log_flush_every(PRESETS["paper"], cpu) == 1


def _defer(monkeypatch, every: int) -> None:
    monkeypatch.setattr(engine, "log_flush_every", lambda cfg, device: every)


@pytest.mark.parametrize("cached", [True, False])
def test_deferred_loss_log_writes_the_same_log(toy, tmp_path, monkeypatch, cached):
    cfg = TINY.replace(cache_features=cached)
    per_step = train(toy, tmp_path / "per_step", cfg, progress=False).parent
    _defer(monkeypatch, 4)  # 7 steps, checkpoints after 3 and 6: reads after steps 3, 4, 6, 7
    deferred = train(toy, tmp_path / "deferred", cfg, progress=False).parent
    assert _log(per_step) == _log(deferred)
    assert len(_log(deferred)) == 7
    a, b = _state(per_step), _state(deferred)
    assert all(torch.equal(a[k], b[k]) for k in a)

    # killed before step 5: the checkpoint after step 3 holds the rows read before it was saved
    train_interrupted(monkeypatch, 5, toy, tmp_path / "resumed", cfg)
    resumed = train(toy, tmp_path / "resumed", cfg, resume=True, progress=False).parent
    assert _log(resumed) == _log(per_step)


@pytest.mark.parametrize("every", [1, 4])
def test_divergence_names_its_step_when_the_log_is_deferred(toy, tmp_path, monkeypatch, every):
    real_forward = engine._forward

    def nan_at_step_1(model, batch):
        losses = real_forward(model, batch)
        if batch.step == 1:
            losses = {k: v * float("nan") for k, v in losses.items()}
        return losses

    monkeypatch.setattr(engine, "_forward", nan_at_step_1)
    _defer(monkeypatch, every)
    with pytest.raises(TwingapError, match="training diverged at step 1 "):
        train(toy, tmp_path / "run", TINY, progress=False)
    assert not (tmp_path / "run" / "model_final.pt").exists()
