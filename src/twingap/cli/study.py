"""``twingap study``: run the whole study resumably; ``twingap study status``; ``twingap report``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from twingap.cli import app
from twingap.errors import TwingapError

study_app = typer.Typer(
    help=(
        "Run the study: conditions x seeds -> render -> train -> predict on real test sets -> "
        "AP differences to clean -> artist-hours cost-benefit report. Rerun on the same -o to resume."
    ),
    invoke_without_command=True,
    no_args_is_help=False,
)
app.add_typer(study_app, name="study")


@study_app.callback()
def study(
    ctx: typer.Context,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Run folder (an existing one resumes).")
    ] = None,
    preset: Annotated[str | None, typer.Option(help="Preset: quick (2-core CPU), paper (GPU), tiny.")] = None,
    config: Annotated[Path | None, typer.Option(help="Study TOML (keys override the preset).")] = None,
    executor: Annotated[str, typer.Option(help="local (process pool), ray, or inline.")] = "local",
    address: Annotated[
        str | None,
        typer.Option(
            help=(
                "Ray cluster address: host:port (GCS, 6379), ray://host:port (Ray Client, 10001), auto "
                "or local (default: $RAY_ADDRESS, else start Ray here). A concrete address must accept a "
                "connection within $TWINGAP_RAY_CONNECT_TIMEOUT seconds (default 5)."
            )
        ),
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Parallel jobs for the local executor.")] = None,
    seeds: Annotated[
        str | None,
        typer.Option(
            help="Training seeds, comma-separated (e.g. 3,4,5 to replicate; a longer list extends a run), "
            "or 'auto': add seed blocks until the ranking's projected replication tau reaches 0.7."
        ),
    ] = None,
    max_seeds: Annotated[
        int | None,
        typer.Option("--max-seeds", help="Cap on the seeds of --seeds auto (default 10)."),
    ] = None,
    budget: Annotated[
        str | None,
        typer.Option(
            help="Wall-time budget of this command (30m, 1h, 90s, 1h30m): a run's first seed block always "
            "finishes (an answer); after it no job starts past the budget, nor a seed block that would end "
            "after it; finished seed blocks count, the rest resumes on a rerun."
        ),
    ] = None,
    backend: Annotated[
        str | None,
        typer.Option(help="Render backend for the training sets: raster (default) or cycles (bpy extra)."),
    ] = None,
    no_report: Annotated[
        bool, typer.Option("--no-report", help="Do not write the report at the end.")
    ] = False,
) -> None:
    """Run (or resume) a study into RUN_DIR and write its report."""
    if ctx.invoked_subcommand is not None:
        return
    from twingap.study.config import load_study_config
    from twingap.study.executors import make_executor
    from twingap.study.report import summary_text, top_fixes_text, top_fixes_title
    from twingap.study.runner import load_run_config, run_study
    from twingap.study.seeding import SeedPolicy, parse_budget

    if output is None:
        raise TwingapError("missing -o RUN_DIR (the run folder)")
    resume = (output / "study.json").is_file() and preset is None and config is None
    cfg = None if resume else load_study_config(config, preset)
    if cfg is not None and workers is not None:
        cfg.executor.workers = workers
    policy = SeedPolicy(auto=None, max_seeds=max_seeds)
    if budget is not None:
        policy.budget_s, policy.budget_text = parse_budget(budget), budget.strip()
    if max_seeds is not None and max_seeds < 1:
        raise TwingapError(f"--max-seeds must be at least 1, got {max_seeds}")
    if seeds is not None and seeds.strip().lower() == "auto":
        policy.auto = True
    elif seeds is not None:
        policy.auto = False
        if cfg is None:  # resume with other seeds: extend (or narrow) the stored study
            cfg = load_run_config(output)
        cfg.seeds = _parse_seeds(seeds)
    if max_seeds is not None and policy.auto is False:
        raise TwingapError("--max-seeds applies to --seeds auto")
    if policy.auto:  # refuse before saying the study started
        policy.check(cfg if cfg is not None else load_run_config(output))
    if backend is not None:
        if resume:
            raise TwingapError("--backend applies to a new study; a resumed study keeps its backend")
        from twingap.study.config import validate

        if backend != cfg.render.backend and cfg.render.options:
            # options belong to one backend (e.g. the quick preset's raster msaa=1)
            typer.echo(f"--backend {backend}: {cfg.render.backend} options {cfg.render.options} not used")
            cfg.render.options = {}
        cfg.render.backend = backend
        validate(cfg)
    ex_cfg = cfg.executor if cfg is not None else None
    if ex_cfg is None:
        ex_cfg = load_run_config(output).executor
    ex = make_executor(executor, workers or ex_cfg.workers, address, ex_cfg.cpus_per_job, ex_cfg.gpus_per_job)
    typer.echo(f"study {'resumed' if resume else 'started'} in {output}")
    out = run_study(output, cfg, ex, report=not no_report, policy=policy, echo=typer.echo)
    typer.echo(f"jobs done: {out['done']}, failed: {len(out['failed'])}, left: {len(out['left'])}")
    for jid in out["failed"]:
        typer.echo(f"  failed: {jid} (see {output / 'jobs' / (jid + '.failed.json')})")
    if out["report"]:
        typer.echo(summary_text(output))
        typer.echo(f"report: {out['report']}")
        typer.echo(top_fixes_title(output))
        typer.echo(top_fixes_text(output))
    elif out["failed"] or out["left"]:
        typer.echo(
            "rerun the same command to retry the failed / unfinished jobs; `twingap report RUN_DIR` writes "
            "a report of what finished"
        )
    if out["seeding"]["message"]:  # last, where it is read: why the study has the seeds it has
        typer.echo(out["seeding"]["message"])
    if out["failed"]:
        raise typer.Exit(1)


def _parse_seeds(text: str) -> list[int]:
    """A ``--seeds`` list (``auto`` is handled by the caller)."""
    try:
        out = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise TwingapError(f"--seeds must be comma-separated integers or 'auto', got {text!r}") from None
    if not out or len(set(out)) != len(out) or min(out) < 0:
        raise TwingapError(f"--seeds must be distinct non-negative integers, got {text!r}")
    return out


@study_app.command("status")
def status(run_dir: Annotated[Path, typer.Argument(help="Run folder.")]) -> None:
    """Show which jobs are done, running, failed (with the error) and left."""
    from rich.console import Console
    from rich.table import Table

    from twingap.study.runner import job_states, load_run_config

    load_run_config(run_dir)
    states = job_states(run_dir)
    table = Table(title=f"study {run_dir}")
    table.add_column("job")
    table.add_column("state")
    table.add_column("detail", overflow="fold")
    colors = {"done": "green", "running": "cyan", "failed": "red", "left": "white"}
    for s in states:
        table.add_row(s.id, f"[{colors[s.state]}]{s.state}[/]", s.detail)
    console = Console()
    console.print(table)
    counts = {k: sum(s.state == k for s in states) for k in colors}
    typer.echo(", ".join(f"{k}: {v}" for k, v in counts.items()) + f" (of {len(states)})")
    from twingap.study.seeding import read_record

    message = (read_record(run_dir) or {}).get("message")
    if message:  # why the study has the seeds it has (the last `twingap study`)
        typer.echo(message)


@app.command("report")
def report(run_dir: Annotated[Path, typer.Argument(help="Run folder of a study.")]) -> None:
    """Write report.html, report.md and the CSVs of a study (from the jobs finished so far)."""
    from twingap.study.report import summary_text, top_fixes_text, top_fixes_title, write_report

    path = write_report(run_dir)
    typer.echo(summary_text(run_dir))
    typer.echo(f"report: {path}")
    typer.echo(top_fixes_title(run_dir))
    typer.echo(top_fixes_text(run_dir))


@app.command("compare")
def compare(
    run_a: Annotated[Path, typer.Argument(help="Run folder of a study (its report written).")],
    run_b: Annotated[Path, typer.Argument(help="Another run of the same study (other seeds or machine).")],
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the comparison as JSON to this file.")
    ] = None,
    ci: Annotated[float, typer.Option(help="Two-sided level of the agreement test.")] = 0.95,
    scene_tol: Annotated[
        float,
        typer.Option(
            help="Largest accepted difference of the two runs' derived training scenes' geometry: poses "
            "and background meshes in metres / radians, intrinsics in pixels."
        ),
    ] = 1e-6,
    float_tol: Annotated[
        float,
        typer.Option(
            help="Largest accepted difference of the scenes' other floats (lights, ambient), relative "
            "to max(1, |value|)."
        ),
    ] = 1e-3,
) -> None:
    """Do two runs of one study agree? Per condition and test set, the share that agree, Kendall tau.

    The runs must be of one study: same configuration (seeds aside), same frames, model library,
    test sets' ground truth and twingap version. Their training scenes, derived by float arithmetic,
    may differ in the last bits (another machine): how far is measured and printed, and must be
    within --scene-tol and --float-tol. Two estimates agree when their difference is within
    t(df) x their combined training-noise standard error (the scene part is shared: same frames).
    Exit code 0 whatever the verdict.
    """
    import math

    from twingap.io import write_json_atomic
    from twingap.study.identity import SceneTolerance
    from twingap.study.replication import agreement_to_dict, compare_runs
    from twingap.study.report import json_safe

    if not 0.5 <= ci < 1:
        raise TwingapError(f"--ci must be in [0.5, 1), got {ci}")
    for name, v in (("--scene-tol", scene_tol), ("--float-tol", float_tol)):
        if not (math.isfinite(v) and v >= 0):
            raise TwingapError(f"{name} must be a non-negative number, got {v}")
    res = compare_runs(run_a, run_b, ci, SceneTolerance(geometry=scene_tol, relative=float_tol))
    if res["fake"]:
        typer.echo("FAKE stages: synthetic numbers (pipeline test), not results")
    typer.echo(f"A: {run_a} (seeds {res['seeds_a']})   B: {run_b} (seeds {res['seeds_b']})")
    for line in _identity_lines(res):
        typer.echo(line)
    typer.echo(
        f"{'condition':<12} {'test set':<16} {'iou':<5} {'A':>7} {'B':>7} {'A-B':>7} {'+-thr':>6}  agree"
    )
    for r in res["rows"]:
        verdict = "n/a (1 seed)" if r.agree is None else ("yes" if r.agree else "NO")
        typer.echo(
            f"{r.condition:<12} {r.test_set:<16} {r.iou_type:<5} {r.delta_a:>+7.1f} {r.delta_b:>+7.1f} "
            f"{r.diff:>+7.1f} {r.threshold:>6.1f}  {verdict}"
        )
    if res["n"]:
        typer.echo(f"agree: {res['n_agree']} of {res['n']} ({100 * res['share']:.0f}%)")
    else:
        typer.echo("agree: nothing to check (each run needs at least 2 seeds to measure its training noise)")
    for t in res["tau"]:
        typer.echo(
            f"Kendall tau {t['test_set']} {t['iou_type']}: {t['tau']:.2f} "
            f"(p = {t['p_value']:.3f}, n = {t['n']})"
        )
    for p in res.get("projection", []):
        at = ", ".join(f"{s} seeds {t:.2f}" for s, t in p["tau_at"].items())
        need = p["seeds_for_target"]
        reach = f"{need} seeds per run" if need else f"more than {p['max_seeds']} seeds per run"
        typer.echo(
            f"projected tau {p['test_set']} {p['iou_type']} (two runs of S seeds each): {at}; "
            f"tau {p['target']} needs {reach}"
        )
    if json_out is not None:
        write_json_atomic(json_out, json_safe(agreement_to_dict(res)))
        typer.echo(f"json: {json_out}")


def _identity_lines(res: dict) -> list[str]:
    """What identifies the compared study, and how far the two runs' derived training scenes differ."""
    ida = res["identity"]["a"]
    parts = [p for p in ("config", "frames", "models") if ida[p] and res["identity"]["b"][p]]
    parts += ["test sets", "training recipe" if ida["recipe"] else ""]
    version = f", twingap {ida['twingap']}" if ida["twingap"] else ""
    lines = [f"same study: {', '.join(p for p in parts if p)}{version}"]
    for side in ("a", "b"):
        missing = res["identity"]["not_recorded"][side]
        if missing:
            lines.append(
                f"  not recorded by {side.upper()} (made before twingap recorded them): {', '.join(missing)}"
            )
    sc = res["scenes"]
    if sc["same_hash"]:
        lines.append("training scenes: identical (same scenes_hash)")
        return lines
    d, tol = sc["difference"], sc["tolerance"]
    lines.append(
        f"training scenes: scenes_hash differs; largest difference over {d['n_scenes']} scenes "
        f"({d['n_objects']} objects): translation {d['translation_m']:.3g} m, "
        f"rotation {d['rotation_rad']:.3g} rad ({d['rotation_entry']:.3g} in a matrix entry), "
        f"intrinsics {d['intrinsics_px']:.3g} px, projected object points {d['projection_px']:.3g} px, "
        f"other floats {d['other_relative']:.3g} relative" + (f" ({d['other_at']})" if d["other_at"] else "")
    )
    if d["response_levels"]:
        lines.append(
            f"  camera response (fitted by calibration) differs by {d['response_mean_levels']:.3g} levels on "
            f"average over radiances, {d['response_levels']:.3g} at most"
        )
    if d["colour_levels"]:
        lines.append(f"  background colours differ by up to {d['colour_levels']:g} levels")
    if d["files"]:
        lines.append(
            f"  files the scenes name: {d['files_differ']} of {d['files']} differ in bytes "
            f"(images by up to {d['image_levels']:g} levels, {d['image_mean_levels']:.3g} on average; "
            f"meshes by {d['mesh_m']:.3g} m)"
        )
    lines.append(
        f"  within the tolerance ({tol['geometry']:g} m / rad / px, other floats {tol['relative']:g} "
        f"relative, response {tol['response_mean_levels']:g} and images {tol['image_mean_levels']:g} level "
        "on average): float noise of another machine, the same study"
    )
    return lines
