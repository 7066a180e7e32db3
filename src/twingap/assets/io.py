"""Save an :class:`~twingap.assets.asset.Asset` as OBJ + MTL + PNG (load with ``load_mesh_file``).

The OBJ is written deterministically (fixed float formatting, one ``vt`` per ``v`` with the same
index, faces ``f a/a b/b c/c``, 1-based), so the same asset gives byte-identical files. Vertices
in metres, UVs in the OBJ convention (``v`` up). Files are written atomically.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from twingap.assets.asset import Asset
from twingap.io import write_bytes_atomic, write_text_atomic


def _rows(fmt: str, arr: np.ndarray) -> str:
    if len(arr) == 0:
        return ""
    return "\n".join(fmt % tuple(row) for row in arr.tolist()) + "\n"


def save_obj(asset: Asset, path: str | Path) -> Path:
    """Write ``<stem>.obj``, ``<stem>.mtl`` and ``<stem>.png`` next to each other.

    Args:
        asset: The asset to save (a 1x1 fallback texture is written as a 1x1 PNG, so the colour
            survives a round trip).
        path: Target ``.obj`` path (its folder is created).

    Returns:
        The OBJ path.
    """
    from PIL import Image

    path = Path(path)
    if path.suffix.lower() != ".obj":
        path = path.with_suffix(".obj")
    stem = path.stem
    png = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(asset.texture)).save(png, format="PNG", optimize=False)
    write_bytes_atomic(path.with_suffix(".png"), png.getvalue())
    mtl = (
        "# twingap asset material\n"
        f"newmtl {stem}\n"
        "Ka 1.000000 1.000000 1.000000\n"
        "Kd 1.000000 1.000000 1.000000\n"
        "Ks 0.000000 0.000000 0.000000\n"
        "d 1.0\n"
        "illum 1\n"
        f"map_Kd {stem}.png\n"
    )
    write_text_atomic(path.with_suffix(".mtl"), mtl)
    header = (
        f"# twingap asset {asset.name}; units: metres; content sha256 {asset.content_hash}\n"
        f"mtllib {stem}.mtl\n"
        f"o {stem}\n"
    )
    body = (
        _rows("v %.9f %.9f %.9f", asset.vertices)
        + _rows("vt %.9f %.9f", asset.uvs)
        + f"usemtl {stem}\n"
        + _rows("f %d/%d %d/%d %d/%d", np.repeat(asset.faces + 1, 2, axis=1))
    )
    write_text_atomic(path, header + body)
    return path
