"""Pictures for the audit report (matplotlib, no GPU): full-size PNG bytes, and light thumbnails.

* :func:`roughness_picture`: the welded mesh from two opposite views, faces coloured by roughness.
* :func:`holes_picture`: the mesh in grey with interior holes outlined red and the outer cut blue.
* :func:`blur_picture`: the texture with its blurry regions tinted (tiles of :func:`texture_blur.blur_map`).
* :func:`shading_picture`: the albedo, the fitted shading, and the albedo divided by it.

Meshes are drawn with an orthographic camera and the painter's algorithm (faces sorted far to
near, back faces culled), enough to see where a flaw is.

The pictures are drawn at :data:`FULL_DPI` (twice the display size, to zoom into); :func:`thumbnail`
makes the display-size WebP (JPEG where Pillow has no WebP) that the report inlines, a few kB each,
and :func:`encode` the full-size file it links to (WebP quality 90, about 80 kB).
"""

from __future__ import annotations

import io

import numpy as np

from twingap.audit.geometry import Welded

#: Dots per inch of the full-size pictures (figure sizes are in inches: 7 in -> 1260 px before cropping).
FULL_DPI = 180

#: Thumbnail size / full size: the thumbnails are at display size (90 dpi), the full pictures twice that.
THUMB_SCALE = 0.5

#: Lossy quality of the thumbnails and of the full-size files (Pillow's 0..100 scale, WebP or JPEG).
THUMB_QUALITY = 80
FULL_QUALITY = 90

#: File suffix per mime type of :func:`encode`.
SUFFIXES = {"image/webp": ".webp", "image/jpeg": ".jpg"}

#: View directions (from the object towards the camera), object frame.
VIEWS = (np.array([1.0, -1.0, 0.8]), np.array([-1.0, 1.0, -0.8]))


def _figure(width_in: float, height_in: float):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.figure(figsize=(width_in, height_in), dpi=FULL_DPI)


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", pil_kwargs={"compress_level": 1})  # re-encoded later
    plt.close(fig)
    return buf.getvalue()


def encode(png: bytes, scale: float = 1.0, quality: int = FULL_QUALITY) -> tuple[bytes, str, int, int]:
    """Re-encode a picture as lossy WebP (JPEG where Pillow has no WebP), optionally downscaled.

    Args:
        png: The picture (PNG bytes, as the ``*_picture`` functions return).
        scale: Output size over input size (Lanczos downscaling; 1.0 keeps the size).
        quality: WebP / JPEG quality (Pillow's 0..100 scale).

    Returns:
        ``(bytes, mime type, width px, height px)``; the mime type is ``image/webp`` or ``image/jpeg``
        (:data:`SUFFIXES` gives the file suffix).
    """
    from PIL import Image, features

    with Image.open(io.BytesIO(png)) as im:
        rgb = im.convert("RGB")
    size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
    if size != rgb.size:
        rgb = rgb.resize(size, Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    if features.check("webp"):
        rgb.save(buf, format="WEBP", quality=quality, method=4)
        mime = "image/webp"
    else:
        rgb.save(buf, format="JPEG", quality=quality, optimize=True)
        mime = "image/jpeg"
    return buf.getvalue(), mime, size[0], size[1]


def thumbnail(png: bytes) -> tuple[bytes, str, int, int]:
    """The display-size copy of a full-size picture that the report inlines (see :func:`encode`)."""
    return encode(png, THUMB_SCALE, THUMB_QUALITY)


def _basis(view: np.ndarray) -> np.ndarray:
    d = view / np.linalg.norm(view)
    up = np.array([0.0, 0.0, 1.0]) if abs(d[2]) < 0.95 else np.array([0.0, 1.0, 0.0])
    x = np.cross(up, d)
    x /= np.linalg.norm(x)
    y = np.cross(d, x)
    return np.stack([x, y, d])  # rows: screen x, screen y, towards camera


def _draw_mesh(ax, welded: Welded, view: np.ndarray, face_rgb: np.ndarray) -> np.ndarray:
    """Draw visible faces, Lambert-shaded from the camera; return the (3, 3) view basis."""
    from matplotlib.collections import PolyCollection

    basis = _basis(view)
    p = welded.positions @ basis.T
    tri = p[welded.faces]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n_len = np.maximum(np.linalg.norm(n, axis=1), 1e-30)
    facing = n[:, 2] / n_len
    keep = facing > 0
    order = np.argsort(tri[keep][:, :, 2].mean(axis=1))
    shade = (0.35 + 0.65 * facing[keep])[:, None]
    colors = np.clip(face_rgb[keep] * shade, 0, 1)[order]
    ax.add_collection(PolyCollection(tri[keep][order][:, :, :2], facecolors=colors, edgecolors="none"))
    lo, hi = p[:, :2].min(0), p[:, :2].max(0)
    pad = 0.03 * float(np.max(hi - lo))
    ax.set_xlim(lo[0] - pad, hi[0] + pad)
    ax.set_ylim(lo[1] - pad, hi[1] + pad)
    ax.set_aspect("equal")
    ax.axis("off")
    return basis


def roughness_picture(welded: Welded, roughness: np.ndarray) -> bytes:
    """Two views coloured by per-face roughness (mm, the mean of its vertices'), with a colour bar."""
    import matplotlib.pyplot as plt
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    face_mm = 1000.0 * roughness[welded.faces].mean(axis=1)
    norm = Normalize(0.0, max(float(np.percentile(face_mm, 98)), 1e-6))
    rgb = plt.get_cmap("magma")(norm(face_mm))[:, :3]
    fig = _figure(7.0, 3.4)
    for k, view in enumerate(VIEWS):
        _draw_mesh(fig.add_subplot(1, 2, k + 1), welded, view, rgb)
    fig.colorbar(
        ScalarMappable(norm, "magma"),
        ax=fig.axes,
        fraction=0.03,
        label="offset from the local quadric fit (mm)",
    )
    return _png(fig)


def holes_picture(welded: Welded, boundary: np.ndarray, outer: np.ndarray) -> bytes:
    """Two grey views with boundary edges drawn on top: interior holes red, the outer cut blue."""
    from matplotlib.collections import LineCollection

    grey = np.full((len(welded.faces), 3), 0.8)
    outer_set = {tuple(e) for e in np.asarray(outer).tolist()}
    is_outer = np.array([tuple(e) in outer_set for e in np.asarray(boundary).tolist()], dtype=bool)
    fig = _figure(7.0, 3.4)
    for k, view in enumerate(VIEWS):
        ax = fig.add_subplot(1, 2, k + 1)
        basis = _draw_mesh(ax, welded, view, grey)
        if len(boundary):
            seg = (welded.positions @ basis.T)[np.asarray(boundary)][:, :, :2]
            ax.add_collection(LineCollection(seg[~is_outer], colors="red", linewidths=1.2))
            ax.add_collection(LineCollection(seg[is_outer], colors="tab:blue", linewidths=1.2))
    fig.suptitle("holes: interior (red), outer cut (blue)", fontsize=9)
    return _png(fig)


def blur_picture(texture: np.ndarray, blur_map: np.ndarray, mask: np.ndarray) -> bytes:
    """The texture with tiles tinted by the share of gradient energy a small blur keeps (1 = blurry)."""
    import cv2

    size = 512
    h, w = texture.shape[:2]
    scale = min(1.0, size / max(h, w))
    tex = cv2.resize(
        texture, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
    )
    fig = _figure(7.0, 3.4)
    ax = fig.add_subplot(1, 2, 1)
    ax.imshow(tex)
    ax.set_title("albedo", fontsize=9)
    ax.axis("off")
    ax = fig.add_subplot(1, 2, 2)
    dim = (tex.astype(np.float32) * 0.35).astype(np.uint8)
    ax.imshow(dim)
    im = ax.imshow(
        blur_map,
        cmap="RdYlGn_r",
        vmin=0.0,
        vmax=1.0,
        alpha=0.75,
        interpolation="nearest",
        extent=(0, tex.shape[1], tex.shape[0], 0),
    )
    ax.set_title("blurry regions (red: a 2 px blur changes little)", fontsize=9)
    ax.axis("off")
    fig.colorbar(im, ax=ax, fraction=0.046, label="gradient energy kept")
    return _png(fig)


def shading_picture(albedo: np.ndarray, shading: np.ndarray) -> bytes:
    """Albedo | fitted shading (geometry's part of the brightness) | albedo / shading."""
    fig = _figure(9.0, 3.2)
    ax = fig.add_subplot(1, 3, 1)
    ax.imshow(albedo)
    ax.set_title("albedo", fontsize=9)
    ax.axis("off")
    ax = fig.add_subplot(1, 3, 2)
    im = ax.imshow(np.ma.masked_invalid(shading), cmap="gray", vmin=0.3, vmax=1.7)
    ax.set_title("shading fitted from normal + AO", fontsize=9)
    ax.axis("off")
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax = fig.add_subplot(1, 3, 3)
    s = np.where(np.isfinite(shading), shading, 1.0)[..., None]
    ax.imshow(np.clip(albedo.astype(np.float64) / np.maximum(s, 0.2), 0, 255).astype(np.uint8))
    ax.set_title("albedo / shading", fontsize=9)
    ax.axis("off")
    return _png(fig)
