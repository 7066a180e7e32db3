from __future__ import annotations

import numpy as np
import pytest

from twingap.data.loader import detect_layout, load_frames
from twingap.data.ycbv import load_ycbv, load_ycbv_frame, read_meta
from twingap.errors import TwingapError


@pytest.fixture(scope="module")
def frames(ycbv_root):
    return load_ycbv(ycbv_root)


def test_sample_counts(frames):
    assert len(frames) == 60
    assert sum(f.num_instances for f in frames) == 260
    assert [f.frame_id for f in frames[:2]] == ["0000/000001", "0000/000002"]
    assert sorted({f.scene_id for f in frames}) == ["0000", "0001", "0002"]
    assert len({int(i) for f in frames for i in f.obj_ids}) == 12


def test_frame_fields(frames):
    for f in frames:
        n = f.num_instances
        assert (f.width, f.height) == (640, 480)
        assert f.K.shape == (3, 3) and f.K[2, 2] == 1.0
        assert f.obj_ids.dtype == np.int64 and f.obj_ids.shape == (n,)
        assert f.poses.shape == (n, 4, 4)
        np.testing.assert_allclose(f.poses[:, 3], np.tile([0, 0, 0, 1.0], (n, 1)))
        # rotations are orthonormal, objects in front of the camera at plausible distances (metres)
        R = f.poses[:, :3, :3]
        np.testing.assert_allclose(R @ np.transpose(R, (0, 2, 1)), np.tile(np.eye(3), (n, 1, 1)), atol=1e-5)
        assert np.all((f.poses[:, 2, 3] > 0.3) & (f.poses[:, 2, 3] < 2.0))
        assert f.masks.shape == (n, 480, 640) and f.masks.dtype == bool
        # class masks of one label image never overlap and every object is visible in the sample
        assert f.masks.sum(axis=0).max() <= 1
        assert np.all(f.visible_pixels() > 0)
        assert f.depth is not None and f.depth.dtype == np.float32 and f.depth.shape == (480, 640)
        assert 0.2 < np.median(f.depth[f.depth > 0]) < 2.5
        assert f.rgb_path.is_file()


def test_depth_matches_pose(frames):
    """Object centres project onto their masks and depth there is near the pose's z (metres)."""
    f = frames[0]
    for i in range(f.num_instances):
        t = f.poses[i, :3, 3]
        uvw = f.K @ t
        u, v = round(uvw[0] / uvw[2]), round(uvw[1] / uvw[2])
        ys, xs = np.nonzero(f.masks[i])
        assert xs.min() - 5 <= u <= xs.max() + 5 and ys.min() - 5 <= v <= ys.max() + 5
        d = f.depth[f.masks[i] & (f.depth > 0)]
        assert abs(np.median(d) - t[2]) < 0.1


def test_cam_pose_is_camera_to_world(frames):
    """Objects are static: world pose cam_pose @ pose is constant over a video (to ~1 mm)."""
    for video in ("0000", "0001", "0002"):
        vf = [f for f in frames if f.scene_id == video]
        for k in range(vf[0].num_instances):
            world = np.stack([f.cam_pose @ f.poses[k] for f in vf])
            assert world[:, :3, 3].std(axis=0).max() < 1e-3
            # the other reading (camera motion as camera-to-world inverted) drifts by centimetres
            wrong = np.stack([np.linalg.inv(f.cam_pose) @ f.poses[k] for f in vf])
            assert wrong[:, :3, 3].std(axis=0).max() > 1e-3


def test_filters_and_loader(ycbv_root):
    fr = load_ycbv(ycbv_root, videos=["0002"], frames=["000003"], load_depth=False)
    assert [f.frame_id for f in fr] == ["0002/000003"] and fr[0].depth is None
    assert detect_layout(ycbv_root) == "ycbv"
    same = load_frames(ycbv_root / "0001", load_depth=False)
    assert len(same) == 20 and all(f.scene_id == "0001" for f in same)
    with pytest.raises(TwingapError, match="not found"):
        load_ycbv(ycbv_root, videos=["0042"])


def test_masks_from_label(ycbv_root):
    from PIL import Image

    f = load_ycbv_frame(ycbv_root / "0001", "000005", load_depth=False)
    label = np.asarray(Image.open(ycbv_root / "0001" / "000005-label.png"))
    rebuilt = np.zeros_like(label)
    for cid, m in zip(f.obj_ids, f.masks, strict=True):
        rebuilt[m] = cid
    np.testing.assert_array_equal(rebuilt, label)


def test_meta_fields(ycbv_root):
    meta = read_meta(ycbv_root / "0000" / "000001-meta.mat")
    assert meta["factor_depth"] == 10000.0
    assert meta["cls_indexes"].tolist() == [8, 14, 21]
    assert meta["world_to_cam"].shape == (4, 4)
