"""The Cycles renderer (the backend protocol) and :func:`render_batch`."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from twingap.assets.asset import Asset
from twingap.configfile import did_you_mean
from twingap.errors import TwingapError
from twingap.render.backend import RenderResult
from twingap.render.cycles.settings import CyclesSettings
from twingap.render.cycles.worker import INSTALL_HINT, Worker, bpy_available, check_available
from twingap.render.scene import SceneSpec


class CyclesRenderer:
    """Blender Cycles renderer; implements the renderer protocol of :mod:`twingap.render.backend`.

    Args:
        width: Default image width in pixels (a scene's camera size wins, as in the raster backend).
        height: Default image height in pixels.
        in_process: Render with ``bpy`` in this process (needs ``bpy`` here; memory grows over
            many scenes). Default False: render in a worker process, restarted every
            ``scenes_per_process`` scenes.
        python: Interpreter with ``bpy`` for worker processes (default: this one if it has
            ``bpy``, else ``$TWINGAP_BPY_PYTHON``). It runs this process's twingap package and
            needs its own numpy<2, scipy, pillow, opencv-python-headless and trimesh.
        scenes_per_process: Restart the worker process after this many scenes (bounds memory).
        settings: Quality settings; or give them as keywords instead (below).
        **options: :class:`~twingap.render.cycles.settings.CyclesSettings` fields by name
            (``samples``, ``denoise``, ``denoise_quality``, ``device``, ``max_bounces``,
            ``threads``, ...), the form a study's ``[render] options`` takes.

    Raises:
        TwingapError: On an unknown or invalid option, or if no interpreter with ``bpy`` is
            available (with the install hint).
    """

    def __init__(
        self,
        width: int = 640,
        height: int = 480,
        *,
        in_process: bool = False,
        python: str | None = None,
        scenes_per_process: int = 50,
        settings: CyclesSettings | None = None,
        **options: Any,
    ) -> None:
        if settings is not None and options:
            raise TwingapError("give the Cycles settings either as settings= or as options, not both")
        self.width, self.height = int(width), int(height)
        self.settings = settings if settings is not None else CyclesSettings.from_options(options)
        self.in_process = bool(in_process)
        self._session = None
        self._worker: Worker | None = None
        if self.in_process:
            if not bpy_available():
                raise TwingapError(INSTALL_HINT)
        else:
            self._worker = Worker(check_available(python), self.settings, scenes_per_process)

    def render(self, scene: SceneSpec, assets: dict[str, Asset], return_linear: bool = False) -> RenderResult:
        """Render one scene.

        Args:
            scene: The scene (camera, objects, lights, ambient, background, response, seed).
            assets: ``ObjectSpec.model`` name -> :class:`Asset` (in the object's pose frame);
                optionally :data:`~twingap.render.backend.BACKGROUND_ASSET_KEY` -> a background
                asset in world coordinates (overrides ``background.path``).
            return_linear: Also return the linear radiance and its coverage.

        Returns:
            :class:`RenderResult`: rgb (H, W, 3) uint8, depth (H, W) float32 planar metres
            (0 = nothing), instance_ids (H, W) int32 (0 = background, i + 1 = object i).

        Raises:
            TwingapError: If a model is missing from ``assets``, a light, the response or the
                background is invalid.
        """
        if self._worker is not None:
            return self._worker.render(scene, assets, return_linear)
        if self._session is None:
            from twingap.render.cycles.session import BlenderSession

            self._session = BlenderSession(self.settings)
        return self._session.render(scene, assets, return_linear)

    def close(self) -> None:
        """Stop the worker process / remove temporary files."""
        if self._worker is not None:
            self._worker.close()
        if self._session is not None:
            self._session.close()
            self._session = None

    release = close

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


#: Renderer keywords that are not quality settings (``width``/``height`` come from the scenes).
PROCESS_OPTIONS = tuple(
    name
    for name, p in inspect.signature(CyclesRenderer.__init__).parameters.items()
    if p.kind is inspect.Parameter.KEYWORD_ONLY and name != "settings"
)


def check_options(options: Mapping[str, Any]) -> CyclesSettings:
    """Check backend options as a study's ``[render] options`` gives them, before any work.

    Args:
        options: Settings fields and the process options (``in_process``, ``python``,
            ``scenes_per_process``).

    Returns:
        The settings they give.

    Raises:
        TwingapError: One line, on an unknown option or an invalid value.
    """
    unknown = sorted(set(options) - set(CyclesSettings.names()) - set(PROCESS_OPTIONS))
    if unknown:
        have = ", ".join(CyclesSettings.names() + PROCESS_OPTIONS)
        hint = did_you_mean(unknown[0], CyclesSettings.names() + PROCESS_OPTIONS)
        raise TwingapError(f"unknown Cycles option(s) {unknown}{hint} (have: {have})")
    return CyclesSettings.from_options({k: v for k, v in options.items() if k not in PROCESS_OPTIONS})


def render_batch(
    scenes: Iterable[SceneSpec],
    assets_by_name: dict[str, Asset] | Callable[[SceneSpec], dict[str, Asset]],
    out_fn: Callable[[int, SceneSpec, RenderResult], None],
    *,
    python: str | None = None,
    scenes_per_process: int = 50,
    settings: CyclesSettings | None = None,
    **options: Any,
) -> int:
    """Render many scenes in Blender worker processes (one process per ``scenes_per_process``).

    Args:
        scenes: The scenes, rendered in order.
        assets_by_name: Model name -> :class:`Asset`, or a function giving the assets of a
            scene (for per-scene conditions).
        out_fn: Called as ``out_fn(index, scene, result)`` after each scene (in this process).
        python: Interpreter with ``bpy`` (default: this one if it has ``bpy``, else
            ``$TWINGAP_BPY_PYTHON``).
        scenes_per_process: Scenes per worker process before it is restarted.
        settings: Quality settings; or give them as keywords instead.
        **options: :class:`~twingap.render.cycles.settings.CyclesSettings` fields by name
            (``samples``, ``denoise``, ``threads``, ...).

    Returns:
        Number of scenes rendered.

    Raises:
        TwingapError: If no interpreter with ``bpy`` is available, an option or a scene is invalid.
    """
    renderer = CyclesRenderer(
        in_process=False, python=python, scenes_per_process=scenes_per_process, settings=settings, **options
    )
    n = 0
    try:
        for i, scene in enumerate(scenes):
            assets = assets_by_name(scene) if callable(assets_by_name) else assets_by_name
            out_fn(i, scene, renderer.render(scene, assets))
            n += 1
    finally:
        renderer.close()
    return n
