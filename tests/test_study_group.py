"""Training groups in a study: the group job runner gives the jobs run_job gives, per job.

The orchestration runs on the fake stages; the real stages' group training is compared with their
one-model training on a toy dataset (bit-identical weights on CPU).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from twingap.study.config import load_study_config, preset
from twingap.study.executors import InlineExecutor, LocalExecutor
from twingap.study.fake import FakeStages
from twingap.study.runner import (
    init_run,
    job_states,
    plan_groups,
    plan_jobs,
    prepare_shared,
    run_job,
    run_job_group,
    run_study,
)

#: Manifest entries that depend on when and where a job ran, not on what it computed.
_VOLATILE = {
    "timings",
    "seconds",
    "attempt_seconds",
    "render_seconds",
    "started",
    "finished",
    "machine",
    "host",
}


def _fake(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "fake.toml"
    path.write_text(
        f'preset = "tiny"\nstages = "fake"\nconditions = ["clean", "noise-2", "texture-3"]\n'
        f"seeds = [0, 1]\n{extra}"
    )
    return path


def _outputs(run_dir: Path, parallel: bool = False) -> dict[str, dict]:
    """Per finished job: its manifest without the volatile entries, metrics and predictions.

    ``parallel``: also without ``render_cached`` (which seed of a condition renders it is a race
    between jobs run side by side).
    """
    out = {}
    skip = _VOLATILE | ({"render_cached"} if parallel else set())
    for man in sorted((run_dir / "jobs").glob("*/manifest.json")):
        job = man.parent
        m = {k: v for k, v in json.loads(man.read_text()).items() if k not in skip}
        preds = {p.name: p.read_text() for p in sorted((job / "preds").glob("*.json"))}
        out[job.name] = {"manifest": m, "metrics": (job / "metrics.json").read_text(), "preds": preds}
    return out


def test_group_runner_gives_the_jobs_run_job_gives(tmp_path):
    cfg = load_study_config(_fake(tmp_path))
    jobs = [j.id for j in plan_jobs(cfg)]
    for name in ("apart", "group"):
        init_run(tmp_path / name, load_study_config(_fake(tmp_path)))
        prepare_shared(tmp_path / name, cfg)
    apart = [run_job(tmp_path / "apart", j) for j in jobs]
    group = run_job_group(tmp_path / "group", jobs)
    assert [r["status"] for r in apart] == [r["status"] for r in group] == ["done"] * 6
    assert [r["id"] for r in group] == jobs
    a, g = _outputs(tmp_path / "apart"), _outputs(tmp_path / "group")
    assert len(a) == 6 and a == g
    marker = json.loads((tmp_path / "group" / "jobs" / jobs[0] / "train.done.json").read_text())
    assert marker["group"] == jobs and marker["seconds"] == pytest.approx(marker["group_seconds"] / 6)
    assert not list((tmp_path / "group" / "jobs").glob("*.partial"))
    # A rerun skips every finished job.
    assert [r["status"] for r in run_job_group(tmp_path / "group", jobs)] == ["skipped"] * 6


def test_a_failing_job_fails_alone_in_its_group(tmp_path):
    cfg = load_study_config(_fake(tmp_path, '[train]\noverrides = { fake_fail = ["noise-2__s0"] }\n'))
    init_run(tmp_path / "run", cfg)
    res = run_job_group(tmp_path / "run", ["clean__s0", "noise-2__s0", "texture-3__s0"])
    assert [r["status"] for r in res] == ["done", "failed", "done"]
    assert "fake failure of noise-2__s0" in res[1]["error"]
    failed = json.loads((tmp_path / "run" / "jobs" / "noise-2__s0.failed.json").read_text())
    assert failed["stage"] == "train" and "RuntimeError" in failed["traceback"]
    states = {s.id: s.state for s in job_states(tmp_path / "run")}
    assert states["noise-2__s0"] == "failed" and states["clean__s0"] == "done"


def test_groups_are_automatic_on_cuda_only_unless_asked(tmp_path, monkeypatch):
    init_run(tmp_path / "run", load_study_config(_fake(tmp_path)))
    jobs = [j.id for j in plan_jobs(load_study_config(_fake(tmp_path)))]
    assert plan_groups(tmp_path / "run", jobs) == [[j] for j in jobs]  # CPU: one job per process
    monkeypatch.setattr(FakeStages, "trains_on_cuda", lambda self, cfg: True)
    assert plan_groups(tmp_path / "run", jobs) == [jobs[:3], jobs[3:]]  # CUDA: a seed's jobs together
    assert plan_groups(tmp_path / "run", jobs, cuda=False) == [[j] for j in jobs]  # Ray without GPUs
    init_run(tmp_path / "asked", load_study_config(_fake(tmp_path, "[executor]\ngroup_size = 4\n")))
    assert plan_groups(tmp_path / "asked", jobs) == [jobs[:4], jobs[4:]]
    init_run(tmp_path / "never", load_study_config(_fake(tmp_path, "[executor]\ngroup_size = 1\n")))
    assert plan_groups(tmp_path / "never", jobs, cuda=True) == [[j] for j in jobs]


def test_local_executor_runs_groups_when_asked(tmp_path):
    run_study(tmp_path / "inline", load_study_config(_fake(tmp_path)), InlineExecutor(), False, False)
    cfg = load_study_config(_fake(tmp_path, "[executor]\ngroup_size = 3\n"))
    out = run_study(tmp_path / "local", cfg, LocalExecutor(workers=2), report=False, progress=False)
    assert out["done"] == 6
    assert _outputs(tmp_path / "inline", parallel=True) == _outputs(tmp_path / "local", parallel=True)
    marker = json.loads((tmp_path / "local" / "jobs" / "clean__s1" / "train.done.json").read_text())
    assert marker["group"] == ["clean__s1", "noise-2__s1", "texture-3__s1"]


def test_ray_executor_runs_groups_when_asked(tmp_path):
    pytest.importorskip("ray")
    from twingap.study.executors import RayExecutor

    run_study(tmp_path / "inline", load_study_config(_fake(tmp_path)), InlineExecutor(), False, False)
    cfg = load_study_config(_fake(tmp_path, "[executor]\ngroup_size = 3\n"))
    run_study(tmp_path / "ray", cfg, RayExecutor(cpus=1), report=False, progress=False)
    assert _outputs(tmp_path / "inline", parallel=True) == _outputs(tmp_path / "ray", parallel=True)
    marker = json.loads((tmp_path / "ray" / "jobs" / "clean__s0" / "train.done.json").read_text())
    assert marker["group"] == ["clean__s0", "noise-2__s0", "texture-3__s0"]


def test_bad_group_size_is_refused(tmp_path):
    from twingap.errors import TwingapError

    with pytest.raises(TwingapError, match="group_size"):
        load_study_config(_fake(tmp_path, "[executor]\ngroup_size = -1\n"))


def test_real_stages_train_a_group_as_they_train_one(tmp_path):
    from twingap.study.real import RealStages
    from twingap.train.paste import toy_dataset

    torch.set_num_threads(1)
    ds = toy_dataset(tmp_path / "ds", n_images=4, size=(96, 72))
    cfg = preset("tiny")
    cfg.train.overrides = {**cfg.train.overrides, "image_size": [96, 72], "amp_dtype": "none"}
    stages = RealStages()
    alone = [stages.train(cfg, ds, tmp_path / "alone" / f"s{s}", s) for s in (0, 1)]
    group = stages.train_group(cfg, [(ds, tmp_path / "group" / f"s{s}", s) for s in (0, 1)])
    assert group == alone  # the same stage information (config fingerprint, weights file)
    for s in (0, 1):
        a, g = (
            torch.load(tmp_path / d / f"s{s}" / "model_final.pt", weights_only=False)["model"]
            for d in ("alone", "group")
        )
        assert all(torch.equal(a[k], g[k]) for k in a)
        assert not (tmp_path / "group" / f"s{s}" / "checkpoint.pt").exists()
