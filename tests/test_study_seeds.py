"""Seed policies of a study: ``--seeds auto`` (blocks until the ranking replicates) and ``--budget``.

Fake stages (``twingap.study.fake``) with chosen effects; the budget tests replace the clock
(:func:`twingap.study.seeding.now`) by one that advances 100 s per training, so they are exact and
take no real time.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import pytest

from twingap.cli import main
from twingap.errors import TwingapError
from twingap.study import seeding
from twingap.study.config import load_study_config
from twingap.study.executors import InlineExecutor
from twingap.study.fake import FakeStages
from twingap.study.runner import job_states, run_study
from twingap.study.seeding import SeedPolicy, parse_budget

FIVE = '["clean", "noise-1", "noise-2", "noise-3", "texture-3"]'
#: Effects 3 AP points apart, against a training noise of ~0.3 points: the ranking replicates.
SEPARATED = "{ noise-1 = -0.02, noise-2 = -0.05, noise-3 = -0.08, texture-3 = -0.11 }"
#: Every condition costs the same: only noise tells them apart, the ranking never replicates.
ALIKE = "{ noise-1 = -0.03, noise-2 = -0.03, noise-3 = -0.03, texture-3 = -0.03 }"


def config(tmp_path: Path, conditions: str = FIVE, seeds: str = "[0]", effects: str | None = None) -> Path:
    over = f"[train]\noverrides = {{ fake_effects = {effects} }}\n" if effects else ""
    path = tmp_path / "fake.toml"
    path.write_text(f'preset = "tiny"\nstages = "fake"\nconditions = {conditions}\nseeds = {seeds}\n{over}')
    return path


def study(run: Path, cfg_path: Path | None, policy: SeedPolicy | None = None, **kw):
    cfg = load_study_config(cfg_path) if cfg_path else None
    return run_study(run, cfg, InlineExecutor(), progress=False, policy=policy, **kw)


def stored_seeds(run: Path) -> list[int]:
    return json.loads((run / "study.json").read_text())["seeds"]


def manifests(run: Path) -> dict[str, str]:
    return {p.parent.name: p.read_text() for p in sorted((run / "jobs").glob("*/manifest.json"))}


# ---------------------------------------------------------------------- --seeds auto
def test_auto_stops_when_the_projected_tau_reaches_the_target(tmp_path):
    run = tmp_path / "run"
    lines: list[str] = []
    out = study(run, config(tmp_path, effects=SEPARATED), SeedPolicy(auto=True), echo=lines.append)
    rec = out["seeding"]
    # the projection reaches 0.7 with 2 seeds already, but the study stops at the minimum of 3
    assert rec["stopped"] == "target" and rec["seeds"] == [0, 1, 2]
    assert rec["projection"]["tau"] >= 0.7 and rec["projection"]["seeds"] == 3
    assert rec["message"] == (
        f"stopped: projected tau {rec['projection']['tau']:.2f} >= 0.7 with 3 seeds "
        "(the mean over the test sets, bbox)"
    )
    assert stored_seeds(run) == [0, 1, 2] and len(manifests(run)) == 15
    assert json.loads((run / "seeds.json").read_text())["stopped"] == "target"
    assert any("projected tau" in line for line in lines)  # said after each block
    # the report's header says it
    assert rec["message"] in (run / "report.md").read_text()
    assert html.escape(rec["message"]) in (run / "report.html").read_text()


def test_auto_goes_on_to_the_cap_while_the_ranking_does_not_hold(tmp_path):
    run = tmp_path / "run"
    out = study(run, config(tmp_path, effects=ALIKE), SeedPolicy(auto=True, max_seeds=4), report=False)
    rec = out["seeding"]
    assert rec["stopped"] == "cap" and rec["seeds"] == [0, 1, 2, 3] and stored_seeds(run) == [0, 1, 2, 3]
    assert rec["projection"]["tau"] < 0.7
    assert rec["message"].startswith("stopped at the cap of 4 seeds: projected tau ")
    assert [b["seed"] for b in rec["blocks"]] == [0, 1, 2, 3]


def test_auto_resumes_from_the_seeds_done(tmp_path, capsys):
    run = tmp_path / "run"
    study(run, config(tmp_path, effects=ALIKE), SeedPolicy(auto=True, max_seeds=2), report=False)
    before = manifests(run)
    assert stored_seeds(run) == [0, 1] and len(before) == 10
    # the same command with a higher cap continues at seed 2: nothing done is redone
    args = ["-o", str(run), "--executor", "inline", "--no-report"]
    code = main(["study", *args, "--seeds", "auto", "--max-seeds", "3"])
    assert code == 0
    out = capsys.readouterr().out
    assert "stopped at the cap of 3 seeds" in out
    after = manifests(run)
    assert {k: after[k] for k in before} == before and len(after) == 15
    last = json.loads((run / "results" / "last_session.json").read_text())
    assert sorted(last["ran"]) == sorted(j for j in after if j.endswith("__s2"))
    # a plain rerun keeps the recorded policy (auto, cap 3): nothing to do
    assert main(["study", *args]) == 0
    assert json.loads((run / "results" / "last_session.json").read_text())["ran"] == []
    assert stored_seeds(run) == [0, 1, 2]


# ---------------------------------------------------------------------- --budget
@pytest.fixture
def clock(monkeypatch):
    """A clock that advances 100 s per training (every other step takes no time)."""
    t = {"now": 1_000_000.0}
    monkeypatch.setattr(seeding, "now", lambda: t["now"])
    real_train = FakeStages.train

    def train(self, *args, **kwargs):
        t["now"] += 100.0
        return real_train(self, *args, **kwargs)

    monkeypatch.setattr(FakeStages, "train", train)
    return t


def test_budget_stops_between_seed_blocks_and_says_so(tmp_path, clock, capsys):
    # blocks of 2 jobs take 200 s: after 2 blocks (400 s), the third would end at 600 s > 450 s
    run = tmp_path / "run"
    cfg_path = config(tmp_path, conditions='["clean", "noise-2"]', seeds="[0, 1, 2]")
    out = study(run, cfg_path, SeedPolicy(budget_s=450.0, budget_text="7m30s"))
    rec = out["seeding"]
    assert rec["stopped"] == "budget" and rec["seeds"] == [0, 1] and rec["unfinished"] == 2
    assert rec["message"] == (
        "stopped by the budget (7m30s) after 2 of 3 seed blocks; the next block would take about "
        "3.3 min: fewer seeds than asked; rerun the same command to continue"
    )
    assert not list((run / "jobs").glob("*__s2*"))  # the third block never started
    assert stored_seeds(run) == [0, 1]  # the report and compare see 2 complete seed blocks
    assert out["report"] is not None and rec["message"] in (run / "report.md").read_text()
    assert not (run / seeding.DEADLINE).exists()
    assert main(["study", "status", str(run)]) == 0
    assert rec["message"] in capsys.readouterr().out
    # resume without a budget: the seeds asked before (0, 1, 2), nothing redone
    before = manifests(run)
    out2 = study(run, None)
    assert out2["seeding"]["stopped"] == "complete" and out2["seeding"]["message"] == ""
    assert stored_seeds(run) == [0, 1, 2] and len(manifests(run)) == 6
    assert {k: manifests(run)[k] for k in before} == before
    assert "stopped by the budget" not in (run / "report.md").read_text()


def test_the_first_block_finishes_whatever_the_budget(tmp_path, clock):
    # 3 jobs a block (300 s) against a 150 s budget: a slow CPU still ends with an answer (1 seed)
    run = tmp_path / "run"
    cfg_path = config(tmp_path, conditions='["clean", "noise-2", "texture-3"]', seeds="[0, 1]")
    out = study(run, cfg_path, SeedPolicy(budget_s=150.0, budget_text="150s"))
    rec = out["seeding"]
    assert rec["stopped"] == "budget" and rec["seeds"] == [0] and out["report"] is not None
    assert rec["message"] == (
        "stopped by the budget (150s) after 1 of 2 seed blocks: fewer seeds than asked (one seed: "
        "differences without intervals or verdicts); rerun the same command to continue"
    )
    states = {s.id: s.state for s in job_states(run)}
    assert states == {"clean__s0": "done", "noise-2__s0": "done", "texture-3__s0": "done"}
    assert not list((run / "jobs").glob("*__s1*"))  # the budget was spent: no second block
    # the same command again: the second block is timed by none in this invocation, so it runs,
    # but no job of it starts after the budget: 1 of its 3 jobs is left, to resume
    out2 = study(run, cfg_path, SeedPolicy(budget_s=150.0, budget_text="150s"))
    assert out2["seeding"]["seeds"] == [0] and out2["seeding"]["stopped"] == "budget"
    assert {k for k in manifests(run) if k.endswith("__s1")} == {"clean__s1", "noise-2__s1"}
    assert not (run / "jobs" / "texture-3__s1.partial").exists()
    out3 = study(run, cfg_path)  # no budget: the rest, nothing redone
    assert out3["seeding"]["seeds"] == [0, 1] and len(manifests(run)) == 6


def test_budget_that_suffices_runs_every_block(tmp_path, clock):
    run = tmp_path / "run"
    cfg_path = config(tmp_path, conditions='["clean", "noise-2"]', seeds="[0, 1]")
    rec = study(run, cfg_path, SeedPolicy(budget_s=3600.0, budget_text="1h"))["seeding"]
    assert rec["stopped"] == "complete" and rec["seeds"] == [0, 1]
    assert rec["message"] == "all 2 seed blocks finished within the budget (1h)"


# ---------------------------------------------------------------------- the command line
@pytest.mark.parametrize(
    ("text", "seconds"), [("30m", 1800), ("1h", 3600), ("90s", 90), ("1h30m", 5400), (" 2H ", 7200)]
)
def test_parse_budget(text, seconds):
    assert parse_budget(text) == seconds


@pytest.mark.parametrize("text", ["30", "soon", "1.5h", "0m", "", "m", "30m1h"])
def test_parse_budget_refuses(text):
    with pytest.raises(TwingapError, match="--budget must be"):
        parse_budget(text)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--budget", "half an hour"], "--budget must be a duration like 30m, 1h, 90s or 1h30m"),
        (["--seeds", "auto"], "--seeds auto needs at least 3 conditions besides clean"),
        (["--seeds", "0,x"], "--seeds must be comma-separated integers or 'auto'"),
        (["--seeds", "auto", "--max-seeds", "0"], "--max-seeds must be at least 1"),
        (["--seeds", "0,1", "--max-seeds", "3"], "--max-seeds applies to --seeds auto"),
    ],
)
def test_cli_refuses_bad_seed_options_before_any_work(tmp_path, capsys, args, message):
    cfg_path = config(tmp_path, conditions='["clean", "noise-2"]')
    code = main(["study", "--config", str(cfg_path), "-o", str(tmp_path / "run"), *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


def test_cli_seeds_extend_a_run_and_budget_is_reported(tmp_path, capsys):
    run = tmp_path / "run"
    cfg_path = config(tmp_path, conditions='["clean", "noise-2"]', seeds="[0, 1]")
    assert main(["study", "--config", str(cfg_path), "-o", str(run), "--executor", "inline"]) == 0
    capsys.readouterr()
    code = main(["study", "-o", str(run), "--seeds", "0,1,2", "--budget", "1h", "--executor", "inline"])
    assert code == 0
    out = capsys.readouterr().out
    assert "all 3 seed blocks finished within the budget (1h)" in out
    assert stored_seeds(run) == [0, 1, 2] and len(manifests(run)) == 6


def test_run_job_starts_nothing_after_the_deadline(tmp_path):
    # what every executor's worker calls: past the deadline a job is deferred and leaves no trace
    from twingap.study import runner

    run = tmp_path / "run"
    runner.init_run(run, load_study_config(config(tmp_path, conditions='["clean", "noise-2"]')))
    seeding.set_deadline(run, seeding.now() - 1.0, "1m")
    res = runner.run_job(run, "clean__s0", log=False)
    assert res["status"] == "deferred" and res["error"] == "the budget is spent"
    assert not list((run / "jobs").iterdir())
    seeding.set_deadline(run, seeding.now() + 3600.0, "1h")
    assert runner.run_job(run, "clean__s0", log=False)["status"] == "done"
