"""Predictions of a trained run on images or frames, as COCO results.

Image ids: pass ``(image_id, source)`` pairs to use the ground truth's own ids. Given a list of
frames, the ids follow :func:`twingap.data.coco.assign_image_ids` (``scene * 1_000_000 +
frame`` for numeric ``"scene/frame"`` ids, else position + 1), the rule of
:func:`twingap.data.coco.frames_to_coco`; given paths or arrays, position + 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from twingap.data.frame import Frame
from twingap.errors import TwingapError
from twingap.train.data import resize_rgb
from twingap.train.engine import _progress, read_run, resolve_device
from twingap.train.model import build_model

Source = Frame | str | Path | np.ndarray


def load_model(run_dir: str | Path, device: str | None = None):
    """Load a finished run's model in eval mode.

    Returns:
        (model, config, label map model label -> category id, torch device).
    """
    cfg, _, label_map = read_run(run_dir)
    dev = resolve_device(device or cfg.device)
    model = build_model(cfg.replace(weights="none"), len(label_map) + 1)
    state = torch.load(Path(run_dir) / "model_final.pt", map_location="cpu", weights_only=False)
    model.load_state_dict(state["model"])
    model.to(dev).eval()
    return model, cfg, label_map, dev


def _rgb(src: Source) -> np.ndarray:
    if isinstance(src, Frame):
        return src.load_rgb()
    if isinstance(src, np.ndarray):
        if src.ndim != 3 or src.shape[2] != 3 or src.dtype != np.uint8:
            raise TwingapError(f"expected an (H, W, 3) uint8 image, got {src.shape} {src.dtype}")
        return src
    from twingap.data.images import read_rgb

    return read_rgb(src)


def predict(
    run_dir: str | Path,
    images: Sequence[Source] | Sequence[tuple[int, Source]],
    device: str | None = None,
    score_threshold: float = 0.05,
    batch_size: int = 4,
    progress: bool = False,
    box_from_mask: bool | None = None,
) -> list[dict[str, Any]]:
    """Run a trained model on images and return COCO results.

    Args:
        run_dir: A finished run folder (see :func:`twingap.train.engine.train`).
        images: Frames, image paths or (H, W, 3) uint8 RGB arrays; or ``(image_id, source)``
            pairs. Without explicit ids: frames get ``assign_image_ids(frames)``, other
            sources list position + 1.
        device: ``"cpu"``, ``"cuda"`` or None (the run's setting, ``auto`` by default).
        score_threshold: Detections scoring lower are dropped.
        batch_size: Images per forward pass.
        progress: Show a progress bar.
        box_from_mask: Report each box as the tight box of its thresholded mask (as the ground
            truth boxes are made), keeping the regressed box where the mask is empty; None uses
            the run config's ``box_from_mask``.

    Returns:
        COCO results, one dict per detection: ``image_id``, ``category_id`` (the training set's category id),
        ``bbox`` [x, y, w, h] in original-image pixels (regressed, or from the mask), ``score``,
        ``segmentation`` (RLE with a str ``counts``) of the mask thresholded at 0.5.
        Sorted by image then score.
    """
    from pycocotools import mask as mask_utils

    model, cfg, label_map, dev = load_model(run_dir, device)
    if box_from_mask is None:
        box_from_mask = cfg.box_from_mask
    items: list[tuple[int, Source]] = []
    default_ids = list(range(1, len(images) + 1))
    if images and all(isinstance(x, Frame) for x in images):
        from twingap.data.coco import assign_image_ids

        default_ids = assign_image_ids(images)  # type: ignore[arg-type]
    for i, item in enumerate(images):
        if isinstance(item, tuple) and len(item) == 2 and not isinstance(item, np.ndarray):
            items.append((int(item[0]), item[1]))
        else:
            items.append((default_ids[i], item))  # type: ignore[arg-type]
    results: list[dict[str, Any]] = []
    w_in, h_in = cfg.image_size
    with torch.no_grad(), _progress(progress, len(items), "predicting") as advance:
        for b0 in range(0, len(items), batch_size):
            chunk = items[b0 : b0 + batch_size]
            rgbs = [_rgb(src) for _, src in chunk]
            x = [
                torch.from_numpy(np.array(resize_rgb(r, cfg.image_size)))
                .permute(2, 0, 1)
                .float()
                .div(255)
                .to(dev)
                for r in rgbs
            ]
            outs = model(x)
            for (image_id, _), rgb, out in zip(chunk, rgbs, outs, strict=True):
                h, w = rgb.shape[:2]
                keep = out["scores"] >= score_threshold
                boxes = out["boxes"][keep].cpu().double().numpy()
                scores = out["scores"][keep].cpu().numpy()
                labels = out["labels"][keep].cpu().numpy()
                probs = out["masks"][keep]
                if len(probs) and (h, w) != (h_in, w_in):
                    probs = torch.nn.functional.interpolate(
                        probs, size=(h, w), mode="bilinear", align_corners=False
                    )
                masks = (probs[:, 0] > 0.5).cpu().numpy() if len(probs) else np.zeros((0, h, w), bool)
                sx, sy = w / w_in, h / h_in
                order = np.argsort(-scores, kind="stable")
                for k in order:
                    x1, y1, x2, y2 = boxes[k]
                    rle = mask_utils.encode(np.asfortranarray(masks[k].astype(np.uint8)))
                    bbox = [x1 * sx, y1 * sy, (x2 - x1) * sx, (y2 - y1) * sy]
                    if box_from_mask and masks[k].any():
                        bbox = [float(v) for v in mask_utils.toBbox(rle)]
                    rle["counts"] = rle["counts"].decode("ascii")
                    results.append(
                        {
                            "image_id": int(image_id),
                            "category_id": int(label_map[int(labels[k])]),
                            "bbox": [round(float(v), 2) for v in bbox],
                            "score": round(float(scores[k]), 5),
                            "segmentation": rle,
                        }
                    )
            advance(len(chunk))
    return results
