"""Artifact families and the seeded application of a condition to an asset.

A :class:`~twingap.artifacts.catalogue.Condition` (defined in :mod:`.catalogue`, the one list of
the study's conditions) is frozen, JSON-serialisable data: the name used everywhere in the study
(``"noise-2"``), the family that implements it, its level (0 = identity), the op's parameters,
the artist-hours estimate to fix it, and render-time parameters (only the ``ambient`` family
uses those). Parameters are declared apart from application (as in kornia):
:func:`apply_condition` is a pure function ``(asset, condition, seed) -> asset``.

Family modules (one per family) register an ``apply(asset, params, rng) -> Asset`` and a
``damage(before, after, params) -> dict`` in :data:`FAMILIES`:

========== ================================ =======================================
family     module                           damage keys
========== ================================ =======================================
clean      (identity)                       (none)
noise      :mod:`.mesh_noise`               mean_displacement_frac, hausdorff_frac
holes      :mod:`.holes`                    removed_area_frac, removed_face_frac
texture    :mod:`.texture_blur`             hf_energy_lost, mean_albedo_change
baked_light :mod:`.baked_light`             mean_albedo_change, max_albedo_change
ambient    :mod:`.ambient`                  ambient_add
========== ================================ =======================================
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from twingap.artifacts.catalogue import Condition as Condition
from twingap.artifacts.catalogue import get_condition as get_condition
from twingap.artifacts.catalogue import load_artist_hours as load_artist_hours
from twingap.artifacts.catalogue import load_catalogue as load_catalogue
from twingap.assets.asset import Asset
from twingap.errors import TwingapError

ApplyFn = Callable[[Asset, dict, np.random.Generator], Asset]
DamageFn = Callable[[Asset, Asset, dict], dict]


@dataclass(frozen=True)
class Family:
    """An artifact family: its op and its damage measure."""

    name: str
    apply: ApplyFn
    damage: DamageFn


#: Registered families by name (filled by :func:`register_family` on first use).
FAMILIES: dict[str, Family] = {}


def register_family(name: str, apply: ApplyFn, damage: DamageFn) -> None:
    """Register (or replace) an artifact family."""
    FAMILIES[name] = Family(name, apply, damage)


def families() -> dict[str, Family]:
    """The registered families by name (the built-in ones registered on first use)."""
    if not FAMILIES:
        from twingap.artifacts import ambient, baked_light, holes, mesh_noise, texture_blur

        register_family("clean", lambda asset, params, rng: asset, lambda before, after, params: {})
        register_family("noise", mesh_noise.apply, mesh_noise.damage)
        register_family("holes", holes.apply, holes.damage)
        register_family("texture", texture_blur.apply, texture_blur.damage)
        register_family("baked_light", baked_light.apply, baked_light.damage)
        register_family("ambient", ambient.apply, ambient.damage)
    return FAMILIES


def stable_hash(text: str) -> int:
    """A 63-bit integer hash of a string, stable across runs and machines (unlike ``hash``)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little") >> 1


def condition_rng(asset_name: str, condition: Condition, seed: int) -> np.random.Generator:
    """The generator an op gets: seeded by (seed, object name, condition name).

    Different objects (and conditions) get different damage for the same study seed, and the
    same (seed, object, condition) always gets the same damage.
    """
    return np.random.default_rng(
        [int(seed) & 0xFFFFFFFF, stable_hash(asset_name), stable_hash(condition.name)]
    )


def apply_condition(asset: Asset, condition: Condition, seed: int) -> Asset:
    """Apply an artifact condition to an asset.

    Pure (the input's arrays are read-only and never changed) and deterministic for
    ``(asset, condition, seed)``. Level 0 (``clean``) returns an equal asset (same arrays).
    The returned asset's ``metadata["conditions"]`` lists the applied conditions (name,
    family, level, params, render_params, seed) in order.

    Args:
        asset: The clean asset.
        condition: What to apply.
        seed: Study seed.

    Returns:
        A new :class:`Asset`.

    Raises:
        TwingapError: If the condition's family is unknown or its parameters are invalid.
    """
    fams = families()
    if condition.family not in fams:
        raise TwingapError(f"condition {condition.name!r}: unknown family {condition.family!r}")
    if condition.level == 0 or condition.family == "clean":
        result = asset
    else:
        rng = condition_rng(asset.name, condition, seed)
        result = fams[condition.family].apply(asset, condition.params, rng)
    record = {
        "name": condition.name,
        "family": condition.family,
        "level": condition.level,
        "params": copy.deepcopy(condition.params),
        "render_params": copy.deepcopy(condition.render_params),
        "seed": int(seed),
    }
    meta = copy.deepcopy(result.metadata)
    meta["conditions"] = [*asset.metadata.get("conditions", []), record]
    return result.replace(metadata=meta)


def damage(before: Asset, after: Asset, condition: Condition) -> dict[str, float]:
    """Measure how much a condition changed an asset (values grow with the level).

    Returns:
        Family-specific measures (see the module table); ``{}`` for ``clean``.
    """
    fams = families()
    if condition.family not in fams:
        raise TwingapError(f"condition {condition.name!r}: unknown family {condition.family!r}")
    if condition.level == 0 or condition.family == "clean":
        return {}
    out = fams[condition.family].damage(before, after, condition.params)
    return {k: float(v) for k, v in out.items()}


def render_params_of(asset: Asset) -> dict[str, Any]:
    """Merged render-time parameters of the conditions recorded in an asset's metadata.

    ``ambient_add`` values add up; other keys: the last one wins.
    """
    out: dict[str, Any] = {}
    for rec in asset.metadata.get("conditions", []):
        for key, value in rec.get("render_params", {}).items():
            out[key] = out.get(key, 0.0) + value if key == "ambient_add" else value
    return out


# --------------------------------------------------------------------------------- mesh helpers


def merge_by_position(vertices: np.ndarray, decimals: int = 9) -> tuple[np.ndarray, np.ndarray]:
    """Merge seam-split duplicates (same position, different UV).

    Args:
        vertices: (V, 3) positions, metres.
        decimals: Positions are compared after rounding to this many decimals (1 nm).

    Returns:
        ``(positions (M, 3), inverse (V,))`` with ``positions[inverse]`` equal to the rounded
        input; ``inverse`` maps each split vertex to its merged vertex.
    """
    key = np.round(vertices, decimals)
    positions, inverse = np.unique(key, axis=0, return_inverse=True)
    return positions, inverse.reshape(-1)


def face_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(F,) triangle areas (units of ``vertices`` squared)."""
    tri = vertices[faces]
    return 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) area-weighted unit vertex normals (zero-area neighbourhoods get +z)."""
    tri = vertices[faces]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # length = 2 * area
    vn = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(vn, faces[:, k], fn)
    norm = np.linalg.norm(vn, axis=1, keepdims=True)
    out = np.where(norm > 0, vn / np.where(norm > 0, norm, 1.0), np.array([0.0, 0.0, 1.0]))
    return out


def sample_texture(texture: np.ndarray, uvs: np.ndarray) -> np.ndarray:
    """Nearest-texel lookup of (N, 2) OBJ-convention UVs; returns (N, 3) float64 0-255."""
    h, w = texture.shape[:2]
    col = np.clip(np.floor(np.mod(uvs[:, 0], 1.0) * w), 0, w - 1).astype(np.int64)
    row = np.clip(np.floor((1.0 - np.mod(uvs[:, 1], 1.0)) * h), 0, h - 1).astype(np.int64)
    return texture[row, col].astype(np.float64)


def surface_albedo(asset: Asset) -> tuple[np.ndarray, np.ndarray]:
    """Albedo at face centroids and the face areas (for area-weighted colour comparisons).

    Returns:
        ``(rgb (F, 3) float64 0-255, area (F,))``.
    """
    uv = asset.uvs[asset.faces].mean(axis=1)
    return sample_texture(asset.texture, uv), face_areas(asset.vertices, asset.faces)


#: Largest tolerated fraction of non-manifold edges (shared by more than two faces). Real scans
#: have a few (the sample's google_16k meshes have up to 9 of ~24k, next to degenerate faces).
MAX_NON_MANIFOLD_EDGE_FRAC = 0.01


def non_manifold_edge_fraction(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Fraction of the merged mesh's edges shared by more than two non-degenerate faces."""
    _, inverse = merge_by_position(vertices)
    merged = inverse[faces]
    ok = (merged[:, 0] != merged[:, 1]) & (merged[:, 1] != merged[:, 2]) & (merged[:, 0] != merged[:, 2])
    merged = merged[ok]
    if len(merged) == 0:
        return 0.0
    edges = np.sort(merged[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    return float((counts > 2).sum()) / len(counts)


def check_mesh(asset: Asset) -> None:
    """Reject meshes the geometric ops cannot work on.

    Raises:
        TwingapError: If vertices are not finite, all faces are degenerate (zero area), or more
            than :data:`MAX_NON_MANIFOLD_EDGE_FRAC` of the edges are non-manifold.
    """
    source = asset.metadata.get("source")
    if not np.all(np.isfinite(asset.vertices)):
        raise TwingapError(f"asset {asset.name!r}: vertices contain NaN or inf", source)
    if face_areas(asset.vertices, asset.faces).sum() <= 0:
        raise TwingapError(f"asset {asset.name!r}: mesh has zero surface area (all faces degenerate)", source)
    frac = non_manifold_edge_fraction(asset.vertices, asset.faces)
    if frac > MAX_NON_MANIFOLD_EDGE_FRAC:
        raise TwingapError(
            f"asset {asset.name!r}: non-manifold mesh ({100 * frac:.1f}% of edges shared by more than two "
            f"faces, max {100 * MAX_NON_MANIFOLD_EDGE_FRAC:.0f}%); repair it first (e.g. MeshLab)",
            source,
        )
