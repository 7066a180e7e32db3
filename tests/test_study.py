"""Study orchestration: config validation, planning, resume after a kill, failures, status, executors.

These tests use the fake stages (``twingap.study.fake``): deterministic stand-ins that make the
orchestration testable in seconds. The real stages are exercised by ``test_study_real.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.procs import HAVE_PROC, alive, descendants, survivors

from twingap.cli import main
from twingap.errors import TwingapError
from twingap.study.config import StudyConfig, config_to_toml, load_study_config, preset
from twingap.study.executors import InlineExecutor, LocalExecutor
from twingap.study.runner import Job, job_states, plan_jobs, run_study

REPO = Path(__file__).resolve().parents[1]


def write_toml(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def fake_config(
    tmp_path: Path, extra: str = "", conditions: str = '["clean", "noise-2", "texture-3"]'
) -> Path:
    return write_toml(
        tmp_path / "fake.toml",
        f'preset = "tiny"\nstages = "fake"\nconditions = {conditions}\nseeds = [0, 1]\n{extra}',
    )


# ---------------------------------------------------------------------- config
def test_presets_are_valid_and_round_trip(tmp_path):
    for name in ("quick", "paper", "tiny"):
        cfg = load_study_config(None, name)
        assert cfg.conditions[0] == "clean"
        (tmp_path / f"{name}.toml").write_text(config_to_toml(cfg))
        again = load_study_config(tmp_path / f"{name}.toml")
        assert again.to_dict() == cfg.to_dict()
    quick = load_study_config(None, "quick")
    assert len(quick.conditions) == 13
    assert quick.seeds == [0, 1, 2]  # every condition x 3 seeds
    assert {ts.kind for ts in quick.test_sets} == {"twinned", "heldout"}


def test_toml_overrides_preset(tmp_path):
    cfg = load_study_config(fake_config(tmp_path, "[stats]\nmin_scenes = 7\n"))
    assert cfg.stats.min_scenes == 7
    assert cfg.stats.ci == 0.95  # untouched keys keep the preset's values
    assert cfg.seeds == [0, 1]
    assert cfg.conditions == ["clean", "noise-2", "texture-3"]


def test_clean_is_always_first(tmp_path):
    cfg = load_study_config(fake_config(tmp_path, conditions='["texture-3", "clean"]'))
    assert cfg.conditions == ["clean", "texture-3"]
    assert [j.id for j in plan_jobs(cfg)] == ["clean__s0", "texture-3__s0", "clean__s1", "texture-3__s1"]
    assert Job.parse("baked-light__s12") == Job("baked-light", 12)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('conditions = ["clean", "wobbly-9"]\n', "unknown condition"),
        ('[[test_sets]]\nname = "mine"\nkind = "user"\nroot = "/nonexistent/real"\n', "folder not found"),
        ('[cost]\nhours = { "noise-2" = -3.0 }\n', "must be a number >= 0"),
        ('[[test_sets]]\nname = "x"\nkind = "heldout"\nvideos = ["0001"]\n', "also twinned"),
        ("seeds = []\n", "seeds"),
        ("bogus_key = 1\n", "unknown key"),
    ],
)
def test_bad_config_is_one_line_exit_2(tmp_path, capsys, body, message):
    cfg = write_toml(tmp_path / "bad.toml", f'preset = "tiny"\nstages = "fake"\n{body}')
    code = main(["study", "--config", str(cfg), "-o", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
    assert not (tmp_path / "run").exists()  # nothing started


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "[train]\noverrides = { iterationz = 5 }\n",
            "[train] overrides: unknown key 'iterationz' (did you mean 'iterations'?)",
        ),
        (
            "[render]\noptions = { msa = 2 }\n",
            "[render] options: unknown raster option(s) ['msa'] (did you mean 'msaa'?)",
        ),
        (
            '[render]\nbackend = "cycles"\noptions = { sample = 2 }\n',
            "[render] options: unknown Cycles option(s) ['sample'] (did you mean 'samples'?)",
        ),
        (
            "[train]\noverrides = { iterations = 0 }\n",
            "[train] overrides: iterations and batch_size must be at least 1",
        ),
        ('[train]\npreset = "quik"\n', "[train] preset 'quik' is unknown (did you mean 'quick'?)"),
        ('stages = "real"\n[train]\noverrides = { fake_sleep = 1.0 }\n', "unknown key 'fake_sleep'"),
        ('conditions = ["clean", "noise-02"]\n', "unknown condition 'noise-02' (did you mean 'noise-2'?)"),
    ],
)
def test_free_form_tables_are_checked_before_any_work(tmp_path, capsys, body, message):
    """A typo in [train] overrides or [render] options: one line naming the file and the key, exit 2."""
    stages = "" if body.startswith("stages") else 'stages = "fake"\n'
    cfg = write_toml(tmp_path / "typo.toml", f'preset = "tiny"\n{stages}{body}')
    code = main(["study", "--config", str(cfg), "-o", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {cfg}: ") and message in lines[0], err
    assert not (tmp_path / "run").exists()  # nothing started


def test_negative_hours_in_hours_table(tmp_path, capsys):
    table = tmp_path / "hours.toml"
    table.write_text('[noise-2]\nhours = 2.0\nrationale = "fine"\n\n[noise-1]\nhours = -2.0\n')
    cfg = fake_config(tmp_path, f'[cost]\nartist_hours = "{table}"\n')
    code = main(["study", "--config", str(cfg), "-o", str(tmp_path / "run")])
    assert code == 2
    assert ">= 0" in capsys.readouterr().err


def test_missing_config_file(tmp_path, capsys):
    assert main(["study", "--config", str(tmp_path / "nope.toml"), "-o", str(tmp_path / "r")]) == 2
    assert "not found" in capsys.readouterr().err


def test_status_of_non_study_folder(tmp_path, capsys):
    assert main(["study", "status", str(tmp_path)]) == 2
    assert "not a study run folder" in capsys.readouterr().err


# ---------------------------------------------------------------------- running
def _metrics(run_dir: Path) -> dict[str, str]:
    return {p.parent.name: p.read_text() for p in sorted((run_dir / "jobs").glob("*/metrics.json"))}


def test_study_runs_resumes_and_redoes_nothing(tmp_path):
    cfg = load_study_config(fake_config(tmp_path))
    out = run_study(tmp_path / "run", cfg, InlineExecutor(), progress=False)
    assert out["done"] == 6 and not out["failed"] and not out["left"]
    assert (tmp_path / "run" / "report.html").is_file()
    manifests = {p: p.read_text() for p in (tmp_path / "run" / "jobs").glob("*/manifest.json")}
    assert len(manifests) == 6
    m = json.loads(next(iter(manifests.values())))
    assert m["status"] == "done" and m["fake"] is True
    assert set(m["timings"]) == {"render", "train", "predict", "evaluate"}
    assert {"scenes_hash", "dataset_hash", "gt_hashes"} <= set(m["inputs"])
    # resume: nothing is redone (no manifest rewritten)
    out2 = run_study(tmp_path / "run", None, InlineExecutor(), progress=False)
    assert out2["done"] == 6
    assert {p: p.read_text() for p in manifests} == manifests
    last = json.loads((tmp_path / "run" / "results" / "last_session.json").read_text())
    assert last["ran"] == []


def test_render_is_shared_by_the_seeds_of_a_condition(tmp_path):
    cfg = load_study_config(fake_config(tmp_path))
    run_study(tmp_path / "run", cfg, InlineExecutor(), report=False, progress=False)
    jobs = {
        p.parent.name: json.loads(p.read_text()) for p in (tmp_path / "run" / "jobs").glob("*/manifest.json")
    }
    assert not jobs["noise-2__s0"]["render_cached"]
    assert jobs["noise-2__s1"]["render_cached"]
    assert jobs["noise-2__s0"]["inputs"]["dataset_hash"] == jobs["noise-2__s1"]["inputs"]["dataset_hash"]
    assert sorted(p.name for p in (tmp_path / "run" / "datasets").iterdir() if p.is_dir()) == [
        "clean",
        "noise-2",
        "texture-3",
    ]


def test_changed_config_is_refused(tmp_path, capsys):
    cfg = load_study_config(fake_config(tmp_path))
    run_study(tmp_path / "run", cfg, InlineExecutor(), report=False, progress=False)
    other = fake_config(tmp_path, "[scenes]\ntwin_views = 9\n")
    assert main(["study", "--config", str(other), "-o", str(tmp_path / "run")]) == 2
    assert "different configuration (scenes differ)" in capsys.readouterr().err


def test_failing_job_is_recorded_and_the_rest_go_on(tmp_path, capsys):
    cfg_path = fake_config(tmp_path, '[train]\noverrides = { fake_fail = ["noise-2__s1"] }\n')
    code = main(["study", "--config", str(cfg_path), "--executor", "inline", "-o", str(tmp_path / "run")])
    assert code == 1
    out = capsys.readouterr().out
    assert "failed: noise-2__s1" in out
    states = {s.id: s for s in job_states(tmp_path / "run")}
    assert states["noise-2__s1"].state == "failed"
    assert "fake failure" in states["noise-2__s1"].detail
    assert sum(s.state == "done" for s in states.values()) == 5
    # status shows the error
    assert main(["study", "status", str(tmp_path / "run")]) == 0
    status = capsys.readouterr().out
    assert "failed" in status and "fake failure" in status and "done: 5" in status
    # a report of what finished can still be written
    assert main(["report", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "report.html").is_file()


def test_kill_mid_run_loses_at_most_the_job_in_flight(tmp_path):
    """SIGKILL of the study process alone: its pool worker and the worker's subprocess end with it."""
    if not HAVE_PROC:
        pytest.skip("needs Linux /proc to follow the study's processes")
    gate = tmp_path / "hold"  # while it exists, a job's subprocess waits (the job stays in flight)
    cfg_path = fake_config(
        tmp_path,
        f'[train]\noverrides = {{ fake_gate = "{gate.as_posix()}", fake_subprocess = true }}\n',
        conditions='["clean", "noise-2"]',
    )
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "twingap", "study", "--config", str(cfg_path), "--workers", "1"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    proc = subprocess.Popen([*cmd, "-o", str(run_dir)], **quiet, start_new_session=True)
    tree: dict[int, int] = {}
    try:
        # once a job has finished, hold the next one in its subprocess (a grandchild), then kill
        deadline = time.time() + 240  # generous: CI machines may be loaded
        while time.time() < deadline and not list(run_dir.glob("jobs/*/manifest.json")):
            time.sleep(0.05)
        gate.touch()
        while time.time() < deadline and max(tree.values(), default=0) < 2:
            time.sleep(0.05)
            tree = descendants(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)  # the study only: what it started must end by itself
    finally:
        proc.wait(timeout=30)
    try:
        assert max(tree.values(), default=0) >= 2, f"no job subprocess seen: {tree}"
        # every process of the killed run ends: pool worker (child), job subprocess (grandchild)
        assert survivors(tree, timeout=10) == [], {p: d for p, d in tree.items() if alive(p)}
    finally:
        gate.unlink(missing_ok=True)
        for pid in tree:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
    finished = {p: p.read_text() for p in run_dir.glob("jobs/*/manifest.json")}
    assert 1 <= len(finished) < 4
    states = job_states(run_dir)
    assert not any(s.state == "running" for s in states)  # the killed process is recognised as gone
    # resume with the stored configuration
    res = subprocess.run(
        [sys.executable, "-m", "twingap", "study", "--executor", "inline", "-o", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr
    assert all(p.read_text() == text for p, text in finished.items())  # nothing redone
    assert sum(s.state == "done" for s in job_states(run_dir)) == 4  # nothing lost
    assert not list(run_dir.glob("jobs/*.partial"))


def test_local_pool_matches_inline(tmp_path):
    cfg_path = fake_config(tmp_path, conditions='["clean", "holes-1"]')
    cfg = load_study_config(cfg_path)
    run_study(tmp_path / "a", cfg, InlineExecutor(), report=False, progress=False)
    run_study(
        tmp_path / "b", load_study_config(cfg_path), LocalExecutor(workers=2), report=False, progress=False
    )
    assert _metrics(tmp_path / "a") == _metrics(tmp_path / "b")
    assert len(_metrics(tmp_path / "a")) == 4


def test_ray_matches_local(tmp_path):
    pytest.importorskip("ray")
    from twingap.study.executors import RayExecutor

    cfg_path = fake_config(tmp_path, conditions='["clean", "holes-1"]')
    run_study(tmp_path / "local", load_study_config(cfg_path), InlineExecutor(), report=False, progress=False)
    run_study(
        tmp_path / "ray", load_study_config(cfg_path), RayExecutor(cpus=1), report=False, progress=False
    )
    assert _metrics(tmp_path / "local") == _metrics(tmp_path / "ray")
    assert len(_metrics(tmp_path / "ray")) == 4


def test_ray_missing_gives_clear_error(monkeypatch, tmp_path, capsys):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray":
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    code = main(
        ["study", "--config", str(fake_config(tmp_path)), "--executor", "ray", "-o", str(tmp_path / "r")]
    )
    assert code == 2
    assert "pip install 'twingap[ray]'" in capsys.readouterr().err


def _closed_loopback_port() -> int:
    """A loopback port with nothing listening (bound once by the OS, then released)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _fake_ray(monkeypatch) -> list:
    """Stand in for the ray module (installed or not), recording ray.init calls: Ray never starts."""
    import types

    calls: list = []
    fake = types.ModuleType("ray")
    fake.is_initialized = lambda: False
    fake.init = lambda **kw: calls.append(kw)
    monkeypatch.setitem(sys.modules, "ray", fake)
    return calls


@pytest.mark.parametrize("form", ["127.0.0.1:{port}", "ray://127.0.0.1:{port}"])
def test_ray_wrong_address_fails_fast_before_ray_init(form, monkeypatch, tmp_path, capsys):
    init_calls = _fake_ray(monkeypatch)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    address = form.format(port=_closed_loopback_port())
    run = tmp_path / "r"
    cmd = ["study", "--config", str(fake_config(tmp_path)), "--executor", "ray", "--address", address]
    t0 = time.monotonic()
    assert main([*cmd, "-o", str(run)]) == 2
    assert time.monotonic() - t0 < 30  # refused at once (ray.init retried for minutes)
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"cannot reach the Ray cluster at {address}" in err
    assert "ray status" in err and "TWINGAP_RAY_CONNECT_TIMEOUT" in err
    assert init_calls == []  # Ray was never asked to connect
    assert not run.exists()  # nothing prepared before the failure


def test_ray_address_from_the_environment_is_checked(monkeypatch, tmp_path, capsys):
    from twingap.study.executors import RayExecutor

    init_calls = _fake_ray(monkeypatch)
    port = _closed_loopback_port()
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    with pytest.raises(TwingapError, match=f"at RAY_ADDRESS=127.0.0.1:{port} "):
        RayExecutor(address="auto")
    assert init_calls == []


def test_ray_reachable_address_passes_the_check(monkeypatch):
    import socket

    from twingap.study.executors import check_ray_address

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        check_ray_address(f"127.0.0.1:{port}", timeout=5)
        check_ray_address(f"ray://localhost:{port}", timeout=5)


@pytest.mark.parametrize(
    ("address", "endpoint"),
    [
        (None, None),  # Ray finds or starts a cluster itself
        ("auto", None),
        ("local", None),
        ("10.0.0.5:6379", ("10.0.0.5", 6379)),
        ("ray://head.example:10001", ("head.example", 10001)),
        ("[::1]:6379", ("::1", 6379)),
    ],
)
def test_ray_endpoint_reads_addresses_as_ray_does(address, endpoint, monkeypatch):
    from twingap.study.executors import ray_endpoint

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    got = ray_endpoint(address)
    assert (got if got is None else got[:2]) == endpoint


@pytest.mark.parametrize("address", ["head.example", "ray://head:", "head:99999", "head:port"])
def test_ray_endpoint_rejects_addresses_without_a_port(address, monkeypatch):
    from twingap.study.executors import ray_endpoint

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(TwingapError, match="is not a Ray address"):
        ray_endpoint(address)


def test_ray_connect_timeout_is_configurable(monkeypatch):
    from twingap.study.executors import connect_timeout

    monkeypatch.setenv("TWINGAP_RAY_CONNECT_TIMEOUT", "0.5")
    assert connect_timeout() == 0.5
    monkeypatch.setenv("TWINGAP_RAY_CONNECT_TIMEOUT", "soon")
    with pytest.raises(TwingapError, match="positive number of seconds"):
        connect_timeout()


def test_preset_function_rejects_unknown():
    with pytest.raises(TwingapError, match="unknown study preset"):
        preset("huge")
    assert isinstance(preset("quick"), StudyConfig)


def test_example_config_loads():
    cfg = load_study_config(REPO / "src" / "twingap" / "configs" / "study_example.toml")
    assert cfg.name == "example"
    assert len(cfg.conditions) == 13
    assert [ts.name for ts in cfg.test_sets] == ["ycb-real", "held-out-0002"]


def test_every_condition_trains_with_every_seed_and_pairs_by_seed(tmp_path):
    cfg_path = fake_config(tmp_path, conditions='["clean", "holes-1"]')
    cfg_path.write_text(cfg_path.read_text().replace("seeds = [0, 1]", "seeds = [0, 1, 2]"))
    cfg = load_study_config(cfg_path)
    ids = [j.id for j in plan_jobs(cfg)]
    assert ids == ["clean__s0", "holes-1__s0", "clean__s1", "holes-1__s1", "clean__s2", "holes-1__s2"]
    run_study(tmp_path / "run", cfg, InlineExecutor(), progress=False)
    stats = json.loads((tmp_path / "run" / "results" / "stats.json").read_text())
    rows = {(r["condition"], r["test_set"], r["iou_type"]): r for r in stats["results"]}
    for (cond, ts, iou), r in rows.items():
        if cond == "clean":
            continue
        clean = rows[("clean", ts, iou)]
        assert r["paired_seeds"] == [0, 1, 2]
        # each seed's difference is that seed's AP minus clean's, and the estimate is their mean
        d = [a - b for a, b in zip(r["ap_per_seed"], clean["ap_per_seed"], strict=True)]
        assert r["delta_per_seed"] == pytest.approx(d)
        assert r["delta"] == pytest.approx(sum(d) / 3)
        assert r["delta_lo"] < r["delta"] < r["delta_hi"] and r["se_seed"] > 0
        # the fake test sets have 6 scenes of 4 frames: scene sampling enters the interval
        assert r["n_scenes"] == 6 and r["se_scene"] > 0 and r["interval"] == "seeds+scenes"
    spread = next(s for s in stats["seed_spread"] if s["iou_type"] == "bbox")
    assert spread["seeds"] == [0, 1, 2] and spread["std"] > 0 and spread["diff_sd"] > 0


def test_interrupted_job_resumes_at_its_stage(tmp_path, monkeypatch):
    # A job interrupted in predict keeps its render and train markers; the rerun skips those
    # stages (train is not called again) and finishes with the same metrics as an uninterrupted job.
    from twingap.study import runner
    from twingap.study.fake import FakeStages

    text = fake_config(tmp_path, conditions='["clean"]').read_text().replace("[0, 1]", "[0]")
    cfg = load_study_config(write_toml(tmp_path / "one.toml", text))
    for name in ("ref", "run"):
        runner.init_run(tmp_path / name, cfg)
    assert runner.run_job(tmp_path / "ref", "clean__s0", log=False)["status"] == "done"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(FakeStages, "predict", interrupted)
    with pytest.raises(KeyboardInterrupt):
        runner.run_job(tmp_path / "run", "clean__s0", log=False)
    partial = tmp_path / "run" / "jobs" / "clean__s0.partial"
    assert sorted(p.name for p in partial.glob("*.done.json")) == ["render.done.json", "train.done.json"]
    assert not (partial / "RUNNING.json").exists()
    assert job_states(tmp_path / "run")[0].detail == "interrupted after render, train"
    train_marker = (partial / "train.done.json").read_text()

    monkeypatch.undo()
    trained = []
    real_train = FakeStages.train
    monkeypatch.setattr(FakeStages, "train", lambda *a, **k: trained.append(1) or real_train(*a, **k))
    assert runner.run_job(tmp_path / "run", "clean__s0", log=False)["status"] == "done"
    done = tmp_path / "run" / "jobs" / "clean__s0"
    assert trained == [] and (done / "train.done.json").read_text() == train_marker
    assert sorted(p.name for p in done.glob("*.done.json")) == [
        f"{s}.done.json" for s in sorted(runner.STAGES)
    ]
    ref = tmp_path / "ref" / "jobs" / "clean__s0"
    assert (done / "metrics.json").read_text() == (ref / "metrics.json").read_text()
    assert not partial.exists()
