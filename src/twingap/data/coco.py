"""COCO ground truth from frames, and COCO results (predictions) IO with validation.

Ground truth (``frames_to_coco``): one COCO image per frame and one annotation per object instance:

* ``segmentation``: compressed RLE (pycocotools ``mask.encode``) of the **visible** mask,
  ``counts`` as an ASCII string so that the dict is JSON-serialisable;
* ``bbox``: ``[x, y, w, h]`` (pixels, float) of the visible mask, as pycocotools ``toBbox``
  computes it (``w = x_max - x_min + 1``);
* ``area``: visible pixel count;
* ``category_id``: the frame's object id; ``categories`` lists the objects by the names given
  (normally the model library's, :meth:`twingap.assets.asset.ModelLibrary.categories`), plus
  ``obj_XXXXXX`` for an id without a name;
* **tiny-instance rule**: an instance with fewer than ``min_visible_px`` visible pixels
  (default :data:`DEFAULT_MIN_VISIBLE_PX` = 100, about 10x10 px) gets ``iscrowd = 1`` and
  ``ignore = 1``. COCO evaluation then neither counts it as a miss nor counts a detection
  matched to it as a false positive.

Image ids: ``scene * 1_000_000 + frame`` when both parts of ``Frame.frame_id`` (``"0001/000012"``)
are numeric, so the YCB-Video and BOP readings of the same frame share ids; otherwise 1..N in
frame order. Each image also records ``frame_id`` and ``scene_id``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from twingap.data.frame import Frame
from twingap.errors import TwingapError

#: Instances with fewer visible pixels than this are marked ``iscrowd``/ignored.
DEFAULT_MIN_VISIBLE_PX = 100


def category_name(obj_id: int, names: dict[int, str] | None = None) -> str:
    """Name of a category id: from ``names`` (e.g. a model library's), else ``"obj_XXXXXX"`` (BOP style)."""
    return (names or {}).get(int(obj_id), f"obj_{int(obj_id):06d}")


def coco_categories(
    names: dict[int, str] | None = None, extra_ids: Sequence[int] = ()
) -> list[dict[str, Any]]:
    """COCO ``categories`` of every id in ``names`` plus ``extra_ids`` (unnamed ones as ``obj_XXXXXX``).

    Args:
        names: Category id -> name (a model library's :meth:`~twingap.assets.asset.ModelLibrary.categories`).
        extra_ids: Further ids to list (e.g. ids present in annotations but not in ``names``).

    Returns:
        ``[{"id", "name", "supercategory": "object"}, ...]`` sorted by id.
    """
    ids = sorted(set(names or {}) | {int(i) for i in extra_ids})
    return [{"id": i, "name": category_name(i, names), "supercategory": "object"} for i in ids]


def mask_to_rle(mask: np.ndarray) -> dict[str, Any]:
    """Encode an (H, W) bool mask as COCO compressed RLE with a ``str`` ``counts``."""
    from pycocotools import mask as mask_util

    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def rle_to_mask(rle: dict[str, Any]) -> np.ndarray:
    """Decode a COCO RLE (``counts`` str or bytes, or uncompressed list) to an (H, W) bool mask."""
    from pycocotools import mask as mask_util

    if isinstance(rle.get("counts"), list):
        h, w = rle["size"]
        rle = mask_util.frPyObjects(rle, h, w)
    elif isinstance(rle.get("counts"), str):
        rle = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    return mask_util.decode(rle).astype(bool)


def instances_to_coco(
    masks: np.ndarray,
    obj_ids: Sequence[int] | np.ndarray,
    image_id: int,
    ann_id_start: int = 1,
    min_visible_px: int = DEFAULT_MIN_VISIBLE_PX,
) -> list[dict[str, Any]]:
    """Build COCO ground-truth annotations for the instances of one image.

    Args:
        masks: (N, H, W) bool visible masks.
        obj_ids: (N,) object ids, used as ``category_id``.
        image_id: COCO image id of the image.
        ann_id_start: Id of the first annotation; the next ones count up by 1.
        min_visible_px: Instances with fewer visible pixels are marked ``iscrowd = 1`` and
            ``ignore = 1`` (default 100, about 10x10 px).

    Returns:
        N annotation dicts (``id``, ``image_id``, ``category_id``, ``segmentation`` (RLE, str
        counts), ``area`` (pixels), ``bbox`` ``[x, y, w, h]``, ``iscrowd``, ``ignore``), in input order.
        An instance with an empty mask gets ``bbox = [0, 0, 0, 0]`` and is always ignored.
    """
    from pycocotools import mask as mask_util

    masks = np.asarray(masks, dtype=bool)
    obj_ids = np.asarray(obj_ids, dtype=np.int64).ravel()
    if masks.ndim != 3 or len(masks) != len(obj_ids):
        raise ValueError(
            f"masks must be (N, H, W) with N = len(obj_ids); got {masks.shape} and {len(obj_ids)}"
        )
    if len(masks) == 0:
        return []
    rles = mask_util.encode(np.asfortranarray(np.transpose(masks, (1, 2, 0)).astype(np.uint8)))
    boxes = mask_util.toBbox(rles)
    areas = masks.reshape(len(masks), -1).sum(axis=1)
    anns = []
    for k, (rle, box, area, cid) in enumerate(zip(rles, boxes, areas, obj_ids, strict=True)):
        crowd = int(area < min_visible_px or area == 0)
        anns.append(
            {
                "id": int(ann_id_start + k),
                "image_id": int(image_id),
                "category_id": int(cid),
                "segmentation": {
                    "size": [int(v) for v in rle["size"]],
                    "counts": rle["counts"].decode("ascii"),
                },
                "area": int(area),
                "bbox": [float(v) for v in box],
                "iscrowd": crowd,
                "ignore": crowd,
            }
        )
    return anns


def image_id_of(frame_id: str) -> int | None:
    """Return ``scene * 1_000_000 + frame`` for a numeric ``"scene/frame"`` id, else None."""
    parts = frame_id.split("/")
    if len(parts) == 2 and all(p.isdigit() for p in parts) and int(parts[1]) < 1_000_000:
        return int(parts[0]) * 1_000_000 + int(parts[1])
    return None


def assign_image_ids(frames: Sequence[Frame]) -> list[int]:
    """Return the COCO image id of each frame (see the module docstring for the rule)."""
    ids = [image_id_of(f.frame_id) for f in frames]
    if any(i is None or i <= 0 or i >= 2**31 for i in ids) or len(set(ids)) != len(ids):
        return list(range(1, len(frames) + 1))
    return [int(i) for i in ids]  # type: ignore[arg-type]


def frames_to_coco(
    frames: Sequence[Frame],
    image_root: str | Path | None = None,
    min_visible_px: int = DEFAULT_MIN_VISIBLE_PX,
    description: str = "twingap ground truth",
    categories: dict[int, str] | None = None,
) -> dict[str, Any]:
    """Build a COCO ground-truth dict (instances, RLE masks) from frames.

    Args:
        frames: Annotated frames (visible masks (N, H, W) bool, object ids).
        image_root: If given, ``file_name`` is the colour path relative to it (POSIX); otherwise
            the path as stored in the frame.
        min_visible_px: Tiny-instance threshold in visible pixels; below it an instance is
            ``iscrowd``/ignored (default 100).
        description: Stored in ``info.description``.
        categories: Category id -> name, normally the model library's; every id listed becomes a
            COCO category. None: only the ids present, named ``obj_XXXXXX``.

    Returns:
        A dict with ``info``, ``images``, ``annotations`` and ``categories`` (those of
        ``categories`` plus ``obj_XXXXXX`` for any other object id present), loadable by
        pycocotools ``COCO``. Deterministic for the same frames.
    """
    images, annotations = [], []
    next_ann = 1
    for f, image_id in zip(frames, assign_image_ids(frames), strict=True):
        path = Path(f.rgb_path)
        if image_root is not None:
            try:
                file_name = path.resolve().relative_to(Path(image_root).resolve()).as_posix()
            except ValueError:
                file_name = path.as_posix()
        else:
            file_name = path.as_posix()
        images.append(
            {
                "id": image_id,
                "file_name": file_name,
                "width": int(f.width),
                "height": int(f.height),
                "frame_id": f.frame_id,
                "scene_id": f.scene_id,
            }
        )
        anns = instances_to_coco(f.masks, f.obj_ids, image_id, next_ann, min_visible_px=min_visible_px)
        annotations.extend(anns)
        next_ann += len(anns)
    return {
        "info": {"description": description, "min_visible_px": int(min_visible_px)},
        "images": images,
        "annotations": annotations,
        "categories": coco_categories(categories, sorted({int(a["category_id"]) for a in annotations})),
    }


# ---------------------------------------------------------------------------------------------
# Results (predictions) IO
# ---------------------------------------------------------------------------------------------


def detections_to_coco(
    image_id: int,
    labels: Sequence[int] | np.ndarray,
    scores: Sequence[float] | np.ndarray,
    boxes_xyxy: np.ndarray | None = None,
    masks: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """Convert one image's detections to COCO results entries.

    Args:
        image_id: COCO image id.
        labels: (D,) category ids (object ids).
        scores: (D,) confidences.
        boxes_xyxy: (D, 4) boxes ``[x1, y1, x2, y2]`` in pixels (converted to ``[x, y, w, h]``);
            if None, boxes are taken from the masks.
        masks: (D, H, W) bool masks (already thresholded); adds ``segmentation`` RLEs.

    Returns:
        D dicts with ``image_id``, ``category_id``, ``score``, ``bbox`` and optionally ``segmentation``.
    """
    from pycocotools import mask as mask_util

    labels = np.asarray(labels, dtype=np.int64).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    out = []
    rles = None
    if masks is not None and len(labels):
        m = np.asarray(masks, dtype=bool)
        rles = mask_util.encode(np.asfortranarray(np.transpose(m, (1, 2, 0)).astype(np.uint8)))
    for k in range(len(labels)):
        if boxes_xyxy is not None:
            x1, y1, x2, y2 = (float(v) for v in np.asarray(boxes_xyxy[k], dtype=np.float64))
            bbox = [x1, y1, x2 - x1, y2 - y1]
        elif rles is not None:
            bbox = [float(v) for v in mask_util.toBbox(rles[k])]
        else:
            raise ValueError("need boxes_xyxy or masks")
        det: dict[str, Any] = {
            "image_id": int(image_id),
            "category_id": int(labels[k]),
            "score": float(scores[k]),
            "bbox": bbox,
        }
        if rles is not None:
            det["segmentation"] = {
                "size": [int(v) for v in rles[k]["size"]],
                "counts": rles[k]["counts"].decode(),
            }
        out.append(det)
    return out


def validate_gt(gt: Any, path: str | Path | None = None) -> dict[str, Any]:
    """Check that ``gt`` is a COCO ground-truth dict; return it.

    Raises:
        TwingapError: If keys are missing or ids are inconsistent.
    """
    if not isinstance(gt, dict):
        raise TwingapError("COCO ground truth must be a JSON object", path)
    for key in ("images", "annotations", "categories"):
        if not isinstance(gt.get(key), list):
            raise TwingapError(f"COCO ground truth has no '{key}' list", path)
    if not gt["images"]:
        raise TwingapError("COCO ground truth has no images", path)
    try:
        image_ids = {int(im["id"]) for im in gt["images"]}
        cat_ids = {int(c["id"]) for c in gt["categories"]}
        for a in gt["annotations"]:
            if int(a["image_id"]) not in image_ids:
                raise TwingapError(f"annotation {a.get('id')} names unknown image id {a['image_id']}", path)
            if int(a["category_id"]) not in cat_ids:
                raise TwingapError(
                    f"annotation {a.get('id')} names unknown category id {a['category_id']}", path
                )
    except (KeyError, TypeError, ValueError) as exc:
        raise TwingapError(f"malformed COCO ground truth ({exc!r})", path) from exc
    return gt


def validate_predictions(
    preds: Any,
    gt: dict[str, Any],
    path: str | Path | None = None,
    iou_types: Sequence[str] = ("bbox",),
    allow_empty: bool = False,
) -> list[dict[str, Any]]:
    """Check COCO results against a ground truth; return them as a list.

    Accepts a list of detections or a dict with an ``annotations`` list. Every detection needs
    ``image_id``, ``category_id``, a finite ``score``, a 4-number ``bbox`` (for ``"bbox"``) and
    an RLE ``segmentation`` whose size matches its image (for ``"segm"``).

    Raises:
        TwingapError: On an empty (unless ``allow_empty``) or malformed file, or detections naming
            image or category ids that the ground truth does not have.
    """
    if isinstance(preds, dict) and isinstance(preds.get("annotations"), list):
        preds = preds["annotations"]
    if not isinstance(preds, list):
        raise TwingapError("predictions must be a JSON list of COCO detections", path)
    if not preds and not allow_empty:
        raise TwingapError("predictions file has no detections", path)
    images = {int(im["id"]): im for im in gt["images"]}
    cat_ids = {int(c["id"]) for c in gt["categories"]}
    bad_images: set[Any] = set()
    bad_cats: set[Any] = set()
    for k, d in enumerate(preds):
        if not isinstance(d, dict):
            raise TwingapError(f"detection {k} is not an object", path)
        try:
            image_id, cat_id, score = d["image_id"], d["category_id"], float(d["score"])
        except (KeyError, TypeError, ValueError) as exc:
            raise TwingapError(
                f"detection {k} needs image_id, category_id and a numeric score ({exc!r})", path
            ) from exc
        if not math.isfinite(score):
            raise TwingapError(f"detection {k} has a non-finite score", path)
        if not isinstance(image_id, int) or image_id not in images:
            bad_images.add(image_id)
            continue
        if not isinstance(cat_id, int) or cat_id not in cat_ids:
            bad_cats.add(cat_id)
            continue
        if "bbox" in iou_types:
            box = d.get("bbox")
            if (
                not isinstance(box, list)
                or len(box) != 4
                or not all(isinstance(v, int | float) and math.isfinite(v) for v in box)
            ):
                raise TwingapError(f"detection {k} needs a bbox [x, y, w, h] of 4 finite numbers", path)
        if "segm" in iou_types:
            seg = d.get("segmentation")
            if not isinstance(seg, dict) or "counts" not in seg or "size" not in seg:
                raise TwingapError(f"detection {k} needs an RLE segmentation {{size, counts}}", path)
            im = images[image_id]
            if list(seg["size"]) != [im["height"], im["width"]]:
                raise TwingapError(
                    f"detection {k}: mask size {seg['size']} differs from image {image_id} "
                    f"({im['height']}x{im['width']})",
                    path,
                )
    if bad_images:
        shown = sorted(map(str, bad_images))[:5]
        raise TwingapError(f"predictions name image ids not in the ground truth: {', '.join(shown)}", path)
    if bad_cats:
        shown = sorted(map(str, bad_cats))[:5]
        raise TwingapError(f"predictions name category ids not in the ground truth: {', '.join(shown)}", path)
    return preds


def gt_content_hash(path: str | Path) -> str:
    """Hex SHA-256 of a COCO ground truth's content, independent of where its images lie.

    Images count by id, size, frame / scene ids and file *name*; their absolute paths, which
    differ between two checkouts or machines of the same data, do not. Annotations, categories
    and ``info`` count in full (keys sorted).
    """
    import posixpath

    from twingap.io import dumps_json, read_json, sha256_bytes

    gt = read_json(path)
    images = []
    for im in gt.get("images", []):
        im = dict(im)
        if "file_name" in im:
            im["file_name"] = posixpath.basename(str(im["file_name"]).replace("\\", "/"))
        images.append(im)
    return sha256_bytes(dumps_json({**gt, "images": images}, indent=None).encode())


def load_gt(path: str | Path) -> dict[str, Any]:
    """Read and validate a COCO ground-truth JSON file."""
    from twingap.io import read_json

    return validate_gt(read_json(path), path)


def load_predictions(
    path: str | Path, gt: dict[str, Any], iou_types: Sequence[str] = ("bbox",), allow_empty: bool = False
) -> list[dict[str, Any]]:
    """Read and validate a COCO results JSON file against ``gt`` (see :func:`validate_predictions`)."""
    from twingap.io import read_json

    path = Path(path)
    if path.is_file() and path.stat().st_size == 0:
        raise TwingapError("predictions file is empty", path)
    return validate_predictions(read_json(path), gt, path, iou_types=iou_types, allow_empty=allow_empty)


__all__ = [
    "DEFAULT_MIN_VISIBLE_PX",
    "assign_image_ids",
    "category_name",
    "coco_categories",
    "detections_to_coco",
    "frames_to_coco",
    "image_id_of",
    "instances_to_coco",
    "load_gt",
    "load_predictions",
    "mask_to_rle",
    "rle_to_mask",
    "validate_gt",
    "validate_predictions",
]
