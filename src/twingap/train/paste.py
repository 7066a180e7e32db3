"""Cut-and-paste training sets built from real frames, and toy datasets for tests.

For development only: :func:`paste_dataset` cuts the visible objects out of real annotated
frames (masks from their labels) and pastes them, scaled and shuffled, onto backgrounds made
from the same frames with the objects inpainted away. A detector trained on this and scored
on those same frames is optimistic (it has seen the real objects' appearance and the real
backgrounds); the study trains on rendered twins instead.

Datasets are written as ``root/coco.json`` + ``root/images/NNNNNN.png`` with RLE visible masks
and category ids = the frames' object ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from twingap.data.frame import Frame
from twingap.io import write_json_atomic


def write_coco_dataset(
    root: str | Path,
    images: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    cat_ids: Sequence[np.ndarray],
    categories: dict[int, str] | None = None,
) -> Path:
    """Write images and instance masks as a COCO dataset folder.

    Args:
        root: Output folder (created).
        images: Per image, (H, W, 3) uint8 RGB.
        masks: Per image, (N, H, W) bool visible masks.
        cat_ids: Per image, (N,) category ids.
        categories: id -> name for the ``categories`` list (default: the ids present, named
            ``obj_XXXXXX``).

    Returns:
        Path of the written ``coco.json``.
    """
    from pycocotools import mask as mask_utils

    from twingap.data.coco import category_name
    from twingap.data.images import write_png

    root = Path(root)
    present = sorted({int(c) for cs in cat_ids for c in np.asarray(cs).ravel()})
    cats = categories if categories is not None else {c: category_name(c) for c in present}
    coco: dict = {"images": [], "annotations": [], "categories": []}
    coco["categories"] = [
        {"id": int(k), "name": str(v), "supercategory": "object"} for k, v in sorted(cats.items())
    ]
    ann_id = 1
    for i, (img, ms, cs) in enumerate(zip(images, masks, cat_ids, strict=True)):
        name = f"images/{i:06d}.png"
        write_png(root / name, img)
        h, w = img.shape[:2]
        coco["images"].append({"id": i + 1, "file_name": name, "width": int(w), "height": int(h)})
        for m, c in zip(ms, cs, strict=True):
            if not m.any():
                continue
            rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
            bbox = [float(v) for v in mask_utils.toBbox(rle)]
            rle["counts"] = rle["counts"].decode("ascii")
            coco["annotations"].append(
                {
                    "id": ann_id,
                    "image_id": i + 1,
                    "category_id": int(c),
                    "segmentation": rle,
                    "area": float(m.sum()),
                    "bbox": bbox,
                    "iscrowd": 0,
                }
            )
            ann_id += 1
    write_json_atomic(root / "coco.json", coco, indent=None)
    return root / "coco.json"


def toy_dataset(root: str | Path, n_images: int = 6, size: tuple[int, int] = (96, 72), seed: int = 0) -> Path:
    """A tiny dataset of coloured rectangles and discs on noise, for tests.

    Class 1 is a red rectangle, class 2 a green disc, class 5 a blue rectangle (sparse ids on
    purpose, to exercise the label map). Returns the dataset folder.
    """
    rng = np.random.default_rng(seed)
    w, h = size
    images, masks, cats = [], [], []
    yy, xx = np.mgrid[0:h, 0:w]
    colours = {1: (220, 40, 40), 2: (40, 200, 60), 5: (50, 60, 230)}
    for _ in range(n_images):
        img = rng.integers(60, 140, size=(h, w, 3), dtype=np.uint8)
        ms, cs = [], []
        for c in (1, 2, 5):
            rw, rh = rng.integers(w // 6, w // 3), rng.integers(h // 6, h // 3)
            x0, y0 = rng.integers(0, w - rw), rng.integers(0, h - rh)
            if c == 2:
                r = min(rw, rh) / 2
                m = (xx - x0 - r) ** 2 + (yy - y0 - r) ** 2 <= r * r
            else:
                m = (xx >= x0) & (xx < x0 + rw) & (yy >= y0) & (yy < y0 + rh)
            for prev in ms:
                prev &= ~m
            img[m] = colours[c]
            ms.append(m)
            cs.append(c)
        images.append(img)
        masks.append(np.stack(ms))
        cats.append(np.asarray(cs))
    root = Path(root)
    write_coco_dataset(root, images, masks, cats)
    return root


@dataclass
class _Crop:
    rgb: np.ndarray  # (h, w, 3) uint8
    mask: np.ndarray  # (h, w) bool
    cat: int


def _crops(frames: Sequence[Frame], min_px: int) -> list[_Crop]:
    out = []
    for f in frames:
        rgb = f.load_rgb()
        for m, c in zip(f.masks, f.obj_ids, strict=True):
            if m.sum() < min_px:
                continue
            ys, xs = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
            sl = np.s_[ys[0] : ys[-1] + 1, xs[0] : xs[-1] + 1]
            out.append(_Crop(rgb[sl].copy(), m[sl].copy(), int(c)))
    return out


def _backgrounds(frames: Sequence[Frame]) -> list[np.ndarray]:
    out = []
    for f in frames:
        rgb = f.load_rgb()
        h, w = rgb.shape[:2]
        obj = f.masks.any(axis=0).astype(np.uint8) if len(f.masks) else np.zeros((h, w), np.uint8)
        obj = cv2.dilate(obj, np.ones((9, 9), np.uint8))
        small = cv2.resize(rgb, (w // 4, h // 4), interpolation=cv2.INTER_AREA)
        small_m = cv2.resize(obj, (w // 4, h // 4), interpolation=cv2.INTER_NEAREST)
        filled = cv2.inpaint(small, small_m, 5, cv2.INPAINT_TELEA)
        big = cv2.resize(filled, (w, h), interpolation=cv2.INTER_LINEAR)
        out.append(np.where(obj[..., None] > 0, big, rgb))
    return out


def paste_dataset(
    frames: Sequence[Frame],
    root: str | Path,
    n_images: int = 200,
    seed: int = 0,
    objects_per_image: tuple[int, int] = (3, 7),
    scale_range: tuple[float, float] = (0.6, 1.2),
    blur_sigma: float = 0.0,
    min_crop_px: int = 600,
) -> Path:
    """Write a cut-and-paste COCO dataset from real frames (optimistic; development only).

    Every random draw is independent of ``blur_sigma``, so datasets that differ only in blur
    have the same layouts (a paired design).

    Args:
        frames: Real annotated frames (RGB + visible masks + object ids).
        root: Output dataset folder.
        n_images: Number of images to write.
        seed: Layout seed.
        objects_per_image: Inclusive range of pasted objects per image.
        scale_range: Uniform range of the crops' scale factor.
        blur_sigma: Gaussian blur (pixels) applied to pasted crops, an artifact stand-in.
        min_crop_px: Instances with fewer visible pixels are not used as crops.

    Returns:
        The dataset folder.
    """
    rng = np.random.default_rng(seed)
    crops = _crops(frames, min_crop_px)
    bgs = _backgrounds(frames)
    images, masks, cats = [], [], []
    for _ in range(n_images):
        bg_i = int(rng.integers(len(bgs)))
        img = bgs[bg_i].copy()
        h, w = img.shape[:2]
        if rng.random() < 0.5:
            img = img[:, ::-1].copy()
        k = int(rng.integers(objects_per_image[0], objects_per_image[1] + 1))
        chosen = rng.choice(len(crops), size=min(k, len(crops)), replace=False)
        ms, cs = [], []
        for ci in chosen:
            c = crops[int(ci)]
            s = float(rng.uniform(*scale_range))
            flip = rng.random() < 0.5
            u = rng.random(2)
            ch, cw = c.mask.shape
            nw, nh = max(4, min(w, int(cw * s))), max(4, min(h, int(ch * s)))
            patch = cv2.resize(c.rgb, (nw, nh), interpolation=cv2.INTER_LINEAR)
            pm = cv2.resize(c.mask.astype(np.uint8), (nw, nh), interpolation=cv2.INTER_NEAREST) > 0
            if flip:
                patch, pm = patch[:, ::-1], pm[:, ::-1]
            if blur_sigma > 0:
                patch = cv2.GaussianBlur(np.ascontiguousarray(patch), (0, 0), blur_sigma)
            x0, y0 = int(u[0] * (w - nw)), int(u[1] * (h - nh))
            m = np.zeros((h, w), bool)
            m[y0 : y0 + nh, x0 : x0 + nw] = pm
            img[m] = patch[pm]
            for prev in ms:
                prev &= ~m
            ms.append(m)
            cs.append(c.cat)
        images.append(img)
        masks.append(np.stack(ms) if ms else np.zeros((0, h, w), bool))
        cats.append(np.asarray(cs, dtype=np.int64))
    root = Path(root)
    write_coco_dataset(root, images, masks, cats)
    return root
