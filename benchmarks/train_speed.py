"""Training speed: the default recipe against torchvision's default ``maskrcnn_resnet50_fpn``.

Measured in the same process on the same cut-and-paste images (320x240 for both, batch 2):
seconds per SGD step and images/s for
  * torchvision's ``maskrcnn_resnet50_fpn(weights=None, weights_backbone=None)`` trained end to end,
  * the default model (MobileNetV2-FPN lite) trained end to end (no feature cache),
  * the default recipe (body frozen up to stride 8 and cached, later blocks trained), whose
    one-off cache cost is printed apart.
Prints the ratios. Timings on a shared machine are noisy: run it with ``nice`` and read the
ratio, not the absolute numbers.

Usage:
    nice .venv/bin/python benchmarks/train_speed.py --steps 10 --threads 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from twingap.data.loader import load_frames
from twingap.train.config import load_config
from twingap.train.engine import train
from twingap.train.paste import paste_dataset

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample" / "ycbv_real_frames"


def _resnet_step_time(ds_dir: Path, steps: int, batch: int, size: tuple[int, int]) -> float:
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    from twingap.train.data import load_train_set, masks_to_target

    ds = load_train_set(ds_dir, size)
    torch.manual_seed(0)
    model = maskrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, num_classes=ds.num_classes, min_size=size[1], max_size=size[0]
    )
    model.train()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.002, momentum=0.9)
    times = []
    for s in range(steps + 1):
        idx = [(s * batch + j) % len(ds) for j in range(batch)]
        imgs = [torch.from_numpy(ds.images[i]).permute(2, 0, 1).float() / 255 for i in idx]
        tg = []
        for i in idx:
            t = masks_to_target(ds.masks[i], ds.labels[i], 16)
            tg.append({k: torch.from_numpy(v) for k, v in t.items()})
        t0 = time.perf_counter()
        loss = sum(model(imgs, tg).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        if s > 0:  # the first step pays one-off allocation costs
            times.append(time.perf_counter() - t0)
    return sum(times) / len(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--images", type=int, default=40)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="twingap_speed_"))
    frames = load_frames(SAMPLE, load_depth=False)
    paste_dataset(frames, work / "ds", n_images=args.images, seed=0)
    batch, size = 2, (320, 240)

    rn = _resnet_step_time(work / "ds", args.steps, batch, size)

    def run(name: str, **kw) -> tuple[float, float]:
        cfg = load_config(
            "quick", iterations=args.steps, batch_size=batch, threads=args.threads, checkpoint_every=0, **kw
        )
        train(work / "ds", work / name, cfg, progress=False)
        import json

        meta = json.loads((work / name / "meta.json").read_text())
        return meta["seconds_loop"] / args.steps, meta["seconds_cache"]

    e2e, _ = run("e2e", freeze_backbone=False, cache_features=False)
    cached, cache_s = run("cached")
    n_cached = args.images * load_config("quick").aug_variants
    print(
        f"torch threads {args.threads}, batch {batch}, {size[0]}x{size[1]}, {args.steps} steps"
        " (shared machine: timings noisy)"
    )
    print(f"maskrcnn_resnet50_fpn (torchvision default): {rn:.3f} s/it, {batch / rn:.2f} img/s")
    print(f"mobilenet_v2_fpn_lite end to end:            {e2e:.3f} s/it, {batch / e2e:.2f} img/s")
    print(
        f"default recipe (cached to stride 8):         {cached:.3f} s/it, {batch / cached:.2f} img/s"
        f"  + one-off cache {cache_s:.1f} s for {n_cached} image variants"
    )
    print(f"ratio resnet50 / mobilenet end to end: {rn / e2e:.1f}x")
    print(f"ratio resnet50 / default recipe:       {rn / cached:.1f}x")


if __name__ == "__main__":
    main()
