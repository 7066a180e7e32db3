"""Model libraries as users have them: which files, which ids and names, which units.

A model library is a folder; :func:`read_index` recognises four layouts (in this order):

1. **``objects.toml``** in the folder: one ``[[object]]`` table per object::

       [[object]]
       name = "mug"          # category name (reports, COCO categories)
       id = 1                # category id (COCO category_id, BOP obj_id)
       file = "mug.obj"      # relative to the folder: .obj (+ .mtl + texture), .glb/.gltf or .ply
       unit = "mm"           # m, cm or mm: the unit of the file's coordinates
       # texture = "mug.png" # optional: the texture of a PLY whose header names none
       # color = [200, 30, 30]  # optional: albedo of an untextured mesh (see parse_color)

2. **A BOP ``models/`` folder**: ``models_info.json`` keyed by integer object ids (``diameter``,
   ``min_x``.., ``size_x``.., optional ``symmetries_discrete`` / ``symmetries_continuous``, all in
   millimetres) and ``obj_XXXXXX.ply`` in millimetres, textured by a ``comment TextureFile`` in the
   PLY header (or ``obj_XXXXXX.png`` next to it) with per-vertex ``texture_u``/``texture_v`` or
   per-face ``texcoord``. Names are ``obj_XXXXXX``. A PLY with vertex colours and no texture is
   drawn in its mean vertex colour.
3. **twingap's own layout** (the shipped sample): ``models_info.json`` keyed by model name, each
   ``{"file", "obj_id", "g16k_to_ycbv_mm", "fallback_rgb"}``, files in metres.
4. **A plain folder** of ``.obj`` / ``.glb`` / ``.gltf`` / ``.ply`` files: names are the file stems,
   ids 1..N in sorted file-name order, metres; :attr:`LibraryIndex.notes` says so (the CLI prints
   it), because ids that follow file names change when a file is added.

An untextured mesh is drawn in one colour: the ``color`` of ``objects.toml`` when given, else its
material's (an MTL ``Kd``, a glTF ``baseColorFactor``), else a PLY's mean vertex colour; an OBJ whose
MTL names neither a texture nor a colour stops with one line. ``Asset.metadata["color_source"]`` (and
``twingap data models``) says where the colour came from.

Every library is checked for clashing ids or names, and every object for a plausible size in its
declared unit (:func:`check_unit`: a mug 70 m across stops with one line suggesting ``mm``).
Inside twingap, assets are in metres in their pose frame (:class:`~twingap.assets.asset.Asset`).
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from twingap.assets.asset import DEFAULT_COLOR_SOURCE, Asset, asset_from_trimesh, read_trimesh
from twingap.configfile import read_toml
from twingap.errors import TwingapError

#: Metres per unit of the units a library may declare.
UNITS: dict[str, float] = {"m": 1.0, "cm": 0.01, "mm": 0.001}

#: Mesh files a plain folder or ``objects.toml`` may name.
MESH_SUFFIXES = (".obj", ".glb", ".gltf", ".ply")

#: Plausible size of an object (bounding-box diagonal, metres); outside it the unit is wrong.
PLAUSIBLE_DIAGONAL_M = (0.005, 5.0)

#: Keys of an ``[[object]]`` table in ``objects.toml``.
OBJECT_KEYS = ("name", "id", "file", "unit", "texture", "color")

#: Per-vertex texture coordinate property pairs that PLY writers use.
_PLY_VERTEX_UV = (("texture_u", "texture_v"), ("u", "v"), ("s", "t"))

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

#: The forms ``color`` takes in ``objects.toml`` (said in every colour error).
COLOR_FORMS = (
    "[r, g, b] integers 0..255, [r, g, b] numbers 0..1 with at least one written as a float "
    '(the MTL Kd scale, e.g. [0.4, 0.4, 0.4]), or "#rrggbb"'
)

_printed_notes: set[str] = set()


@dataclass(frozen=True)
class LibraryIndex:
    """What a library folder holds, before any mesh is read.

    Attributes:
        kind: ``"objects.toml"``, ``"bop"``, ``"twingap"`` or ``"folder"``.
        root: The library folder.
        entries: Model name -> entry: ``file`` (relative to ``root``), ``obj_id``, ``unit``
            (m / cm / mm), ``offset_m`` (3 floats, added after scaling: file frame -> pose
            frame), ``fallback_rgb`` (or None), ``color_source`` (where it came from, or None),
            ``texture`` (a texture named outside the mesh file, or None) and, for BOP,
            ``diameter_mm``, ``extents_mm``, ``symmetries``.
        notes: Things the user should know (e.g. ids assigned from file order).
    """

    kind: str
    root: Path
    entries: dict[str, dict[str, Any]]
    notes: tuple[str, ...] = ()


def read_index(root: str | Path) -> LibraryIndex:
    """Recognise a library folder's layout and list its models (see the module docstring).

    A folder without models whose ``models/`` sub-folder is a library (a BOP dataset root) is
    read through that sub-folder.

    Raises:
        TwingapError: On a missing folder, an unreadable index file, clashing ids or names,
            a bad unit, a file that does not exist, or a folder without any model.
    """
    root = Path(root)
    if not root.is_dir():
        raise TwingapError("model library folder not found", root)
    if (root / "objects.toml").is_file():
        index = _index_objects_toml(root)
    elif (root / "models_info.json").is_file():
        from twingap.io import read_json

        info = read_json(root / "models_info.json")
        if not isinstance(info, dict) or not info:
            raise TwingapError("models_info.json must be a non-empty JSON object", root / "models_info.json")
        if all(str(k).strip().isdigit() for k in info):
            index = _index_bop(root, info)
        else:
            index = _index_twingap(root, info)
    elif (root / "models").is_dir() and not _mesh_files(root):
        return read_index(root / "models")
    else:
        index = _index_folder(root)
    _check_clashes(index)
    return index


def print_notes(index: LibraryIndex) -> None:
    """Print the library's notes on stderr, once per process and library."""
    for note in index.notes:
        key = f"{index.root}:{note}"
        if key not in _printed_notes:
            _printed_notes.add(key)
            print(f"note: {index.root}: {note}", file=sys.stderr)


# ---------------------------------------------------------------------------------------- layouts
def _mesh_files(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in MESH_SUFFIXES)


def _entry(file: str, obj_id: int, unit: str, **extra: Any) -> dict[str, Any]:
    return {
        "file": file,
        "obj_id": int(obj_id),
        "unit": unit,
        "offset_m": [0.0, 0.0, 0.0],
        "fallback_rgb": None,
        "color_source": None,
        "texture": None,
        **extra,
    }


def _index_objects_toml(root: Path) -> LibraryIndex:
    path = root / "objects.toml"
    data = read_toml(path, "objects.toml")
    unknown_top = sorted(set(data) - {"object"})
    if unknown_top:
        raise TwingapError(f"unknown key(s) {unknown_top}: objects.toml holds [[object]] tables", path)
    objects = data.get("object")
    if not isinstance(objects, list) or not objects:
        raise TwingapError("objects.toml needs one [[object]] table per object", path)
    entries: dict[str, dict[str, Any]] = {}
    ids: dict[int, str] = {}
    for k, obj in enumerate(objects):
        where = f"[[object]] {k + 1}"
        if not isinstance(obj, dict):
            raise TwingapError(f"{where} must be a table", path)
        unknown = sorted(set(obj) - set(OBJECT_KEYS))
        if unknown:
            raise TwingapError(f"{where}: unknown key(s) {unknown} (allowed: {list(OBJECT_KEYS)})", path)
        missing = [key for key in ("name", "id", "file", "unit") if key not in obj]
        if missing:
            raise TwingapError(f"{where}: missing key(s) {missing} (needs name, id, file, unit)", path)
        name, oid, unit = obj["name"], obj["id"], obj["unit"]
        if not isinstance(name, str) or not name.strip():
            raise TwingapError(f"{where}: name must be a non-empty string", path)
        if not isinstance(oid, int) or isinstance(oid, bool) or oid <= 0:
            raise TwingapError(f"{where} ({name!r}): id must be a positive integer, got {oid!r}", path)
        if unit not in UNITS:
            raise TwingapError(f"{where} ({name!r}): unit must be one of {list(UNITS)}, got {unit!r}", path)
        if name in entries:
            raise TwingapError(f"object name {name!r} is used twice", path)
        if oid in ids:
            raise TwingapError(f"objects {ids[oid]!r} and {name!r} both have id {oid}", path)
        file = str(obj["file"])
        if Path(file).suffix.lower() not in MESH_SUFFIXES:
            raise TwingapError(f"{where} ({name!r}): file must be one of {list(MESH_SUFFIXES)}", path)
        if not (root / file).is_file():
            raise TwingapError(f"{where} ({name!r}): mesh file {file!r} not found", path)
        color = obj.get("color")
        rgb = None if color is None else parse_color(color, f"{where} ({name!r})", path)
        ids[oid] = name
        entries[name] = _entry(
            file,
            oid,
            unit,
            fallback_rgb=rgb,
            texture=obj.get("texture"),
            color_source=f"objects.toml (color = {json.dumps(color)})" if rgb is not None else None,
        )
    return LibraryIndex("objects.toml", root, entries)


def parse_color(value: Any, where: str, path: str | Path | None = None) -> list[int]:
    """An sRGB colour (0..255 each) from the forms ``color`` takes in ``objects.toml``.

    The rule, by how the numbers are written (TOML keeps integers and floats apart):

    * ``"#rrggbb"`` (hex, either case);
    * three integers 0..255: ``[200, 30, 30]``;
    * three numbers 0..1 of which at least one is written as a float: ``[0.4, 0.4, 0.4]``,
      ``[1.0, 0, 0]`` (the MTL ``Kd`` scale), rounded to the nearest of 0..255;
    * three integers that are all 0 or 1 but not all 0 (``[1, 1, 1]``) are refused as ambiguous:
      ``[1.0, 1.0, 1.0]`` is white on the 0..1 scale, ``[255, 255, 255]`` on the 0..255 one.

    Args:
        value: The TOML value.
        where: The object, for the message (e.g. ``"[[object]] 2 ('mug')"``).
        path: The file named in the message.

    Returns:
        ``[r, g, b]`` integers 0..255.

    Raises:
        TwingapError: For anything else (one line listing the accepted forms).
    """
    if isinstance(value, str):
        text = value.strip()
        if len(text) == 7 and text[0] == "#" and all(c in "0123456789abcdefABCDEF" for c in text[1:]):
            return [int(text[k : k + 2], 16) for k in (1, 3, 5)]
    elif (
        isinstance(value, list)
        and len(value) == 3
        and all(isinstance(c, int | float) and not isinstance(c, bool) for c in value)
        and all(math.isfinite(c) for c in value)
    ):
        if all(isinstance(c, int) for c in value):
            if all(c in (0, 1) for c in value) and any(value):
                raise TwingapError(
                    f"{where}: color {value!r} is ambiguous (integers are 0..255, so this is almost black): "
                    f"write {[float(c) for c in value]!r} for the 0..1 scale or {[255 * c for c in value]!r}",
                    path,
                )
            if all(0 <= c <= 255 for c in value):
                return [int(c) for c in value]
        elif all(0.0 <= c <= 1.0 for c in value):
            return [round(float(c) * 255.0) for c in value]
    raise TwingapError(f"{where}: color must be {COLOR_FORMS}; got {value!r}", path)


def _index_bop(root: Path, info: dict[str, Any]) -> LibraryIndex:
    path = root / "models_info.json"
    entries: dict[str, dict[str, Any]] = {}
    for key, rec in sorted(info.items(), key=lambda kv: int(kv[0])):
        oid = int(key)
        if oid <= 0:
            raise TwingapError(f"object id {oid} must be positive", path)
        if not isinstance(rec, dict):
            raise TwingapError(f"entry of object {oid} must be a JSON object", path)
        name = f"obj_{oid:06d}"
        file = f"{name}.ply"
        if not (root / file).is_file():
            raise TwingapError(f"object {oid} is listed but {file} is missing", path)
        extents = [rec.get(f"size_{a}") for a in "xyz"]
        entries[name] = _entry(
            file,
            oid,
            "mm",
            diameter_mm=rec.get("diameter"),
            extents_mm=extents if all(isinstance(v, int | float) for v in extents) else None,
            symmetries={k: rec[k] for k in ("symmetries_discrete", "symmetries_continuous") if k in rec},
        )
    return LibraryIndex("bop", root, entries)


def _index_twingap(root: Path, info: dict[str, Any]) -> LibraryIndex:
    path = root / "models_info.json"
    entries: dict[str, dict[str, Any]] = {}
    for name, rec in sorted(info.items()):
        if not isinstance(rec, dict) or "file" not in rec or "obj_id" not in rec:
            raise TwingapError(
                f"model {name!r} needs 'file' and 'obj_id' (or use a BOP models_info.json keyed by id)", path
            )
        offset = np.asarray(rec.get("g16k_to_ycbv_mm", (0, 0, 0)), dtype=np.float64) / 1000.0
        entries[name] = {
            **rec,
            **_entry(
                str(rec["file"]),
                int(rec["obj_id"]),
                "m",
                fallback_rgb=rec.get("fallback_rgb"),
                color_source=None if rec.get("fallback_rgb") is None else "models_info.json (fallback_rgb)",
            ),
            "offset_m": offset.tolist(),
        }
    return LibraryIndex("twingap", root, entries)


def _index_folder(root: Path) -> LibraryIndex:
    files = _mesh_files(root)
    if not files:
        raise TwingapError(
            "no models: expected objects.toml, a models_info.json (BOP or twingap) or mesh files "
            f"({', '.join(MESH_SUFFIXES)})",
            root,
        )
    entries = {p.stem: _entry(p.name, k, "m") for k, p in enumerate(files, start=1)}
    if len(entries) != len(files):
        raise TwingapError("two mesh files share a name (different suffixes): write an objects.toml", root)
    listing = ", ".join(f"{k} {p.stem}" for k, p in enumerate(files, start=1))
    note = f"no objects.toml: ids follow the sorted file names ({listing}), unit m"
    return LibraryIndex("folder", root, entries, (note,))


def _check_clashes(index: LibraryIndex) -> None:
    seen: dict[int, str] = {}
    for name, e in index.entries.items():
        oid = int(e["obj_id"])
        if oid in seen:
            raise TwingapError(f"models {seen[oid]!r} and {name!r} both have id {oid}", index.root)
        seen[oid] = name


# ---------------------------------------------------------------------------------------- loading
def check_unit(diagonal_file: float, unit: str, path: str | Path, name: str) -> None:
    """Stop on an object whose size is implausible in its declared unit.

    Args:
        diagonal_file: Bounding-box diagonal of the mesh in the file's own units.
        unit: The declared unit (``m``, ``cm`` or ``mm``).
        path: The mesh file (named in the error).
        name: The object's name.

    Raises:
        TwingapError: If the diagonal in metres is outside :data:`PLAUSIBLE_DIAGONAL_M`; the message
            suggests the unit that gives a plausible size, when one does.
    """
    diag_m = diagonal_file * UNITS[unit]
    lo, hi = PLAUSIBLE_DIAGONAL_M
    if lo <= diag_m <= hi:
        return
    fits = [u for u in UNITS if lo <= diagonal_file * UNITS[u] <= hi]
    best = min(fits, key=lambda u: abs(math.log10(diagonal_file * UNITS[u] / 0.2)), default=None)
    hint = (
        f'is the unit "{best}"? ({diagonal_file * UNITS[best]:.3g} m across); set unit = "{best}"'
        if best
        else "no unit gives a plausible size: check the file"
    )
    raise TwingapError(
        f"object {name!r} is {diag_m:.3g} m across (bounding-box diagonal) in unit {unit!r}, "
        f"implausible for an object: {hint}",
        path,
    )


@dataclass(frozen=True)
class PlyHeader:
    """What a PLY header says about texturing.

    Attributes:
        texture_file: The ``comment TextureFile`` name, or None.
        vertex_props: Property names of the ``vertex`` element.
        face_props: Property names of the ``face`` element.
    """

    texture_file: str | None
    vertex_props: tuple[str, ...]
    face_props: tuple[str, ...]

    @property
    def has_uv(self) -> bool:
        """True when the PLY carries texture coordinates (per vertex or per face)."""
        per_vertex = any(u in self.vertex_props and v in self.vertex_props for u, v in _PLY_VERTEX_UV)
        return per_vertex or "texcoord" in self.face_props

    @property
    def has_vertex_colors(self) -> bool:
        """True when the PLY has per-vertex ``red``/``green``/``blue``."""
        return {"red", "green", "blue"} <= set(self.vertex_props)


def read_ply_header(path: str | Path) -> PlyHeader:
    """Parse a PLY header (ASCII or binary file).

    Raises:
        TwingapError: If the file is not a PLY or its header does not end.
    """
    path = Path(path)
    with open(path, "rb") as f:
        if f.readline().strip() != b"ply":
            raise TwingapError("not a PLY file (first line is not 'ply')", path)
        texture = None
        element = None
        props: dict[str, list[str]] = {}
        for _ in range(10_000):
            raw = f.readline()
            if not raw:
                break
            parts = raw.decode("ascii", errors="replace").split()
            if not parts:
                continue
            if parts[0] == "end_header":
                return PlyHeader(texture, tuple(props.get("vertex", [])), tuple(props.get("face", [])))
            if parts[0] == "comment" and len(parts) >= 3 and parts[1].lower() == "texturefile":
                texture = " ".join(parts[2:])
            elif parts[0] == "element" and len(parts) >= 2:
                element = parts[1]
                props.setdefault(element, [])
            elif parts[0] == "property" and element is not None:
                props[element].append(parts[-1])
    raise TwingapError("PLY header has no end_header", path)


def _ply_texture(path: Path, header: PlyHeader, entry: dict[str, Any]) -> Path | None:
    """The texture image of a PLY model (checked), or None when the PLY is untextured."""
    named = entry.get("texture") or header.texture_file
    if named:
        tex = path.parent / named
        if not tex.is_file():
            raise TwingapError(f"texture file {named!r} named for the PLY is missing", path)
        if not header.has_uv:
            raise TwingapError(
                f"texture {named!r} is given but the PLY has no texture coordinates "
                "(vertex texture_u/texture_v or face texcoord)",
                path,
            )
        return tex
    if header.has_uv:  # BOP convention: obj_XXXXXX.png next to obj_XXXXXX.ply
        for suffix in _IMAGE_SUFFIXES:
            if path.with_suffix(suffix).is_file():
                return path.with_suffix(suffix)
    return None


def _load_ply(path: Path, name: str, entry: dict[str, Any]):
    """Load a PLY (texture checked and attached).

    Returns:
        ``(mesh, fallback colour or None, where that colour came from or None)``.
    """
    import trimesh
    from PIL import Image

    header = read_ply_header(path)
    tex = _ply_texture(path, header, entry)
    try:
        mesh = trimesh.load(path, process=False, skip_materials=True)
    except Exception as exc:  # trimesh raises many types for bad files
        raise TwingapError(f"unreadable mesh ({exc})", path) from exc
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise TwingapError("empty mesh (no faces)", path)
    fallback, source = entry.get("fallback_rgb"), entry.get("color_source")
    if tex is not None and isinstance(mesh.visual, trimesh.visual.TextureVisuals):
        with Image.open(tex) as im:
            image = im.convert("RGB")
        mesh.visual = trimesh.visual.TextureVisuals(
            uv=mesh.visual.uv, material=trimesh.visual.material.SimpleMaterial(image=image)
        )
    elif fallback is None and header.has_vertex_colors:
        colors = np.asarray(mesh.visual.vertex_colors)[:, :3]
        fallback = [round(float(c)) for c in colors.mean(axis=0)]
        source = "the PLY's mean vertex colour"
    return mesh, fallback, source


def _check_mtl_has_texture(path: Path) -> None:
    """Stop on an OBJ whose material files name no texture (``map_Kd``).

    Called for an OBJ that loaded with neither a texture nor a colour (``objects.toml`` or ``Kd``).
    """
    with open(path, encoding="utf-8", errors="replace") as f:
        libs = [line.split(None, 1)[1].strip() for line in f if line.startswith("mtllib ")]
    for lib in libs:
        mtl = path.parent / lib
        if not mtl.is_file():
            continue  # reported by load_mesh_file
        text = mtl.read_text(encoding="utf-8", errors="replace")
        if not any(line.split()[:1] == ["map_Kd"] for line in text.splitlines()):
            raise TwingapError(
                f"material file {lib!r} names no texture (map_Kd) and no colour (Kd) for the mesh: add "
                "one, or give the object a color = [r, g, b] in objects.toml",
                path,
            )


def load_model(index: LibraryIndex, name: str) -> Asset:
    """Load one model of a library in metres, in its pose frame.

    The file's coordinates are scaled by the entry's unit, checked for a plausible size
    (:func:`check_unit`) and shifted by ``offset_m``.

    Raises:
        TwingapError: If the model is unknown, or its file, texture or unit is wrong (one line
            naming the file).
    """
    from twingap.assets.asset import load_mesh_file

    if name not in index.entries:
        raise TwingapError(f"unknown model {name!r} (have: {', '.join(sorted(index.entries))})", index.root)
    entry = index.entries[name]
    path = index.root / entry["file"]
    if not path.is_file():
        raise TwingapError("mesh file not found", path)
    unit = entry["unit"]
    meta = {"source": str(path), "obj_id": int(entry["obj_id"]), "unit": unit, "library": index.kind}
    fallback, source = entry.get("fallback_rgb"), entry.get("color_source")
    if path.suffix.lower() == ".ply":
        mesh, fallback, source = _load_ply(path, name, entry)
        asset = asset_from_trimesh(mesh, name, fallback, meta, source)
    elif unit == "m" and index.kind == "twingap":
        asset = load_mesh_file(path, name, fallback, source)  # the sample: metres, checked
        asset = asset.replace(metadata={**asset.metadata, **meta})
    else:
        asset = asset_from_trimesh(read_trimesh(path), name, fallback, meta, source)  # file units
        if path.suffix.lower() == ".obj" and asset.metadata.get("color_source") == DEFAULT_COLOR_SOURCE:
            _check_mtl_has_texture(path)
    check_unit(asset.bbox_diagonal, unit, path, name)
    offset = np.asarray(entry.get("offset_m", (0, 0, 0)), dtype=np.float64)
    vertices = asset.vertices * UNITS[unit] + offset
    return asset.replace(vertices=vertices, metadata={**asset.metadata, "offset_m": offset.tolist()})


# ---------------------------------------------------------------------------------------- writing
def bop_model_info(asset: Asset) -> dict[str, float]:
    """BOP ``models_info.json`` record of an asset (millimetres): diameter, min and size per axis."""
    import trimesh
    from scipy.spatial.distance import pdist

    v_mm = asset.vertices * 1000.0
    hull = trimesh.Trimesh(v_mm, asset.faces, process=False).convex_hull.vertices
    lo, hi = v_mm.min(0), v_mm.max(0)
    rec = {"diameter": float(pdist(np.asarray(hull)).max())}
    for k, a in enumerate("xyz"):
        rec[f"min_{a}"] = float(lo[k])
        rec[f"size_{a}"] = float(hi[k] - lo[k])
    return rec


def write_bop_models(assets: dict[int, Asset], out_dir: str | Path, texcoord: str = "vertex") -> Path:
    """Write assets as a BOP ``models/`` folder: ``obj_XXXXXX.ply`` (mm) + ``.png`` + ``models_info.json``.

    Args:
        assets: Object id -> asset (metres, pose frame).
        out_dir: The folder to create.
        texcoord: ``"vertex"`` (``texture_u``/``texture_v`` per vertex, as most BOP datasets) or
            ``"face"`` (a ``texcoord`` list per face).

    Returns:
        ``out_dir``.
    """
    from PIL import Image

    from twingap.io import atomic_path, write_json_atomic, write_text_atomic

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    info = {}
    for oid, asset in sorted(assets.items()):
        stem = f"obj_{int(oid):06d}"
        with atomic_path(out_dir / f"{stem}.png") as tmp:
            Image.fromarray(np.ascontiguousarray(asset.texture)).save(tmp)
        v = asset.vertices * 1000.0
        uv = asset.uvs
        lines = ["ply", "format ascii 1.0", f"comment TextureFile {stem}.png", f"element vertex {len(v)}"]
        lines += [f"property float {p}" for p in ("x", "y", "z")]
        if texcoord == "vertex":
            lines += ["property float texture_u", "property float texture_v"]
        lines += [f"element face {len(asset.faces)}", "property list uchar int vertex_indices"]
        if texcoord == "face":
            lines.append("property list uchar float texcoord")
        lines.append("end_header")
        for k in range(len(v)):
            row = f"{v[k, 0]:.6f} {v[k, 1]:.6f} {v[k, 2]:.6f}"
            lines.append(row + (f" {uv[k, 0]:.6f} {uv[k, 1]:.6f}" if texcoord == "vertex" else ""))
        for f in asset.faces:
            row = f"3 {f[0]} {f[1]} {f[2]}"
            if texcoord == "face":
                row += " 6 " + " ".join(f"{uv[i, 0]:.6f} {uv[i, 1]:.6f}" for i in f)
            lines.append(row)
        write_text_atomic(out_dir / f"{stem}.ply", "\n".join(lines) + "\n")
        info[str(int(oid))] = bop_model_info(asset)
    write_json_atomic(out_dir / "models_info.json", info)
    return out_dir


__all__ = [
    "COLOR_FORMS",
    "MESH_SUFFIXES",
    "PLAUSIBLE_DIAGONAL_M",
    "UNITS",
    "LibraryIndex",
    "PlyHeader",
    "bop_model_info",
    "check_unit",
    "load_model",
    "parse_color",
    "print_notes",
    "read_index",
    "read_ply_header",
    "write_bop_models",
]
