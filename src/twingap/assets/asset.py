"""The :class:`Asset`: a textured triangle mesh of one object (a digital twin).

Vertices are in metres, in the object's pose frame (for YCB objects: the YCB-Video model
frame, so that YCB-Video / BOP poses apply directly). UVs follow the OBJ convention
(``u`` right, ``v`` up; texture row = ``(1 - v) * H``). Vertices on texture seams are
duplicated (same position, different UV), so code that perturbs geometry must do it as a
function of position (or of the merged vertex) or the seams crack open.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from twingap.errors import TwingapError
from twingap.io import sha256_arrays

#: Albedo used for a mesh that has neither a texture nor a configured fallback (mid grey).
DEFAULT_FALLBACK_RGB = (128, 128, 128)

#: ``metadata["color_source"]`` of an untextured asset drawn in :data:`DEFAULT_FALLBACK_RGB`.
DEFAULT_COLOR_SOURCE = "the default grey (the file names no texture or colour)"


@dataclass(frozen=True, eq=False)
class Asset:
    """A textured mesh.

    Attributes:
        name: Object name, e.g. ``"011_banana"``.
        vertices: (V, 3) float64 positions in metres (object pose frame).
        faces: (F, 3) int64 vertex indices, counter-clockwise seen from outside.
        uvs: (V, 2) float64 texture coordinates in [0, 1] (OBJ convention).
        texture: (H, W, 3) uint8 sRGB albedo. A mesh without a texture carries a 1x1 texture
            of one colour (configured, its material's, or grey) and all-zero UVs (see
            :func:`uniform_texture`, :func:`asset_from_trimesh`).
        textured: False when ``texture`` is a uniform fallback rather than a real texture map.
        metadata: Free-form JSON-serialisable provenance (source file, applied conditions;
            ``color_source`` on an untextured asset: where its colour came from).
    """

    name: str
    vertices: np.ndarray
    faces: np.ndarray
    uvs: np.ndarray
    texture: np.ndarray
    textured: bool = True
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        v, f, uv, tex = self.vertices, self.faces, self.uvs, self.texture
        if v.ndim != 2 or v.shape[1] != 3 or len(v) == 0:
            raise TwingapError(f"asset {self.name!r}: vertices must be (V,3) with V>0, got {v.shape}")
        if f.ndim != 2 or f.shape[1] != 3 or len(f) == 0:
            raise TwingapError(f"asset {self.name!r}: faces must be (F,3) with F>0, got {f.shape}")
        if uv.shape != (len(v), 2):
            raise TwingapError(f"asset {self.name!r}: uvs must be (V,2), got {uv.shape}")
        if tex.ndim != 3 or tex.shape[2] != 3 or tex.dtype != np.uint8:
            raise TwingapError(f"asset {self.name!r}: texture must be (H,W,3) uint8")
        if f.min() < 0 or f.max() >= len(v):
            raise TwingapError(f"asset {self.name!r}: face indices out of range")
        for arr in (v, f, uv, tex):
            arr.setflags(write=False)

    @property
    def content_hash(self) -> str:
        """SHA-256 over geometry, UVs and texture (not name or metadata)."""
        return sha256_arrays(self.vertices, self.faces, self.uvs, self.texture)

    @property
    def bbox_diagonal(self) -> float:
        """Length of the axis-aligned bounding-box diagonal, metres."""
        return float(np.linalg.norm(self.vertices.max(0) - self.vertices.min(0)))

    def replace(self, **changes: object) -> Asset:
        """Return a copy with some fields replaced (arrays are not copied)."""
        return replace(self, **changes)

    def to_trimesh(self):
        """Return a ``trimesh.Trimesh`` with a textured visual (for export and queries)."""
        import trimesh
        from PIL import Image

        material = trimesh.visual.material.SimpleMaterial(image=Image.fromarray(self.texture))
        visual = trimesh.visual.TextureVisuals(uv=self.uvs, image=None, material=material)
        return trimesh.Trimesh(self.vertices, self.faces, visual=visual, process=False)


def uniform_texture(rgb: tuple[int, int, int]) -> np.ndarray:
    """Return a (1, 1, 3) uint8 texture of one colour (the untextured-mesh fallback)."""
    return np.asarray(rgb, dtype=np.uint8).reshape(1, 1, 3)


def srgb_from_linear(linear: np.ndarray) -> np.ndarray:
    """Encode linear-light values in [0, 1] with the sRGB transfer curve (values in [0, 1])."""
    x = np.clip(np.asarray(linear, dtype=np.float64), 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)


def material_rgb(visual) -> tuple[tuple[int, int, int], str] | None:
    """The colour a mesh's material names when it has no texture image, and where it came from.

    * An OBJ material's ``Kd`` (0..1, taken as sRGB, the usual MTL reading: ``Kd 0.4 0.4 0.4`` is
      (102, 102, 102)).
    * A glTF material's ``baseColorFactor`` (linear light by the glTF specification, converted to
      sRGB: a factor of 0.4 is (170, 170, 170)).

    Args:
        visual: A trimesh visual (``mesh.visual``).

    Returns:
        ``((r, g, b) sRGB 0..255, description)``, or None when the material names no colour.
    """
    import trimesh

    if not isinstance(visual, trimesh.visual.TextureVisuals):
        return None
    mat = visual.material
    name = getattr(mat, "name", None)
    called = f" of {name!r}" if name else ""
    if isinstance(mat, trimesh.visual.material.SimpleMaterial):
        kd = getattr(mat, "kwargs", {}).get("kd")
        if kd is None:
            return None
        kd = np.atleast_1d(np.asarray(kd, dtype=np.float64))
        if kd.size < 3 or not np.all(np.isfinite(kd[:3])):
            return None
        rgb = np.round(np.clip(kd[:3], 0.0, 1.0) * 255.0).astype(int)
        return (int(rgb[0]), int(rgb[1]), int(rgb[2])), f"the material (MTL Kd{called})"
    if isinstance(mat, trimesh.visual.material.PBRMaterial):
        factor = mat.baseColorFactor  # trimesh keeps it as uint8 0..255, still linear light
        if factor is None:
            return None
        rgb = np.round(srgb_from_linear(np.asarray(factor[:3], dtype=np.float64) / 255.0) * 255.0).astype(int)
        return (int(rgb[0]), int(rgb[1]), int(rgb[2])), f"the material (glTF baseColorFactor{called})"
    return None


def asset_from_trimesh(
    mesh, name: str, fallback_rgb=None, metadata=None, color_source: str | None = None
) -> Asset:
    """Build an :class:`Asset` from a loaded ``trimesh.Trimesh``.

    A mesh without UVs or texture image gets a uniform texture: ``fallback_rgb`` when given (a colour
    the user configured), else its material's colour (:func:`material_rgb`), else
    :data:`DEFAULT_FALLBACK_RGB`; ``metadata["color_source"]`` says which (``color_source`` names
    where ``fallback_rgb`` came from), and zero UVs.
    """
    import trimesh

    verts = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces, dtype=np.int64)
    meta = dict(metadata or {})
    uv = None
    image = None
    visual = getattr(mesh, "visual", None)
    if isinstance(visual, trimesh.visual.TextureVisuals) and visual.uv is not None:
        uv = np.asarray(visual.uv, dtype=np.float64)
        mat = visual.material
        image = getattr(mat, "baseColorTexture", None) or getattr(mat, "image", None)
    if uv is not None and image is not None and len(uv) == len(verts):
        texture = np.asarray(image.convert("RGB"), dtype=np.uint8)
        textured = True
    else:
        from_material = material_rgb(visual)
        if fallback_rgb is not None:
            rgb, source = tuple(fallback_rgb), color_source or "the given colour"
        elif from_material is not None:
            rgb, source = from_material
        else:
            rgb, source = DEFAULT_FALLBACK_RGB, DEFAULT_COLOR_SOURCE
        texture = uniform_texture(rgb)
        meta["color_source"] = source
        uv = np.zeros((len(verts), 2))
        textured = False
    return Asset(name, verts, faces, uv, np.ascontiguousarray(texture), textured, meta)


def read_trimesh(path: Path) -> Any:
    """The triangle mesh of an OBJ / PLY / GLB / glTF file, in its file units (a ``trimesh.Trimesh``).

    A scene's meshes are concatenated; an OBJ's MTL and texture references are checked first.

    Raises:
        TwingapError: If the file is unreadable, holds no triangle mesh, or the mesh has no faces.
    """
    import trimesh

    if path.suffix.lower() == ".obj":
        _check_obj_references(path)
    try:
        loaded = trimesh.load(path, process=False)
    except Exception as exc:  # trimesh raises many types for bad files
        raise TwingapError(f"unreadable mesh ({exc})", path) from exc
    if isinstance(loaded, trimesh.Scene):
        geoms = [g for g in loaded.geometry.values() if isinstance(g, trimesh.Trimesh)]
        if not geoms:
            raise TwingapError("no triangle mesh in file", path)
        loaded = geoms[0] if len(geoms) == 1 else trimesh.util.concatenate(geoms)
    if not isinstance(loaded, trimesh.Trimesh) or len(loaded.faces) == 0:
        raise TwingapError("empty mesh (no faces)", path)
    return loaded


def load_mesh_file(
    path: str | Path, name: str | None = None, fallback_rgb=None, color_source: str | None = None
) -> Asset:
    """Load an OBJ(+MTL+PNG), PLY or GLB/glTF file as an Asset (units must be metres).

    An untextured mesh takes ``fallback_rgb`` (described by ``color_source``), else its material's
    colour (MTL ``Kd``, glTF ``baseColorFactor``), else grey (see :func:`asset_from_trimesh`).

    Raises:
        TwingapError: If the file is missing, unreadable, empty, or obviously in millimetres
            (bounding-box diagonal above 10 m: no YCB-like object is that large).
    """
    path = Path(path)
    if not path.is_file():
        raise TwingapError("mesh file not found", path)
    mesh = read_trimesh(path)
    asset = asset_from_trimesh(mesh, name or path.stem, fallback_rgb, {"source": str(path)}, color_source)
    if asset.bbox_diagonal > 10.0:
        raise TwingapError(
            f"mesh looks like millimetres (bbox diagonal {asset.bbox_diagonal:.1f}); "
            "twingap expects metres: scale it by 0.001",
            path,
        )
    return asset


def _check_obj_references(path: Path) -> None:
    """Raise if an OBJ names a material library or texture map that does not exist.

    (trimesh silently drops a missing texture, which would turn a textured asset grey.)
    """
    with open(path, encoding="utf-8", errors="replace") as f:
        mtllibs = [line.split(None, 1)[1].strip() for line in f if line.startswith("mtllib ")]
    for lib in mtllibs:
        mtl = path.parent / lib
        if not mtl.is_file():
            raise TwingapError(f"material file {lib!r} named by the OBJ is missing", path)
        for line in mtl.read_text(encoding="utf-8", errors="replace").splitlines():
            parts = line.split()
            if parts and parts[0] == "map_Kd" and len(parts) > 1:
                tex = mtl.parent / parts[-1]
                if not tex.is_file():
                    raise TwingapError(f"texture file {parts[-1]!r} named by {lib!r} is missing", path)


class ModelLibrary:
    """A folder of object models: ids, names and units from the user's own files.

    The layouts (an ``objects.toml`` folder, a BOP ``models/`` folder, the sample's
    ``models_info.json``, a plain folder of meshes) are described in :mod:`twingap.assets.library`.
    :meth:`load` returns an asset in metres in its pose frame, so the poses of the frames
    (YCB-Video, BOP, ...) apply to it directly.

    Attributes:
        root: The library folder.
        kind: The recognised layout (``"objects.toml"``, ``"bop"``, ``"twingap"``, ``"folder"``).
        info: Model name -> entry (``file``, ``obj_id``, ``unit``, ``offset_m``, ...).
        notes: Things the user should know about the library (printed once on stderr).
    """

    def __init__(self, root: str | Path) -> None:
        from twingap.assets.library import print_notes, read_index

        self._index = read_index(root)
        self.root = self._index.root
        self.kind = self._index.kind
        self.info: dict[str, dict] = self._index.entries
        self.notes = self._index.notes
        print_notes(self._index)
        self._cache: dict[str, Asset] = {}

    @property
    def names(self) -> list[str]:
        """Model names, sorted."""
        return sorted(self.info)

    def obj_id(self, name: str) -> int:
        """Class id of a model."""
        return int(self.info[name]["obj_id"])

    def name_of(self, obj_id: int) -> str:
        """Model name of a class id.

        Raises:
            TwingapError: If no model has this id.
        """
        for name, entry in self.info.items():
            if int(entry["obj_id"]) == int(obj_id):
                return name
        raise TwingapError(f"no model for object id {obj_id}", self.root)

    def categories(self) -> dict[int, str]:
        """Category id -> model name, sorted by id (the COCO categories of this library)."""
        pairs = sorted((int(e["obj_id"]), name) for name, e in self.info.items())
        return dict(pairs)

    def load(self, name: str) -> Asset:
        """Load a model (cached) in metres, in its pose frame.

        Raises:
            TwingapError: If the model is unknown, or its file, texture or unit is wrong.
        """
        from twingap.assets.library import load_model

        if name not in self._cache:
            self._cache[name] = load_model(self._index, name)
        return self._cache[name]


def default_sample_root() -> Path:
    """Return the repository's ``data/sample`` folder (or ``$TWINGAP_SAMPLE``)."""
    import os

    env = os.environ.get("TWINGAP_SAMPLE")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "data" / "sample"
