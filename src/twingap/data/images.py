"""Image IO with clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from twingap.errors import TwingapError


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as a numpy array without any conversion.

    Raises:
        TwingapError: If the file is missing or cannot be decoded.
    """
    path = Path(path)
    if not path.is_file():
        raise TwingapError("image file not found", path)
    try:
        with Image.open(path) as im:
            im.load()
            return np.asarray(im)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise TwingapError(f"unreadable image ({exc})", path) from exc


def read_rgb(path: str | Path) -> np.ndarray:
    """Read a colour image as (H, W, 3) uint8 RGB (alpha dropped, grey expanded)."""
    arr = read_image(path)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.dtype != np.uint8:
        raise TwingapError(f"expected an 8-bit colour image, got {arr.dtype}", path)
    return np.ascontiguousarray(arr[..., :3])


def write_png(path: str | Path, arr: np.ndarray) -> None:
    """Write an array as PNG atomically (deterministic bytes: no timestamps, fixed level)."""
    from twingap.io import atomic_path

    with atomic_path(path) as tmp:
        Image.fromarray(arr).save(tmp, format="PNG", compress_level=6)
