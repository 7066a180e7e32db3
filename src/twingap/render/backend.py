"""The renderer protocol shared by all backends, and :func:`get_renderer`.

A renderer draws one :class:`~twingap.render.scene.SceneSpec` with the given assets and
returns a :class:`RenderResult`. Conventions (every backend):

* ``rgb``: (H, W, 3) uint8 sRGB after the scene's camera response
  (:mod:`twingap.render.response`).
* ``depth``: (H, W) float32 planar depth (OpenCV camera z) in metres; 0 where nothing was hit.
  The background mesh, if any, is a real surface and has depth; a colour/image background has 0.
* ``instance_ids``: (H, W) int32; 0 = background (including a background mesh),
  ``i + 1`` = ``scene.objects[i]``. Exact (no anti-aliasing): one sample at the pixel centre.

Pixel ``(u, v)`` (column, row) is the OpenCV pixel whose centre projects at
``u = fx * x / z + cx``, ``v = fy * y / z + cy``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from twingap.assets.asset import Asset
from twingap.configfile import did_you_mean
from twingap.errors import TwingapError
from twingap.render.scene import SceneSpec

#: Key under which a caller may pass a ready background :class:`Asset` (world coordinates) in the
#: ``assets`` dict instead of ``BackgroundSpec.path`` (used when ``background.kind == "mesh"``).
BACKGROUND_ASSET_KEY = "__background__"

BACKENDS = ("raster", "cycles")


def background_asset(scene: SceneSpec, assets: dict[str, Asset], cache: dict | None = None) -> Asset | None:
    """The background mesh of a ``kind="mesh"`` scene (``None`` for other backgrounds).

    A ready-made asset under :data:`BACKGROUND_ASSET_KEY` in ``assets`` wins; otherwise the
    mesh at ``scene.background.path`` is loaded (world coordinates, metres), memoised in
    ``cache`` by (resolved path, modification time) when a cache is given.

    Raises:
        TwingapError: If the path is missing or the file does not exist.
    """
    from pathlib import Path

    from twingap.assets.asset import load_mesh_file

    bg = scene.background
    if bg.kind != "mesh":
        return None
    if BACKGROUND_ASSET_KEY in assets:
        return assets[BACKGROUND_ASSET_KEY]
    if not bg.path:
        raise TwingapError(f"scene {scene.scene_id!r}: background kind 'mesh' needs a path")
    path = Path(bg.path)
    if not path.is_file():
        raise TwingapError(f"scene {scene.scene_id!r}: background mesh not found", path)
    if cache is None:
        return load_mesh_file(path, "background")
    key = (str(path.resolve()), path.stat().st_mtime_ns)
    if key not in cache:
        cache[key] = load_mesh_file(path, "background")
    return cache[key]


@dataclass
class RenderResult:
    """What a renderer returns for one scene.

    Attributes:
        rgb: (H, W, 3) uint8 sRGB image.
        depth: (H, W) float32 planar depth in metres (camera z), 0 = nothing.
        instance_ids: (H, W) int32 instance map (0 = background, i+1 = scene.objects[i]).
        linear: Optional (H, W, 3) float32 linear radiance of the lit surfaces (objects and
            lit background mesh) before the camera response, not pre-multiplied; only filled
            when asked for (twin calibration fits the response on it).
        coverage: Optional (H, W) float32 anti-aliased coverage of ``linear`` in [0, 1].
    """

    rgb: np.ndarray
    depth: np.ndarray
    instance_ids: np.ndarray
    linear: np.ndarray | None = None
    coverage: np.ndarray | None = None

    def mask(self, i: int) -> np.ndarray:
        """(H, W) bool visible mask of ``scene.objects[i]``."""
        return self.instance_ids == i + 1


@runtime_checkable
class Renderer(Protocol):
    """Anything with ``render(scene, assets) -> RenderResult``."""

    def render(self, scene: SceneSpec, assets: dict[str, Asset]) -> RenderResult:
        """Render ``scene``; ``assets`` maps ``ObjectSpec.model`` names to assets."""
        ...


def get_renderer(name: str = "raster", **kwargs: object) -> Renderer:
    """Return a renderer backend by name.

    Args:
        name: ``"raster"`` (moderngl on headless EGL; llvmpipe on CPU) or ``"cycles"`` (Blender
            Cycles through ``bpy``, the optional extra ``twingap[cycles]``; imported lazily).
        **kwargs: Passed to the backend's constructor (e.g. ``width``, ``height``).

    Raises:
        TwingapError: If the backend is unknown.
    """
    if name == "raster":
        from twingap.render.raster import RasterRenderer

        return RasterRenderer(**kwargs)  # type: ignore[arg-type]
    if name == "cycles":
        from twingap.render.cycles import CyclesRenderer

        return CyclesRenderer(**kwargs)  # type: ignore[arg-type]
    raise TwingapError(f"unknown render backend {name!r} (have: {', '.join(BACKENDS)})")


def check_backend(name: str) -> None:
    """Fail early (before spawning render workers) if backend ``name`` is unknown or cannot run here.

    Raises:
        TwingapError: If the backend is unknown, or ``"cycles"`` has no ``bpy`` available (the
            message says how to install it).
    """
    if name not in BACKENDS:
        raise TwingapError(f"unknown render backend {name!r} (have: {', '.join(BACKENDS)})")
    if name == "cycles":
        from twingap.render.cycles import check_available

        check_available()


def check_options(name: str, options: dict[str, Any]) -> None:
    """Fail early on a backend option that backend ``name`` does not take (a study's ``[render] options``).

    Raster takes its renderer's keywords (``msaa``, ...); Cycles its quality settings and process
    options (:func:`twingap.render.cycles.check_options`). ``width`` and ``height`` come from the
    scenes, not from options.

    Raises:
        TwingapError: One line naming the unknown option(s), or an invalid Cycles value.
    """
    if name not in BACKENDS:
        raise TwingapError(f"unknown render backend {name!r} (have: {', '.join(BACKENDS)})")
    if name == "cycles":
        from twingap.render.cycles import check_options as check_cycles_options

        check_cycles_options(options)
        return
    import inspect

    from twingap.render.raster import RasterRenderer

    params = inspect.signature(RasterRenderer.__init__).parameters
    have = [k for k in params if k not in ("self", "width", "height")]
    unknown = sorted(set(options) - set(have))
    if unknown:
        hint = did_you_mean(unknown[0], have)
        raise TwingapError(f"unknown {name} option(s) {unknown}{hint} (have: {', '.join(have)})")
