"""Twin environment: each video's static background, with every real object removed.

Design (why two representations):

1. **Per-frame background image** (``background/<frame>.png``): the real photo with the object
   pixels (visible masks dilated by ``dilate_px`` = 7 px, which covers annotation slop and the
   colour bleeding of the sensor) removed and filled by ``cv2.inpaint`` (Telea). Inpainting only
   reads pixels outside the dilated mask, so no real object appearance can leak into it. This is
   what the twin of that exact view needs: it is pixel-identical to the photo everywhere the
   objects are not.
2. **Per-video background mesh** (``background.glb``, world coordinates of the video): a textured
   2.5D mesh built from the depth + inpainted RGB of a few key frames, so that the camera can move
   around the real trajectory (sampled training views). The support plane is fitted by RANSAC on
   the background depth; inside the (dilated) object regions the depth is replaced by the plane
   (objects stand on it), the rest of the invalid depth by the nearest valid depth. Key frames
   after the first only add the part of the scene the earlier ones did not see (their vertices are
   projected into the earlier key frames). Depth edges are kept as "rubber sheets" (stretched
   triangles) rather than holes: views stay close to the real ones, where this looks right.

The world frame of a video (see :func:`video_world`) is aligned with the support plane: origin on
the plane below the objects' centroid, ``+z`` the plane normal pointing to the camera side (up),
``+x`` the first camera's x axis projected onto the plane. Metres throughout; cameras are OpenCV
(x right, y down, z forward); ``cam_T_world`` maps world points into the camera.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from twingap.data.frame import Frame
from twingap.errors import TwingapError
from twingap.io import atomic_path, write_json_atomic

#: Dilation of the object masks before inpainting, pixels.
DILATE_PX = 7


def object_mask(frame: Frame, dilate_px: int = DILATE_PX) -> np.ndarray:
    """Union of the frame's visible masks, dilated by ``dilate_px`` pixels (disk).

    Returns:
        (H, W) bool mask of the pixels that may show a real object.
    """
    import cv2

    union = np.zeros((frame.height, frame.width), dtype=np.uint8)
    if frame.num_instances:
        union[np.any(frame.masks, axis=0)] = 1
    if dilate_px > 0:
        k = 2 * dilate_px + 1
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
        union = cv2.dilate(union, kernel)
    return union.astype(bool)


def inpaint_background(rgb: np.ndarray, mask: np.ndarray, radius: int = 5) -> np.ndarray:
    """Remove the masked pixels of an image and fill them from their surroundings.

    Args:
        rgb: (H, W, 3) uint8 image.
        mask: (H, W) bool pixels to remove.
        radius: Inpainting neighbourhood, pixels.

    Returns:
        (H, W, 3) uint8 image, identical to ``rgb`` outside ``mask``.
    """
    import cv2

    out = cv2.inpaint(np.ascontiguousarray(rgb), mask.astype(np.uint8), radius, cv2.INPAINT_TELEA)
    out[~mask] = rgb[~mask]
    return out


def backproject(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Camera-frame points of every pixel centre.

    Args:
        depth: (H, W) depth along the optical axis, metres.
        K: (3, 3) intrinsics.

    Returns:
        (H, W, 3) float64 points in the OpenCV camera frame, metres.
    """
    h, w = depth.shape
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    z = depth.astype(np.float64)
    x = (u - K[0, 2]) / K[0, 0] * z
    y = (v - K[1, 2]) / K[1, 1] * z
    return np.stack([x, y, z], axis=-1)


def transform(T: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply a (4, 4) rigid transform to (..., 3) points."""
    return pts @ T[:3, :3].T + T[:3, 3]


def fit_plane_ransac(
    points: np.ndarray, rng: np.random.Generator, iters: int = 300, thresh: float = 0.01
) -> tuple[np.ndarray, float, np.ndarray]:
    """Fit a plane ``n . p + d = 0`` to 3D points by RANSAC plus a least-squares refit.

    Args:
        points: (N, 3) points, metres (N >= 3).
        rng: Random generator (deterministic for a seed).
        iters: RANSAC iterations.
        thresh: Inlier distance, metres.

    Returns:
        ``(n, d, inliers)``: unit normal (3,), offset (metres), (N,) bool inlier mask.

    Raises:
        TwingapError: If there are fewer than 3 points.
    """
    pts = np.asarray(points, dtype=np.float64)
    if len(pts) < 3:
        raise TwingapError("cannot fit the support plane: fewer than 3 valid depth points")
    best_n, best_d, best_count = np.array([0.0, 0.0, 1.0]), 0.0, -1
    idx = rng.integers(0, len(pts), size=(iters, 3))
    for i, j, k in idx:
        n = np.cross(pts[j] - pts[i], pts[k] - pts[i])
        norm = np.linalg.norm(n)
        if norm < 1e-12:
            continue
        n = n / norm
        d = -float(n @ pts[i])
        count = int(np.count_nonzero(np.abs(pts @ n + d) < thresh))
        if count > best_count:
            best_n, best_d, best_count = n, d, count
    inl = np.abs(pts @ best_n + best_d) < thresh
    if inl.sum() >= 3:  # least-squares refit on the inliers
        c = pts[inl].mean(0)
        _, _, vt = np.linalg.svd(pts[inl] - c, full_matrices=False)
        n = vt[2]
        if n @ best_n < 0:
            n = -n
        best_n, best_d = n, -float(n @ c)
        inl = np.abs(pts @ best_n + best_d) < thresh
    return best_n, best_d, inl


def camera_motion(frames: list[Frame]) -> list[np.ndarray]:
    """Camera-to-world transforms of a video's frames (a shared, arbitrary world).

    Uses :attr:`Frame.cam_pose` when every frame has it; otherwise assumes the objects are static
    and derives the motion from the first object common to all frames (world = first camera).

    Returns:
        One (4, 4) camera-to-world transform per frame.
    """
    if all(f.cam_pose is not None for f in frames):
        return [np.asarray(f.cam_pose, dtype=np.float64) for f in frames]
    common = set(frames[0].obj_ids.tolist())
    for f in frames[1:]:
        common &= set(f.obj_ids.tolist())
    if not common:  # nothing to register the frames with: treat the camera as static
        return [np.eye(4) for _ in frames]
    oid = min(common)
    p0 = frames[0].poses[list(frames[0].obj_ids).index(oid)]
    return [p0 @ np.linalg.inv(f.poses[list(f.obj_ids).index(oid)]) for f in frames]


@dataclass
class VideoWorld:
    """The plane-aligned world frame of one video.

    Attributes:
        video: Video (scene) id.
        cam_T_world: Per frame id, the (4, 4) world-to-camera transform.
        plane_inliers: Fraction of background depth points within 1 cm of the fitted plane.
        depth_plane_z: World height (metres) of the support surface as the depth sensor sees
            it; z = 0 is where the annotated objects rest.
    """

    video: str
    cam_T_world: dict[str, np.ndarray]
    plane_inliers: float
    depth_plane_z: float = 0.0

    def to_dict(self) -> dict:
        """Plain-JSON form."""
        return {
            "video": self.video,
            "plane": "z = 0 in world, +z up (towards the cameras), metres",
            "plane_inlier_fraction": self.plane_inliers,
            "depth_plane_z": self.depth_plane_z,
            "cam_T_world": {k: v.tolist() for k, v in sorted(self.cam_T_world.items())},
        }


def _background_points(frame: Frame, step: int, near_objects: bool) -> np.ndarray:
    """(N, 3) camera-frame points of valid background depth (subsampled by ``step``)."""
    if frame.depth is None:
        raise TwingapError(f"frame {frame.frame_id} has no depth: cannot reconstruct its background")
    valid = (frame.depth > 0) & ~object_mask(frame, DILATE_PX)
    if near_objects and frame.num_instances:
        # Only the surroundings of the objects, so that the desk (not the floor) wins.
        union = np.any(frame.masks, axis=0)
        ys, xs = np.nonzero(union)
        if len(xs):
            x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
            mx, my = (x1 - x0) // 2 + 10, (y1 - y0) // 2 + 10
            box = np.zeros_like(valid)
            box[max(0, y0 - my) : y1 + my + 1, max(0, x0 - mx) : x1 + mx + 1] = True
            # lower part of the box: the support is below the objects in the image
            valid &= box
    pts = backproject(frame.depth, frame.K)
    return pts[::step, ::step][valid[::step, ::step]]


def _hull_vertices(library, obj_id: int) -> np.ndarray | None:
    """Vertices of a model's convex hull (pose frame, metres), or None if the model is unknown."""
    try:
        asset = library.load(library.name_of(obj_id))
    except TwingapError:
        return None
    import trimesh

    return np.asarray(trimesh.Trimesh(asset.vertices, asset.faces, process=False).convex_hull.vertices)


def video_world(frames: list[Frame], seed: int = 0, library=None) -> VideoWorld:
    """Fit the support plane of a video and define its plane-aligned world frame.

    Args:
        frames: The frames of one video (with depth).
        seed: RANSAC seed.
        library: Optional :class:`~twingap.assets.asset.ModelLibrary`; with it, z = 0 is moved
            to where the annotated objects rest.

    Returns:
        The :class:`VideoWorld` (world-to-camera transform of every frame).

    Raises:
        TwingapError: If a frame has no depth or no plane can be fitted.
    """
    if not frames:
        raise TwingapError("video_world: no frames")
    rng = np.random.default_rng(seed)
    motion = camera_motion(frames)  # camera -> video world (meta.mat world)
    keys = sorted({0, len(frames) // 2, len(frames) - 1})
    pts = np.concatenate([transform(motion[i], _background_points(frames[i], 4, True)) for i in keys])
    n, d, _ = fit_plane_ransac(pts, rng)
    cam0 = motion[0][:3, 3]
    if n @ cam0 + d < 0:  # normal towards the camera side
        n, d = -n, -d
    allpts = np.concatenate([transform(motion[i], _background_points(frames[i], 8, False)) for i in keys])
    inlier_frac = float(np.mean(np.abs(allpts @ n + d) < 0.01))
    # origin: objects' centroid (video world) projected onto the plane
    cents = []
    for f, m in zip(frames, motion, strict=True):
        for p in f.poses:
            cents.append((m @ p)[:3, 3])
    c = np.mean(cents, axis=0) if cents else cam0 - (n @ cam0 + d) * n
    origin = c - (n @ c + d) * n
    x = motion[0][:3, 0] - (motion[0][:3, 0] @ n) * n
    if np.linalg.norm(x) < 1e-6:
        x = np.cross(n, [0.0, 1.0, 0.0])
    x /= np.linalg.norm(x)
    y = np.cross(n, x)
    vw_T_world = np.eye(4)
    vw_T_world[:3, 0], vw_T_world[:3, 1], vw_T_world[:3, 2], vw_T_world[:3, 3] = x, y, n, origin
    # The annotated poses are the truth for the objects; the depth sensor sees the support about
    # 1 cm off them (a depth scale bias). Put z = 0 where the objects rest (median lowest point of
    # the objects that touch the plane) and remember where the depth surface sits.
    lows = []
    for f, m in zip(frames[:1], motion[:1], strict=True):
        for oid, p in zip(f.obj_ids, f.poses, strict=True):
            if library is None:
                break
            verts = _hull_vertices(library, int(oid))
            if verts is None:
                continue
            z = transform(np.linalg.inv(vw_T_world) @ m @ p, verts)[:, 2]
            if abs(z.min()) < 0.03:
                lows.append(float(z.min()))
    bias = float(np.median(lows)) if lows else 0.0
    vw_T_world[:3, 3] += bias * n
    cam_T_world = {f.frame_id: np.linalg.inv(m) @ vw_T_world for f, m in zip(frames, motion, strict=True)}
    return VideoWorld(frames[0].scene_id, cam_T_world, inlier_frac, -bias)


def filled_depth(frame: Frame, cam_T_world: np.ndarray, plane_z: float = 0.0) -> np.ndarray:
    """Depth of the background only: object regions from the support plane, holes filled.

    Args:
        frame: A frame with depth.
        cam_T_world: (4, 4) world-to-camera transform of the frame.
        plane_z: World height of the support plane as the depth sensor sees it, metres.

    Returns:
        (H, W) float32 depth in metres, valid (> 0) everywhere.
    """
    import cv2
    from scipy import ndimage

    depth = frame.depth.astype(np.float32).copy()
    depth = np.where(depth > 0, cv2.medianBlur(depth, 5), 0).astype(np.float32)
    obj = object_mask(frame, DILATE_PX)
    # plane in camera coordinates: n_c . p + d_c = 0
    n_c = cam_T_world[:3, :3] @ np.array([0.0, 0.0, 1.0])
    d_c = -float(n_c @ cam_T_world[:3, 3]) - plane_z
    rays = backproject(np.ones_like(depth), frame.K)
    denom = rays @ n_c
    with np.errstate(divide="ignore", invalid="ignore"):
        t = -d_c / denom
    plane_ok = np.isfinite(t) & (t > 0) & (t < 6.0)
    depth[obj] = 0
    fill = obj & plane_ok
    depth[fill] = t[fill]
    invalid = depth <= 0
    if invalid.all():
        raise TwingapError(f"frame {frame.frame_id}: no valid background depth")
    if invalid.any():
        _, (iy, ix) = ndimage.distance_transform_edt(invalid, return_indices=True)
        depth = depth[iy, ix]
    return np.minimum(depth, 6.0).astype(np.float32)


def _grid_mesh(depth: np.ndarray, K: np.ndarray, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Triangulate a depth map on a pixel grid.

    Returns:
        ``(pts (V,3) camera frame, pix (V,2) pixel coords (u, v), faces (F,3))``.
    """
    h, w = depth.shape
    us = np.arange(0, w, step)
    vs = np.arange(0, h, step)
    if us[-1] != w - 1:
        us = np.append(us, w - 1)
    if vs[-1] != h - 1:
        vs = np.append(vs, h - 1)
    uu, vv = np.meshgrid(us, vs)
    z = depth[vv, uu].astype(np.float64)
    x = (uu - K[0, 2]) / K[0, 0] * z
    y = (vv - K[1, 2]) / K[1, 1] * z
    pts = np.stack([x, y, z], -1).reshape(-1, 3)
    pix = np.stack([uu, vv], -1).reshape(-1, 2).astype(np.float64)
    nv, nu = uu.shape
    idx = np.arange(nv * nu).reshape(nv, nu)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
    # CCW seen from the camera (OpenCV: y down, so (a, c, b) is counter-clockwise on screen)
    faces = np.concatenate([np.stack([a, c, b], -1).reshape(-1, 3), np.stack([b, c, d], -1).reshape(-1, 3)])
    return pts, pix, faces.astype(np.int64)


def _pick_keyframes(cams: list[np.ndarray], max_keys: int, min_dist: float) -> list[int]:
    """Farthest-point selection of key frames over the camera centres."""
    centres = np.array([np.linalg.inv(T)[:3, 3] for T in cams])
    keys = [len(cams) // 2]
    while len(keys) < max_keys:
        dist = np.min(np.linalg.norm(centres[:, None] - centres[keys][None], axis=-1), axis=1)
        j = int(np.argmax(dist))
        if dist[j] < min_dist:
            break
        keys.append(j)
    return keys


def build_background_mesh(
    frames: list[Frame],
    world: VideoWorld,
    backgrounds: dict[str, np.ndarray],
    step: int = 4,
    max_keys: int = 3,
    min_dist: float = 0.05,
):
    """Textured 2.5D background mesh of a video, in its world frame.

    Args:
        frames: The video's frames (with depth).
        world: Its :class:`VideoWorld`.
        backgrounds: Per frame id, the inpainted (H, W, 3) uint8 background image.
        step: Grid step of the triangulation, pixels.
        max_keys: At most this many key frames.
        min_dist: A further key frame must be this far (metres) from the chosen ones.

    Returns:
        ``(trimesh.Trimesh, info dict)``; the mesh has a texture atlas (key frames stacked
        vertically) and UVs in the OBJ convention.
    """
    import trimesh
    from PIL import Image

    cams = [world.cam_T_world[f.frame_id] for f in frames]
    keys = _pick_keyframes(cams, max_keys, min_dist)
    verts, uvs, faces_all, textures = [], [], [], []
    h, w = frames[0].height, frames[0].width
    nkeys = len(keys)
    offset = 0
    for slot, k in enumerate(keys):
        f = frames[k]
        depth = filled_depth(f, cams[k], world.depth_plane_z)
        pts, pix, faces = _grid_mesh(depth, f.K, step)
        pw = transform(np.linalg.inv(cams[k]), pts)
        pw[:, 2] -= world.depth_plane_z  # the surface the objects rest on is z = 0
        keep_v = np.ones(len(pw), dtype=bool)
        for prev in keys[:slot]:  # drop what an earlier key frame already covers
            pc = transform(cams[prev], pw)
            fp = frames[prev]
            with np.errstate(divide="ignore", invalid="ignore"):
                u = fp.K[0, 0] * pc[:, 0] / pc[:, 2] + fp.K[0, 2]
                v = fp.K[1, 1] * pc[:, 1] / pc[:, 2] + fp.K[1, 2]
            inside = (pc[:, 2] > 0) & (u >= 0) & (u <= fp.width - 1) & (v >= 0) & (v <= fp.height - 1)
            keep_v &= ~inside
        fkeep = keep_v[faces].all(axis=1)
        faces = faces[fkeep]
        if len(faces) == 0:
            continue
        used = np.unique(faces)
        remap = -np.ones(len(pw), dtype=np.int64)
        remap[used] = np.arange(len(used))
        verts.append(pw[used])
        # atlas: key frame `slot` occupies rows [slot*h, (slot+1)*h) from the top
        uu = (pix[used, 0] + 0.5) / w
        vv = 1.0 - (slot * h + pix[used, 1] + 0.5) / (nkeys * h)
        uvs.append(np.stack([uu, vv], -1))
        faces_all.append(remap[faces] + offset)
        offset += len(used)
        textures.append(backgrounds[f.frame_id])
    while len(textures) < nkeys:
        textures.append(np.zeros((h, w, 3), np.uint8))
    atlas = np.concatenate(textures, axis=0)
    material = trimesh.visual.material.SimpleMaterial(image=Image.fromarray(atlas))
    visual = trimesh.visual.TextureVisuals(uv=np.concatenate(uvs), material=material)
    mesh = trimesh.Trimesh(np.concatenate(verts), np.concatenate(faces_all), visual=visual, process=False)
    info = {
        "key_frames": [frames[k].frame_id for k in keys],
        "grid_step_px": step,
        "vertices": len(mesh.vertices),
        "faces": len(mesh.faces),
    }
    return mesh, info


def save_png(path: Path, rgb: np.ndarray) -> None:
    """Write an RGB uint8 image as PNG atomically (deterministic bytes)."""
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(rgb).save(tmp, format="PNG", optimize=False)


@dataclass
class VideoEnvironment:
    """Files of one video's twin environment.

    Attributes:
        video: Video id.
        folder: The folder holding the files.
        world: The plane-aligned world frame.
        background_images: Per frame id, the inpainted background PNG path.
        mesh_path: The background mesh (GLB, world coordinates), or None if not built.
        median_rgb: Median colour (sRGB 0-255) of the first background image: the fill colour of
            what the background mesh does not cover in novel views.
    """

    video: str
    folder: Path
    world: VideoWorld
    background_images: dict[str, Path]
    mesh_path: Path | None
    median_rgb: tuple[int, int, int] = (0, 0, 0)


def build_environment(
    frames: list[Frame], out_dir: str | Path, library=None, with_mesh: bool = True, seed: int = 0
) -> VideoEnvironment:
    """Reconstruct (or reuse) the twin environment of one video.

    Writes ``out_dir/world.json``, ``out_dir/background/<frame>.png`` and ``out_dir/background.glb``.
    Existing files are reused (the job is resumable); delete the folder to rebuild.

    Args:
        frames: The frames of one video (with depth), sorted.
        out_dir: The video's environment folder.
        library: Model library (puts z = 0 where the objects rest; see :func:`video_world`).
        with_mesh: Also build the background mesh (needed for novel views).
        seed: RANSAC seed.

    Returns:
        The :class:`VideoEnvironment`.
    """
    out_dir = Path(out_dir)
    world = video_world(frames, seed=seed, library=library)
    write_json_atomic(out_dir / "world.json", world.to_dict())
    images: dict[str, Path] = {}
    backgrounds: dict[str, np.ndarray] = {}
    for f in frames:
        name = f.frame_id.split("/")[-1]
        path = out_dir / "background" / f"{name}.png"
        images[f.frame_id] = path
        if not path.is_file() or with_mesh:
            if path.is_file():
                from twingap.data.images import read_rgb

                backgrounds[f.frame_id] = read_rgb(path)
            else:
                bg = inpaint_background(f.load_rgb(), object_mask(f, DILATE_PX))
                save_png(path, bg)
                backgrounds[f.frame_id] = bg
    mesh_path = None
    if with_mesh:
        mesh_path = out_dir / "background.glb"
        if not mesh_path.is_file():
            mesh, info = build_background_mesh(frames, world, backgrounds)
            with atomic_path(mesh_path) as tmp:
                mesh.export(tmp, file_type="glb")
            write_json_atomic(out_dir / "background_mesh.json", info)
    from twingap.data.images import read_rgb

    first = read_rgb(images[frames[0].frame_id])
    median = tuple(int(x) for x in np.median(first.reshape(-1, 3), axis=0))
    return VideoEnvironment(frames[0].scene_id, out_dir, world, images, mesh_path, median)
