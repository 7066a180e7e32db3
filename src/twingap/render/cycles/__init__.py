"""Physically based backend: Blender Cycles through ``bpy`` (optional extra ``twingap[cycles]``).

Renders the same :class:`~twingap.render.scene.SceneSpec` as the raster backend
(:mod:`twingap.render.raster`) and returns the same
:class:`~twingap.render.backend.RenderResult`, with path-traced light transport: soft shadows,
inter-reflection and ambient occlusion from the world light.

Conventions matched to the raster backend:

* **Camera**: OpenCV pinhole ``u = fx x/z + cx`` (pixel centres at integers). Blender's camera
  gets ``lens`` from ``fx``, the pixel aspect from ``fx/fy`` and ``shift_x/shift_y`` from the
  principal point; its pose is ``inv(cam_T_world)`` with the OpenCV -> Blender axis flip
  (``y`` and ``z`` negated: Blender cameras look down their ``-z`` with ``+y`` up).
* **Materials**: Lambertian (Diffuse BSDF) with the asset's sRGB texture (decoded to linear by
  Blender), smooth normals shared across texture seams, back faces visible and shaded.
* **Lights**: radiometric units chosen so that a Lambertian surface gets the raster backend's
  ``albedo * (ambient + sum_k I_k * max(n.l, 0))`` when nothing occludes it: a sun of strength
  ``pi * I`` for a directional light, a point light of power ``4 pi^2 * I`` (the raster's
  ``I / d^2`` falloff), and a uniform world of radiance ``scene.ambient``.
* **Camera response**: Cycles' linear output (read back from 32-bit EXR, so no view transform
  is involved) goes through :mod:`twingap.render.response`, then over the background colour or
  image, exactly like the raster compositing pass.
* **ids and depth** are exact: a second, cheap render (1 sample at the pixel centre, no
  bounces) writes the object index pass (``pass_index = i + 1``) and the Z pass (Cycles' Z is
  the planar camera depth). The path-traced pass uses Cycles' pixel filter, whose first sample
  (the one Cycles keeps for ID passes) is jittered up to ~0.75 px, so it cannot give exact masks.
* **Background mesh** (``BackgroundSpec.kind == "mesh"``): camera rays see its texture unlit
  (pass-through, as in the raster backend); other rays see a diffuse surface, so the objects get
  light bounced from the support and are occluded by it. ``scene.meta["background_unlit"] =
  False`` renders it as a lit diffuse surface instead (through the camera response).
* Not supported: the raster backend's optional Blinn-Phong term (``scene.meta["specular"]``);
  Cycles' surfaces are purely Lambertian.

Determinism: Cycles' seed is derived from ``scene.seed``; with a fixed sample count, adaptive
sampling off and the same device, the output is byte-identical run to run.

Process model: :class:`CyclesRenderer` (and :func:`render_batch`) render in a Blender worker
process, restarted every ``scenes_per_process`` scenes because Blender's memory grows over many
scenes. The worker's interpreter is this one when it can import ``bpy``, else
``$TWINGAP_BPY_PYTHON`` (or the ``python`` argument): a main environment with NumPy 2 (bpy 4.5
needs NumPy < 2) drives Blender installed in a separate environment. ``in_process=True``
renders with ``bpy`` in this process instead.

Layout:

* :mod:`~twingap.render.cycles.settings`: :class:`CyclesSettings`, the quality settings (one
  frozen dataclass, validated once; also checks a study's ``[render] options``).
* :mod:`~twingap.render.cycles.convert`: the pure conversions (camera, poses, lights, ambient,
  pass settings, mesh layout, compositing); NumPy only, importable without ``bpy``.
* :mod:`~twingap.render.cycles.session`: :class:`BlenderSession`, the scene built with ``bpy``.
* :mod:`~twingap.render.cycles.worker`: the worker process, its protocol and its interpreter.
* :mod:`~twingap.render.cycles.renderer`: :class:`CyclesRenderer` and :func:`render_batch`.
"""

from twingap.render.cycles.convert import blender_camera_matrix, blender_camera_params, composite
from twingap.render.cycles.renderer import CyclesRenderer, check_options, render_batch
from twingap.render.cycles.settings import CyclesSettings
from twingap.render.cycles.worker import (
    BPY_PYTHON_ENV,
    INSTALL_HINT,
    bpy_available,
    check_available,
    worker_main,
)

__all__ = [
    "BPY_PYTHON_ENV",
    "INSTALL_HINT",
    "CyclesRenderer",
    "CyclesSettings",
    "blender_camera_matrix",
    "blender_camera_params",
    "bpy_available",
    "check_available",
    "check_options",
    "composite",
    "render_batch",
    "worker_main",
]
