"""Audit one asset: measure every family, grade the scores into levels, keep the maps for pictures."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from twingap.assets.asset import Asset, ModelLibrary, load_mesh_file
from twingap.audit import baked_light, facts, holes, mesh_noise, texture_blur
from twingap.audit.geometry import Welded, weld
from twingap.audit.levels import FAMILIES, level_of, load_calibration
from twingap.errors import TwingapError

MESH_SUFFIXES = (".obj", ".ply", ".glb", ".gltf", ".stl", ".off")


@dataclass
class AuditResult:
    """One audited asset.

    Attributes:
        stem: Key in ``audit.json`` (the model file's stem).
        record: JSON-ready dict: one entry per family (``level``, ``score``, details), ``facts``,
            ``source``.
        maps: Per-family arrays for the pictures (not serialised).
        welded: The welded mesh the measures used.
        asset: The audited asset.
    """

    stem: str
    record: dict
    maps: dict = field(default_factory=dict)
    welded: Welded | None = None
    asset: Asset | None = None


def measure_asset(asset: Asset) -> tuple[dict, dict, Welded]:
    """Raw measures of every family (no levels) and the plain facts.

    Returns:
        ``(record, maps, welded)`` with ``record = {family: {"score": ..., ...}, "facts": {...}}``.

    Raises:
        TwingapError: If the mesh cannot be audited (no surface, non-finite vertices).
    """
    welded = weld(asset)
    facts.check_auditable(asset, welded)
    record: dict = {}
    maps: dict = {}
    record["noise"], maps["noise"] = mesh_noise.measure(welded)
    record["holes"], maps["holes"] = holes.measure(welded)
    record["baked_light"], maps["baked_light"] = baked_light.measure(asset, welded)
    shading = maps["baked_light"].get("shading_filled")
    record["texture"], maps["texture"] = texture_blur.measure(asset, shading)
    record["facts"] = facts.measure(asset, welded)
    return record, maps, welded


def grade(record: dict, calibration: dict) -> dict:
    """Add ``level`` to each family of a measured record (in place; returned for chaining)."""
    for fam in FAMILIES:
        entry = record[fam]
        thresholds = calibration["families"][fam]["thresholds"]
        entry["level"] = level_of(entry.get("score"), thresholds)
        # level first, score second: the order the audit.json shows
        record[fam] = {"level": entry.pop("level"), "score": entry.pop("score"), **entry}
    return record


def audit_asset(asset: Asset, calibration: dict | None = None, stem: str | None = None) -> AuditResult:
    """Measure and grade one asset (see :func:`measure_asset`, :func:`grade`)."""
    record, maps, welded = measure_asset(asset)
    grade(record, calibration or load_calibration())
    record["source"] = asset.metadata.get("source")
    return AuditResult(stem or asset.name, record, maps, welded, asset)


def collect_inputs(items: list[str | Path], models: Path | None = None) -> list[tuple[str, object]]:
    """Expand command-line items into ``(stem, load)`` pairs, ``load()`` returning an :class:`Asset`.

    An item is a mesh file, a model library folder (with ``models_info.json``), a folder of mesh
    files, or a model name in the sample library (``models``, default ``data/sample/models``).

    Raises:
        TwingapError: If an item is none of these or two models share a stem.
    """
    from twingap.assets.asset import default_sample_root

    out: list[tuple[str, object]] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            if (path / "models_info.json").is_file():
                lib = ModelLibrary(path)
                out += [(Path(lib.info[n]["file"]).stem, _lib_loader(lib, n)) for n in lib.names]
            else:
                files = sorted(p for p in path.iterdir() if p.suffix.lower() in MESH_SUFFIXES)
                if not files:
                    raise TwingapError("folder holds no mesh file (obj, ply, glb, gltf, stl, off)", path)
                out += [(p.stem, _file_loader(p)) for p in files]
        elif path.suffix.lower() in MESH_SUFFIXES or path.exists():
            out.append((path.stem, _file_loader(path)))
        else:
            lib = ModelLibrary(models or default_sample_root() / "models")
            if str(item) not in lib.info:
                raise TwingapError(f"not a mesh file, a model folder or a sample model name: {item!r}")
            out.append((Path(lib.info[str(item)]["file"]).stem, _lib_loader(lib, str(item))))
    stems = [s for s, _ in out]
    dup = sorted({s for s in stems if stems.count(s) > 1})
    if dup:
        raise TwingapError(f"two models share the file stem {dup[0]!r}; audit.json is keyed by stem")
    return out


def _file_loader(path: Path):
    return lambda: load_mesh_file(path)


def _lib_loader(lib: ModelLibrary, name: str):
    return lambda: lib.load(name)
