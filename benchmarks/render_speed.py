"""Images/s for writing a synthetic dataset (RGB PNG + masks + depth + COCO/BOP) of sample scenes.

Scenes: the annotated poses of the sample's real YCB-Video frames (640x480, world = camera, one
directional light). Prints, in one run on this machine:

* ``render_dataset`` end to end (model loading, rendering, writing, COCO assembly) with the raster
  backend, for each ``--workers`` value;
* the steady-state loop (render + write per image, assets already loaded) for the raster backend
  (MSAA and single-pass) and, when ``pyrender`` (``pip install twingap[bench]``) is importable, a
  plain pyrender baseline writing the same files (colour+depth render plus a segmentation render);
* ratios against the baseline, on wall clock and on CPU time per image (the machine is shared:
  CPU seconds per image, summed over processes and llvmpipe threads, are steadier than wall time,
  and ``2 / (CPU s per image)`` estimates images/s on two idle cores).

Usage: ``.venv/bin/python benchmarks/render_speed.py [--n 60] [--workers 1 2]``
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def sample_scenes(n: int):
    from twingap.assets.asset import default_sample_root
    from twingap.assets.ycb import class_name
    from twingap.data.ycbv import load_ycbv
    from twingap.render.scene import CameraSpec, LightSpec, ObjectSpec, SceneSpec

    frames = load_ycbv(default_sample_root() / "ycbv_real_frames", load_depth=False)
    scenes = []
    for i in range(n):
        f = frames[i % len(frames)]
        objs = [ObjectSpec(class_name(o), int(o), p) for o, p in zip(f.obj_ids, f.poses, strict=True)]
        scenes.append(
            SceneSpec(
                f"bench/{i:04d}",
                CameraSpec(f.K, f.width, f.height),
                objs,
                lights=[LightSpec(direction=(0.2, 0.4, 1.0), intensity=0.8)],
                ambient=0.35,
                seed=i,
                source_frame=f.frame_id,
            )
        )
    return scenes


class PyrenderBaseline:
    """Plain pyrender: one colour+depth render and one segmentation render per image."""

    def __init__(self, width: int, height: int) -> None:
        os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
        import pyrender

        self.pyrender = pyrender
        self.renderer = pyrender.OffscreenRenderer(width, height)
        self.meshes: dict[int, object] = {}

    def render(self, scene, assets):
        from twingap.render.backend import RenderResult

        pr = self.pyrender
        cam = scene.camera
        s = pr.Scene(ambient_light=[scene.ambient] * 3, bg_color=[0, 0, 0, 0])
        nodes = {}
        for i, obj in enumerate(scene.objects):
            a = assets[obj.model]
            if id(a) not in self.meshes:
                self.meshes[id(a)] = pr.Mesh.from_trimesh(a.to_trimesh())
            node = s.add(self.meshes[id(a)], pose=obj.world_T_obj)
            nodes[node] = (i + 1, 0, 0)
        K = cam.K
        camera = pr.IntrinsicsCamera(K[0, 0], K[1, 1], K[0, 2], K[1, 2], znear=cam.znear, zfar=cam.zfar)
        gl_pose = np.linalg.inv(cam.cam_T_world) @ np.diag([1.0, -1.0, -1.0, 1.0])
        s.add(camera, pose=gl_pose)
        for li in scene.lights:
            d = np.asarray(li.direction, float)
            z = -d / np.linalg.norm(d)
            x = np.cross([0.0, 1.0, 0.0], z)
            x = x / np.linalg.norm(x) if np.linalg.norm(x) > 1e-6 else np.array([1.0, 0, 0])
            pose = np.eye(4)
            pose[:3, :3] = np.stack([x, np.cross(z, x), z], 1)
            s.add(pr.DirectionalLight(color=li.color, intensity=li.intensity * 3.0), pose=pose)
        rgb, depth = self.renderer.render(s)
        seg = self.renderer.render(s, flags=pr.RenderFlags.SEG, seg_node_map=nodes)[0]
        ids = seg[..., 0].astype(np.int32)
        return RenderResult(rgb=np.ascontiguousarray(rgb), depth=depth.astype(np.float32), instance_ids=ids)

    def release(self) -> None:
        self.renderer.delete()


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (llvmpipe threads included)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def loop_rate(renderer, scenes, assets, out_dir: Path) -> tuple[float, float]:
    """(images/s, CPU s/image) of render + write_image (first image excluded as warm-up)."""
    from twingap.render.dataset import write_image

    obj_ids = [[o.obj_id for o in s.objects] for s in scenes]
    res = renderer.render(scenes[0], assets)
    write_image(out_dir, 0, scenes[0], obj_ids[0], res)
    t0, c0 = time.perf_counter(), cpu_seconds()
    for i in range(1, len(scenes)):
        res = renderer.render(scenes[i], assets)
        write_image(out_dir, i, scenes[i], obj_ids[i], res)
    n = len(scenes) - 1
    return n / (time.perf_counter() - t0), (cpu_seconds() - c0) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=60, help="number of scenes (images)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--no-baseline", action="store_true")
    args = ap.parse_args()

    from twingap.assets.asset import ModelLibrary, default_sample_root
    from twingap.render.dataset import render_dataset
    from twingap.render.raster import RasterRenderer

    scenes = sample_scenes(args.n)
    w, h = scenes[0].camera.width, scenes[0].camera.height
    print(f"{len(scenes)} scenes at {w}x{h}, {np.mean([len(s.objects) for s in scenes]):.1f} objects each")
    print(f"cpu cores visible: {len(os.sched_getaffinity(0))}, load average: {os.getloadavg()[0]:.1f}")
    tmp = Path(tempfile.mkdtemp(prefix="twingap_bench_"))
    lib = ModelLibrary(default_sample_root() / "models")
    try:
        rates: dict[str, tuple[float, float]] = {}
        for wk in args.workers:
            for msaa in (4, 1):
                out = tmp / f"ds_w{wk}_m{msaa}"
                t0, c0 = time.perf_counter(), cpu_seconds()
                render_dataset(scenes, out, lib, workers=wk, progress=False, renderer_options={"msaa": msaa})
                dt = time.perf_counter() - t0
                key = f"render_dataset workers={wk} msaa={msaa} (end to end)"
                rates[key] = (len(scenes) / dt, (cpu_seconds() - c0) / len(scenes))

        assets = {m: lib.load(m) for m in sorted({o.model for s in scenes for o in s.objects})}
        for msaa in (4, 1):
            r = RasterRenderer(w, h, msaa=msaa)
            rates[f"raster msaa={msaa} loop (render+write)"] = loop_rate(
                r, scenes, assets, tmp / f"loop{msaa}"
            )
            r.release()
        base_key = None
        if not args.no_baseline:
            try:
                baseline = PyrenderBaseline(w, h)
            except ImportError:
                print("pyrender not installed (pip install 'twingap[bench]'): no baseline")
            else:
                base_key = "pyrender loop (render+seg+write)"
                rates[base_key] = loop_rate(baseline, scenes, assets, tmp / "pyrender")
                baseline.release()
        print(
            f"{'configuration':52s} {'images/s':>9s} {'vs pyrender':>12s} {'CPU s/img':>10s} "
            f"{'2-core est.':>12s} {'vs pyrender':>12s}"
        )
        for k, (rate, cpu) in rates.items():
            ratio = f"{rate / rates[base_key][0]:.2f}x" if base_key else "-"
            cpu_ratio = f"{rates[base_key][1] / cpu:.2f}x" if base_key else "-"
            print(f"{k:52s} {rate:9.2f} {ratio:>12s} {cpu:10.3f} {2 / cpu:12.1f} {cpu_ratio:>12s}")
        print("2-core est. = 2 / (CPU s per image): images/s if two idle cores were all ours")
        print(f"load average after: {os.getloadavg()[0]:.1f} (timings are shared-machine wall clock)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
