"""The Blender session: builds a Blender scene from a SceneSpec with ``bpy`` and renders it.

Needs ``bpy`` in this process (imported when a :class:`BlenderSession` is made, never at module
import). What it computes rather than asks Blender for comes from
:mod:`twingap.render.cycles.convert`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import weakref
from pathlib import Path

import numpy as np

from twingap.assets.asset import Asset
from twingap.errors import TwingapError
from twingap.render.backend import RenderResult, background_asset
from twingap.render.cycles.convert import (
    IDS_PASS_SETTINGS,
    background_image,
    blender_camera_matrix,
    blender_camera_params,
    blender_light,
    check_scene,
    colour_pass_settings,
    mesh_arrays,
    render_threads,
    result_from_passes,
    smooth_normals,
    texture_pixels,
    world_color,
)
from twingap.render.cycles.settings import CyclesSettings
from twingap.render.scene import SceneSpec

#: GPU back-ends Cycles is asked for, best first.
_GPU_KINDS = ("OPTIX", "CUDA", "HIP", "ONEAPI", "METAL")


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


def _matrix(m: np.ndarray):
    from mathutils import Matrix

    return Matrix(np.asarray(m, dtype=np.float64).tolist())


class BlenderSession:
    """Builds a Blender scene from a SceneSpec and renders it (needs ``bpy`` in this process).

    Args:
        settings: The quality settings of every render of this session.
    """

    _gpu_kind: str | None = None
    _gpu_checked = False

    def __init__(self, settings: CyclesSettings) -> None:
        import bpy  # noqa: F401  (fails here, not at module import, when bpy is missing)

        self.settings = settings
        self._tmp = Path(tempfile.mkdtemp(prefix="twingap-cycles-"))
        self._normals: weakref.WeakKeyDictionary[Asset, np.ndarray] = weakref.WeakKeyDictionary()

    def close(self) -> None:
        """Remove the session's temporary files."""
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
            for kind in _GPU_KINDS:
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
        img.pixels.foreach_set(texture_pixels(texture).ravel())  # in memory: no file, no packing
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

        m = mesh_arrays(asset)
        me = bpy.data.meshes.new(name)
        me.vertices.add(len(m.vertices))
        me.vertices.foreach_set("co", m.vertices.ravel())
        me.loops.add(m.loops.size)
        me.loops.foreach_set("vertex_index", m.loops)
        me.polygons.add(len(m.loop_start))
        me.polygons.foreach_set("loop_start", m.loop_start)
        me.polygons.foreach_set("loop_total", m.loop_total)
        uv = me.uv_layers.new(name="UVMap")
        uv.data.foreach_set("uv", m.uvs.ravel())
        me.update(calc_edges=True)
        me.polygons.foreach_set("use_smooth", np.ones(len(m.loop_start), dtype=bool))
        normals = self._normals.get(asset)
        if normals is None:
            normals = smooth_normals(asset)
            self._normals[asset] = normals
        me.normals_split_custom_set_from_vertices(normals.astype(np.float32))
        me.materials.append(material)
        obj = bpy.data.objects.new(name, me)
        obj.pass_index = int(pass_index)
        obj.matrix_world = _matrix(matrix)
        bpy.context.scene.collection.objects.link(obj)
        return obj

    def _setup_render(self, bs, scene: SceneSpec) -> None:
        """Engine, device, resolution, colour management and the colour pass's Cycles settings."""
        import _cycles

        W, H = scene.camera.width, scene.camera.height
        bs.render.engine = "CYCLES"
        self._pick_device(bs)
        bs.render.resolution_x, bs.render.resolution_y = W, H
        bs.render.resolution_percentage = 100
        bs.render.film_transparent = True
        bs.render.use_persistent_data = True  # the ids pass reuses the synced scene (BVH, textures)
        bs.render.threads_mode = "FIXED"
        bs.render.threads = render_threads(self.settings)
        bs.frame_current = 1
        bs.display_settings.display_device = "sRGB"
        bs.view_settings.view_transform = "Standard"
        bs.view_settings.look = "None"
        bs.view_settings.exposure = 0.0
        bs.view_settings.gamma = 1.0
        has_oidn = bool(getattr(_cycles, "with_openimagedenoise", True))
        for key, value in colour_pass_settings(self.settings, scene.seed, has_oidn).items():
            setattr(bs.cycles, key, value)

    def _add_camera(self, bs, scene: SceneSpec) -> None:
        import bpy

        cam = scene.camera
        p = blender_camera_params(cam.K, cam.width, cam.height)
        cdata = bpy.data.cameras.new("camera")
        cdata.sensor_fit = "HORIZONTAL"
        cdata.sensor_width = p["sensor_width"]
        cdata.lens = p["lens"]
        cdata.shift_x, cdata.shift_y = p["shift_x"], p["shift_y"]
        cdata.clip_start, cdata.clip_end = float(cam.znear), float(cam.zfar)
        bs.render.pixel_aspect_x, bs.render.pixel_aspect_y = p["pixel_aspect_x"], p["pixel_aspect_y"]
        cobj = bpy.data.objects.new("camera", cdata)
        cobj.matrix_world = _matrix(blender_camera_matrix(cam.cam_T_world))
        bs.collection.objects.link(cobj)
        bs.camera = cobj

    def _add_world_and_lights(self, bs, scene: SceneSpec) -> None:
        import bpy

        world = bpy.data.worlds.new("world")
        world.use_nodes = True
        bg_node = world.node_tree.nodes["Background"]
        bg_node.inputs["Color"].default_value = world_color(scene.ambient)
        bg_node.inputs["Strength"].default_value = 1.0
        bs.world = world
        for k, light in enumerate(scene.lights):
            bl = blender_light(light, self.settings)
            ldata = bpy.data.lights.new(f"light{k}", type=bl.type)
            ldata.energy = bl.energy
            setattr(ldata, bl.size_attr, bl.size)
            ldata.color = bl.color
            lobj = bpy.data.objects.new(f"light{k}", ldata)
            lobj.matrix_world = _matrix(bl.matrix)
            bs.collection.objects.link(lobj)

    def _add_meshes(self, scene: SceneSpec, assets: dict[str, Asset]) -> object | None:
        """The objects (one material per distinct asset) and the background mesh's material."""
        materials: dict[int, object] = {}
        for i, obj in enumerate(scene.objects):
            asset = assets[obj.model]
            mat = materials.get(id(asset))
            if mat is None:
                mat = materials[id(asset)] = self._material(f"m{i}", asset, background=False)
            self._mesh_object(f"obj{i}", asset, mat, i + 1, obj.world_T_obj)
        bg_asset = background_asset(scene, assets)
        if bg_asset is None:
            return None
        # as in the raster backend: unlit (the photo texture as is) unless the scene says not
        unlit = bool(scene.meta.get("background_unlit", getattr(scene.background, "unlit", True)))
        mat = self._material("background", bg_asset, background=unlit)
        self._mesh_object("background", bg_asset, mat, 0, np.eye(4))
        return mat if unlit else None

    def _add_outputs(self, bs) -> None:
        """Passes + compositor: RGBA, Z and object index as 32-bit EXR files."""
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

    def _build(self, scene: SceneSpec, assets: dict[str, Asset]) -> object | None:
        """Reset Blender and build ``scene``; returns the background material (or None)."""
        import bpy

        bpy.ops.wm.read_factory_settings(use_empty=True)
        bs = bpy.context.scene
        self._setup_render(bs, scene)
        self._add_camera(bs, scene)
        self._add_world_and_lights(bs, scene)
        bg_mat = self._add_meshes(scene, assets)
        self._add_outputs(bs)
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
        """Render one scene (see :meth:`twingap.render.cycles.CyclesRenderer.render`)."""
        import bpy

        check_scene(scene, assets)
        cam = scene.camera
        bg_image = None
        if scene.background.kind == "image":  # before rendering: a missing file fails fast
            bg_image = background_image(scene, cam.width, cam.height)
        bg_mat = self._build(scene, assets)
        bs = bpy.context.scene
        # pass 1: path-traced colour
        with _quiet_stdout():
            bpy.ops.render.render(write_still=False)
        rgba = self._read_exr("rgba", 4)
        for slot in ("depth", "index"):
            (self._tmp / f"{slot}0001.exr").unlink(missing_ok=True)
        # pass 2: exact ids + planar depth (+ the background mesh's pass-through colour)
        for key, value in IDS_PASS_SETTINGS.items():
            setattr(bs.cycles, key, value)
        if bg_mat is not None:
            bg_mat.node_tree.nodes["ids_pass"].outputs[0].default_value = 1.0
        with _quiet_stdout():
            bpy.ops.render.render(write_still=False)
        passes = {
            "centre": self._read_exr("rgba", 3),
            "depth": self._read_exr("depth", 1)[..., 0],
            "index": self._read_exr("index", 1)[..., 0],
        }
        res = result_from_passes(scene, rgba, passes, bg_image, bg_mat is not None, return_linear)
        bpy.ops.wm.read_factory_settings(use_empty=True)  # free the scene's memory now
        return res
