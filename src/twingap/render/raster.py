"""Fast raster backend: OpenGL 3.3+ through moderngl on a headless EGL context (llvmpipe on CPU).

One :class:`RasterRenderer` owns one GL context and reuses it for every scene. Each asset's
vertex buffer and mip-mapped texture are uploaded once and cached by ``Asset.content_hash``.

Per scene these passes run:

1. **ids + depth** (1 sample per pixel, no anti-aliasing): ``R32I`` instance ids and ``R32F``
   planar depth (camera z written by the fragment shader, perspective-correct, so it is exact
   and not read back from the non-linear z-buffer). With ``msaa=1`` this pass is merged into
   the colour pass (one pass writes colour, ids and depth; about 2-3x faster, no anti-aliasing).
2. **colour** (4x MSAA; preceded by a shadow-map pass when shadows are on): linear radiance
   of lit surfaces (textured albedo, sRGB -> linear by the GL sRGB texture format, Lambert
   from the scene's lights plus ``scene.ambient``, optional weak Blinn-Phong) and, on a second
   attachment, the pass-through colour of an unlit background mesh (photo textures already
   contain the lighting and the camera response).
   Back faces are drawn and shaded with the flipped normal (holes show the inside).
3. **composite** (1 sample): MSAA resolve, the camera response (:mod:`twingap.render.response`)
   on the lit radiance, then over the background colour / image.

Optional per-scene settings in ``scene.meta``: ``"shadows": True`` (shadow map of the first
directional light, cast by the objects onto everything; ``"shadow_bias_m"``, default 0.002),
``"specular"`` (Blinn-Phong strength, default 0) and ``"shininess"`` (default 32),
``"background_unlit"`` (default True: a background mesh's texture is passed through as sRGB
without lighting or camera response; False lights it like an object). A background mesh comes
from ``BackgroundSpec(kind="mesh", path=...)`` (loaded once per path and cached) or, ready
made, from ``assets[BACKGROUND_ASSET_KEY]``.

Closed (watertight, consistently wound) meshes are drawn with their inner side culled, which is
exact and halves llvmpipe's raster work; open meshes (holes!) are drawn double-sided.

Projection: the OpenCV pinhole ``u = fx x/z + s y/z + cx`` maps to window coordinates
``u + 0.5`` (OpenGL samples pixel centres at ``i + 0.5``), and image rows increase with window
y, so the read-back buffers are already in image row order (row 0 = top) with no flip.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from twingap.assets.asset import Asset
from twingap.errors import TwingapError
from twingap.render.backend import RenderResult, background_asset
from twingap.render.response import add_sensor_noise, check_response, color_matrix
from twingap.render.response import tone_coefficients as _tone
from twingap.render.scene import SceneSpec
from twingap.render.shaders import (
    FRAG_COLOR as _FRAG_COLOR,
)
from twingap.render.shaders import (
    FRAG_COMPOSITE as _FRAG_COMPOSITE,
)
from twingap.render.shaders import (
    FRAG_ID as _FRAG_ID,
)
from twingap.render.shaders import (
    MAX_LIGHTS,
)
from twingap.render.shaders import (
    VERT as _VERT,
)
from twingap.render.shaders import (
    VERT_ID as _VERT_ID,
)
from twingap.render.shaders import (
    VERT_QUAD as _VERT_QUAD,
)

MSAA_SAMPLES = 4
_GL_SRGB8 = 0x8C41


def opencv_projection(K: np.ndarray, width: int, height: int, znear: float, zfar: float) -> np.ndarray:
    """OpenGL projection (4, 4) for an OpenCV camera, applied to OpenCV camera coordinates.

    Maps ``(x, y, z)`` (z forward, metres) to clip space such that window coordinates are
    ``(u + 0.5, v + 0.5)`` with ``(u, v)`` the OpenCV pixel coordinates (pixel centres at
    integers), i.e. window rows run in image row order. NDC depth is -1 at ``znear`` and +1 at
    ``zfar``.
    """
    fx, s, cx = K[0]
    fy, cy = K[1, 1], K[1, 2]
    w, h, n, f = float(width), float(height), float(znear), float(zfar)
    return np.array(
        [
            [2 * fx / w, 2 * s / w, 2 * (cx + 0.5) / w - 1, 0],
            [0, 2 * fy / h, 2 * (cy + 0.5) / h - 1, 0],
            [0, 0, (f + n) / (f - n), -2 * f * n / (f - n)],
            [0, 0, 1, 0],
        ],
        dtype=np.float64,
    )


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) float32 area-weighted vertex normals, shared across seam duplicates.

    Vertices at the same position (texture-seam duplicates) get the same normal, so seams do
    not show as shading creases.
    """
    _, inverse = np.unique(np.round(vertices, 7), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    tri = vertices[faces]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # length = 2 * area
    acc = np.zeros((int(inverse.max()) + 1, 3))
    for k in range(3):
        np.add.at(acc, inverse[faces[:, k]], fn)
    n = acc[inverse]
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    n = np.where(norm > 0, n / np.maximum(norm, 1e-30), np.array([0.0, 0.0, 1.0]))
    return n.astype(np.float32)


def closed_mesh_cull(vertices: np.ndarray, faces: np.ndarray) -> str | None:
    """Which faces can be culled without changing the image: ``"back"``, ``"front"`` or None.

    For a watertight, consistently wound mesh seen from outside, the inward-facing side of its
    surface is never visible, so culling it is exact (and halves llvmpipe's raster work). Open
    meshes (holes, damaged scans, support surfaces) return None: both sides are drawn. The
    winding's orientation (outward or inverted) is read from the sign of the enclosed volume.
    """
    import trimesh

    mesh = trimesh.Trimesh(np.asarray(vertices, np.float64), np.asarray(faces), process=True)
    if len(mesh.faces) != len(faces) or not (mesh.is_watertight and mesh.is_winding_consistent):
        return None
    volume = float(mesh.volume)
    if volume == 0 or not np.isfinite(volume):
        return None
    return "back" if volume > 0 else "front"


@dataclass
class _GpuMesh:
    vbo: object
    ibo: object
    texture: object
    vao_id: object
    vao_color: object
    cull: str | None  # "back"/"front" for a closed mesh whose far side can never be seen
    bbox: np.ndarray  # (2, 3) min/max corner in the asset frame, metres

    def release(self) -> None:
        for obj in (self.vao_id, self.vao_color, self.vbo, self.ibo, self.texture):
            obj.release()


class RasterRenderer:
    """Headless OpenGL renderer (moderngl + EGL); implements the renderer protocol.

    Args:
        width: Default image width in pixels (a scene's camera size wins when it differs).
        height: Default image height in pixels.
        msaa: MSAA samples for the RGB image (1 disables anti-aliasing).
        max_cached_assets: Number of uploaded assets kept on the GPU (least recently used
            are released first).
        shadow_size: Shadow-map resolution (used by scenes with ``meta["shadows"] = True``).

    Raises:
        TwingapError: If no headless EGL OpenGL 3.3 context can be created.
    """

    def __init__(
        self,
        width: int = 640,
        height: int = 480,
        msaa: int = MSAA_SAMPLES,
        max_cached_assets: int = 64,
        shadow_size: int = 1024,
    ) -> None:
        import moderngl

        try:
            self.ctx = moderngl.create_context(standalone=True, backend="egl", require=330)
        except Exception as exc:
            raise TwingapError(f"cannot create a headless EGL OpenGL context ({exc})") from exc
        self.width, self.height = int(width), int(height)
        self.msaa = max(1, min(int(msaa), int(self.ctx.max_samples) or 1))
        self.max_cached_assets = int(max_cached_assets)
        ctx = self.ctx
        self._prog_id = ctx.program(vertex_shader=_VERT_ID, fragment_shader=_FRAG_ID)
        self._prog_color = ctx.program(vertex_shader=_VERT, fragment_shader=_FRAG_COLOR)
        self._prog_comp = ctx.program(vertex_shader=_VERT_QUAD, fragment_shader=_FRAG_COMPOSITE)
        self._prog_color["u_tex"].value = 0
        self._prog_color["u_shadow_map"].value = 3
        self._shadow_size = int(shadow_size)
        self._shadow_tex = ctx.depth_texture((self._shadow_size, self._shadow_size))
        self._shadow_tex.compare_func = "<="
        self._shadow_tex.filter = (ctx.LINEAR, ctx.LINEAR)
        self._shadow_fbo = ctx.framebuffer(depth_attachment=self._shadow_tex)
        self._prog_comp["u_lit"].value = 0
        self._prog_comp["u_pass"].value = 1
        self._prog_comp["u_bg"].value = 2
        quad = np.array([-1, -1, 3, -1, -1, 3], dtype=np.float32)  # one full-screen triangle
        self._quad_vbo = ctx.buffer(quad.tobytes())
        self._quad_vao = ctx.vertex_array(self._prog_comp, [(self._quad_vbo, "2f", "in_pos")])
        self._meshes: OrderedDict[str, _GpuMesh] = OrderedDict()
        self._hashes: weakref.WeakKeyDictionary[Asset, str] = weakref.WeakKeyDictionary()
        self._size: tuple[int, int] | None = None
        self._bg_images: dict[tuple, object] = {}
        self._bg_assets: dict[tuple, Asset] = {}
        self._dummy_tex = ctx.texture((1, 1), 3, bytes(3))
        self.ctx.front_face = "cw"  # window y runs down the image: outward CCW faces appear CW

    # ------------------------------------------------------------------ resources
    def _ensure_size(self, width: int, height: int) -> None:
        if self._size == (width, height):
            return
        if self._size is not None:
            for obj in self._targets:
                obj.release()
        ctx, size = self.ctx, (width, height)
        self._t_id = ctx.texture(size, 1, dtype="i4")
        self._t_z = ctx.texture(size, 1, dtype="f4")
        self._rb_depth = ctx.depth_renderbuffer(size)
        self._fbo_id = ctx.framebuffer([self._t_id, self._t_z], self._rb_depth)
        self._t_lit = ctx.texture(size, 4, dtype="f4")
        self._t_pass = ctx.texture(size, 4, dtype="f2")
        for t in (self._t_lit, self._t_pass):
            t.filter = (ctx.NEAREST, ctx.NEAREST)
        if self.msaa > 1:
            # half floats and, unless an unlit background needs it, no pass-through attachment:
            # llvmpipe's MSAA cost grows with the bytes per sample
            self._rb_lit = ctx.renderbuffer(size, 4, samples=self.msaa, dtype="f2")
            self._rb_pass = ctx.renderbuffer(size, 4, samples=self.msaa, dtype="f1")
            self._rb_cdepth = ctx.depth_renderbuffer(size, samples=self.msaa)
            self._fbo_color = ctx.framebuffer([self._rb_lit, self._rb_pass], self._rb_cdepth)
            self._fbo_color_lit = ctx.framebuffer([self._rb_lit], self._rb_cdepth)
            self._fbo_resolve = ctx.framebuffer([self._t_lit, self._t_pass])
            self._fbo_resolve_lit = ctx.framebuffer([self._t_lit])
            extra = [
                self._rb_lit, self._rb_pass, self._rb_cdepth,
                self._fbo_color_lit, self._fbo_resolve, self._fbo_resolve_lit,
            ]  # fmt: skip
        else:  # one pass writes colour, ids and depth
            self._fbo_color = ctx.framebuffer(
                [self._t_lit, self._t_pass, self._t_id, self._t_z], self._rb_depth
            )
            self._fbo_color_lit = self._fbo_color
            self._fbo_resolve = self._fbo_resolve_lit = self._fbo_color
            extra = []
        self._t_out = ctx.texture(size, 4, dtype="f1")
        self._t_outf = ctx.texture(size, 4, dtype="f4")
        self._fbo_out = ctx.framebuffer([self._t_out])
        self._fbo_outf = ctx.framebuffer([self._t_outf])
        self._targets = [
            self._fbo_id, self._t_id, self._t_z, self._rb_depth,
            self._fbo_color, self._t_lit, self._t_pass,
            self._fbo_out, self._t_out, self._fbo_outf, self._t_outf, *extra,
        ]  # fmt: skip
        self._size = size

    def _shadow_pass(self, scene: SceneSpec, draws: list, mat) -> tuple[int, np.ndarray]:
        """Render the shadow map of the first directional light when ``scene.meta["shadows"]``.

        The orthographic light frustum bounds the objects (shadow casters); a background mesh
        receives shadows but does not cast them.

        Returns:
            (index of the shadowing light or -1, (4, 4) world -> light clip transform).
        """
        self._shadow_extent = 1.0
        key = next(
            (k for k, li in enumerate(scene.lights) if li.kind == "directional"),
            -1,
        )
        objects = [(m, T) for m, T, inst in draws if inst > 0]
        if not scene.meta.get("shadows", False) or key < 0 or not objects:
            return -1, np.eye(4)
        corners = []
        for mesh, T in objects:
            lo, hi = mesh.bbox
            c = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
            corners.append(c @ T[:3, :3].T + T[:3, 3])
        pts = np.concatenate(corners)
        centre = 0.5 * (pts.min(0) + pts.max(0))
        radius = 1.05 * float(np.linalg.norm(pts - centre, axis=1).max()) + 1e-6
        z = np.asarray(scene.lights[key].direction, np.float64)
        z /= np.linalg.norm(z)
        helper = np.array([1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
        x = np.cross(helper, z)
        x /= np.linalg.norm(x)
        y = np.cross(z, x)
        light_T_world = np.eye(4)
        light_T_world[:3, :3] = np.stack([x, y, z])
        light_T_world[:3, 3] = -light_T_world[:3, :3] @ centre
        ortho = np.diag([1.0 / radius, 1.0 / radius, 1.0 / radius, 1.0])
        self._shadow_extent = 2.0 * radius  # metres per unit of shadow-map depth
        self._shadow_fbo.use()
        self._shadow_fbo.clear(depth=1.0)
        self._prog_id["u_proj"].write(mat(ortho))
        for mesh, T in objects:
            self._prog_id["u_cam_T_obj"].write(mat(light_T_world @ T))
            self._set_cull(mesh.cull)
            mesh.vao_id.render()
        return key, ortho @ light_T_world

    def _set_cull(self, cull: str | None) -> None:
        if cull is None:
            self.ctx.disable(self.ctx.CULL_FACE)
        else:
            self.ctx.enable(self.ctx.CULL_FACE)
            self.ctx.cull_face = cull

    def _content_hash(self, asset: Asset) -> str:
        h = self._hashes.get(asset)
        if h is None:
            h = asset.content_hash
            self._hashes[asset] = h
        return h

    def _upload(self, asset: Asset) -> _GpuMesh:
        key = self._content_hash(asset)
        mesh = self._meshes.get(key)
        if mesh is not None:
            self._meshes.move_to_end(key)
            return mesh
        ctx = self.ctx
        v = np.asarray(asset.vertices, dtype=np.float64)
        data = np.hstack(
            [v.astype(np.float32), vertex_normals(v, asset.faces), asset.uvs.astype(np.float32)]
        ).astype(np.float32)
        vbo = ctx.buffer(np.ascontiguousarray(data).tobytes())
        ibo = ctx.buffer(np.ascontiguousarray(asset.faces, dtype=np.int32).tobytes())
        tex_img = np.ascontiguousarray(asset.texture)
        h, w = tex_img.shape[:2]
        tex = ctx.texture((w, h), 3, tex_img.tobytes(), alignment=1, internal_format=_GL_SRGB8)
        tex.build_mipmaps()
        tex.filter = (ctx.LINEAR_MIPMAP_LINEAR, ctx.LINEAR)
        tex.repeat_x = tex.repeat_y = True
        vao_id = ctx.vertex_array(
            self._prog_id, [(vbo, "3f 20x", "in_pos")], index_buffer=ibo, index_element_size=4
        )
        vao_color = ctx.vertex_array(
            self._prog_color,
            [(vbo, "3f 3f 2f", "in_pos", "in_normal", "in_uv")],
            index_buffer=ibo,
            index_element_size=4,
        )
        mesh = _GpuMesh(
            vbo,
            ibo,
            tex,
            vao_id,
            vao_color,
            closed_mesh_cull(asset.vertices, asset.faces),
            np.stack([v.min(0), v.max(0)]),
        )
        self._meshes[key] = mesh
        while len(self._meshes) > self.max_cached_assets:
            _, old = self._meshes.popitem(last=False)
            old.release()
        return mesh

    def _background_asset(self, scene: SceneSpec, assets: dict[str, Asset]) -> Asset | None:
        return background_asset(scene, assets, self._bg_assets)

    def _background_image(self, scene: SceneSpec, width: int, height: int):
        import cv2

        path = Path(scene.background.path or "")
        if not scene.background.path or not path.is_file():
            raise TwingapError(f"scene {scene.scene_id!r}: background image not found", path)
        key = (str(path.resolve()), path.stat().st_mtime_ns, width, height)
        tex = self._bg_images.get(key)
        if tex is None:
            from PIL import Image

            with Image.open(path) as im:
                img = np.asarray(im.convert("RGB"))
            if img.shape[:2] != (height, width):
                img = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)
            tex = self.ctx.texture((width, height), 3, np.ascontiguousarray(img).tobytes(), alignment=1)
            tex.filter = (self.ctx.NEAREST, self.ctx.NEAREST)
            if len(self._bg_images) > 16:
                for old in self._bg_images.values():
                    old.release()
                self._bg_images.clear()
            self._bg_images[key] = tex
        return tex

    # ------------------------------------------------------------------ rendering
    def render(self, scene: SceneSpec, assets: dict[str, Asset], return_linear: bool = False) -> RenderResult:
        """Render one scene.

        Args:
            scene: The scene (camera, objects, lights, ambient, background, response, seed).
            assets: ``ObjectSpec.model`` name -> :class:`Asset` (in the object's pose frame);
                optionally :data:`~twingap.render.backend.BACKGROUND_ASSET_KEY` -> a background
                asset in world coordinates (overrides ``background.path``).
            return_linear: Also return the linear radiance and its coverage (for calibration).

        Returns:
            The :class:`RenderResult` (rgb uint8 (H, W, 3), depth float32 (H, W) metres,
            instance_ids int32 (H, W)).

        Raises:
            TwingapError: If an object's model is missing from ``assets``, a light or the
                response is invalid, or a background file is missing.
        """
        with self.ctx:  # several renderers may live in one process: make ours current
            return self._render(scene, assets, return_linear)

    def _render(self, scene: SceneSpec, assets: dict[str, Asset], return_linear: bool) -> RenderResult:
        cam = scene.camera
        W, H = cam.width, cam.height
        check_response(scene.response)
        for obj in scene.objects:
            if obj.model not in assets:
                raise TwingapError(f"scene {scene.scene_id!r}: no model {obj.model!r} among the assets")
        if len(scene.lights) > MAX_LIGHTS:
            raise TwingapError(f"scene {scene.scene_id!r}: at most {MAX_LIGHTS} lights are supported")
        self._ensure_size(W, H)
        ctx = self.ctx
        proj = opencv_projection(cam.K, W, H, cam.znear, cam.zfar)
        cam_T_world = np.asarray(cam.cam_T_world, dtype=np.float64)

        bg_asset = self._background_asset(scene, assets)
        draws = []  # (gpu mesh, world_T_obj, instance id)
        if bg_asset is not None:
            draws.append((self._upload(bg_asset), np.eye(4), 0))
        for i, obj in enumerate(scene.objects):
            draws.append((self._upload(assets[obj.model]), np.asarray(obj.world_T_obj, np.float64), i + 1))

        def mat(m: np.ndarray) -> bytes:
            return np.ascontiguousarray(m.T, dtype=np.float32).tobytes()

        ctx.enable(ctx.DEPTH_TEST)
        ctx.disable(ctx.CULL_FACE | ctx.BLEND)

        if self.msaa > 1:  # pass 1: ids + planar depth, one sample per pixel
            self._fbo_id.use()
            self._fbo_id.clear(depth=1.0)
            self._prog_id["u_proj"].write(mat(proj))
            for mesh, world_T_obj, inst in draws:
                self._prog_id["u_cam_T_obj"].write(mat(cam_T_world @ world_T_obj))
                self._prog_id["u_id"].value = inst
                self._set_cull(mesh.cull)
                mesh.vao_id.render()

        shadow_light, light_vp = self._shadow_pass(scene, draws, mat)

        # pass 2: colour, MSAA
        p = self._prog_color
        p["u_shadow_light"].value = shadow_light
        p["u_light_vp"].write(mat(light_vp))
        p["u_shadow_bias"].value = float(scene.meta.get("shadow_bias_m", 0.002)) / self._shadow_extent
        self._shadow_tex.use(3)
        p["u_proj"].write(mat(proj))
        p["u_ambient"].value = float(scene.ambient)
        p["u_nlights"].value = len(scene.lights)
        ltype = np.zeros(MAX_LIGHTS, np.int32)
        lvec = np.zeros((MAX_LIGHTS, 3), np.float32)
        lrad = np.zeros((MAX_LIGHTS, 3), np.float32)
        for k, light in enumerate(scene.lights):
            if light.kind == "directional":
                d = -np.asarray(light.direction, np.float64)
                nd = np.linalg.norm(d)
                if not nd > 0:
                    raise TwingapError(f"scene {scene.scene_id!r}: directional light with zero direction")
                lvec[k] = d / nd
            elif light.kind == "point":
                ltype[k] = 1
                lvec[k] = light.position
            else:
                raise TwingapError(f"scene {scene.scene_id!r}: unknown light kind {light.kind!r}")
            lrad[k] = np.asarray(light.color, np.float64) * float(light.intensity)
        p["u_ltype"].write(ltype.tobytes())
        p["u_lvec"].write(lvec.tobytes())
        p["u_lrad"].write(lrad.tobytes())
        R, t = cam_T_world[:3, :3], cam_T_world[:3, 3]
        p["u_cam_pos"].value = tuple(float(x) for x in (-R.T @ t))
        p["u_specular"].value = float(scene.meta.get("specular", 0.0))
        p["u_shininess"].value = float(scene.meta.get("shininess", 32.0))
        unlit_bg = bool(scene.meta.get("background_unlit", getattr(scene.background, "unlit", True)))
        use_pass = bg_asset is not None and unlit_bg
        fbo_color = self._fbo_color if use_pass else self._fbo_color_lit
        fbo_resolve = self._fbo_resolve if use_pass else self._fbo_resolve_lit
        fbo_color.use()
        fbo_color.clear(depth=1.0)
        for mesh, world_T_obj, inst in draws:
            p["u_cam_T_obj"].write(mat(cam_T_world @ world_T_obj))
            p["u_world_T_obj"].write(mat(world_T_obj))
            p["u_unlit"].value = int(inst == 0 and unlit_bg)
            p["u_id"].value = inst
            mesh.texture.use(0)
            self._set_cull(mesh.cull)
            mesh.vao_color.render()
        if self.msaa > 1:
            ctx.copy_framebuffer(fbo_resolve, fbo_color)
        ids = np.frombuffer(self._fbo_id.read(components=1, attachment=0, dtype="i4"), np.int32)
        depth = np.frombuffer(self._fbo_id.read(components=1, attachment=1, dtype="f4"), np.float32)
        ids = ids.reshape(H, W).copy()
        depth = depth.reshape(H, W).copy()

        # pass 3: response + background
        ctx.disable(ctx.DEPTH_TEST | ctx.CULL_FACE)
        spec = scene.response
        c = self._prog_comp
        c["u_cmat"].write(np.ascontiguousarray(color_matrix(spec).T, dtype=np.float32).tobytes())
        c["u_gain"].value = tuple(float(spec.exposure) * float(g) for g in spec.white_balance)
        c["u_inv_gamma"].value = 1.0 / float(spec.gamma)
        c["u_tone"].write(np.ascontiguousarray(_tone(spec).T, dtype=np.float32).tobytes())
        noise = float(spec.noise_sigma) > 0
        c["u_quantize"].value = int(not noise)
        if scene.background.kind == "image":
            c["u_bg_image"].value = 1
            self._background_image(scene, W, H).use(2)
        elif scene.background.kind in ("color", "mesh"):
            c["u_bg_image"].value = 0
            self._dummy_tex.use(2)
        else:
            raise TwingapError(f"scene {scene.scene_id!r}: unknown background kind {scene.background.kind!r}")
        c["u_bg_color"].value = tuple(float(x) / 255.0 for x in scene.background.color)
        c["u_use_pass"].value = int(use_pass)
        self._t_lit.use(0)
        self._t_pass.use(1)
        fbo = self._fbo_outf if noise else self._fbo_out
        fbo.use()
        self._quad_vao.render()
        if noise:
            vals = np.frombuffer(fbo.read(components=3, dtype="f4"), np.float32).reshape(H, W, 3)
            rgb = add_sensor_noise(vals * 255.0, float(spec.noise_sigma), int(scene.seed))
        else:
            rgb = np.frombuffer(fbo.read(components=3), np.uint8).reshape(H, W, 3).copy()

        linear = coverage = None
        if return_linear:
            lit = np.frombuffer(fbo_resolve.read(components=4, attachment=0, dtype="f4"), np.float32)
            lit = lit.reshape(H, W, 4)
            coverage = lit[..., 3].copy()
            linear = np.where(
                coverage[..., None] > 0, lit[..., :3] / np.maximum(coverage, 1e-12)[..., None], 0
            )
            linear = linear.astype(np.float32)
        return RenderResult(rgb=rgb, depth=depth, instance_ids=ids, linear=linear, coverage=coverage)

    def render_full_masks(self, scene: SceneSpec, assets: dict[str, Asset]) -> np.ndarray:
        """Amodal masks: each object rendered alone (nothing occludes it).

        Returns:
            (N, H, W) bool, one mask per ``scene.objects[i]`` (BOP's ``mask/``, ``px_count_all``).
        """
        with self.ctx:
            cam = scene.camera
            W, H = cam.width, cam.height
            self._ensure_size(W, H)
            proj = opencv_projection(cam.K, W, H, cam.znear, cam.zfar)
            ctx = self.ctx
            ctx.enable(ctx.DEPTH_TEST)
            ctx.disable(ctx.BLEND)
            self._prog_id["u_proj"].write(np.ascontiguousarray(proj.T, dtype=np.float32).tobytes())
            out = np.zeros((len(scene.objects), H, W), bool)
            for i, obj in enumerate(scene.objects):
                if obj.model not in assets:
                    raise TwingapError(f"scene {scene.scene_id!r}: no model {obj.model!r} among the assets")
                mesh = self._upload(assets[obj.model])
                self._fbo_id.use()
                self._fbo_id.clear(depth=1.0)
                cam_T_obj = np.asarray(cam.cam_T_world, np.float64) @ np.asarray(obj.world_T_obj, np.float64)
                self._prog_id["u_cam_T_obj"].write(
                    np.ascontiguousarray(cam_T_obj.T, dtype=np.float32).tobytes()
                )
                self._prog_id["u_id"].value = 1
                self._set_cull(mesh.cull)
                mesh.vao_id.render()
                ids = np.frombuffer(self._fbo_id.read(components=1, attachment=0, dtype="i4"), np.int32)
                out[i] = ids.reshape(H, W) == 1
            ctx.disable(ctx.CULL_FACE)
            return out

    def release(self) -> None:
        """Free every GL resource and the context."""
        self.ctx.__enter__()
        for mesh in self._meshes.values():
            mesh.release()
        self._meshes.clear()
        self.ctx.release()
