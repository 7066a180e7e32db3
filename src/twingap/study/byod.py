"""A study on the user's own data: COCO test sets, and category names that come from the data.

Category ids and names flow from the model library (:meth:`twingap.assets.asset.ModelLibrary.categories`)
and the test sets' annotations into the run folder's manifests (``scenes/manifest.json`` and
``testsets/<name>/manifest.json`` hold ``category_names``); the report reads them back with
:func:`category_names`, so no object table is built into the code.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twingap.errors import TwingapError
from twingap.io import read_json, write_json_atomic

if TYPE_CHECKING:
    from twingap.study.config import StudyConfig, TestSetConfig


def check_coco_test_set(cfg: StudyConfig, ts: TestSetConfig, source: str | Path | None = None) -> None:
    """Validate a ``kind = "coco"`` test set before any job runs: keys, image files, category matching.

    Raises:
        TwingapError: If ``annotations`` is missing or not a file, ``videos`` is given, ``match``
            is unknown, ``category_map`` is not a table of names, an image file is missing, or a
            category with annotations has no model in ``models_root``.
    """
    from twingap.assets.asset import ModelLibrary
    from twingap.data.coco_real import MATCH_MODES, coco_images, match_categories, read_coco_file

    if not ts.annotations:
        raise TwingapError(f"test set {ts.name!r}: a coco test set needs annotations = <COCO file>", source)
    if not Path(ts.annotations).is_file():
        raise TwingapError(f"test set {ts.name!r}: COCO file not found: {ts.annotations}", source)
    if ts.videos:
        raise TwingapError(f"test set {ts.name!r}: videos does not apply to a coco test set", source)
    if ts.match not in MATCH_MODES:
        raise TwingapError(f"test set {ts.name!r}: match must be one of {MATCH_MODES}", source)
    if not isinstance(ts.category_map, dict) or not all(
        isinstance(v, str | int) and not isinstance(v, bool) for v in ts.category_map.values()
    ):
        raise TwingapError(
            f"test set {ts.name!r}: category_map must map category names to model names (or ids)", source
        )
    coco_images(ts.annotations, cfg.test_set_root(ts))
    data = read_coco_file(ts.annotations)
    counts: dict[int, int] = {}
    for a in data["annotations"]:
        counts[int(a["category_id"])] = counts.get(int(a["category_id"]), 0) + 1
    models = ModelLibrary(cfg.models_root_path()).categories()
    recs = match_categories(data["categories"], models, ts.category_map, ts.match, counts, ts.annotations)
    by_id = [f"{r['name']!r} (id {r['id']}) -> {r['model']}" for r in recs if r["how"] == "id"]
    if by_id:
        print(
            f"note: {ts.annotations}: categories matched to models by id: {', '.join(by_id)} "
            '(set category_map, or match = "name", if that is wrong)',
            file=sys.stderr,
        )


def prepare_coco_test_set(
    cfg: StudyConfig, ts: TestSetConfig, out_dir: Path, models: dict[int, str]
) -> dict[str, Any]:
    """Write ``gt.json`` (category ids = model ids) and ``frames.json`` of a COCO test set.

    Returns:
        The test set's manifest entries: ``n_images``, ``n_instances``, ``categories`` (model ids
        with scorable instances), ``category_names``, ``matching`` (how each test category found
        its model) and ``not_scored`` (categories with annotations that no model scores).
    """
    from twingap.data.coco_real import load_coco_test_set

    cts = load_coco_test_set(
        ts.annotations,
        cfg.test_set_root(ts),
        models,
        category_map=ts.category_map,
        match=ts.match,
        max_images=ts.max_frames,
        description=f"twingap study test set {ts.name}",
    )
    write_json_atomic(out_dir / "gt.json", cts.gt, indent=None)
    images = {int(im["id"]): im for im in cts.gt["images"]}
    write_json_atomic(
        out_dir / "frames.json",
        [
            {"image_id": i, "frame_id": p.name, "scene_id": _scene_of(images[i], i), "rgb_path": str(p)}
            for i, p in cts.items
        ],
    )
    anns = [a for a in cts.gt["annotations"] if not a.get("iscrowd", 0)]
    cats = sorted({int(a["category_id"]) for a in anns})
    return {
        "n_images": len(cts.items),
        "n_instances": len(anns),
        "categories": cats,
        "category_names": {str(c): models[c] for c in cats},
        "matching": cts.matching,
        "not_scored": [f"{r['name']} (id {r['id']})" for r in cts.not_scored],
    }


def _scene_of(image: dict[str, Any], image_id: int) -> str:
    """The sampling unit of a COCO image: its ``video_id`` / ``scene_id`` if the file gives one, else itself.

    Photos of one video or scene are near-copies; the study's intervals resample scenes, not frames.
    """
    for key in ("video_id", "scene_id"):
        if image.get(key) is not None:
            return f"{key}-{image[key]}"
    return f"image-{image_id}"


def category_names(run_dir: str | Path) -> dict[int, str]:
    """Category id -> name of a study run, from its manifests (the model library and test sets).

    Ids without a recorded name (e.g. a run made by the fake stages) are named ``obj_XXXXXX`` by
    :func:`name_of`.
    """
    run_dir = Path(run_dir)
    names: dict[int, str] = {}
    paths = [run_dir / "scenes" / "manifest.json", *sorted(run_dir.glob("testsets/*/manifest.json"))]
    for p in paths:
        if p.is_file():
            try:
                recorded = read_json(p).get("category_names", {})
            except TwingapError:
                continue
            for k, v in recorded.items():
                names.setdefault(int(k), str(v))
    return names


def name_of(cid: int, names: dict[int, str]) -> str:
    """The name of a category id (``obj_XXXXXX`` when none is recorded)."""
    from twingap.data.coco import category_name

    return category_name(cid, names)


def not_scored(run_dir: str | Path, test_set: str) -> list[str]:
    """Categories of a test set that are not scored: never trained, or without a model.

    Returns:
        ``"<id> <name> (never trained)"`` for annotated categories absent from the training scenes,
        then the test set's own ``not_scored`` entries (categories mapped to no model).
    """
    run_dir = Path(run_dir)
    scenes_man = run_dir / "scenes" / "manifest.json"
    ts_man = run_dir / "testsets" / test_set / "manifest.json"
    if not scenes_man.is_file() or not ts_man.is_file():
        return []
    trained = set(read_json(scenes_man).get("categories", []))
    tman = read_json(ts_man)
    names = category_names(run_dir)
    untrained = sorted(set(tman.get("categories", [])) - trained)
    out = [f"{c} {name_of(c, names)} (never trained)" for c in untrained]
    out += [f"{s} (no model)" for s in tman.get("not_scored", [])]
    return out
