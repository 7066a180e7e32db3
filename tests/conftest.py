"""Shared fixtures: the shipped sample and small writable copies of it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE_FRAMES = REPO / "data" / "sample" / "ycbv_real_frames"


@pytest.fixture(scope="session")
def ycbv_root() -> Path:
    """The 60 real YCB-Video frames shipped in ``data/sample`` (read-only: do not modify)."""
    assert SAMPLE_FRAMES.is_dir(), SAMPLE_FRAMES
    return SAMPLE_FRAMES


def copy_ycbv_frames(dst: Path, frames: dict[str, list[str]]) -> Path:
    """Copy selected sample frames ``{video: [frame, ...]}`` into ``dst`` (YCB-Video layout)."""
    for video, names in frames.items():
        (dst / video).mkdir(parents=True, exist_ok=True)
        for name in names:
            for suffix in ("color.png", "depth.png", "label.png", "meta.mat", "box.txt"):
                shutil.copy2(SAMPLE_FRAMES / video / f"{name}-{suffix}", dst / video / f"{name}-{suffix}")
    return dst


@pytest.fixture
def small_ycbv(tmp_path: Path) -> Path:
    """A writable YCB-Video root with 2 frames of video 0000 and 1 of video 0001."""
    return copy_ycbv_frames(tmp_path / "ycbv", {"0000": ["000001", "000002"], "0001": ["000001"]})


def make_predictions(gt: dict, seed: int = 0, drop: float = 0.15, noise: float = 8.0, fp_rate: float = 0.3):
    """Imperfect COCO detections derived from a ground truth (continuous scores, no ties).

    Each GT instance is kept with probability 1 - drop, its box jittered by ``noise`` px (the mask
    is the jittered rectangle), sometimes with a wrong class; false positives are added.
    """
    import numpy as np
    from pycocotools import mask as mask_util

    rng = np.random.default_rng(seed)
    sizes = {im["id"]: (im["height"], im["width"]) for im in gt["images"]}
    cats = [c["id"] for c in gt["categories"]]
    preds = []

    def rect(image_id, box):
        h, w = sizes[image_id]
        m = np.zeros((h, w), np.uint8)
        x, y, bw, bh = (round(v) for v in box)
        m[max(y, 0) : max(y + bh, 0), max(x, 0) : max(x + bw, 0)] = 1
        rle = mask_util.encode(np.asfortranarray(m))
        return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode()}

    for a in gt["annotations"]:
        if rng.random() < drop:
            continue
        x, y, w, h = a["bbox"]
        s = rng.normal(0, noise, 4)
        box = [x + s[0], y + s[1], max(1.0, w + s[2]), max(1.0, h + s[3])]
        cat = a["category_id"] if rng.random() > 0.1 else int(rng.choice(cats))
        preds.append(
            {
                "image_id": a["image_id"],
                "category_id": int(cat),
                "score": float(rng.random()),
                "bbox": [float(v) for v in box],
                "segmentation": rect(a["image_id"], box),
            }
        )
        if rng.random() < fp_rate:
            box = [float(rng.integers(0, 500)), float(rng.integers(0, 400)), 50.0, 60.0]
            preds.append(
                {
                    "image_id": a["image_id"],
                    "category_id": int(rng.choice(cats)),
                    "score": float(rng.random()),
                    "bbox": box,
                    "segmentation": rect(a["image_id"], box),
                }
            )
    return preds


@pytest.fixture(scope="session")
def sample_gt(ycbv_root) -> dict:
    """COCO ground truth of the 60 sample frames (in memory)."""
    from twingap.data.coco import frames_to_coco
    from twingap.data.ycbv import load_ycbv

    return frames_to_coco(load_ycbv(ycbv_root, load_depth=False), image_root=ycbv_root)


@pytest.fixture(scope="session")
def fake_predictions():
    """The :func:`make_predictions` helper, as a fixture."""
    return make_predictions
