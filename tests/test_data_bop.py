from __future__ import annotations

import json

import numpy as np
import pytest

from twingap.cli import main
from twingap.data.bop import load_bop, write_bop
from twingap.data.loader import detect_layout, load_frames
from twingap.data.ycbv import load_ycbv
from twingap.io import sha256_file


@pytest.fixture(scope="module")
def round_trip(ycbv_root, tmp_path_factory):
    """The whole sample, written as BOP with the CLI and read back."""
    out = tmp_path_factory.mktemp("bop")
    assert main(["data", "convert", str(ycbv_root), "--to", "bop", "-o", str(out)]) == 0
    return load_ycbv(ycbv_root), load_bop(out), out


def test_round_trip_equal(round_trip):
    src, back, out = round_trip
    assert detect_layout(out) == "bop"
    assert len(back) == len(src) == 60
    assert [f.frame_id for f in back][:2] == ["000000/000001", "000000/000002"]
    for a, b in zip(src, back, strict=True):
        np.testing.assert_array_equal(a.obj_ids, b.obj_ids)
        np.testing.assert_allclose(a.K, b.K, rtol=0, atol=1e-12)
        # poses go through millimetres as JSON floats: equal to float64 rounding
        np.testing.assert_allclose(a.poses, b.poses, rtol=0, atol=1e-12)
        np.testing.assert_allclose(a.cam_pose, b.cam_pose, rtol=0, atol=1e-9)
        np.testing.assert_array_equal(a.masks, b.masks)
        # depth_scale 0.1 mm = YCB-Video's 1/10000 m unit, so depth survives exactly (float32)
        assert b.extra["depth_scale"] == 0.1
        np.testing.assert_allclose(a.depth, b.depth, rtol=0, atol=1e-7)
        # colour images are copied byte for byte
        assert sha256_file(a.rgb_path) == sha256_file(b.rgb_path)
        assert (a.width, a.height) == (b.width, b.height)


def test_scene_files(round_trip):
    src, _, out = round_trip
    cam = json.loads((out / "000001" / "scene_camera.json").read_text())
    gt = json.loads((out / "000001" / "scene_gt.json").read_text())
    info = json.loads((out / "000001" / "scene_gt_info.json").read_text())
    assert sorted(int(k) for k in gt) == list(range(1, 21))
    f = next(f for f in src if f.frame_id == "0001/000003")
    e = gt["3"][0]
    assert e["obj_id"] == int(f.obj_ids[0])
    np.testing.assert_allclose(e["cam_t_m2c"], f.poses[0, :3, 3] * 1000.0)  # millimetres in the file
    assert cam["3"]["depth_scale"] == 0.1 and len(cam["3"]["cam_K"]) == 9
    assert info["3"][0]["px_count_visib"] == int(f.masks[0].sum())
    ys, xs = np.nonzero(f.masks[0])
    assert info["3"][0]["bbox_visib"] == [
        xs.min(),
        ys.min(),
        xs.max() - xs.min() + 1,
        ys.max() - ys.min() + 1,
    ]


def test_coarser_depth_scale_quantises(small_ycbv, tmp_path):
    frames = load_ycbv(small_ycbv)
    write_bop(frames, tmp_path / "b", depth_scale=1.0)
    back = load_frames(tmp_path / "b", layout="bop")
    for a, b in zip(frames, back, strict=True):
        assert np.abs(a.depth - b.depth).max() <= 0.0005 + 1e-6  # half a millimetre
    # deterministic bytes: writing twice gives identical files
    write_bop(frames, tmp_path / "c", depth_scale=1.0)
    for p in sorted((tmp_path / "b").rglob("*.*")):
        assert sha256_file(p) == sha256_file(tmp_path / "c" / p.relative_to(tmp_path / "b"))


def test_existing_scene_needs_overwrite(small_ycbv, tmp_path, capsys):
    out = tmp_path / "b"
    assert main(["data", "convert", str(small_ycbv), "-o", str(out)]) == 0
    assert main(["data", "convert", str(small_ycbv), "-o", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["data", "convert", str(small_ycbv), "-o", str(out), "--overwrite"]) == 0
    assert len(load_bop(out, scenes=[1])) == 1
