"""Twin calibration + fidelity report on two real frames (fit on one, scored on the other)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from twingap.assets.asset import ModelLibrary, default_sample_root
from twingap.data.ycbv import load_ycbv
from twingap.render.calibration import highpass_sigma
from twingap.render.fidelity import run_twin_check

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample" / "ycbv_real_frames"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    lib = ModelLibrary(default_sample_root() / "models")
    frames = load_ycbv(SAMPLE, videos=["0001"], frames=["000001", "000002"])
    out = tmp_path_factory.mktemp("twin_report")
    rep = run_twin_check(frames, lib, out, scale=0.5, calib_scale=0.25, progress=False)
    return out, rep


def test_report_files(report):
    out, _ = report
    for name in ("report.json", "frames.csv", "videos.csv", "0001.png", "twin_scenes.json"):
        assert (out / name).is_file(), name
    rows = list(csv.DictReader((out / "frames.csv").open()))
    assert [r["split"] for r in rows] == ["fit", "held_out"]
    cal = json.loads((out / "env" / "0001" / "calibration.json").read_text())
    assert np.asarray(cal["response"]["color_matrix"]).shape == (3, 3)
    assert len(cal["lights"]) == 1 and cal["lights"][0]["direction"][2] < 0  # key light shines down
    assert cal["response"]["noise_sigma"] >= 0
    scenes = json.loads((out / "twin_scenes.json").read_text())
    assert scenes[0]["response"]["color_matrix"] == cal["response"]["color_matrix"]


def test_calibration_improves_held_out_frame(report):
    _, rep = report
    held = rep["overall"]
    assert held["frames"] == 1
    assert held["mask_iou"] > 0.95  # half-resolution masks
    assert held["depth_mae_mm"] < 15
    assert held["color_err_srgb_after"] <= 0.5 * held["color_err_srgb_before"]
    assert held["color_err_de2000_after"] < held["color_err_de2000_before"]
    assert held["blur_err_after"] < held["blur_err_before"]


def test_highpass_sigma_recovers_white_noise():
    rng = np.random.default_rng(0)
    img = np.clip(128 + rng.normal(0, 3.0, (80, 80, 3)), 0, 255)
    assert abs(highpass_sigma(img, np.ones((80, 80), bool)) - 3.0) < 0.3
