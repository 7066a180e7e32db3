"""Training data: a COCO instance dataset decoded once into memory, and seeded augmentations.

A dataset folder holds ``coco.json`` (COCO instances; ``file_name`` relative to the folder;
segmentations as RLE or polygons; category ids = the model library's object ids) and the images. Images
are resized to the training size (``TrainConfig.image_size``) once and kept decoded in memory,
so loading never limits training speed.

Augmentation parameters are drawn apart from their application (as in kornia): an
:class:`AugParams` is a small frozen record drawn from a ``numpy.random.Generator``; applying
it is a pure function. The engine draws them from generators keyed by (seed, image, variant)
or (seed, step), so one seed fixes every augmentation and two datasets with the same images
order get the same augmentation draws (common random numbers).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from twingap.errors import TwingapError
from twingap.io import read_json, sha256_file


@dataclass
class TrainSet:
    """A COCO dataset decoded in memory at the training resolution.

    Attributes:
        root: Dataset folder.
        images: Per image, (H, W, 3) uint8 RGB at the training size.
        masks: Per image, (N, H, W) bool visible instance masks at the training size.
        labels: Per image, (N,) int64 contiguous model labels (1..C; 0 is background).
        label_to_cat: Model label -> COCO category id (object id).
        cat_names: COCO category id -> name.
        file_names: Per image, the ``file_name`` from ``coco.json``.
    """

    root: Path
    images: list[np.ndarray]
    masks: list[np.ndarray]
    labels: list[np.ndarray]
    label_to_cat: dict[int, int]
    cat_names: dict[int, str]
    file_names: list[str]

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_classes(self) -> int:
        """Model classes including background."""
        return len(self.label_to_cat) + 1


def resize_rgb(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an (H, W, 3) uint8 image to ``size`` = (width, height) (area / linear filter)."""
    w, h = size
    if img.shape[1] == w and img.shape[0] == h:
        return img
    interp = cv2.INTER_AREA if img.shape[1] > w else cv2.INTER_LINEAR
    return cv2.resize(img, (w, h), interpolation=interp)


def resize_masks(masks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize (N, H, W) bool masks to ``size`` = (width, height) (coverage > 0.5)."""
    w, h = size
    if masks.shape[2] == w and masks.shape[1] == h:
        return masks.astype(bool)
    out = np.zeros((len(masks), h, w), dtype=bool)
    for i, m in enumerate(masks):
        out[i] = cv2.resize(m.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA) > 0.5
    return out


def dataset_hash(root: str | Path) -> str:
    """SHA-256 over ``coco.json`` and every image it lists (sorted by file name)."""
    root = Path(root)
    h = hashlib.sha256()
    h.update(bytes.fromhex(sha256_file(root / "coco.json")))
    coco = read_json(root / "coco.json")
    for name in sorted(str(im["file_name"]) for im in coco.get("images", [])):
        h.update(name.encode())
        h.update(bytes.fromhex(sha256_file(root / name)))
    return h.hexdigest()


def load_train_set(root: str | Path, size: tuple[int, int]) -> TrainSet:
    """Read and validate a COCO dataset folder, decoding images and masks at ``size``.

    Args:
        root: Folder with ``coco.json`` and the images.
        size: Training (width, height) in pixels.

    Returns:
        The decoded :class:`TrainSet`; images keep the order of ``coco.json``'s ``images``.
        Crowd annotations and annotations with an empty mask are skipped.

    Raises:
        TwingapError: If ``coco.json`` is missing or malformed, has no images, no categories,
            no annotations, or annotations whose category is not listed.
    """
    from pycocotools import mask as mask_utils

    root = Path(root)
    if not root.is_dir():
        raise TwingapError("dataset folder not found", root)
    path = root / "coco.json"
    if not path.is_file():
        raise TwingapError("coco.json not found in the dataset folder", root)
    coco = read_json(path)
    if not isinstance(coco, dict):
        raise TwingapError("coco.json must hold a COCO instances object", path)
    images = coco.get("images") or []
    anns = coco.get("annotations") or []
    cats = coco.get("categories") or []
    if not images:
        raise TwingapError("dataset is empty: coco.json lists no images", path)
    if not cats:
        raise TwingapError("coco.json lists no categories", path)
    if not anns:
        raise TwingapError("no image has annotations: coco.json lists no annotations", path)
    try:
        cat_names = {int(c["id"]): str(c.get("name", c["id"])) for c in cats}
        image_ids = [int(im["id"]) for im in images]
    except (KeyError, TypeError, ValueError) as exc:
        raise TwingapError(f"malformed image or category entry ({exc})", path) from exc
    by_image: dict[int, list[dict]] = {i: [] for i in image_ids}
    for a in anns:
        cid = a.get("category_id")
        if cid not in cat_names:
            raise TwingapError(
                f"annotation {a.get('id')} has category_id {cid!r}, which is missing from categories", path
            )
        if a.get("image_id") not in by_image:
            raise TwingapError(
                f"annotation {a.get('id')} refers to unknown image_id {a.get('image_id')!r}", path
            )
        by_image[a["image_id"]].append(a)
    used = sorted({int(a["category_id"]) for a in anns})
    label_to_cat = {i + 1: c for i, c in enumerate(used)}
    cat_to_label = {c: i for i, c in label_to_cat.items()}

    from twingap.data.images import read_rgb

    out_images, out_masks, out_labels, names = [], [], [], []
    for im in images:
        fname = str(im.get("file_name", ""))
        rgb = read_rgb(root / fname)
        h, w = rgb.shape[:2]
        masks, labels = [], []
        for a in by_image[int(im["id"])]:
            if a.get("iscrowd", 0):
                continue
            seg = a.get("segmentation")
            if seg is None:
                raise TwingapError(f"annotation {a.get('id')} has no segmentation", path)
            try:
                if isinstance(seg, list):
                    rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
                elif isinstance(seg.get("counts"), list):
                    rle = mask_utils.frPyObjects(seg, h, w)
                else:
                    rle = dict(seg)
                    if isinstance(rle["counts"], str):
                        rle["counts"] = rle["counts"].encode("ascii")
                m = mask_utils.decode(rle).astype(bool)
            except (KeyError, TypeError, ValueError) as exc:
                raise TwingapError(
                    f"annotation {a.get('id')} has a malformed segmentation ({exc})", path
                ) from exc
            if m.shape != (h, w):
                raise TwingapError(f"annotation {a.get('id')} mask size differs from its image", path)
            if not m.any():
                continue
            masks.append(m)
            labels.append(cat_to_label[int(a["category_id"])])
        m_arr = np.stack(masks) if masks else np.zeros((0, h, w), dtype=bool)
        out_images.append(resize_rgb(rgb, size))
        out_masks.append(resize_masks(m_arr, size))
        out_labels.append(np.asarray(labels, dtype=np.int64))
        names.append(fname)
    return TrainSet(root, out_images, out_masks, out_labels, label_to_cat, cat_names, names)


@dataclass(frozen=True)
class AugParams:
    """One augmentation draw (all fractions of the image size).

    Attributes:
        flip: Mirror horizontally (after cropping).
        crop: (x0, y0, w, h) crop window as fractions of width / height; resized back to
            the full training size.
        brightness: Multiplicative brightness factor.
        contrast: Contrast factor around the mean grey level.
        saturation: Saturation factor around the per-pixel grey level.
        hue: Hue rotation in turns.
    """

    flip: bool = False
    crop: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)
    brightness: float = 1.0
    contrast: float = 1.0
    saturation: float = 1.0
    hue: float = 0.0

    @property
    def is_identity(self) -> bool:
        """True when applying these parameters changes nothing."""
        return self == AugParams()


def draw_aug(rng: np.random.Generator, hflip: float, crop_min: float, jitter: float, hue: float) -> AugParams:
    """Draw augmentation parameters (always the same number of draws, whatever the settings)."""
    u = rng.random(10)
    cw = crop_min + (1.0 - crop_min) * u[1]
    ch = crop_min + (1.0 - crop_min) * u[2]
    return AugParams(
        flip=bool(u[0] < hflip),
        crop=(float((1.0 - cw) * u[3]), float((1.0 - ch) * u[4]), float(cw), float(ch)),
        brightness=float(1.0 + jitter * (2 * u[5] - 1)),
        contrast=float(1.0 + jitter * (2 * u[6] - 1)),
        saturation=float(1.0 + jitter * (2 * u[7] - 1)),
        hue=float(hue * (2 * u[8] - 1)),
    )


def _crop_box(p: AugParams, w: int, h: int) -> tuple[int, int, int, int]:
    x0 = round(p.crop[0] * w)
    y0 = round(p.crop[1] * h)
    cw = max(1, min(w - x0, round(p.crop[2] * w)))
    ch = max(1, min(h - y0, round(p.crop[3] * h)))
    return x0, y0, cw, ch


def apply_geometry_masks(masks: np.ndarray, p: AugParams) -> np.ndarray:
    """Crop + resize back + flip (N, H, W) bool masks; pure."""
    n, h, w = masks.shape
    x0, y0, cw, ch = _crop_box(p, w, h)
    out = masks
    if (cw, ch) != (w, h):
        out = np.zeros((n, h, w), dtype=bool)
        for i, m in enumerate(masks):
            sub = m[y0 : y0 + ch, x0 : x0 + cw].astype(np.uint8)
            out[i] = cv2.resize(sub, (w, h), interpolation=cv2.INTER_NEAREST) > 0
    if p.flip:
        out = out[:, :, ::-1]
    return np.ascontiguousarray(out)


def apply_image(img: np.ndarray, p: AugParams) -> np.ndarray:
    """Apply crop, flip and colour jitter to an (H, W, 3) uint8 image; returns float32 in [0, 1]."""
    h, w = img.shape[:2]
    x0, y0, cw, ch = _crop_box(p, w, h)
    out = img
    if (cw, ch) != (w, h):
        out = cv2.resize(img[y0 : y0 + ch, x0 : x0 + cw], (w, h), interpolation=cv2.INTER_LINEAR)
    if p.flip:
        out = out[:, ::-1]
    f = out.astype(np.float32) * (1.0 / 255.0)
    if p.hue != 0.0:
        # Rotate chroma in YIQ space: a cheap linear approximation of a hue shift.
        a = 2 * np.pi * p.hue
        to_yiq = np.array(
            [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], np.float32
        )
        rot = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]], np.float32)
        m = np.linalg.inv(to_yiq) @ rot @ to_yiq
        f = f @ m.T.astype(np.float32)
    if p.brightness != 1.0:
        f = f * p.brightness
    if p.contrast != 1.0:
        mean = float((f @ np.array([0.299, 0.587, 0.114], np.float32)).mean())
        f = (f - mean) * p.contrast + mean
    if p.saturation != 1.0:
        grey = (f @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
        f = grey + (f - grey) * p.saturation
    return np.ascontiguousarray(np.clip(f, 0.0, 1.0))


def masks_to_target(masks: np.ndarray, labels: np.ndarray, min_px: int) -> dict[str, np.ndarray]:
    """Boxes (x1, y1, x2, y2 pixels, exclusive max) from masks, dropping tiny instances."""
    if len(masks):
        keep = masks.reshape(len(masks), -1).sum(axis=1) >= min_px
        masks, labels = masks[keep], labels[keep]
    boxes = np.zeros((len(masks), 4), dtype=np.float32)
    for i, m in enumerate(masks):
        ys = np.flatnonzero(m.any(axis=1))
        xs = np.flatnonzero(m.any(axis=0))
        boxes[i] = (xs[0], ys[0], xs[-1] + 1, ys[-1] + 1)
    return {"boxes": boxes, "labels": labels.astype(np.int64), "masks": masks.astype(np.uint8)}
