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
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import weakref
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from twingap.assets.asset import Asset
from twingap.errors import TwingapError
from twingap.render.backend import BACKGROUND_ASSET_KEY, RenderResult, background_asset
from twingap.render.response import add_sensor_noise, check_response, response_float
from twingap.render.scene import SceneSpec

#: Environment variable naming a Python interpreter that can ``import bpy``.
BPY_PYTHON_ENV = "TWINGAP_BPY_PYTHON"

#: The one-line hint shown when bpy is missing.
INSTALL_HINT = (
    "the Cycles backend needs Blender as a Python module (bpy 4.5, Python 3.11, numpy<2): "
    "pip install 'twingap[cycles]' (in a separate environment if this one needs numpy 2, then set "
    f"{BPY_PYTHON_ENV}=/path/to/that/python)"
)

#: Cycles' "nothing hit" depth is 1e10; anything beyond this is background.
_FAR = 1e9


@dataclass(frozen=True)
class CyclesSettings:
    """Quality settings of a Cycles render.

    Attributes:
        samples: Path-tracing samples per pixel (fixed; adaptive sampling is off).
        denoise: Run OpenImageDenoise (albedo + normal guided) on the colour pass (when the
            Blender build has it).
        denoise_quality: OIDN quality, ``"HIGH"``, ``"BALANCED"`` or ``"FAST"`` (at 640x480 on
            2 busy cores: about 5, 2.5 and 1 s on top of the path tracing).
        device: ``"auto"`` (a GPU when Cycles finds one, else CPU), ``"cpu"`` or ``"gpu"``.
        max_bounces: Total light bounces (diffuse bounces are capped at 3).
        threads: CPU threads (0 = all cores).
        filter_width: Pixel filter (Blackman-Harris) width, pixels.
        sun_angle: Angular diameter of sun lights, radians (soft shadows).
        point_radius: Radius of point lights, metres (soft shadows).
    """

    samples: int = 8
    denoise: bool = True
    denoise_quality: str = "BALANCED"
    device: str = "auto"
    max_bounces: int = 4
    threads: int = 0
    filter_width: float = 1.5
    sun_angle: float = 0.05
    point_radius: float = 0.02


def bpy_available() -> bool:
    """True when ``bpy`` can be imported in this interpreter (without importing it)."""
    return importlib.util.find_spec("bpy") is not None


def _python_has_bpy(python: str) -> bool:
    try:
        proc = subprocess.run(
            [python, "-c", "import importlib.util, sys; sys.exit(importlib.util.find_spec('bpy') is None)"],
            capture_output=True,
            timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


# ---------------------------------------------------------------------------------------------
# Geometry helpers (pure NumPy, testable without bpy)


def blender_camera_params(K: np.ndarray, width: int, height: int, sensor_width: float = 36.0) -> dict:
    """Blender camera/render settings that reproduce an OpenCV pinhole camera.

    Blender maps raster x (pixel ``i`` spans ``[i, i+1)``) with ``sensor_fit = 'HORIZONTAL'`` as
    ``x_r = W/2 - shift_x W + fx X/Z`` and rows (from the top) as
    ``y_r = H/2 + shift_y W / a + fy Y/Z`` with ``a = pixel_aspect_y / pixel_aspect_x``
    and ``fy = fx / a``. OpenCV pixel centres sit at ``x_r = u + 0.5``.

    Args:
        K: (3, 3) intrinsics, pixels (zero skew).
        width: Image width, pixels.
        height: Image height, pixels.
        sensor_width: Nominal sensor width, mm (any value works; only ratios matter).

    Returns:
        Dict with ``lens`` (mm), ``sensor_width``, ``shift_x``, ``shift_y``, ``pixel_aspect_x``,
        ``pixel_aspect_y``.

    Raises:
        TwingapError: If ``K`` has a skew term (Blender cameras cannot express it).
    """
    K = np.asarray(K, dtype=np.float64)
    if abs(K[0, 1]) > 1e-9:
        raise TwingapError("the Cycles backend does not support a skewed camera (K[0, 1] != 0)")
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    a = fx / fy  # pixel_aspect_y / pixel_aspect_x
    pax, pay = (1.0, a) if a >= 1 else (1.0 / a, 1.0)
    return {
        "lens": fx * sensor_width / width,
        "sensor_width": sensor_width,
        "shift_x": -(cx - (width - 1) / 2) / width,
        "shift_y": a * (cy - (height - 1) / 2) / width,
        "pixel_aspect_x": pax,
        "pixel_aspect_y": pay,
    }


def blender_camera_matrix(cam_T_world: np.ndarray) -> np.ndarray:
    """(4, 4) Blender camera ``matrix_world`` of an OpenCV ``cam_T_world`` (axes y, z flipped)."""
    return np.linalg.inv(np.asarray(cam_T_world, dtype=np.float64)) @ np.diag([1.0, -1.0, -1.0, 1.0])


def _rotation_to(direction: np.ndarray) -> np.ndarray:
    """(3, 3) rotation taking the local ``-z`` axis onto unit ``direction`` (a sun's travel)."""
    d = np.asarray(direction, dtype=np.float64)
    d = d / np.linalg.norm(d)
    z = -d
    helper = np.array([1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    x = np.cross(helper, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return np.stack([x, y, z], axis=1)


def _smooth_normals(asset: Asset) -> np.ndarray:
    from twingap.render.raster import vertex_normals

    return vertex_normals(np.asarray(asset.vertices, dtype=np.float64), asset.faces)


def _linear_to_srgb(x: np.ndarray) -> np.ndarray:
    c = np.clip(x, 0.0, 1.0)
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * np.power(c, 1 / 2.4) - 0.055)


def _background_image(scene: SceneSpec, width: int, height: int) -> np.ndarray:
    """(H, W, 3) float64 sRGB background image in [0, 1] (resized like the raster backend)."""
    import cv2
    from PIL import Image

    path = Path(scene.background.path or "")
    if not scene.background.path or not path.is_file():
        raise TwingapError(f"scene {scene.scene_id!r}: background image not found", path)
    with Image.open(path) as im:
        img = np.asarray(im.convert("RGB"))
    if img.shape[:2] != (height, width):
        img = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)
    return img.astype(np.float64) / 255.0


def _check_scene(scene: SceneSpec, assets: dict[str, Asset]) -> None:
    check_response(scene.response)
    for obj in scene.objects:
        if obj.model not in assets:
            raise TwingapError(f"scene {scene.scene_id!r}: no model {obj.model!r} among the assets")
    for light in scene.lights:
        if light.kind not in ("directional", "point"):
            raise TwingapError(f"scene {scene.scene_id!r}: unknown light kind {light.kind!r}")
        if light.kind == "directional" and not np.linalg.norm(light.direction) > 0:
            raise TwingapError(f"scene {scene.scene_id!r}: directional light with zero direction")
    if scene.background.kind not in ("color", "image", "mesh"):
        raise TwingapError(f"scene {scene.scene_id!r}: unknown background kind {scene.background.kind!r}")


def composite(
    scene: SceneSpec,
    premult: np.ndarray,
    alpha: np.ndarray,
    bg_srgb: np.ndarray | None,
) -> np.ndarray:
    """Camera response on the lit radiance, over the background (the raster compositing rule).

    ``c = alpha * response(premult / alpha) + (1 - alpha) * bg``, then sensor noise and
    quantisation (:func:`~twingap.render.response.add_sensor_noise`).

    Args:
        scene: The scene (response, background colour, seed).
        premult: (H, W, 3) linear radiance pre-multiplied by coverage.
        alpha: (H, W) coverage of the lit surfaces in [0, 1].
        bg_srgb: (H, W, 3) sRGB background in [0, 1] (image or background mesh), or None for
            the uniform ``background.color``.

    Returns:
        (H, W, 3) uint8 image.
    """
    a = np.clip(alpha, 0.0, 1.0)[..., None].astype(np.float64)
    if bg_srgb is None:
        bg_srgb = np.broadcast_to(np.asarray(scene.background.color, dtype=np.float64) / 255.0, premult.shape)
    c = (1.0 - a) * bg_srgb
    lit = a[..., 0] > 0  # the response only where a lit surface covers the pixel
    c[lit] += a[lit] * response_float(premult[lit] / a[lit], scene.response)
    c = np.clip(c, 0.0, 1.0).astype(np.float32)
    return add_sensor_noise(c * np.float32(255.0), float(scene.response.noise_sigma), int(scene.seed))


# ---------------------------------------------------------------------------------------------
# In-process rendering with bpy


@contextlib.contextmanager
def _quiet_stdout():
    """Send Blender's per-tile progress lines (written to fd 1) to /dev/null unless debugging."""
    if os.environ.get("TWINGAP_DEBUG"):
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def _usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def _cycles_seed(seed: int) -> int:
    return int(seed) % (2**31 - 1)


class _BlenderSession:
    """Builds a Blender scene from a SceneSpec and renders it (needs ``bpy`` in this process)."""

    _gpu_kind: str | None = None
    _gpu_checked = False

    def __init__(self, settings: CyclesSettings) -> None:
        import bpy  # noqa: F401  (fails here, not at module import, when bpy is missing)

        self.settings = settings
        self._tmp = Path(tempfile.mkdtemp(prefix="twingap-cycles-"))
        self._normals: weakref.WeakKeyDictionary[Asset, np.ndarray] = weakref.WeakKeyDictionary()

    def close(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)

    # -- device ------------------------------------------------------------------------------
    def _pick_device(self, scene) -> str:
        import bpy

        want = self.settings.device.lower()
        if want == "cpu":
            scene.cycles.device = "CPU"
            return "CPU"
        prefs = bpy.context.preferences.addons["cycles"].preferences
        cls = type(self)
        if not cls._gpu_checked:
            cls._gpu_checked = True
            for kind in ("OPTIX", "CUDA", "HIP", "ONEAPI", "METAL"):
                try:
                    prefs.compute_device_type = kind
                except TypeError:
                    continue
                prefs.refresh_devices()
                if any(d.type == kind for d in prefs.devices):
                    cls._gpu_kind = kind
                    break
        if cls._gpu_kind is None:
            if want == "gpu":
                raise TwingapError("Cycles device 'gpu' requested but Cycles found no GPU")
            scene.cycles.device = "CPU"
            return "CPU"
        prefs.compute_device_type = cls._gpu_kind
        prefs.refresh_devices()
        for d in prefs.devices:
            d.use = d.type == cls._gpu_kind
        scene.cycles.device = "GPU"
        return cls._gpu_kind

    # -- scene building ----------------------------------------------------------------------
    def _image(self, name: str, texture: np.ndarray):
        import bpy

        h, w = texture.shape[:2]
        img = bpy.data.images.new(name, width=w, height=h, alpha=False)
        # (a byte image is sRGB already; changing its colour space now would reload it as black)
        px = np.ones((h, w, 4), dtype=np.float32)
        px[..., :3] = texture[::-1].astype(np.float32) / np.float32(255.0)  # Blender rows: bottom up
        img.pixels.foreach_set(px.ravel())  # a generated image lives in memory: no file, no packing
        return img

    def _material(self, name: str, asset: Asset, background: bool):
        """Diffuse textured material; for the background mesh, unlit for camera rays.

        The background material also has an emission branch selected by the value node
        ``"ids_pass"`` (1 in the ids/depth pass, where it shows its pass-through colour).
        """
        import bpy

        mat = bpy.data.materials.new(name)
        mat.use_nodes = True
        mat.use_backface_culling = False
        nt = mat.node_tree
        nt.nodes.clear()
        tex = nt.nodes.new("ShaderNodeTexImage")
        tex.image = self._image(name, asset.texture)
        tex.interpolation = "Linear"
        tex.extension = "REPEAT"
        diffuse = nt.nodes.new("ShaderNodeBsdfDiffuse")
        nt.links.new(tex.outputs["Color"], diffuse.inputs["Color"])
        out = nt.nodes.new("ShaderNodeOutputMaterial")
        if not background:
            nt.links.new(diffuse.outputs["BSDF"], out.inputs["Surface"])
            return mat
        path = nt.nodes.new("ShaderNodeLightPath")
        holdout = nt.nodes.new("ShaderNodeHoldout")
        lit = nt.nodes.new("ShaderNodeMixShader")
        nt.links.new(path.outputs["Is Camera Ray"], lit.inputs["Fac"])
        nt.links.new(diffuse.outputs["BSDF"], lit.inputs[1])
        nt.links.new(holdout.outputs["Holdout"], lit.inputs[2])
        emission = nt.nodes.new("ShaderNodeEmission")
        emission.inputs["Strength"].default_value = 1.0
        nt.links.new(tex.outputs["Color"], emission.inputs["Color"])
        switch = nt.nodes.new("ShaderNodeValue")
        switch.name = "ids_pass"
        switch.outputs[0].default_value = 0.0
        final = nt.nodes.new("ShaderNodeMixShader")
        nt.links.new(switch.outputs[0], final.inputs["Fac"])
        nt.links.new(lit.outputs["Shader"], final.inputs[1])
        nt.links.new(emission.outputs["Emission"], final.inputs[2])
        nt.links.new(final.outputs["Shader"], out.inputs["Surface"])
        return mat

    def _mesh_object(self, name: str, asset: Asset, material, pass_index: int, matrix: np.ndarray):
        import bpy
        from mathutils import Matrix

        faces = np.asarray(asset.faces, dtype=np.int64)
        keep = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
        faces = faces[keep].astype(np.int32)
        verts = np.asarray(asset.vertices, dtype=np.float32)
        me = bpy.data.meshes.new(name)
        me.vertices.add(len(verts))
        me.vertices.foreach_set("co", verts.ravel())
        me.loops.add(faces.size)
        me.loops.foreach_set("vertex_index", faces.ravel())
        me.polygons.add(len(faces))
        me.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))
        me.polygons.foreach_set("loop_total", np.full(len(faces), 3, dtype=np.int32))
        uv = me.uv_layers.new(name="UVMap")
        uv.data.foreach_set("uv", np.asarray(asset.uvs, dtype=np.float32)[faces].ravel())
        me.update(calc_edges=True)
        me.polygons.foreach_set("use_smooth", np.ones(len(faces), dtype=bool))
        normals = self._normals.get(asset)
        if normals is None:
            normals = _smooth_normals(asset)
            self._normals[asset] = normals
        me.normals_split_custom_set_from_vertices(normals.astype(np.float32))
        me.materials.append(material)
        obj = bpy.data.objects.new(name, me)
        obj.pass_index = int(pass_index)
        obj.matrix_world = Matrix(np.asarray(matrix, dtype=np.float64).tolist())
        bpy.context.scene.collection.objects.link(obj)
        return obj

    def _build(self, scene: SceneSpec, assets: dict[str, Asset]) -> object | None:
        """Reset Blender and build ``scene``; returns the background material (or None)."""
        import bpy
        from mathutils import Matrix

        s = self.settings
        bpy.ops.wm.read_factory_settings(use_empty=True)
        bs = bpy.context.scene
        cam = scene.camera
        W, H = cam.width, cam.height

        bs.render.engine = "CYCLES"
        self._pick_device(bs)
        bs.render.resolution_x, bs.render.resolution_y = W, H
        bs.render.resolution_percentage = 100
        bs.render.film_transparent = True
        bs.render.use_persistent_data = True  # the ids pass reuses the synced scene (BVH, textures)
        bs.render.threads_mode = "FIXED"
        bs.render.threads = int(s.threads) if s.threads > 0 else _usable_cores()
        bs.frame_current = 1
        bs.display_settings.display_device = "sRGB"
        bs.view_settings.view_transform = "Standard"
        bs.view_settings.look = "None"
        bs.view_settings.exposure = 0.0
        bs.view_settings.gamma = 1.0
        c = bs.cycles
        c.samples = int(s.samples)
        c.use_adaptive_sampling = False
        c.seed = _cycles_seed(scene.seed)
        c.use_animated_seed = False
        c.max_bounces = int(s.max_bounces)
        c.diffuse_bounces = min(3, int(s.max_bounces))
        c.glossy_bounces = min(2, int(s.max_bounces))
        c.transmission_bounces = 0
        c.volume_bounces = 0
        c.transparent_max_bounces = 4
        c.caustics_reflective = c.caustics_refractive = False
        c.pixel_filter_type = "BLACKMAN_HARRIS"
        c.filter_width = float(s.filter_width)
        import _cycles

        c.use_denoising = bool(s.denoise) and bool(getattr(_cycles, "with_openimagedenoise", True))
        if c.use_denoising:
            c.denoiser = "OPENIMAGEDENOISE"
            c.denoising_input_passes = "RGB_ALBEDO_NORMAL"
            c.denoising_prefilter = "FAST"
            c.denoising_quality = s.denoise_quality

        # camera
        p = blender_camera_params(cam.K, W, H)
        cdata = bpy.data.cameras.new("camera")
        cdata.sensor_fit = "HORIZONTAL"
        cdata.sensor_width = p["sensor_width"]
        cdata.lens = p["lens"]
        cdata.shift_x, cdata.shift_y = p["shift_x"], p["shift_y"]
        cdata.clip_start, cdata.clip_end = float(cam.znear), float(cam.zfar)
        bs.render.pixel_aspect_x, bs.render.pixel_aspect_y = p["pixel_aspect_x"], p["pixel_aspect_y"]
        cobj = bpy.data.objects.new("camera", cdata)
        cobj.matrix_world = Matrix(blender_camera_matrix(cam.cam_T_world).tolist())
        bs.collection.objects.link(cobj)
        bs.camera = cobj

        # world: uniform ambient radiance (a Lambertian surface gets albedo * ambient)
        world = bpy.data.worlds.new("world")
        world.use_nodes = True
        bg_node = world.node_tree.nodes["Background"]
        a = float(scene.ambient)
        bg_node.inputs["Color"].default_value = (a, a, a, 1.0)
        bg_node.inputs["Strength"].default_value = 1.0
        bs.world = world

        # lights
        for k, light in enumerate(scene.lights):
            color = tuple(float(x) for x in light.color)
            if light.kind == "directional":
                ldata = bpy.data.lights.new(f"light{k}", type="SUN")
                ldata.energy = math.pi * float(light.intensity)
                ldata.angle = float(s.sun_angle)
                matrix = np.eye(4)
                matrix[:3, :3] = _rotation_to(np.asarray(light.direction, dtype=np.float64))
            else:
                ldata = bpy.data.lights.new(f"light{k}", type="POINT")
                ldata.energy = 4 * math.pi**2 * float(light.intensity)
                ldata.shadow_soft_size = float(s.point_radius)
                matrix = np.eye(4)
                matrix[:3, 3] = light.position
            ldata.color = color
            lobj = bpy.data.objects.new(f"light{k}", ldata)
            lobj.matrix_world = Matrix(matrix.tolist())
            bs.collection.objects.link(lobj)

        # objects (one material per distinct asset)
        materials: dict[int, object] = {}
        for i, obj in enumerate(scene.objects):
            asset = assets[obj.model]
            mat = materials.get(id(asset))
            if mat is None:
                mat = materials[id(asset)] = self._material(f"m{i}", asset, background=False)
            self._mesh_object(f"obj{i}", asset, mat, i + 1, obj.world_T_obj)
        bg_mat = None
        bg_asset = background_asset(scene, assets)
        if bg_asset is not None:
            # as in the raster backend: unlit (the photo texture as is) unless the scene says not
            unlit = bool(scene.meta.get("background_unlit", getattr(scene.background, "unlit", True)))
            mat = self._material("background", bg_asset, background=unlit)
            self._mesh_object("background", bg_asset, mat, 0, np.eye(4))
            bg_mat = mat if unlit else None

        # passes + compositor: RGBA, Z and object index as 32-bit EXR files
        vl = bs.view_layers[0]
        vl.use_pass_z = True
        vl.use_pass_object_index = True
        bs.use_nodes = True
        nt = bs.node_tree
        nt.nodes.clear()
        rl = nt.nodes.new("CompositorNodeRLayers")
        comp = nt.nodes.new("CompositorNodeComposite")
        nt.links.new(rl.outputs["Image"], comp.inputs["Image"])
        fo = nt.nodes.new("CompositorNodeOutputFile")
        fo.base_path = str(self._tmp)
        fo.format.file_format = "OPEN_EXR"
        fo.format.color_depth = "32"
        fo.format.color_mode = "RGBA"
        fo.format.exr_codec = "NONE"
        fo.file_slots.clear()
        for slot, socket in (("rgba", "Image"), ("depth", "Depth"), ("index", "IndexOB")):
            fo.file_slots.new(slot)
            nt.links.new(rl.outputs[socket], fo.inputs[slot])
        return bg_mat

    def _read_exr(self, slot: str, channels: int) -> np.ndarray:
        import bpy

        path = self._tmp / f"{slot}0001.exr"
        if not path.is_file():
            raise RuntimeError(f"Cycles wrote no {slot} pass ({path})")
        img = bpy.data.images.load(str(path), check_existing=False)
        try:
            w, h = img.size
            buf = np.empty(w * h * 4, dtype=np.float32)
            img.pixels.foreach_get(buf)
        finally:
            bpy.data.images.remove(img)
            path.unlink()
        return buf.reshape(h, w, 4)[::-1, :, :channels].copy()

    def render(self, scene: SceneSpec, assets: dict[str, Asset], return_linear: bool = False) -> RenderResult:
        import bpy

        _check_scene(scene, assets)
        cam = scene.camera
        bg_image = None
        if scene.background.kind == "image":  # before rendering: a missing file fails fast
            bg_image = _background_image(scene, cam.width, cam.height)
        bg_mat = self._build(scene, assets)
        bs = bpy.context.scene
        # pass 1: path-traced colour
        with _quiet_stdout():
            bpy.ops.render.render(write_still=False)
        rgba = self._read_exr("rgba", 4)
        for slot in ("depth", "index"):
            (self._tmp / f"{slot}0001.exr").unlink(missing_ok=True)
        # pass 2: exact ids + planar depth (+ the background mesh's pass-through colour)
        c = bs.cycles
        c.samples = 1
        c.filter_width = 0.01
        c.use_denoising = False
        c.max_bounces = 0
        c.seed = 0
        if bg_mat is not None:
            bg_mat.node_tree.nodes["ids_pass"].outputs[0].default_value = 1.0
        with _quiet_stdout():
            bpy.ops.render.render(write_still=False)
        centre = self._read_exr("rgba", 3)
        depth = self._read_exr("depth", 1)[..., 0]
        index = self._read_exr("index", 1)[..., 0]

        ids = np.rint(index).astype(np.int32)
        ids[(ids < 0) | (ids > len(scene.objects))] = 0
        depth = np.where(depth < _FAR, depth, 0.0).astype(np.float32)
        if bg_image is not None:
            bg = bg_image
        elif bg_mat is not None:
            bg = self._mesh_background(centre, ids, depth)
        else:
            bg = None
        premult, alpha = rgba[..., :3].astype(np.float64), rgba[..., 3].astype(np.float64)
        rgb = composite(scene, premult, alpha, bg)
        linear = coverage = None
        if return_linear:
            coverage = np.clip(alpha, 0, 1).astype(np.float32)
            linear = np.where(alpha[..., None] > 0, premult / np.maximum(alpha, 1e-12)[..., None], 0)
            linear = linear.astype(np.float32)
        bpy.ops.wm.read_factory_settings(use_empty=True)  # free the scene's memory now
        return RenderResult(rgb=rgb, depth=depth, instance_ids=ids, linear=linear, coverage=coverage)

    @staticmethod
    def _mesh_background(centre: np.ndarray, ids: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """Pass-through sRGB colour of the background mesh, filled under the objects.

        Pixels whose centre sees an object borrow the nearest background-mesh pixel (they
        only matter on anti-aliased object edges); pixels that see nothing are black.
        """
        from scipy import ndimage

        srgb = _linear_to_srgb(centre.astype(np.float64))
        seen = (ids == 0) & (depth > 0)
        if not seen.any():
            return np.zeros_like(srgb)
        fill = ids > 0
        if fill.any():
            _, (iy, ix) = ndimage.distance_transform_edt(~seen, return_indices=True)
            srgb = np.where(fill[..., None], srgb[iy, ix], srgb)
        return np.where(((ids == 0) & (depth <= 0))[..., None], 0.0, srgb)


# ---------------------------------------------------------------------------------------------
# Worker process (python -m twingap.render.cycles <workdir>)


def _save_asset(path: Path, asset: Asset) -> None:
    np.savez(
        path,
        name=np.asarray(asset.name),
        vertices=asset.vertices,
        faces=asset.faces,
        uvs=asset.uvs,
        texture=asset.texture,
        textured=np.asarray(asset.textured),
    )


def _load_asset(path: Path) -> Asset:
    with np.load(path) as z:
        return Asset(
            str(z["name"]),
            np.ascontiguousarray(z["vertices"]),
            np.ascontiguousarray(z["faces"]),
            np.ascontiguousarray(z["uvs"]),
            np.ascontiguousarray(z["texture"]),
            bool(z["textured"]),
        )


def worker_main(argv: list[str] | None = None) -> int:
    """Worker loop: one JSON request per stdin line, one JSON reply per stdout line.

    A request is ``{"scene": <SceneSpec dict>, "assets": {name: npz path}, "out": npz path,
    "settings": {...}, "return_linear": bool}``; the reply is ``{"ok": true}`` or
    ``{"ok": false, "user_error": bool, "message": str}``. Blender's own chatter goes to
    stderr so that stdout carries only replies.
    """
    del argv
    reply = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # bpy prints to fd 1
    cache: dict[str, Asset] = {}
    session: _BlenderSession | None = None
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            settings = CyclesSettings(**req["settings"])
            if session is None or session.settings != settings:
                if session is not None:
                    session.close()
                session = _BlenderSession(settings)
            assets = {}
            for name, p in req["assets"].items():
                if p not in cache:
                    cache[p] = _load_asset(Path(p))
                assets[name] = cache[p]
            scene = SceneSpec.from_dict(req["scene"])
            res = session.render(scene, assets, return_linear=bool(req.get("return_linear")))
            arrays = {"rgb": res.rgb, "depth": res.depth, "instance_ids": res.instance_ids}
            if res.linear is not None:
                arrays.update(linear=res.linear, coverage=res.coverage)
            tmp = req["out"] + ".tmp.npz"
            np.savez(tmp, **arrays)
            os.replace(tmp, req["out"])
            reply.write(json.dumps({"ok": True}) + "\n")
        except TwingapError as exc:
            reply.write(json.dumps({"ok": False, "user_error": True, "message": exc.message}) + "\n")
        except Exception as exc:
            import traceback

            traceback.print_exc()
            reply.write(json.dumps({"ok": False, "user_error": False, "message": repr(exc)}) + "\n")
    if session is not None:
        session.close()
    return 0


class _Worker:
    """A Blender worker process, restarted every ``scenes_per_process`` scenes."""

    def __init__(self, python: str, settings: CyclesSettings, scenes_per_process: int) -> None:
        self.python = python
        self.settings = settings
        self.scenes_per_process = max(1, int(scenes_per_process))
        self.dir = Path(tempfile.mkdtemp(prefix="twingap-cycles-worker-"))
        self._proc: subprocess.Popen | None = None
        self._count = 0
        self._asset_paths: dict[str, str] = {}
        self._hashes: weakref.WeakKeyDictionary[Asset, str] = weakref.WeakKeyDictionary()

    def _start(self) -> subprocess.Popen:
        import twingap

        # The worker runs this very twingap package, and nothing else from this environment (its
        # site-packages may hold a NumPy that the worker's bpy cannot use): a folder holding
        # only a link to the package goes first on its path.
        link_dir = self.dir / "pythonpath"
        if not (link_dir / "twingap").exists():
            link_dir.mkdir(exist_ok=True)
            os.symlink(Path(twingap.__file__).resolve().parent, link_dir / "twingap")
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        env["PYTHONPATH"] = str(link_dir)
        return subprocess.Popen(
            [self.python, "-m", "twingap.render.cycles"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL if not os.environ.get("TWINGAP_DEBUG") else None,
            text=True,
            env=env,
        )

    def _asset_path(self, asset: Asset) -> str:
        h = self._hashes.get(asset)
        if h is None:
            h = self._hashes[asset] = asset.content_hash
        p = self._asset_paths.get(h)
        if p is None:
            p = str(self.dir / f"asset-{h[:24]}.npz")
            _save_asset(Path(p), asset)
            self._asset_paths[h] = p
        return p

    def render(self, scene: SceneSpec, assets: dict[str, Asset], return_linear: bool = False) -> RenderResult:
        _check_scene(scene, assets)
        if self._proc is None or self._proc.poll() is not None or self._count >= self.scenes_per_process:
            self.stop()
            self._proc = self._start()
            self._count = 0
        needed = {o.model for o in scene.objects}
        if scene.background.kind == "mesh" and BACKGROUND_ASSET_KEY in assets:
            needed.add(BACKGROUND_ASSET_KEY)
        out = self.dir / "result.npz"
        req = {
            "scene": scene.to_dict(),
            "assets": {name: self._asset_path(assets[name]) for name in sorted(needed)},
            "out": str(out),
            "settings": asdict(self.settings),
            "return_linear": return_linear,
        }
        assert self._proc.stdin is not None and self._proc.stdout is not None
        try:
            self._proc.stdin.write(json.dumps(req) + "\n")
            self._proc.stdin.flush()
            line = self._proc.stdout.readline()
        except BrokenPipeError:
            line = ""
        self._count += 1
        if not line:
            self.stop()
            raise RuntimeError(
                f"the Cycles worker ({self.python}) died while rendering scene {scene.scene_id!r}; "
                "rerun with --debug to see its output"
            )
        rep = json.loads(line)
        if not rep["ok"]:
            if rep.get("user_error"):
                raise TwingapError(rep["message"])
            raise RuntimeError(f"the Cycles worker failed on scene {scene.scene_id!r}: {rep['message']}")
        with np.load(out) as z:
            res = RenderResult(
                rgb=z["rgb"],
                depth=z["depth"],
                instance_ids=z["instance_ids"],
                linear=z["linear"] if "linear" in z else None,
                coverage=z["coverage"] if "coverage" in z else None,
            )
        out.unlink()
        return res

    def stop(self) -> None:
        if self._proc is not None:
            with contextlib.suppress(Exception):
                assert self._proc.stdin is not None
                self._proc.stdin.close()
            try:
                self._proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Public API


def _resolve_python(python: str | None) -> str | None:
    """Interpreter for worker processes: argument, then this one if it has bpy, then the env var."""
    if python:
        return python
    if bpy_available():
        return sys.executable
    return os.environ.get(BPY_PYTHON_ENV) or None


def check_available(python: str | None = None) -> str:
    """Check that Cycles can run (before spawning workers), without importing ``bpy`` here.

    Args:
        python: Interpreter to use for worker processes (see :class:`CyclesRenderer`).

    Returns:
        The interpreter that will run Blender.

    Raises:
        TwingapError: With the install hint, if no interpreter with ``bpy`` is available.
    """
    py = _resolve_python(python)
    if py is None:
        raise TwingapError(INSTALL_HINT)
    if py != sys.executable and not _python_has_bpy(py):
        raise TwingapError(f"{py} cannot import bpy; {INSTALL_HINT}")
    return py


class CyclesRenderer:
    """Blender Cycles renderer; implements the renderer protocol of :mod:`twingap.render.backend`.

    Args:
        width: Default image width in pixels (a scene's camera size wins, as in the raster backend).
        height: Default image height in pixels.
        samples: Path-tracing samples per pixel.
        denoise: OpenImageDenoise on the colour pass.
        device: ``"auto"``, ``"cpu"`` or ``"gpu"``.
        max_bounces: Total light bounces.
        threads: CPU threads (0 = all usable cores).
        denoise_quality: OpenImageDenoise quality: ``"HIGH"``, ``"BALANCED"`` or ``"FAST"``.
        in_process: Render with ``bpy`` in this process (needs ``bpy`` here; memory grows over
            many scenes). Default False: render in a worker process, restarted every
            ``scenes_per_process`` scenes.
        python: Interpreter with ``bpy`` for worker processes (default: this one if it has
            ``bpy``, else ``$TWINGAP_BPY_PYTHON``). It runs this process's twingap package and
            needs its own numpy<2, scipy, pillow, opencv-python-headless and trimesh.
        scenes_per_process: Restart the worker process after this many scenes (bounds memory).

    Raises:
        TwingapError: If no interpreter with ``bpy`` is available (with the install hint).
    """

    def __init__(
        self,
        width: int = 640,
        height: int = 480,
        samples: int = 8,
        denoise: bool = True,
        device: str = "auto",
        max_bounces: int = 4,
        threads: int = 0,
        denoise_quality: str = "BALANCED",
        in_process: bool = False,
        python: str | None = None,
        scenes_per_process: int = 50,
    ) -> None:
        if device.lower() not in ("auto", "cpu", "gpu"):
            raise TwingapError(f"unknown Cycles device {device!r} (have: auto, cpu, gpu)")
        if int(samples) < 1:
            raise TwingapError("Cycles samples must be >= 1")
        if denoise_quality.upper() not in ("HIGH", "BALANCED", "FAST"):
            raise TwingapError(f"unknown denoise quality {denoise_quality!r} (have: HIGH, BALANCED, FAST)")
        self.width, self.height = int(width), int(height)
        self.settings = CyclesSettings(
            samples=int(samples),
            denoise=bool(denoise),
            denoise_quality=denoise_quality.upper(),
            device=device.lower(),
            max_bounces=int(max_bounces),
            threads=int(threads),
        )
        self.in_process = bool(in_process)
        self._session: _BlenderSession | None = None
        self._worker: _Worker | None = None
        if self.in_process:
            if not bpy_available():
                raise TwingapError(INSTALL_HINT)
        else:
            self._worker = _Worker(check_available(python), self.settings, scenes_per_process)

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
            self._session = _BlenderSession(self.settings)
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


def render_batch(
    scenes: Iterable[SceneSpec],
    assets_by_name: dict[str, Asset] | Callable[[SceneSpec], dict[str, Asset]],
    out_fn: Callable[[int, SceneSpec, RenderResult], None],
    *,
    samples: int = 8,
    denoise: bool = True,
    device: str = "auto",
    max_bounces: int = 4,
    threads: int = 0,
    denoise_quality: str = "BALANCED",
    python: str | None = None,
    scenes_per_process: int = 50,
) -> int:
    """Render many scenes in Blender worker processes (one process per ``scenes_per_process``).

    Args:
        scenes: The scenes, rendered in order.
        assets_by_name: Model name -> :class:`Asset`, or a function giving the assets of a
            scene (for per-scene conditions).
        out_fn: Called as ``out_fn(index, scene, result)`` after each scene (in this process).
        samples: Path-tracing samples per pixel.
        denoise: OpenImageDenoise on the colour pass.
        device: ``"auto"``, ``"cpu"`` or ``"gpu"``.
        max_bounces: Total light bounces.
        threads: CPU threads per worker (0 = all usable cores).
        denoise_quality: OpenImageDenoise quality (``"HIGH"``, ``"BALANCED"``, ``"FAST"``).
        python: Interpreter with ``bpy`` (default: this one if it has ``bpy``, else
            ``$TWINGAP_BPY_PYTHON``).
        scenes_per_process: Scenes per worker process before it is restarted.

    Returns:
        Number of scenes rendered.

    Raises:
        TwingapError: If no interpreter with ``bpy`` is available, or a scene is invalid.
    """
    renderer = CyclesRenderer(
        samples=samples,
        denoise=denoise,
        device=device,
        max_bounces=max_bounces,
        threads=threads,
        denoise_quality=denoise_quality,
        in_process=False,
        python=python,
        scenes_per_process=scenes_per_process,
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


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:]))
