"""Group trainer: K models stepped together in one process are the models trained apart, bit for bit."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from tests.tiny_train import TINY

from twingap.errors import TwingapError
from twingap.train import engine
from twingap.train.config import TrainConfig
from twingap.train.engine import train
from twingap.train.group import train_group
from twingap.train.paste import toy_dataset

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(scope="module")
def toys(tmp_path_factory) -> list[Path]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("toys")
    return [toy_dataset(root / f"ds{i}", n_images=6, size=(96, 72), seed=i) for i in range(2)]


def _state(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "model_final.pt", map_location="cpu", weights_only=False)["model"]


def _log(run: Path) -> list[dict[str, str]]:
    """The loss log without its timing column."""
    with open(run / "train_log.csv") as f:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(f)]


def _same(a: Path, b: Path) -> None:
    sa, sb = _state(a), _state(b)
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa), f"{a.name}: weights differ"
    assert _log(a) == _log(b)


#: Three members as a study groups them (conditions x seeds), one of them with the quick preset's
#: bfloat16 (where native) and channels-last, one training blocks after the cache boundary.
def _members(toys: list[Path]) -> dict[str, tuple[Path, TrainConfig]]:
    return {
        "a_s0": (toys[0], TINY.replace(frozen_blocks=7)),
        "b_s0": (toys[1], TINY.replace(frozen_blocks=7, amp_dtype="bfloat16", channels_last=True)),
        "a_s1": (toys[0], TINY.replace(seed=1)),
    }


@pytest.mark.parametrize("defer_sync", [False, True])
def test_group_is_bit_identical_to_training_apart(toys, tmp_path, defer_sync):
    members = _members(toys)
    for name, (ds, cfg) in members.items():
        train(ds, tmp_path / "apart" / name, cfg, progress=False)
    res = train_group(
        [(ds, tmp_path / "group" / n, cfg, False) for n, (ds, cfg) in members.items()],
        progress=False,
        defer_sync=defer_sync,  # the CUDA path's deferred loss reads, exercised on CPU
    )
    assert [r.status for r in res] == ["done"] * 3
    for name in members:
        _same(tmp_path / "apart" / name, tmp_path / "group" / name)
    # Finished members are skipped on a rerun; their weights stay.
    again = train_group(
        [(ds, tmp_path / "group" / n, cfg, True) for n, (ds, cfg) in members.items()], progress=False
    )
    assert [r.status for r in again] == ["skipped"] * 3


_KILLED_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    import torch
    from pathlib import Path
    from twingap.train import engine
    from twingap.train.config import TrainConfig
    from twingap.train.group import train_group

    torch.set_num_threads(1)
    cfg = TrainConfig.from_dict({cfg!r})
    real = engine.lr_at

    def lr_at(c, step):  # kill -9 this process when the second member is about to run step 4
        if step == 4 and c.seed == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(c, step)

    engine.lr_at = lr_at
    train_group([(Path({ds0!r}), Path({out!r}) / "a", cfg, False),
                 (Path({ds1!r}), Path({out!r}) / "b", cfg.replace(seed=1), False)], progress=False)
    """
)


def test_kill_9_mid_group_then_resume_is_bit_identical(toys, tmp_path):
    cfg = TINY.replace(frozen_blocks=7)
    train(toys[0], tmp_path / "ref_a", cfg, progress=False)
    train(toys[1], tmp_path / "ref_b", cfg.replace(seed=1), progress=False)
    code = _KILLED_CHILD.format(cfg=cfg.to_dict(), ds0=str(toys[0]), ds1=str(toys[1]), out=str(tmp_path))
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=300)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    for name in ("a", "b"):  # killed after the checkpoint of step 3, before the end
        assert (tmp_path / name / "checkpoint.pt").is_file()
        assert not (tmp_path / name / "model_final.pt").exists()
    res = train_group(
        [(toys[0], tmp_path / "a", cfg, True), (toys[1], tmp_path / "b", cfg.replace(seed=1), True)],
        progress=False,
    )
    assert [r.status for r in res] == ["done", "done"]
    _same(tmp_path / "ref_a", tmp_path / "a")
    _same(tmp_path / "ref_b", tmp_path / "b")


@pytest.mark.parametrize("defer_sync", [False, True])
def test_a_failing_member_fails_alone(toys, tmp_path, monkeypatch, defer_sync):
    members = _members(toys)
    for name in ("a_s0", "a_s1"):
        ds, cfg = members[name]
        train(ds, tmp_path / "apart" / name, cfg, progress=False)
    real_forward = engine._forward

    def nan_for_member_b(model, batch):  # member b_s0 diverges at step 4
        losses = real_forward(model, batch)
        if batch.step == 4 and model is bad_model[0]:
            return {k: v * float("nan") for k, v in losses.items()}
        return losses

    bad_model: list = [None]
    real_initial = engine._initial_state

    def note_b(cfg, num_classes, device, amp=None):
        state = real_initial(cfg, num_classes, device, amp)
        if cfg.channels_last:  # only member b_s0 trains channels-last
            bad_model[0] = state.model
        return state

    monkeypatch.setattr(engine, "_forward", nan_for_member_b)
    monkeypatch.setattr(engine, "_initial_state", note_b)
    missing = tmp_path / "no_such_dataset"
    res = train_group(
        [
            *[(ds, tmp_path / "group" / n, cfg, False) for n, (ds, cfg) in members.items()],
            (missing, tmp_path / "group" / "missing", TINY, False),
        ],
        progress=False,
        defer_sync=defer_sync,
    )
    assert [r.status for r in res] == ["done", "failed", "done", "failed"]
    assert "training diverged at step 4 (loss nan)" in res[1].error
    assert res[1].final is None and "Traceback" in res[1].traceback
    assert (tmp_path / "group" / "b_s0" / "checkpoint.pt").is_file()  # resumable from step 3
    assert not (tmp_path / "group" / "b_s0" / "model_final.pt").exists()
    assert "dataset folder not found" in res[3].error
    for name in ("a_s0", "a_s1"):
        _same(tmp_path / "apart" / name, tmp_path / "group" / name)


def test_members_need_distinct_run_folders_and_one_thread_count(toys, tmp_path):
    with pytest.raises(TwingapError, match="distinct run folders"):
        train_group([(toys[0], tmp_path / "r", TINY, False), (toys[1], tmp_path / "r", TINY, False)])
    with pytest.raises(TwingapError, match="same threads"):
        train_group(
            [
                (toys[0], tmp_path / "a", TINY, False),
                (toys[1], tmp_path / "b", TINY.replace(threads=2), False),
            ]
        )
