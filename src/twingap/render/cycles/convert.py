"""Pure conversions between twingap's scenes and Blender's (NumPy only; no ``bpy`` needed).

Everything the Blender session computes rather than asks Blender for lives here, so it can be
tested in any environment: the OpenCV camera as Blender camera settings and pose, lights and
ambient in Blender's radiometric units, the Cycles settings of the two render passes, mesh
arrays in Blender's loop layout, and the post-processing of the passes Cycles writes (ids and
depth clean-up, camera response, compositing over the background).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from twingap.assets.asset import Asset
from twingap.errors import TwingapError
from twingap.render.backend import RenderResult
from twingap.render.cycles.settings import CyclesSettings
from twingap.render.response import add_sensor_noise, check_response, response_float
from twingap.render.scene import LightSpec, SceneSpec

#: Cycles' "nothing hit" depth is 1e10; anything beyond this is background.
FAR = 1e9

#: The second, cheap pass (exact ids and planar depth): one sample at the pixel centre, no
#: bounces, no denoising. Applied on top of :func:`colour_pass_settings`.
IDS_PASS_SETTINGS: dict[str, Any] = {
    "samples": 1,
    "filter_width": 0.01,
    "use_denoising": False,
    "max_bounces": 0,
    "seed": 0,
}

# ---------------------------------------------------------------------------------------------
# Camera


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


# ---------------------------------------------------------------------------------------------
# Lights and ambient


def sun_rotation(direction: np.ndarray) -> np.ndarray:
    """(3, 3) rotation taking the local ``-z`` axis onto unit ``direction`` (a sun's travel)."""
    d = np.asarray(direction, dtype=np.float64)
    d = d / np.linalg.norm(d)
    z = -d
    helper = np.array([1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    x = np.cross(helper, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return np.stack([x, y, z], axis=1)


@dataclass(frozen=True)
class BlenderLight:
    """A light as Blender takes it.

    Attributes:
        type: ``"SUN"`` or ``"POINT"``.
        energy: Sun strength (W/m^2) or point power (W).
        color: Linear RGB.
        size_attr: The light-data attribute that sets its size: ``"angle"`` (sun, radians) or
            ``"shadow_soft_size"`` (point radius, metres).
        size: Its value.
        matrix: (4, 4) ``matrix_world`` (sun: rotation only; point: translation only).
    """

    type: str
    energy: float
    color: tuple[float, float, float]
    size_attr: str
    size: float
    matrix: np.ndarray


def blender_light(light: LightSpec, settings: CyclesSettings) -> BlenderLight:
    """A twingap light in Blender's units, matched to the raster backend's shading.

    A Lambertian surface lit head-on by a sun of strength ``pi * I`` reflects radiance
    ``albedo * I``; a point light of power ``4 pi^2 * I`` gives the raster's ``I / d^2``.
    """
    color = (float(light.color[0]), float(light.color[1]), float(light.color[2]))
    matrix = np.eye(4)
    if light.kind == "directional":
        matrix[:3, :3] = sun_rotation(np.asarray(light.direction, dtype=np.float64))
        energy = math.pi * float(light.intensity)
        return BlenderLight("SUN", energy, color, "angle", float(settings.sun_angle), matrix)
    matrix[:3, 3] = light.position
    energy = 4 * math.pi**2 * float(light.intensity)
    return BlenderLight("POINT", energy, color, "shadow_soft_size", float(settings.point_radius), matrix)


def world_color(ambient: float) -> tuple[float, float, float, float]:
    """RGBA of a uniform world of radiance ``ambient`` (a Lambertian surface gets ``albedo * ambient``)."""
    a = float(ambient)
    return (a, a, a, 1.0)


# ---------------------------------------------------------------------------------------------
# Cycles settings of the passes


def usable_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def render_threads(settings: CyclesSettings) -> int:
    """Blender's render thread count: ``settings.threads``, or every usable core when 0."""
    return int(settings.threads) if settings.threads > 0 else usable_cores()


def cycles_seed(seed: int) -> int:
    """Cycles' integer seed of a scene seed."""
    return int(seed) % (2**31 - 1)


def colour_pass_settings(settings: CyclesSettings, seed: int, has_oidn: bool = True) -> dict[str, Any]:
    """``scene.cycles`` attributes of the path-traced colour pass, in the order they are set.

    Args:
        settings: The quality settings.
        seed: The scene seed.
        has_oidn: Whether the Blender build has OpenImageDenoise (denoising is off without it).

    Returns:
        Attribute name -> value (fixed samples, capped diffuse/glossy bounces, no caustics,
        Blackman-Harris filter, OIDN with albedo and normal guides when denoising).
    """
    s = settings
    out: dict[str, Any] = {
        "samples": int(s.samples),
        "use_adaptive_sampling": False,
        "seed": cycles_seed(seed),
        "use_animated_seed": False,
        "max_bounces": int(s.max_bounces),
        "diffuse_bounces": min(3, int(s.max_bounces)),
        "glossy_bounces": min(2, int(s.max_bounces)),
        "transmission_bounces": 0,
        "volume_bounces": 0,
        "transparent_max_bounces": 4,
        "caustics_reflective": False,
        "caustics_refractive": False,
        "pixel_filter_type": "BLACKMAN_HARRIS",
        "filter_width": float(s.filter_width),
        "use_denoising": bool(s.denoise) and bool(has_oidn),
    }
    if out["use_denoising"]:
        out.update(
            denoiser="OPENIMAGEDENOISE",
            denoising_input_passes="RGB_ALBEDO_NORMAL",
            denoising_prefilter="FAST",
            denoising_quality=s.denoise_quality,
        )
    return out


# ---------------------------------------------------------------------------------------------
# Meshes


@dataclass(frozen=True)
class MeshArrays:
    """An asset's triangles in Blender's mesh layout (degenerate triangles dropped).

    Attributes:
        vertices: (V, 3) float32 positions, metres.
        loops: (3F,) int32 vertex index of each loop (corner).
        loop_start: (F,) int32 first loop of each polygon.
        loop_total: (F,) int32 loops per polygon (3).
        uvs: (3F, 2) float32 texture coordinates per loop.
    """

    vertices: np.ndarray
    loops: np.ndarray
    loop_start: np.ndarray
    loop_total: np.ndarray
    uvs: np.ndarray


def mesh_arrays(asset: Asset) -> MeshArrays:
    """The asset's mesh as Blender loops (triangles with a repeated vertex are dropped)."""
    faces = np.asarray(asset.faces, dtype=np.int64)
    keep = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    faces = faces[keep].astype(np.int32)
    return MeshArrays(
        vertices=np.asarray(asset.vertices, dtype=np.float32),
        loops=faces.ravel(),
        loop_start=np.arange(0, faces.size, 3, dtype=np.int32),
        loop_total=np.full(len(faces), 3, dtype=np.int32),
        uvs=np.asarray(asset.uvs, dtype=np.float32)[faces].reshape(-1, 2),
    )


def smooth_normals(asset: Asset) -> np.ndarray:
    """(V, 3) float32 vertex normals shared across texture seams (the raster backend's)."""
    from twingap.render.raster import vertex_normals

    return vertex_normals(np.asarray(asset.vertices, dtype=np.float64), asset.faces)


def texture_pixels(texture: np.ndarray) -> np.ndarray:
    """(H, W, 4) float32 RGBA in [0, 1], rows bottom-up (Blender's image layout), of a uint8 texture."""
    h, w = texture.shape[:2]
    px = np.ones((h, w, 4), dtype=np.float32)
    px[..., :3] = texture[::-1].astype(np.float32) / np.float32(255.0)
    return px


# ---------------------------------------------------------------------------------------------
# Scene checks and backgrounds


def check_scene(scene: SceneSpec, assets: dict[str, Asset]) -> None:
    """Fail before rendering on what the Cycles backend cannot draw.

    Raises:
        TwingapError: On an invalid response, a model missing from ``assets``, an unknown light
            kind, a directional light without direction, or an unknown background kind.
    """
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


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """The sRGB transfer function of linear values (clipped to [0, 1])."""
    c = np.clip(x, 0.0, 1.0)
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * np.power(c, 1 / 2.4) - 0.055)


def background_image(scene: SceneSpec, width: int, height: int) -> np.ndarray:
    """(H, W, 3) float64 sRGB background image in [0, 1] (resized like the raster backend).

    Raises:
        TwingapError: If the scene's background image does not exist.
    """
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


def mesh_background(centre: np.ndarray, ids: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Pass-through sRGB colour of the background mesh, filled under the objects.

    Pixels whose centre sees an object borrow the nearest background-mesh pixel (they only
    matter on anti-aliased object edges); pixels that see nothing are black.

    Args:
        centre: (H, W, 3) linear colour of the ids pass (the mesh's texture, unlit).
        ids: (H, W) int32 instance ids (0 = background).
        depth: (H, W) planar depth, metres (0 = nothing).

    Returns:
        (H, W, 3) float64 sRGB in [0, 1].
    """
    from scipy import ndimage

    srgb = linear_to_srgb(centre.astype(np.float64))
    seen = (ids == 0) & (depth > 0)
    if not seen.any():
        return np.zeros_like(srgb)
    fill = ids > 0
    if fill.any():
        _, (iy, ix) = ndimage.distance_transform_edt(~seen, return_indices=True)
        srgb = np.where(fill[..., None], srgb[iy, ix], srgb)
    return np.where(((ids == 0) & (depth <= 0))[..., None], 0.0, srgb)


# ---------------------------------------------------------------------------------------------
# From Cycles' passes to a RenderResult


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


def ids_and_depth(index: np.ndarray, depth: np.ndarray, n_objects: int) -> tuple[np.ndarray, np.ndarray]:
    """Instance ids and planar depth from Cycles' object-index and Z passes.

    Args:
        index: (H, W) float object index pass (``pass_index = i + 1``; the background mesh 0).
        depth: (H, W) float Z pass, metres (``1e10`` where nothing was hit).
        n_objects: Number of scene objects (larger indices are background).

    Returns:
        (H, W) int32 ids (0 = background) and (H, W) float32 depth (0 = nothing).
    """
    ids = np.rint(index).astype(np.int32)
    ids[(ids < 0) | (ids > n_objects)] = 0
    return ids, np.where(depth < FAR, depth, 0.0).astype(np.float32)


def result_from_passes(
    scene: SceneSpec,
    rgba: np.ndarray,
    passes: dict[str, np.ndarray],
    bg_image: np.ndarray | None,
    mesh_bg: bool,
    return_linear: bool,
) -> RenderResult:
    """The :class:`RenderResult` of the two Cycles passes.

    Args:
        scene: The rendered scene.
        rgba: (H, W, 4) path-traced linear RGB pre-multiplied by alpha, and alpha.
        passes: The ids pass: ``"centre"`` (H, W, 3) linear colour, ``"depth"`` (H, W) Z,
            ``"index"`` (H, W) object index.
        bg_image: (H, W, 3) sRGB background image in [0, 1], or None.
        mesh_bg: The scene has an unlit (pass-through) background mesh.
        return_linear: Also return the linear radiance and its coverage.

    Returns:
        The result (rgb composited over the image, mesh or colour background).
    """
    ids, depth = ids_and_depth(passes["index"], passes["depth"], len(scene.objects))
    if bg_image is not None:
        bg = bg_image
    elif mesh_bg:
        bg = mesh_background(passes["centre"], ids, depth)
    else:
        bg = None
    premult, alpha = rgba[..., :3].astype(np.float64), rgba[..., 3].astype(np.float64)
    rgb = composite(scene, premult, alpha, bg)
    linear = coverage = None
    if return_linear:
        coverage = np.clip(alpha, 0, 1).astype(np.float32)
        linear = np.where(alpha[..., None] > 0, premult / np.maximum(alpha, 1e-12)[..., None], 0)
        linear = linear.astype(np.float32)
    return RenderResult(rgb=rgb, depth=depth, instance_ids=ids, linear=linear, coverage=coverage)
