"""Raster backend: projection, exact ids and depth, holes, back faces, response, backgrounds."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from twingap.assets.asset import Asset, uniform_texture
from twingap.errors import TwingapError
from twingap.render.backend import BACKGROUND_ASSET_KEY, Renderer, get_renderer
from twingap.render.response import apply_response, srgb_to_linear
from twingap.render.scene import (
    BackgroundSpec,
    CameraSpec,
    LightSpec,
    ObjectSpec,
    ResponseSpec,
    SceneSpec,
)

W, H = 64, 48
K = np.array([[52.0, 0.0, 30.3], [0.0, 55.0, 20.7], [0.0, 0.0, 1.0]])  # non-centred principal point


@pytest.fixture(scope="module", params=[4, 1], ids=["msaa4", "single-pass"])
def renderer(request):
    r = get_renderer("raster", width=W, height=H, msaa=request.param)
    assert isinstance(r, Renderer)
    yield r
    r.release()


def quad(x0, y0, x1, y1, z=0.0, rgb=(255, 255, 255), name="quad") -> Asset:
    """Axis-aligned rectangle in its object x-y plane at height z, normal +z (CCW from +z)."""
    v = np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]], dtype=np.float64)
    f = np.array([[0, 1, 2], [0, 2, 3]])
    return Asset(name, v, f, np.zeros((4, 2)), uniform_texture(rgb), False)


def pixel_rect(u0, v0, u1, v1, z, margin=0.4) -> Asset:
    """Quad at depth z (camera frame) covering OpenCV pixels [u0..u1] x [v0..v1] (centres inside)."""
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    x0, x1 = (u0 - margin - cx) / fx * z, (u1 + margin - cx) / fx * z
    y0, y1 = (v0 - margin - cy) / fy * z, (v1 + margin - cy) / fy * z
    return quad(x0, y0, x1, y1, z)


def scene(objects, **kw) -> SceneSpec:
    return SceneSpec("t", CameraSpec(K, W, H), objects, **kw)


def obj(name, T=None, obj_id=1):
    return ObjectSpec(name, obj_id, np.eye(4) if T is None else T)


@pytest.mark.parametrize("uv", [(0, 0), (10, 7), (31, 21), (63, 47), (45, 3)])
def test_point_projects_to_its_opencv_pixel(renderer, uv):
    u, v = uv
    res = renderer.render(scene([obj("q")]), {"q": pixel_rect(u, v, u, v, 1.3, margin=0.2)})
    assert np.argwhere(res.instance_ids > 0).tolist() == [[v, u]]


def test_rectangle_covers_exact_pixels_and_depth_is_planar(renderer):
    res = renderer.render(scene([obj("q")]), {"q": pixel_rect(5, 9, 40, 30, 1.7)})
    expected = np.zeros((H, W), bool)
    expected[9:31, 5:41] = True
    assert np.array_equal(res.instance_ids == 1, expected)
    assert res.instance_ids.dtype == np.int32 and res.depth.dtype == np.float32
    np.testing.assert_allclose(res.depth[expected], 1.7, rtol=1e-6)
    assert np.all(res.depth[~expected] == 0)
    assert res.rgb.shape == (H, W, 3) and res.rgb.dtype == np.uint8


def test_tilted_plane_depth_matches_ray_intersection(renderer):
    # plane z = 1 + 0.5 x (camera frame): a quad rotated about the y axis
    a = np.arctan(0.5)
    T = np.eye(4)
    T[:3, :3] = [[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]]
    T[:3, 3] = [0, 0, 1.0]
    T[:3, :3] = T[:3, :3].T  # x axis of the object tilts towards +z
    res = renderer.render(scene([obj("q", T)]), {"q": quad(-0.5, -0.5, 0.5, 0.5)})
    m = res.instance_ids == 1
    assert m.sum() > 500
    vv, uu = np.nonzero(m)
    rx = (uu - K[0, 2]) / K[0, 0]
    normal = T[:3, 2]
    z = (normal @ T[:3, 3]) / (normal[0] * rx + normal[1] * (vv - K[1, 2]) / K[1, 1] + normal[2])
    np.testing.assert_allclose(res.depth[m], z, rtol=1e-5)


def test_ids_exact_with_occlusion(renderer):
    near = pixel_rect(10, 10, 30, 30, 1.0)
    far = pixel_rect(20, 5, 50, 40, 2.0)
    sc = scene([obj("far", obj_id=5), obj("near", obj_id=3)])
    res = renderer.render(sc, {"far": far, "near": near})
    assert set(np.unique(res.instance_ids).tolist()) == {0, 1, 2}
    assert np.all(res.instance_ids[10:31, 10:31] == 2)
    assert np.all(res.instance_ids[5:10, 20:51] == 1)
    np.testing.assert_allclose(res.depth[res.instance_ids == 2], 1.0, rtol=1e-6)
    np.testing.assert_allclose(res.depth[res.instance_ids == 1], 2.0, rtol=1e-6)


def grid_with_hole(n=8, size=0.8, z=1.0):
    """n x n grid of squares at depth z with the 2x2 central squares removed."""
    xs = np.linspace(-size / 2, size / 2, n + 1)
    vx, vy = np.meshgrid(xs, xs)
    verts = np.stack([vx.ravel(), vy.ravel(), np.full(vx.size, z)], 1)
    faces = []
    for i in range(n):
        for j in range(n):
            if n // 2 - 1 <= i <= n // 2 and n // 2 - 1 <= j <= n // 2:
                continue
            a, b, c, d = (
                i * (n + 1) + j,
                i * (n + 1) + j + 1,
                (i + 1) * (n + 1) + j + 1,
                (i + 1) * (n + 1) + j,
            )
            faces += [[a, b, c], [a, c, d]]
    return Asset("holey", verts, np.array(faces), np.zeros((len(verts), 2)), uniform_texture((200, 200, 200)))


def test_hole_in_mesh_is_a_hole_in_the_mask(renderer):
    sc = SceneSpec("t", CameraSpec(K, W, H), [ObjectSpec("holey", 1, np.eye(4))])
    res = renderer.render(sc, {"holey": grid_with_hole()})
    m = res.instance_ids == 1
    v, u = round(K[1, 2]), round(K[0, 2])
    assert not m[v, u]  # the centre of the hole
    assert m[v, u - 14] and m[v, u + 14] and m[v - 14, u] and m[v + 14, u]
    assert res.depth[v, u] == 0


def open_box(depth=0.4, half=0.3, z0=1.0) -> Asset:
    """A box without its camera-facing lid: outward CCW faces, 5 sides, open towards -z."""
    c = np.array([[x, y, z] for z in (z0, z0 + depth) for y in (-half, half) for x in (-half, half)])
    # corners: 0..3 at z0 (front), 4..7 at z0 + depth (back); index = 4*zi + 2*yi + xi
    quads = [
        (4, 5, 7, 6),  # back (normal +z)
        (0, 4, 6, 2),  # left (normal -x)
        (1, 3, 7, 5),  # right (+x)
        (0, 1, 5, 4),  # top (-y)
        (2, 6, 7, 3),  # bottom (+y)
    ]
    faces = [[a, b, cc] for a, b, cc, d in quads] + [[a, cc, d] for a, b, cc, d in quads]
    return Asset("box", c.astype(float), np.array(faces), np.zeros((8, 2)), uniform_texture((255, 255, 255)))


def test_back_faces_visible_and_shaded_with_flipped_normal(renderer):
    box = open_box()
    # outward normals: check orientation of the back face is +z
    tri = box.vertices[box.faces[0]]
    assert np.cross(tri[1] - tri[0], tri[2] - tri[0])[2] > 0
    lit = LightSpec(direction=(0, 0, 1), intensity=1.0)  # travels away from the camera
    sc = scene([obj("box")], lights=[lit], ambient=0.0)
    res = renderer.render(sc, {"box": box})
    v, u = round(K[1, 2]), round(K[0, 2])
    assert res.instance_ids[v, u] == 1  # inside of the back wall is seen (a back face)
    assert res.depth[v, u] == pytest.approx(1.4, rel=1e-6)
    assert res.rgb[v, u].min() >= 250  # lit: its flipped normal faces the light
    # lit from behind, the inside of the back wall is dark
    res2 = renderer.render(
        scene([obj("box")], lights=[LightSpec(direction=(0, 0, -1))], ambient=0.0), {"box": box}
    )
    assert res2.rgb[v, u].max() == 0


def test_rgb_matches_numpy_response(renderer):
    resp = ResponseSpec(
        exposure=1.2,
        white_balance=(1.1, 1.0, 0.8),
        gamma=2.0,
        color_matrix=[[0.9, 0.1, 0.0], [0.05, 0.9, 0.05], [0.0, 0.2, 0.8]],
        tone=[[1.1, -0.1], [1.0, 0.0], [0.9, 0.05]],
    )
    albedo = (180, 120, 60)
    sc = scene(
        [obj("q")], lights=[LightSpec(direction=(0, 0, 1), intensity=0.6)], ambient=0.25, response=resp
    )
    lin = srgb_to_linear(np.array(albedo) / 255.0) * (0.25 + 0.6)  # ambient + light facing the plane
    a = pixel_rect(0, 0, W - 1, H - 1, 1.0).replace(texture=uniform_texture(albedo))
    res = renderer.render(sc, {"q": a}, return_linear=True)
    np.testing.assert_allclose(res.linear[H // 2, W // 2], lin, rtol=5e-3)
    assert np.all(res.coverage == 1.0)
    ref = apply_response(lin[None, None], resp)[0, 0]
    assert np.abs(res.rgb[H // 2, W // 2].astype(int) - ref).max() <= 1
    assert np.all(res.rgb == res.rgb[0, 0])


def test_rgb_is_antialiased_ids_are_not(renderer):
    # a slanted edge: rgb gets intermediate values, ids only 0/1
    T = np.eye(4)
    a = np.deg2rad(20)
    T[:3, :3] = [[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]]
    T[2, 3] = 1.0
    sc = scene([obj("q", T)], ambient=1.0)
    res = renderer.render(sc, {"q": quad(-0.2, -0.2, 0.2, 0.2)})
    assert set(np.unique(res.instance_ids).tolist()) == {0, 1}
    grey = res.rgb[..., 0]
    assert np.any((grey > 20) & (grey < 235)) == (renderer.msaa > 1)


def digest(res) -> str:
    h = hashlib.sha256()
    for a in (res.rgb, res.depth, res.instance_ids):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def test_deterministic_and_seeded_noise(renderer):
    other = get_renderer("raster", width=W, height=H, msaa=renderer.msaa)
    try:
        assets = {"holey": grid_with_hole(), "q": pixel_rect(3, 3, 20, 20, 2.0)}
        objs = [ObjectSpec("holey", 1, np.eye(4)), ObjectSpec("q", 2, np.eye(4))]
        kw = dict(lights=[LightSpec(direction=(0.2, 0.3, 1))], response=ResponseSpec(noise_sigma=3.0))
        s1 = SceneSpec("t", CameraSpec(K, W, H), objs, seed=7, **kw)
        s2 = SceneSpec("t", CameraSpec(K, W, H), objs, seed=8, **kw)
        d1 = digest(renderer.render(s1, assets))
        assert d1 == digest(renderer.render(s1, assets)) == digest(other.render(s1, assets))
        r2 = renderer.render(s2, assets)
        assert digest(r2) != d1
        assert np.array_equal(r2.instance_ids, renderer.render(s1, assets).instance_ids)
    finally:
        other.release()


def test_backgrounds(renderer, tmp_path):
    from PIL import Image

    a = {"q": pixel_rect(10, 10, 20, 20, 1.0)}
    res = renderer.render(scene([obj("q")], background=BackgroundSpec(color=(10, 20, 30))), a)
    assert res.rgb[0, 0].tolist() == [10, 20, 30]
    img = np.zeros((H * 2, W * 2, 3), np.uint8)
    img[..., 1] = 77
    Image.fromarray(img).save(tmp_path / "bg.png")
    res = renderer.render(
        scene([obj("q")], background=BackgroundSpec("image", path=str(tmp_path / "bg.png"))), a
    )
    assert res.rgb[0, 0].tolist() == [0, 77, 0] and res.instance_ids[0, 0] == 0
    # mesh background: a far wall, unlit (photo colours pass through), no id, has depth
    wall = pixel_rect(0, 0, W - 1, H - 1, 3.0).replace(texture=uniform_texture((90, 60, 30)))
    wall.to_trimesh().export(tmp_path / "wall.glb")
    bg = BackgroundSpec("mesh", path=str(tmp_path / "wall.glb"))
    res = renderer.render(scene([obj("q")], background=bg, ambient=0.0), a)
    assert np.abs(res.rgb[0, 0].astype(int) - [90, 60, 30]).max() <= 1
    assert res.instance_ids[0, 0] == 0 and res.depth[0, 0] == pytest.approx(3.0, rel=1e-6)
    assert res.instance_ids[15, 15] == 1 and res.depth[15, 15] == pytest.approx(1.0, rel=1e-6)
    # the same background passed as an asset
    res2 = renderer.render(scene([obj("q")], background=bg, ambient=0.0), {**a, BACKGROUND_ASSET_KEY: wall})
    assert np.array_equal(res2.instance_ids, res.instance_ids)
    # an object behind the background mesh is hidden in ids too
    hidden = {"q": pixel_rect(10, 10, 20, 20, 4.0)}
    res3 = renderer.render(scene([obj("q")], background=bg), {**hidden, BACKGROUND_ASSET_KEY: wall})
    assert not np.any(res3.instance_ids)


def test_missing_model_is_a_twingap_error(renderer):
    with pytest.raises(TwingapError, match="no model"):
        renderer.render(scene([obj("nothere")]), {})


def test_sample_frame_masks_match_real_labels():
    from twingap.assets.asset import ModelLibrary, default_sample_root
    from twingap.assets.ycb import class_name
    from twingap.data.ycbv import load_ycbv

    root = default_sample_root()
    frame = load_ycbv(root / "ycbv_real_frames", videos=["0001"], frames=["000001"], load_depth=False)[0]
    lib = ModelLibrary(root / "models")
    objs = [ObjectSpec(class_name(o), int(o), p) for o, p in zip(frame.obj_ids, frame.poses, strict=True)]
    sc = SceneSpec("0001/000001", CameraSpec(frame.K, frame.width, frame.height), objs)
    r = get_renderer("raster", width=frame.width, height=frame.height)
    try:
        res = r.render(sc, {o.model: lib.load(o.model) for o in objs})
    finally:
        r.release()
    ious = []
    for k in range(len(objs)):
        m, g = res.mask(k), frame.masks[k]
        ious.append((m & g).sum() / max((m | g).sum(), 1))
    print("mask IoU per object", np.round(ious, 4), "mean", np.mean(ious))
    assert np.mean(ious) >= 0.9


def test_closed_meshes_cull_exactly(renderer, monkeypatch):
    import trimesh

    from twingap.render import raster

    box = trimesh.creation.box(extents=(0.3, 0.2, 0.25))
    v, f = np.asarray(box.vertices), np.asarray(box.faces)
    assert raster.closed_mesh_cull(v, f) == "back"
    assert raster.closed_mesh_cull(v, f[:, ::-1]) == "front"
    assert raster.closed_mesh_cull(v, f[1:]) is None  # open
    assert raster.closed_mesh_cull(open_box().vertices, open_box().faces) is None
    T = np.eye(4)
    T[:3, :3] = [[0.8, -0.6, 0], [0.6, 0.8, 0], [0, 0, 1]] @ np.array(
        [[1, 0, 0], [0, 0.6, -0.8], [0, 0.8, 0.6]]
    )
    T[2, 3] = 1.2
    sc = scene([obj("c", T)], lights=[LightSpec(direction=(0.3, 0.2, 1))])
    for faces in (f, f[:, ::-1]):  # outward and inverted winding
        a = Asset("c", v, faces, np.zeros((len(v), 2)), uniform_texture((180, 180, 180)))
        culled = renderer.render(sc, {"c": a})
        with monkeypatch.context() as m:
            m.setattr(raster, "closed_mesh_cull", lambda *args: None)
            plain = raster.RasterRenderer(W, H, msaa=renderer.msaa)
            both_sides = plain.render(sc, {"c": a})
            plain.release()
        assert culled.instance_ids.sum() > 150
        assert np.array_equal(culled.instance_ids, both_sides.instance_ids)
        assert np.array_equal(culled.depth, both_sides.depth)
        assert np.array_equal(culled.rgb, both_sides.rgb)


def test_optional_shadows_darken_the_receiver_only_where_occluded(renderer):
    import trimesh

    # camera looks down +z at a floor (z = 1.5) with a closed box floating above it (z = 1.2)
    floor = pixel_rect(0, 0, W - 1, H - 1, 1.5).replace(texture=uniform_texture((200, 200, 200)))
    cube = trimesh.creation.box(extents=(0.2, 0.2, 0.1))
    box = Asset(
        "box",
        np.asarray(cube.vertices),
        np.asarray(cube.faces),
        np.zeros((8, 2)),
        uniform_texture((90, 90, 90)),
    )
    T = np.eye(4)
    T[:3, 3] = (0.0, 0.0, 1.2)
    light = LightSpec(direction=(1.0, 0.0, 1.0), intensity=1.0)  # travels to +x and away from the camera
    objs = [obj("floor", obj_id=1), ObjectSpec("box", 2, T)]
    assets = {"floor": floor, "box": box}
    plain = renderer.render(scene(objs, lights=[light], ambient=0.2), assets, return_linear=True)
    shadowed = renderer.render(
        scene(objs, lights=[light], ambient=0.2, meta={"shadows": True}), assets, return_linear=True
    )
    assert np.array_equal(plain.instance_ids, shadowed.instance_ids)
    floor_px = shadowed.instance_ids == 1
    u = np.broadcast_to(np.arange(W)[None], (H, W))
    dark = floor_px & (shadowed.linear[..., 0] < 0.5 * plain.linear[..., 0])
    assert dark.sum() > 20  # the shadow falls on the floor, to the +x side of the box
    assert u[dark].min() > K[0, 2]
    left = floor_px & (u < K[0, 2] - 8)
    np.testing.assert_allclose(shadowed.linear[left], plain.linear[left], rtol=1e-3)  # lit floor unchanged
    box_px = shadowed.instance_ids == 2
    np.testing.assert_allclose(shadowed.linear[box_px], plain.linear[box_px], rtol=1e-3)  # no shadow acne
