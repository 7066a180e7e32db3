"""Fit the audit's level thresholds on the study's own flawed assets, and measure its accuracy.

Every sample model under every condition of the catalogue at several seeds is audited (raw
scores only); per family, the thresholds between adjacent levels are fitted on the samples whose
only flaw is that family's (clean + its conditions; :func:`twingap.audit.levels.fit_thresholds`)
and written to the packaged ``calibration.json``. Then the confusion matrix of true against
recovered level is printed per family over *all* samples (a ``texture-2`` model's true noise level
is 0), both in-sample and leave-one-model-out (thresholds fitted without the model they grade).

Regenerate (deterministic: seeded conditions, deterministic measures, sorted inputs)::

    python -m twingap.audit.calibrate --seeds 0 1 2 --table runs/audit_calibration.csv

``--table`` keeps the raw measures (one row per model, condition and seed) and is reused when it
exists, so ``--from-table`` refits and reprints without auditing anything again.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

from twingap.audit.levels import FAMILIES, calibration_path, fit_thresholds, level_of

#: Columns of the measurement table besides the keys.
MEASURE_COLUMNS = (
    "noise",
    "noise_p90_mm",
    "holes",
    "holes_interior",
    "texture",
    "baked_light",
    "baked_r2_order1",
    "baked_shading_std",
    "seconds",
)
KEY_COLUMNS = ("model", "condition", "family", "level", "seed")


def _row_of(record: dict) -> dict:
    bl = record["baked_light"]
    return {
        "noise": record["noise"]["score"],
        "noise_p90_mm": record["noise"].get("p90_mm"),
        "holes": record["holes"]["score"],
        "holes_interior": record["holes"]["interior_holes"],
        "texture": record["texture"]["score"],
        "baked_light": bl["score"],
        "baked_r2_order1": bl.get("r2_order1", 0.0),
        "baked_shading_std": bl.get("shading_std", 0.0),
    }


def measure_grid(models_root: Path, seeds: list[int], table: Path | None = None, log=print) -> list[dict]:
    """Raw audit measures of every model x condition x seed (resumes from ``table``).

    Conditions that leave the asset unchanged (clean, ambient-N) are measured once per model and
    repeated for every seed (the asset is the same array).
    """
    from twingap.artifacts.base import apply_condition, load_catalogue
    from twingap.assets.asset import ModelLibrary
    from twingap.audit.core import measure_asset

    lib = ModelLibrary(models_root)
    catalogue = load_catalogue()
    done: dict[tuple, dict] = {}
    if table is not None and table.is_file():
        for r in read_table(table):
            done[(r["model"], r["condition"], int(r["seed"]))] = r
    rows: list[dict] = []
    writer = None
    fh = None
    if table is not None:
        table.parent.mkdir(parents=True, exist_ok=True)
        new = not table.is_file()
        fh = open(table, "a", newline="", encoding="utf-8")  # closed in the finally below
        writer = csv.DictWriter(fh, fieldnames=[*KEY_COLUMNS, *MEASURE_COLUMNS])
        if new:
            writer.writeheader()
    try:
        for name in lib.names:
            asset = lib.load(name)
            clean_row: dict | None = None
            for cond in catalogue.values():
                static = cond.level == 0 or cond.family in ("clean", "ambient")
                for seed in seeds:
                    key = (name, cond.name, seed)
                    if key in done:
                        rows.append(done[key])
                        continue
                    if static and clean_row is not None:
                        measured = clean_row
                    else:
                        t0 = time.perf_counter()
                        record, _, _ = measure_asset(apply_condition(asset, cond, seed))
                        measured = {**_row_of(record), "seconds": time.perf_counter() - t0}
                        if static:
                            clean_row = measured
                    fam = "clean" if cond.family == "ambient" else cond.family
                    row = {
                        "model": name,
                        "condition": cond.name,
                        "family": fam,
                        "level": cond.level,
                        "seed": seed,
                        **measured,
                    }
                    rows.append(row)
                    if writer is not None:
                        writer.writerow(row)
                        fh.flush()
            log(f"measured {name}")
    finally:
        if fh is not None:
            fh.close()
    return rows


def read_table(path: Path) -> list[dict]:
    """Rows of a measurement table, numbers parsed (empty cells -> None)."""
    out = []
    with open(path, newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            row: dict = {"model": r["model"], "condition": r["condition"], "family": r["family"]}
            row["level"], row["seed"] = int(r["level"]), int(r["seed"])
            for c in MEASURE_COLUMNS:
                row[c] = float(r[c]) if r.get(c) not in (None, "", "None") else None
            out.append(row)
    return out


def true_level(row: dict, family: str) -> int:
    """The level of ``family`` the row's condition applied (0 for another family's condition)."""
    return int(row["level"]) if row["family"] == family else 0


def fit(rows: list[dict]) -> dict[str, list[float]]:
    """Thresholds per family from the rows whose only flaw is that family's (or none)."""
    out = {}
    for fam, levels in FAMILIES.items():
        sel = [r for r in rows if r["family"] in ("clean", fam) and r[fam] is not None]
        scores = np.array([r[fam] for r in sel], dtype=np.float64)
        lv = np.array([true_level(r, fam) for r in sel])
        out[fam] = fit_thresholds(scores, lv, len(levels))
    return out


def confusion(rows: list[dict], thresholds_of) -> dict[str, np.ndarray]:
    """Per family, counts[true level, recovered level]; the last column counts ``None`` (not judged).

    Args:
        rows: Measurement rows.
        thresholds_of: ``row -> {family: thresholds}`` (in-sample: a constant; cross-validated:
            fitted without the row's model).
    """
    out = {fam: np.zeros((len(lv) + 1, len(lv) + 2), dtype=np.int64) for fam, lv in FAMILIES.items()}
    for r in rows:
        th = thresholds_of(r)
        for fam, lv in FAMILIES.items():
            got = level_of(r[fam], th[fam])
            out[fam][true_level(r, fam), len(lv) + 1 if got is None else got] += 1
    return out


def format_confusion(mats: dict[str, np.ndarray], title: str) -> str:
    """Plain-text confusion matrices with exact and within-one-level accuracy."""
    lines = [title]
    for fam, m in mats.items():
        n = m.shape[0]
        judged = m[:, :n]
        total = int(judged.sum())
        exact = int(np.trace(judged))
        within = int(sum(judged[i, j] for i in range(n) for j in range(n) if abs(i - j) <= 1))
        lines.append(f"  {fam}: rows = true level, columns = recovered level (n/a = not judged)")
        lines.append("    true\\got " + "".join(f"{j:>7d}" for j in range(n)) + f"{'n/a':>7s}")
        for i in range(n):
            lines.append(f"    {i:>8d} " + "".join(f"{int(v):>7d}" for v in m[i]))
        lines.append(
            f"    exact {exact}/{total} = {100 * exact / max(total, 1):.1f}%, within one level "
            f"{within}/{total} = {100 * within / max(total, 1):.1f}%, not judged {int(m[:, n].sum())}"
        )
    return "\n".join(lines)


def severity_table(rows: list[dict]) -> str:
    """Median [min, max] raw score per family and true level, and Spearman rho of score vs level."""
    from scipy.stats import spearmanr

    lines = ["raw severity per true level: median [5th, 95th percentile] (n); Spearman rho of score vs level"]
    for fam, levels in FAMILIES.items():
        cells = []
        xs, ys = [], []
        for k in range(len(levels) + 1):
            v = np.array(
                [
                    r[fam]
                    for r in rows
                    if r[fam] is not None and true_level(r, fam) == k and r["family"] in ("clean", fam)
                ]
            )
            xs += v.tolist()
            ys += [k] * len(v)
            if len(v):
                lo, med, hi = np.percentile(v, [5, 50, 95])
                cells.append(f"L{k} {med:.4g} [{lo:.4g}, {hi:.4g}] ({len(v)})")
        rho = spearmanr(xs, ys).statistic if len(set(ys)) > 1 else float("nan")
        lines.append(f"  {fam}: " + "; ".join(cells) + f"; rho {rho:.3f}")
    return "\n".join(lines)


def report(rows: list[dict], thresholds: dict[str, list[float]]) -> str:
    """The printed accuracy report: in-sample and leave-one-model-out confusion, raw severities."""
    models = sorted({r["model"] for r in rows})
    cv = {m: fit([r for r in rows if r["model"] != m]) for m in models}
    seeds = sorted({r["seed"] for r in rows})
    conds = sorted({r["condition"] for r in rows})
    head = (
        f"{len(models)} models x {len(conds)} conditions x {len(seeds)} seeds {seeds} = {len(rows)} "
        "audited assets (clean and ambient-N leave the asset unchanged: true level 0 everywhere)"
    )
    return "\n\n".join(
        [
            head,
            format_confusion(
                confusion(rows, lambda r: thresholds), "IN-SAMPLE (thresholds fitted on all rows)"
            ),
            format_confusion(
                confusion(rows, lambda r: cv[r["model"]]),
                "LEAVE-ONE-MODEL-OUT (each model graded with thresholds fitted on the other models)",
            ),
            severity_table(rows),
        ]
    )


def write_calibration(
    thresholds: dict[str, list[float]], seeds: list[int], n_models: int, path: Path
) -> None:
    """Write the thresholds as sorted, rounded JSON (byte-identical for the same inputs)."""
    data = {
        "generated_by": f"python -m twingap.audit.calibrate --seeds {' '.join(map(str, seeds))}",
        "samples": {"models": n_models, "seeds": seeds},
        "families": {
            fam: {"conditions": list(FAMILIES[fam].values()), "thresholds": [float(f"{t:.6g}") for t in th]}
            for fam, th in thresholds.items()
        },
    }
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Command line (see the module docstring)."""
    from twingap.assets.asset import default_sample_root

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--models", type=Path, default=None, help="model library (default: the sample)")
    ap.add_argument(
        "--table", type=Path, default=None, help="measurement CSV (written, and reused if present)"
    )
    ap.add_argument("--from-table", action="store_true", help="only refit/reprint from --table")
    ap.add_argument("--out", type=Path, default=None, help="calibration JSON (default: the packaged file)")
    args = ap.parse_args(argv)
    if args.from_table:
        if args.table is None or not args.table.is_file():
            ap.error("--from-table needs an existing --table")
        rows = read_table(args.table)
    else:
        rows = measure_grid(
            args.models or default_sample_root() / "models",
            args.seeds,
            args.table,
            log=lambda s: print(s, file=sys.stderr),
        )
    rows = [r for r in rows if r["seed"] in args.seeds]
    thresholds = fit(rows)
    write_calibration(
        thresholds, sorted(args.seeds), len({r["model"] for r in rows}), args.out or calibration_path()
    )
    print("thresholds: " + json.dumps(thresholds))
    print(report(rows, thresholds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
