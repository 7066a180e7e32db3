"""A contact sheet of one object under all conditions (for looking at the artifacts).

Rows are families, each starting with the clean object so a level compares with the one before
it: ``noise``, ``holes``, ``texture``, and ``light`` (baked light, then the ambient levels; see
:data:`ROW_FAMILIES`). Every tile is rendered by :class:`twingap.render.raster.RasterRenderer`
from the same camera (OpenCV convention, looking at the clean object's bounding-box centre from
``elevation_deg`` above the object's x-y plane) with one directional key light; ambient
conditions add their ``ambient_add`` to the scene's ambient term, as the dataset renderer does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from twingap.artifacts.base import apply_condition, damage
from twingap.artifacts.catalogue import Condition, load_catalogue
from twingap.assets.asset import Asset

#: Gallery rows: row label -> the families shown in it, in tile order ("clean" heads every row).
ROW_FAMILIES: dict[str, tuple[str, ...]] = {
    "noise": ("noise",),
    "holes": ("holes",),
    "texture": ("texture",),
    "light": ("baked_light", "ambient"),
}


def gallery_rows(catalogue: dict[str, Condition]) -> list[tuple[str, tuple[str, ...]]]:
    """The sheet's rows: (label, condition names), ``"clean"`` heading each.

    After ``"clean"``, a row holds its families' conditions in :data:`ROW_FAMILIES` order, each
    family in catalogue (display) order. Rows without a condition are left out.
    """
    rows = []
    for label, fams in ROW_FAMILIES.items():
        names = [n for fam in fams for n, c in catalogue.items() if c.family == fam and n != "clean"]
        if names:
            rows.append((label, ("clean", *names)))
    return rows


#: Camera zoom per row (the texture row is seen closer so that a 1-texel blur shows).
ROW_ZOOM: dict[str, float] = {"texture": 2.5}


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    """(4, 4) world-to-camera transform of an OpenCV camera (x right, y down, z forward) at ``eye``."""
    z = target - eye
    z = z / np.linalg.norm(z)
    y = -(up - (up @ z) * z)
    if np.linalg.norm(y) < 1e-9:  # looking along up: pick any perpendicular
        y = np.cross(z, [1.0, 0.0, 0.0])
    y = y / np.linalg.norm(y)
    x = np.cross(y, z)
    T = np.eye(4)
    T[:3, :3] = np.stack([x, y, z])
    T[:3, 3] = -T[:3, :3] @ eye
    return T


def gallery_scene(
    asset: Asset, size: int, ambient: float, azimuth_deg: float, elevation_deg: float, zoom: float = 1.0
):
    """The SceneSpec of one tile: the object (world = object frame) seen from a fixed view.

    ``zoom`` > 1 magnifies the centre of the view (longer focal length, same camera position).
    """
    from twingap.render.scene import CameraSpec, LightSpec, ObjectSpec, SceneSpec

    centre = 0.5 * (asset.vertices.min(0) + asset.vertices.max(0))
    radius = float(np.linalg.norm(asset.vertices - centre, axis=1).max())
    dist = 1.6 * radius / 0.44
    f = 1.6 * size * zoom
    az, el = np.deg2rad(azimuth_deg), np.deg2rad(elevation_deg)
    eye = centre + dist * np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
    cam_T_world = look_at(eye, centre, np.array([0.0, 0.0, 1.0]))
    K = np.array([[f, 0, (size - 1) / 2], [0, f, (size - 1) / 2], [0, 0, 1.0]])
    cam_dir = (centre - eye) / dist
    key = cam_dir + 0.6 * np.cross(cam_dir, [0.0, 0.0, 1.0]) - 0.5 * np.array([0.0, 0.0, 1.0])
    return SceneSpec(
        scene_id=f"gallery-{asset.name}",
        camera=CameraSpec(K=K, width=size, height=size, cam_T_world=cam_T_world, znear=0.01, zfar=10 * dist),
        objects=[ObjectSpec(model=asset.name, obj_id=1, world_T_obj=np.eye(4))],
        lights=[
            LightSpec(
                kind="directional", direction=tuple((key / np.linalg.norm(key)).tolist()), intensity=0.9
            )
        ],
        ambient=ambient,
    )


def render_gallery(
    asset: Asset,
    out_path: str | Path,
    seed: int = 0,
    catalogue: dict[str, Condition] | None = None,
    size: int = 320,
    ambient: float = 0.25,
    azimuth_deg: float = 35.0,
    elevation_deg: float = 30.0,
) -> dict[str, dict[str, float]]:
    """Render the contact sheet to a PNG.

    Args:
        asset: The clean asset.
        out_path: PNG path (written atomically).
        seed: Study seed for the conditions.
        catalogue: Conditions (default: the packaged catalogue).
        size: Tile size in pixels.
        ambient: The scene's base ambient term.
        azimuth_deg: Camera azimuth about the object's z axis, degrees.
        elevation_deg: Camera elevation above the x-y plane, degrees.

    Returns:
        Condition name -> its damage measures.
    """
    from PIL import Image, ImageDraw

    from twingap.io import atomic_path
    from twingap.render.raster import RasterRenderer

    catalogue = catalogue or load_catalogue()
    renderer = RasterRenderer(size, size)
    label_h = 22
    labelled = gallery_rows(catalogue)
    rows = [names for _, names in labelled]
    zooms = [ROW_ZOOM.get(label, 1.0) for label, _ in labelled]
    width = size * max(len(names) for names in rows)
    sheet = Image.new("RGB", (width, (size + label_h) * len(rows)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    damages: dict[str, dict[str, float]] = {}
    cache: dict[tuple[str, float], np.ndarray] = {}
    for r, names in enumerate(rows):
        for c, name in enumerate(names):
            if name not in catalogue:
                continue
            cond = catalogue[name]
            key = (name, zooms[r])
            if key not in cache:
                flawed = apply_condition(asset, cond, seed)
                damages[name] = damage(asset, flawed, cond)
                amb = ambient + float(cond.render_params.get("ambient_add", 0.0))
                scene = gallery_scene(asset, size, amb, azimuth_deg, elevation_deg, zooms[r])
                scene.background.color = (235, 235, 235)
                cache[key] = renderer.render(scene, {asset.name: flawed}).rgb
            x, y = c * size, r * (size + label_h)
            sheet.paste(Image.fromarray(cache[key]), (x, y + label_h))
            main = next(iter(damages[name].items()), None)
            text = name if main is None else f"{name}  {main[0]}={main[1]:.3g}"
            if zooms[r] != 1.0:
                text += f"  (zoom {zooms[r]:g}x)"
            draw.text((x + 4, y + 4), text, fill=(0, 0, 0))
    with atomic_path(out_path) as tmp:
        sheet.save(tmp, format="PNG")
    return damages
