"""Training engine: finite decreasing losses, bit-identical resume, clear errors on bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from tests.tiny_train import TINY, train_interrupted

from twingap.cli import main
from twingap.errors import TwingapError
from twingap.train import engine
from twingap.train.config import PRESETS, TrainConfig, load_config
from twingap.train.engine import train
from twingap.train.model import build_model
from twingap.train.paste import toy_dataset


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    torch.set_num_threads(1)
    return toy_dataset(tmp_path_factory.mktemp("toy") / "ds", n_images=6, size=(96, 72))


def _losses(run: Path) -> list[float]:
    with open(run / "train_log.csv") as f:
        return [float(r["loss"]) for r in csv.DictReader(f)]


def test_losses_finite_and_decreasing(toy, tmp_path):
    cfg = TINY.replace(iterations=10)
    final = train(toy, tmp_path / "run", cfg, progress=False)
    assert final.is_file()
    losses = _losses(tmp_path / "run")
    assert len(losses) == 10
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-3:]) / 3 < losses[0]
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    assert meta["finished"] and meta["seed"] == 0 and len(meta["dataset_hash"]) == 64
    assert meta["label_map"] == {"1": 1, "2": 2, "3": 5}
    assert "torch" in meta["versions"]
    assert TrainConfig.from_dict(json.loads((tmp_path / "run" / "config.json").read_text())) == cfg


def _state(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "model_final.pt", map_location="cpu", weights_only=False)["model"]


@pytest.mark.parametrize(
    ("cached", "frozen_blocks", "fast"),
    [(True, 18, False), (True, 7, False), (False, 7, False), (True, 7, True)],
)
def test_resume_is_bit_identical(toy, tmp_path, monkeypatch, cached, frozen_blocks, fast):
    cfg = TINY.replace(cache_features=cached, frozen_blocks=frozen_blocks)
    if fast:  # the quick preset's bfloat16 autocast (where native) and channels-last resume exactly too
        cfg = cfg.replace(amp_dtype="bfloat16", channels_last=True)
    ref = train(toy, tmp_path / "ref", cfg, progress=False).parent

    train_interrupted(monkeypatch, 4, toy, tmp_path / "res", cfg)
    assert (tmp_path / "res" / "checkpoint.pt").is_file()
    assert not (tmp_path / "res" / "model_final.pt").exists()
    train(toy, tmp_path / "res", cfg, resume=True, progress=False)
    a, b = _state(ref), _state(tmp_path / "res")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert _losses(ref) == _losses(tmp_path / "res")
    # A finished run resumes to a no-op.
    assert train(toy, tmp_path / "res", cfg, resume=True, progress=False).is_file()


@pytest.mark.parametrize("frozen_blocks", [7, 14])
def test_partial_freeze_trains_only_later_blocks(toy, tmp_path, frozen_blocks):
    cfg = TINY.replace(iterations=3, checkpoint_every=0, frozen_blocks=frozen_blocks)
    torch.manual_seed(0)
    init = build_model(cfg, 4).state_dict()
    state = _state(train(toy, tmp_path / "run", cfg, progress=False).parent)
    body = [k for k in state if k.startswith("backbone.body.") and k.endswith(".weight")]
    frozen = [k for k in body if int(k.split(".")[2]) < frozen_blocks]
    later = [k for k in body if int(k.split(".")[2]) >= frozen_blocks]
    assert frozen and later
    assert all(torch.equal(state[k], init[k]) for k in frozen)
    # FrozenBatchNorm weights are buffers; the conv weights of the later blocks must move.
    moved = [k for k in later if "conv" in k and not torch.equal(state[k], init[k])]
    assert moved, "the blocks after the cache boundary did not train"


def test_same_seed_same_weights_other_seed_differs(toy, tmp_path):
    cfg = TINY.replace(iterations=2, checkpoint_every=0)
    a = _state(train(toy, tmp_path / "a", cfg, progress=False).parent)
    b = _state(train(toy, tmp_path / "b", cfg, progress=False).parent)
    c = _state(train(toy, tmp_path / "c", cfg.replace(seed=1), progress=False).parent)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def _grad_norms(run: Path) -> list[float]:
    with open(run / "train_log.csv") as f:
        return [float(r["grad_norm"]) for r in csv.DictReader(f)]


def test_gradient_clipping_bounds_the_update(toy, tmp_path):
    # The ROI heads' weight decay is tiny and the first step's momentum buffer is the gradient
    # itself, so step 0 moves the parameters by lr * the (clipped) gradient: with the global norm
    # clipped to 0.01 the ROI heads move by at most lr * 0.01; unclipped they move much further.
    cfg = TINY.replace(iterations=1, checkpoint_every=0, warmup_iters=0, ema_decay=0.0, weight_decay=0.0)
    torch.manual_seed(0)
    init = build_model(cfg, 4).state_dict()

    def moved(run: Path) -> float:
        state = _state(run)
        keys = [k for k in state if k.startswith("roi_heads.") and k.endswith("weight")]
        return sum(float((state[k] - init[k]).norm() ** 2) for k in keys) ** 0.5

    clipped = train(toy, tmp_path / "clip", cfg.replace(clip_grad_norm=0.01), progress=False).parent
    free = train(toy, tmp_path / "free", cfg.replace(clip_grad_norm=0.0), progress=False).parent
    assert 0 < moved(clipped) <= cfg.lr * 0.01 * 1.05  # 5% for float32 rounding
    assert moved(free) > 20 * moved(clipped)
    norm = _grad_norms(clipped)
    assert len(norm) == 1 and norm[0] > 0.2  # the logged norm is the one before clipping
    assert str(_grad_norms(free)[0]) == "nan"  # not computed when clipping is off


def test_negative_clip_is_refused():
    with pytest.raises(TwingapError, match="clip_grad_norm"):
        TrainConfig(clip_grad_norm=-1.0).validate()


def test_collapsed_run_is_refused(tmp_path):
    cfg = PRESETS["quick"]
    learned = [{"loss": 3.0 - 2.4 * i / 199} for i in range(200)]  # ends at 0.2 of its start
    collapsed = [{"loss": 3.0 if i < 20 else 2.5} for i in range(200)]  # stuck near its start
    assert engine.loss_ratio(learned) == pytest.approx(0.715 / 2.885, abs=0.005)
    engine.check_converged(cfg, learned, tmp_path)
    with pytest.raises(TwingapError, match="did not converge"):
        engine.check_converged(cfg, collapsed, tmp_path)
    engine.check_converged(cfg.replace(max_loss_ratio=0.0), collapsed, tmp_path)  # disabled
    engine.check_converged(cfg, collapsed[:50], tmp_path)  # too short to judge


def test_lr_schedule():
    cfg = PRESETS["quick"]
    lrs = [engine.lr_at(cfg, s) for s in range(cfg.iterations)]
    assert lrs[0] == pytest.approx(cfg.lr * cfg.warmup_factor)
    assert max(lrs) == pytest.approx(cfg.lr, rel=1e-3)
    assert lrs[-1] < 0.01 * cfg.lr


def _write_coco(root: Path, coco: dict) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "coco.json").write_text(json.dumps(coco))
    return root


def _cli(args: list[str], capsys) -> tuple[int, str]:
    code = main(args)
    return code, capsys.readouterr().err


def test_bad_datasets_exit_2(toy, tmp_path, capsys):
    good = json.loads((toy / "coco.json").read_text())
    cases = {
        "missing": (None, "coco.json not found"),
        "empty": ({"images": [], "annotations": [], "categories": good["categories"]}, "no images"),
        "noanns": ({**good, "annotations": []}, "no annotations"),
        "nocats": ({**good, "categories": []}, "no categories"),
        "badcat": (
            {**good, "categories": [c for c in good["categories"] if c["id"] != 5]},
            "missing from categories",
        ),
    }
    for name, (coco, msg) in cases.items():
        root = tmp_path / name
        root.mkdir()
        if coco is not None:
            _write_coco(root, coco)
        code, err = _cli(["train", str(root), "-o", str(tmp_path / f"run_{name}"), "--no-progress"], capsys)
        assert code == 2, name
        assert msg in err, (name, err)
        assert len(err.strip().splitlines()) == 1, err


def test_nonempty_run_dir_and_bad_options_exit_2(toy, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "x").write_text("x")
    code, err = _cli(["train", str(toy), "-o", str(run), "--no-progress"], capsys)
    assert code == 2 and "--resume" in err
    code, err = _cli(["train", str(toy), "-o", str(tmp_path / "r2"), "--model", "vgg"], capsys)
    assert code == 2 and "unknown model" in err
    code, err = _cli(["train", str(toy), "-o", str(tmp_path / "r3"), "--preset", "huge"], capsys)
    assert code == 2 and "unknown preset" in err


def test_config_toml_and_overrides(tmp_path):
    p = tmp_path / "t.toml"
    p.write_text("[train]\niterations = 7\nimage_size = [128, 96]\n")
    cfg = load_config("quick", p, seed=3)
    assert (cfg.iterations, cfg.image_size, cfg.seed) == (7, (128, 96), 3)
    p.write_text("bogus = 1\n")
    with pytest.raises(Exception, match="unknown training option"):
        load_config("quick", p)
    assert PRESETS["paper"].model == "resnet50_fpn" and not PRESETS["paper"].uses_cache
    with pytest.raises(Exception, match="frozen_blocks"):
        load_config("quick", frozen_blocks=0)


def _native_bf16(monkeypatch, native: bool) -> None:
    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.setattr(torch.cpu, name, lambda: native, raising=False)


def test_bf16_autocast_where_native_float32_elsewhere(toy, tmp_path, monkeypatch):
    from twingap.train.predict import predict

    cfg = TINY.replace(iterations=3, checkpoint_every=0, device="cpu")
    fp32 = _state(train(toy, tmp_path / "fp32", cfg, progress=False).parent)
    fast = cfg.replace(amp_dtype="bfloat16", channels_last=True)
    _native_bf16(monkeypatch, False)
    assert engine.autocast_dtype(fast, torch.device("cpu")) is None
    fallback = train(toy, tmp_path / "fallback", fast, progress=False).parent
    assert json.loads((fallback / "meta.json").read_text())["amp_dtype_used"] == "float32"
    _native_bf16(monkeypatch, True)
    assert engine.autocast_dtype(fast, torch.device("cpu")) == torch.bfloat16
    run = train(toy, tmp_path / "bf16", fast, progress=False).parent
    assert json.loads((run / "meta.json").read_text())["amp_dtype_used"] == "bfloat16"
    assert all(torch.isfinite(torch.tensor(_losses(run))))
    state = _state(run)
    # weights, and so the EMA and the saved model, stay float32; autocast changed the numbers
    assert all(v.dtype == torch.float32 for k, v in state.items() if v.is_floating_point())
    assert not all(torch.equal(state[k], fp32[k]) for k in fp32)
    # a channels-last run predicts like any other
    preds = predict(run, [toy / "images" / sorted(p.name for p in (toy / "images").iterdir())[0]])
    assert isinstance(preds, list)


def test_bad_amp_dtype_is_refused():
    with pytest.raises(TwingapError, match="amp_dtype"):
        load_config("quick", amp_dtype="float16")


@pytest.mark.parametrize(
    ("cap", "expected"),
    [("", torch.bfloat16), ("avx512_core_amx", torch.bfloat16), ("AVX2", None), ("AVX512_CORE", None)],
)
def test_bf16_autocast_off_where_onednn_is_capped_below_bf16(monkeypatch, cap, expected):
    _native_bf16(monkeypatch, True)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    fast = TINY.replace(amp_dtype="bfloat16", device="cpu")
    assert engine.autocast_dtype(fast, torch.device("cpu")) == expected
