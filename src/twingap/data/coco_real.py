"""Real test sets as COCO files: plain photos with instance annotations, no poses needed.

A COCO test set is an images folder (``root``) and a COCO instances file (``annotations``):

* ``images``: ``id``, ``file_name`` (relative to ``root``; a bare file name is also looked up
  there), ``width``, ``height``;
* ``annotations``: ``image_id``, ``category_id``, ``segmentation`` as polygons, uncompressed or
  compressed RLE, optional ``iscrowd``;
* ``categories``: ``id``, ``name``.

:func:`load_coco_test_set` turns it into the ground truth the study scores against, with the
same rules as :func:`twingap.data.coco.frames_to_coco`: every mask becomes compressed RLE, ``bbox``
and ``area`` are recomputed from the mask (boxes from visible masks, the rule the detector's boxes
follow), and an instance with fewer than ``min_visible_px`` pixels is ``iscrowd``/ignored. So a
COCO export of BOP or YCB-Video frames gives exactly the ground truth of those frames.

Categories are matched to the model library's (:func:`match_categories`): through an explicit
``category_map`` first, then by name, then by id. A category that has annotations but no model is
an error unless the map sends it to ``""`` (then it is listed as not scored).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from twingap.errors import TwingapError

#: How test-set categories find their model: ``auto`` (map, then name, else id), ``name``, ``id``.
MATCH_MODES = ("auto", "name", "id")


@dataclass
class CocoTestSet:
    """A COCO test set read against a model library.

    Attributes:
        gt: COCO ground truth with ``category_id`` = model ids, RLE masks, boxes from masks;
            ``images[*].file_name`` is the absolute image path.
        items: ``(image_id, image path)`` per image, in image-id order.
        matching: One record per test-set category: ``id``, ``name``, ``model_id`` (or None),
            ``model`` (or None), ``how`` (``map``, ``name``, ``id``, ``unscored``, ``unused``),
            ``n_annotations``.
        not_scored: The records of categories with annotations that no model scores.
    """

    gt: dict[str, Any]
    items: list[tuple[int, Path]]
    matching: list[dict[str, Any]] = field(default_factory=list)
    not_scored: list[dict[str, Any]] = field(default_factory=list)


def read_coco_file(path: str | Path) -> dict[str, Any]:
    """Read a COCO instances file and check its shape (images, annotations, categories).

    Raises:
        TwingapError: On a missing file, bad JSON, missing lists or keys, or duplicate ids.
    """
    from twingap.io import read_json

    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict):
        raise TwingapError("a COCO file must be a JSON object", path)
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise TwingapError(f"COCO file has no '{key}' list", path)
    if not data["images"]:
        raise TwingapError("COCO file has no images", path)
    try:
        image_ids = [int(im["id"]) for im in data["images"]]
        for im in data["images"]:
            str(im["file_name"]), int(im["width"]), int(im["height"])
        cat_ids = [int(c["id"]) for c in data["categories"]]
        for c in data["categories"]:
            str(c["name"])
        for a in data["annotations"]:
            int(a["image_id"]), int(a["category_id"])
    except (KeyError, TypeError, ValueError) as exc:
        raise TwingapError(f"malformed COCO entry ({exc!r} missing or wrong)", path) from exc
    if len(set(image_ids)) != len(image_ids):
        raise TwingapError("two images share an id", path)
    if len(set(cat_ids)) != len(cat_ids):
        raise TwingapError("two categories share an id", path)
    known_images, known_cats = set(image_ids), set(cat_ids)
    for a in data["annotations"]:
        if int(a["image_id"]) not in known_images:
            raise TwingapError(f"annotation {a.get('id')} names unknown image id {a['image_id']}", path)
        if int(a["category_id"]) not in known_cats:
            raise TwingapError(f"annotation {a.get('id')} names unknown category id {a['category_id']}", path)
    return data


def find_image(image_root: Path, file_name: str, image_id: int, coco_path: Path) -> Path:
    """The image file of a COCO image record: ``image_root/file_name``, else ``image_root/<basename>``.

    Raises:
        TwingapError: If neither exists (naming the COCO file, the image id and where it looked).
    """
    p = Path(file_name)
    candidates = [p] if p.is_absolute() else [image_root / p, image_root / p.name]
    for c in candidates:
        if c.is_file():
            return c
    raise TwingapError(f"image {image_id}: file {file_name!r} not found under {image_root}", coco_path)


def coco_images(coco_path: str | Path, image_root: str | Path | None = None) -> list[tuple[int, Path]]:
    """``(image_id, path)`` of every image of a COCO file, in id order (images next to the file by default).

    Raises:
        TwingapError: On a malformed file or a missing image.
    """
    coco_path = Path(coco_path)
    data = read_coco_file(coco_path)
    root = Path(image_root) if image_root is not None else coco_path.parent
    out = [
        (int(im["id"]), find_image(root, str(im["file_name"]), int(im["id"]), coco_path))
        for im in data["images"]
    ]
    return sorted(out)


def _resolve_model(target: Any, models: Mapping[int, str]) -> int | None:
    """Model id of a ``category_map`` value: a model name, or a model id (int or digit string)."""
    by_name = {n: i for i, n in models.items()}
    if isinstance(target, str) and target in by_name:
        return by_name[target]
    if isinstance(target, int) and not isinstance(target, bool) and target in models:
        return int(target)
    if isinstance(target, str) and target.strip().isdigit() and int(target) in models:
        return int(target)
    return None


def match_categories(
    categories: Sequence[Mapping[str, Any]],
    models: Mapping[int, str],
    category_map: Mapping[str, Any] | None = None,
    match: str = "auto",
    counts: Mapping[int, int] | None = None,
    source: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Match a test set's categories to the model library's.

    Args:
        categories: The COCO ``categories`` (``id``, ``name``).
        models: Model id -> model name (:meth:`twingap.assets.asset.ModelLibrary.categories`).
        category_map: Test category name (or id, as a string) -> model name or id; ``""`` leaves
            the category unscored. Applied first.
        match: ``auto`` (map, then same name; same id only when no annotated category's name is a
            model's, so a file named in another vocabulary is not matched by coincident ids),
            ``name`` or ``id``.
        counts: Annotations per test category id (categories without any may stay unmatched).
        source: The file named in errors.

    Returns:
        One record per category (see :class:`CocoTestSet` ``matching``), in category-id order.

    Raises:
        TwingapError: If a map entry names an unknown category or model, ``match`` is unknown, or a
            category with annotations has no model (the message says how to map it).
    """
    if match not in MATCH_MODES:
        raise TwingapError(f"match must be one of {MATCH_MODES}, got {match!r}", source)
    cmap = {str(k): v for k, v in (category_map or {}).items()}
    counts = counts or {}
    names = {str(c["name"]) for c in categories} | {str(c["id"]) for c in categories}
    unknown = sorted(set(cmap) - names)
    if unknown:
        raise TwingapError(f"category_map names categories not in the test set: {unknown}", source)
    by_name = {n: i for i, n in models.items()}
    # auto: ids are trusted only for a file whose names say nothing (no annotated name is a model's)
    if match == "auto" and any(str(c["name"]) in by_name for c in categories if counts.get(int(c["id"]))):
        match = "name"
    out = []
    for c in sorted(categories, key=lambda c: int(c["id"])):
        cid, cname = int(c["id"]), str(c["name"])
        n = int(counts.get(cid, 0))
        rec: dict[str, Any] = {"id": cid, "name": cname, "model_id": None, "model": None, "n_annotations": n}
        key = cname if cname in cmap else (str(cid) if str(cid) in cmap else None)
        if key is not None:
            target = cmap[key]
            if target == "":
                rec["how"] = "unscored"
                out.append(rec)
                continue
            mid = _resolve_model(target, models)
            if mid is None:
                raise TwingapError(
                    f"category_map sends {key!r} to {target!r}, which is no model "
                    f"(have: {', '.join(f'{i} {m}' for i, m in sorted(models.items()))})",
                    source,
                )
            rec.update(model_id=mid, model=models[mid], how="map")
        elif match in ("auto", "name") and cname in by_name:
            rec.update(model_id=by_name[cname], model=cname, how="name")
        elif match in ("auto", "id") and cid in models:
            rec.update(model_id=cid, model=models[cid], how="id")
        elif n == 0:
            rec["how"] = "unused"
        else:
            raise TwingapError(
                f"category {cname!r} (id {cid}, {n} annotations) has no model in the library "
                f"(models: {', '.join(f'{i} {m}' for i, m in sorted(models.items()))}); map it with "
                f'category_map = {{ "{cname}" = "<model name>" }}, or "" to leave it unscored',
                source,
            )
        out.append(rec)
    return out


def _segmentation_rle(seg: Any, h: int, w: int, where: str, path: Path) -> dict[str, Any]:
    """Compressed RLE (bytes counts) of a COCO segmentation: polygons, or (un)compressed RLE."""
    from pycocotools import mask as mask_util

    if isinstance(seg, list):
        polys = [p for p in seg if isinstance(p, list) and len(p) >= 6]
        if not polys:
            raise TwingapError(f"{where}: segmentation has no polygon of 3 or more points", path)
        return mask_util.merge(mask_util.frPyObjects(polys, h, w))
    if isinstance(seg, dict) and "counts" in seg and "size" in seg:
        size = [int(v) for v in seg["size"]]
        if size != [h, w]:
            raise TwingapError(f"{where}: mask is {size[1]}x{size[0]}, its image is {w}x{h}", path)
        if isinstance(seg["counts"], list):
            return mask_util.frPyObjects(seg, h, w)
        counts = seg["counts"]
        return {"size": size, "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    raise TwingapError(f"{where}: needs a segmentation (polygons or RLE {{size, counts}})", path)


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size
    except Exception as exc:
        raise TwingapError(f"unreadable image ({exc})", path) from exc


def load_coco_test_set(
    annotations: str | Path,
    image_root: str | Path | None,
    models: Mapping[int, str],
    category_map: Mapping[str, Any] | None = None,
    match: str = "auto",
    min_visible_px: int | None = None,
    max_images: int = 0,
    description: str = "twingap COCO test set",
) -> CocoTestSet:
    """Read a COCO test set against a model library (see the module docstring).

    Args:
        annotations: The COCO instances file.
        image_root: The images folder (None: the annotation file's folder).
        models: Model id -> model name of the library the detector is trained on.
        category_map: See :func:`match_categories`.
        match: See :func:`match_categories`.
        min_visible_px: Tiny-instance threshold (default
            :data:`twingap.data.coco.DEFAULT_MIN_VISIBLE_PX`).
        max_images: Keep at most this many images, evenly spaced in id order; 0 = all.
        description: Stored in the ground truth's ``info``.

    Returns:
        The :class:`CocoTestSet`.

    Raises:
        TwingapError: One line naming the file: an image file missing or of another size than its
            record, a mask whose size is not its image's, a category without a model, ...
    """
    from pycocotools import mask as mask_util

    from twingap.data.coco import DEFAULT_MIN_VISIBLE_PX

    path = Path(annotations)
    root = Path(image_root) if image_root else path.parent
    thr = DEFAULT_MIN_VISIBLE_PX if min_visible_px is None else int(min_visible_px)
    data = read_coco_file(path)
    counts: dict[int, int] = {}
    for a in data["annotations"]:
        counts[int(a["category_id"])] = counts.get(int(a["category_id"]), 0) + 1
    matching = match_categories(data["categories"], models, category_map, match, counts, path)
    to_model = {r["id"]: r["model_id"] for r in matching}

    records = sorted(data["images"], key=lambda im: int(im["id"]))
    if max_images and max_images < len(records):
        keep = np.linspace(0, len(records) - 1, max_images).round().astype(int)
        records = [records[i] for i in keep]
    images, items = [], []
    for im in records:
        iid, w, h = int(im["id"]), int(im["width"]), int(im["height"])
        p = find_image(root, str(im["file_name"]), iid, path)
        if _image_size(p) != (w, h):
            fw, fh = _image_size(p)
            raise TwingapError(f"image {iid} is {fw}x{fh} but the COCO file says {w}x{h}", p)
        # video_id / scene_id (when the file has them) group near-identical frames into one sampling unit
        group = {k: im[k] for k in ("video_id", "scene_id") if im.get(k) is not None}
        images.append({"id": iid, "file_name": str(p.resolve()), "width": w, "height": h, **group})
        items.append((iid, p.resolve()))
    sizes = {im["id"]: (im["height"], im["width"]) for im in images}

    anns = []
    for k, a in enumerate(data["annotations"]):
        iid, mid = int(a["image_id"]), to_model[int(a["category_id"])]
        if iid not in sizes or mid is None:
            continue
        h, w = sizes[iid]
        rle = _segmentation_rle(a.get("segmentation"), h, w, f"annotation {a.get('id', k)}", path)
        area = int(mask_util.area(rle))
        crowd = int(bool(a.get("iscrowd", 0)) or area < thr)
        anns.append(
            {
                "id": len(anns) + 1,
                "image_id": iid,
                "category_id": int(mid),
                "segmentation": {"size": [h, w], "counts": rle["counts"].decode("ascii")},
                "area": area,
                "bbox": [float(v) for v in mask_util.toBbox(rle)],
                "iscrowd": crowd,
                "ignore": crowd,
            }
        )
    from twingap.data.coco import coco_categories

    used = sorted({r["model_id"] for r in matching if r["model_id"] is not None})
    gt = {
        "info": {"description": description, "min_visible_px": thr, "source": str(path.resolve())},
        "images": images,
        "annotations": anns,
        "categories": coco_categories({i: models[i] for i in used}),
    }
    not_scored = [r for r in matching if r["model_id"] is None and r["n_annotations"]]
    return CocoTestSet(gt, items, matching, not_scored)
