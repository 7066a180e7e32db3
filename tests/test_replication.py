"""Replication checks: agreement of two estimates, split-half, ``twingap compare`` on fake runs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from twingap.study.fake import FakePerImage
from twingap.study.replication import (
    SideEstimate,
    agree,
    compare_estimates,
    expected_tau,
    split_half,
    tau_projection,
)
from twingap.study.stats import condition_results


def test_agree_known_answer():
    a = SideEstimate(-5.0, 1.0, 10, 3)
    b = SideEstimate(-2.0, 1.0, 10, 3)
    se, df, thr, ok = agree(a, b)
    assert se == pytest.approx(math.sqrt(2)) and df == pytest.approx(20)
    assert thr == pytest.approx(st.t.ppf(0.975, 20) * math.sqrt(2))
    assert ok is False  # |-3| > 2.95
    assert agree(a, SideEstimate(-3.0, 1.0, 10, 3))[3] is True
    assert agree(a, SideEstimate(-3.0, math.nan, 0, 1))[3] is None  # one seed: not checkable


def test_compare_estimates_share_and_tau():
    conds = ["a", "b", "c", "d"]
    A = {(c, "ts", "bbox"): SideEstimate(-float(i), 0.5, 20, 3) for i, c in enumerate(conds)}
    same = compare_estimates(A, dict(A))
    assert same["share"] == 1.0 and same["n"] == 4 and same["tau"][0]["tau"] == pytest.approx(1.0)
    flipped = {k: SideEstimate(-v.delta + 10, 0.5, 20, 3) for k, v in A.items()}
    res = compare_estimates(A, flipped)
    assert res["share"] < 0.5 and res["tau"][0]["tau"] == pytest.approx(-1.0)


def test_expected_tau_known_answers():
    effects = np.array([0.0, -5.0, -10.0, -15.0, -20.0])
    assert expected_tau(effects, np.full(5, 0.01), 3) == pytest.approx(1.0)  # no noise: same ranking
    assert abs(expected_tau(np.zeros(5), np.ones(5), 3)) < 0.03  # equal effects: rankings unrelated
    # two conditions 1 sd apart at 1 seed: P(same order in both) = P(concordant) of two N(1, 2) signs
    p = st.norm.cdf(1 / math.sqrt(2))
    two = expected_tau(np.array([0.0, 1.0, 100.0]), np.ones(3), 1, n_sim=40000)
    assert two == pytest.approx((2 + (p**2 + (1 - p) ** 2) - 2 * p * (1 - p)) / 3, abs=0.01)
    taus = [expected_tau(effects, np.full(5, 8.0), s) for s in (1, 3, 10, 30)]
    assert taus == sorted(taus) and taus[-1] > 0.8 > taus[0]


def test_tau_projection_seeds_for_target():
    conds = [f"c{i}" for i in range(6)]
    a = {(c, "ts", "bbox"): SideEstimate(-3.0 * i, 2.0 / math.sqrt(3), 10, 3) for i, c in enumerate(conds)}
    b = {
        (c, "ts", "bbox"): SideEstimate(-3.0 * i + 0.5, 2.0 / math.sqrt(3), 10, 3)
        for i, c in enumerate(conds)
    }
    (p,) = tau_projection(a, b, target=0.7)
    assert p["n"] == 6 and p["seeds_now"] == 3 and 0.9 < p["shrink"] <= 1.0
    need = p["seeds_for_target"]
    assert need is not None and need <= 3  # effects 3 AP apart, sd 2: three seeds rank them
    ties = {k: SideEstimate(v.delta * 0.01, v.se_seed * 5, 10, 3) for k, v in a.items()}
    (q,) = tau_projection(ties, ties, target=0.7)
    assert q["seeds_for_target"] is None  # effects far below the noise: no seed count ranks them


def _evals(rng: np.random.Generator, seeds: list[int], effects: dict[str, float], noise: float) -> dict:
    evals: dict[str, dict[int, FakePerImage]] = {c: {} for c in effects}
    for s in seeds:
        base = rng.random(20)
        for c, e in effects.items():
            x = base + e + rng.normal(0, noise)
            evals[c][s] = FakePerImage({"AP": x, "AP50": x, "AP75": x})
    return evals


def test_split_half_agrees_on_noise_and_needs_three_seeds():
    rng = np.random.default_rng(0)
    effects = {"clean": 0.0, "a": -0.01, "b": -0.05, "c": -0.1, "d": 0.0}
    res, _ = condition_results("ts", "bbox", _evals(rng, [0, 1, 2, 3], effects, 0.005))
    half = split_half(res)
    assert half is not None and half["seeds_a"] == [0, 2] and half["seeds_b"] == [1, 3]
    assert half["n"] == 4 and half["share"] >= 0.75
    (rerun,) = half["rerun"]  # effects 1-5 AP apart, seed noise 0.5 AP: a rerun ranks them alike
    assert rerun["seeds_now"] == 4 and rerun["n"] == 4 and rerun["seeds_for_target"] <= 4
    assert rerun["tau_at"][4] > 0.7
    res2, _ = condition_results("ts", "bbox", _evals(rng, [0, 1], effects, 0.005))
    assert split_half(res2) is None


# ---------------------------------------------------------------------- twingap compare on fake runs
CONDS = '["clean", "noise-1", "noise-3", "holes-2", "texture-3", "ambient-1"]'
EFFECTS = "{ noise-1 = -0.01, noise-3 = -0.08, holes-2 = -0.03, texture-3 = -0.05, ambient-1 = 0.0 }"


def _fake_run(tmp_path, name: str, seeds: str, effects: str = EFFECTS, extra: str = "") -> str:
    from twingap.study.config import load_study_config
    from twingap.study.executors import InlineExecutor
    from twingap.study.runner import run_study

    cfg_path = tmp_path / f"{name}.toml"
    cfg_path.write_text(
        f'preset = "tiny"\nstages = "fake"\nconditions = {CONDS}\nseeds = {seeds}\n{extra}\n'
        f"[train]\noverrides = {{ fake_effects = {effects} }}\n"
    )
    run_study(tmp_path / name, load_study_config(cfg_path), InlineExecutor(), progress=False)
    return str(tmp_path / name)


def _cli(args: list[str], capsys) -> tuple[int, str]:
    from twingap.cli import main

    code = main(args)
    out = capsys.readouterr()
    return code, out.out + out.err


def test_compare_agreeing_runs(tmp_path, capsys):
    a = _fake_run(tmp_path, "a", "[0, 1, 2]")
    b = _fake_run(tmp_path, "b", "[3, 4, 5]")
    code, out = _cli(["compare", a, b, "--json", str(tmp_path / "cmp.json")], capsys)
    assert code == 0, out
    assert "FAKE" in out and "seeds [0, 1, 2]" in out and "seeds [3, 4, 5]" in out
    import json

    res = json.loads((tmp_path / "cmp.json").read_text())
    assert res["n"] == 5 * 2 * 2  # conditions x test sets x IoU types
    assert res["share"] >= 0.9, res
    assert all(t["tau"] > 0.7 for t in res["tau"])
    assert "projected tau" in out and len(res["projection"]) == 4  # test sets x IoU types


def test_compare_disagreeing_runs(tmp_path, capsys):
    a = _fake_run(tmp_path, "a", "[0, 1, 2]")
    flipped = "{ noise-1 = -0.08, noise-3 = -0.01, holes-2 = 0.02, texture-3 = 0.0, ambient-1 = -0.05 }"
    b = _fake_run(tmp_path, "b", "[3, 4, 5]", effects=flipped)
    code, out = _cli(["compare", a, b], capsys)
    assert code == 0, out
    assert "NO" in out
    line = next(ln for ln in out.splitlines() if ln.startswith("agree:"))
    n_agree, n = (int(x) for x in line.split()[1::2][:2])
    assert n_agree / n < 0.5, line


def test_compare_refuses_different_studies(tmp_path, capsys):
    a = _fake_run(tmp_path, "a", "[0, 1]")
    b = _fake_run(tmp_path, "b", "[2, 3]", extra="[scenes]\ntwin_views = 5")
    code, out = _cli(["compare", a, b], capsys)
    assert code == 2 and "another study" in out and "Traceback" not in out
    assert len(out.strip().splitlines()) == 1
    code, out = _cli(["compare", a, str(tmp_path / "nope")], capsys)
    assert code == 2 and "not a study run folder" in out


def _bare_run(root, name: str, **train) -> str:
    """A run folder with only what the identity check reads: scenes, one test set, one job's settings."""
    from twingap.train.config import load_config

    run = root / name
    (run / "scenes").mkdir(parents=True)
    (run / "scenes" / "manifest.json").write_text('{"scenes_hash": "abc"}')
    (run / "testsets" / "ts").mkdir(parents=True)
    (run / "testsets" / "ts" / "gt.json").write_text('{"images": []}')
    (run / "jobs" / "clean__s0" / "model").mkdir(parents=True)
    import json

    d = load_config("quick", **train).to_dict()
    d.pop("amp_dtype")  # as written before that setting existed: its default fills in
    (run / "jobs" / "clean__s0" / "model" / "config.json").write_text(json.dumps(d))
    return str(run)


def test_compare_refuses_runs_trained_with_other_settings(tmp_path, capsys):
    a = _bare_run(tmp_path, "a", seed=0, amp_dtype="none")
    b = _bare_run(tmp_path, "b", seed=7, amp_dtype="none", lr=0.05)
    code, out = _cli(["compare", a, b], capsys)
    assert code == 2 and "other settings (['lr'])" in out
    from twingap.study.replication import study_identity

    same = _bare_run(tmp_path, "c", seed=9, amp_dtype="none")
    assert study_identity(a) == study_identity(same)  # the seed is not part of the recipe


def test_same_test_frames_in_another_checkout_are_the_same_study(tmp_path):
    """Two clones of the repo (or two machines) write absolute image paths that differ: same study."""
    import json

    from twingap.study.replication import study_identity

    def gt(root: str, area: int = 100) -> str:
        return json.dumps(
            {
                "images": [
                    {"id": 2000001, "file_name": f"{root}/0002/000001-color.png", "frame_id": "0002/000001"}
                ],
                "annotations": [{"id": 1, "image_id": 2000001, "category_id": 5, "area": area}],
                "categories": [{"id": 5, "name": "006_mustard_bottle"}],
            }
        )

    a = _bare_run(tmp_path, "a", seed=0)
    b = _bare_run(tmp_path, "b", seed=3)
    c = _bare_run(tmp_path, "c", seed=4)
    (tmp_path / "a" / "testsets" / "ts" / "gt.json").write_text(gt("/work/main/data"))
    (tmp_path / "b" / "testsets" / "ts" / "gt.json").write_text(gt("/tmp/clone/data"))
    (tmp_path / "c" / "testsets" / "ts" / "gt.json").write_text(gt("/work/main/data", area=101))
    assert study_identity(a)["test_sets"] == study_identity(b)["test_sets"]
    assert study_identity(a)["test_sets"] != study_identity(c)["test_sets"]  # other ground truth


# ---------------------------------------------------------------------- compare across machines
def _scenes(run: str, n: int = 6, seed: int = 0) -> list:
    """A few scenes with cameras, objects and a background image inside the run (as real runs have)."""
    from pathlib import Path

    from PIL import Image
    from scipy.spatial.transform import Rotation

    from twingap.render.scene import BackgroundSpec, CameraSpec, ObjectSpec, ResponseSpec, SceneSpec

    rng = np.random.default_rng(seed)
    bg = Path(run) / "scenes" / "env" / "0000" / "background.png"
    bg.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.arange(24 * 32 * 3, dtype=np.uint8).reshape(24, 32, 3)).save(bg)

    def pose(t) -> np.ndarray:
        T = np.eye(4)
        T[:3, :3] = Rotation.random(random_state=rng).as_matrix()
        T[:3, 3] = t
        return T

    K = [[533.389, 0.0, 156.24345], [0.0, 533.7435, 120.40545], [0.0, 0.0, 1.0]]
    return [
        SceneSpec(
            f"compose/0000/{i:06d}",
            CameraSpec(K, 320, 240, pose([0.0, 0.0, 0.6])),
            [ObjectSpec("011_banana", 10, pose(rng.uniform(-0.1, 0.1, 3))) for _ in range(3)],
            ambient=float(rng.uniform(0.8, 1.2)),
            background=BackgroundSpec("image", path=str(bg)),
            response=ResponseSpec(  # as calibration fits it
                color_matrix=[[0.26, 0.0002, 0.004], [-0.0039, 0.35, -0.0009], [0.0032, 0.0039, 0.45]],
                tone=[[1.46025, -0.46025]] * 3,
            ),
            seed=i,
        )
        for i in range(n)
    ]


def _set_scenes(run: str, scenes: list) -> None:
    """Replace a run's training scenes (and their hash in its manifest)."""
    import json
    from pathlib import Path

    from twingap.render.scene import save_scenes, scenes_hash

    save_scenes(Path(run) / "scenes" / "train_scenes.json", scenes)
    man_path = Path(run) / "scenes" / "manifest.json"
    man = json.loads(man_path.read_text())
    man["scenes_hash"] = scenes_hash(scenes)
    man_path.write_text(json.dumps(man))


def _perturbed(scenes: list, rel: float, seed: int = 1) -> list:
    """A copy of scenes with every pose entry, intrinsic and ambient times (1 + rel * N(0, 1))."""
    import copy

    rng = np.random.default_rng(seed)
    out = copy.deepcopy(scenes)
    for s in out:
        s.camera.K = s.camera.K * (1 + rel * rng.standard_normal((3, 3)))
        s.camera.cam_T_world[:3] *= 1 + rel * rng.standard_normal((3, 4))
        for o in s.objects:
            o.world_T_obj[:3] *= 1 + rel * rng.standard_normal((3, 4))
        s.ambient *= 1 + rel * rng.standard_normal()
    return out


def test_compare_runs_whose_scenes_differ_by_float_noise(tmp_path, capsys):
    """The same study on two machines: scenes equal but for the last bits, hashes differ; compared."""
    import json

    from twingap.render.scene import scenes_hash

    a = _fake_run(tmp_path, "a", "[0, 1, 2]")
    b = _fake_run(tmp_path, "b", "[3, 4, 5]")
    scenes = _scenes(a)
    noisy = _perturbed(_scenes(b), 1e-15)
    assert scenes_hash(noisy) != scenes_hash(_scenes(b))  # the hash sees the last bits
    noisy[3].background.color = (1, 0, 0)  # a median of inpainted pixels one level off
    for s in noisy:  # a calibration fit moved by float noise: its coefficients trade off
        s.response.tone = [[1.46025 + 7e-5, -0.46025 - 7e-5]] * 3
        s.response.color_matrix[1][0] -= 1.3e-5
    _set_scenes(a, scenes)
    _set_scenes(b, noisy)
    code, out = _cli(["compare", a, b, "--json", str(tmp_path / "cmp.json")], capsys)
    assert code == 0, out
    assert "same study: config, frames, models, test sets, twingap" in out
    assert "training scenes: scenes_hash differs" in out and "within the tolerance" in out
    res = json.loads((tmp_path / "cmp.json").read_text())
    d = res["scenes"]["difference"]
    assert res["scenes"]["same_hash"] is False and d["n_scenes"] == 6 and d["n_objects"] == 18
    assert 0 < d["translation_m"] < 1e-14 and 0 < d["rotation_rad"] < 1e-13 and 0 < d["projection_px"] < 1e-10
    assert 0 < d["intrinsics_px"] < 1e-11 and d["other_relative"] < 1e-14
    assert d["files"] == 1 and d["files_differ"] == 0  # the background, found inside each run
    assert d["colour_levels"] == 1 and "background colours differ by up to 1 levels" in out
    assert 0 < d["response_mean_levels"] < 0.1 < d["response_levels"] < 2, d  # steepest near black
    assert "camera response (fitted by calibration) differs by" in out
    assert f"translation {d['translation_m']:.3g} m" in out
    assert res["share"] >= 0.9  # the replication check itself runs as before


def test_compare_refuses_scenes_a_millimetre_apart_and_says_by_how_much(tmp_path, capsys):
    a = _fake_run(tmp_path, "a", "[0, 1]")
    b = _fake_run(tmp_path, "b", "[2, 3]")
    moved = _scenes(b)
    moved[4].objects[1].world_T_obj[0, 3] += 0.001  # 1 mm along x
    _set_scenes(a, _scenes(a))
    _set_scenes(b, moved)
    code, out = _cli(["compare", a, b], capsys)
    assert code == 2 and "Traceback" not in out and len(out.strip().splitlines()) == 1, out
    assert "beyond the tolerance: translation 0.001 m > 1e-06" in out
    assert "in scene 'compose/0000/000004'" in out and " px apart" in out
    code, out = _cli(["compare", a, b, "--scene-tol", "0.002"], capsys)  # a looser tolerance accepts it
    assert code == 0 and "translation 0.001 m" in out, out
    brighter = _scenes(b)
    brighter[1].ambient += 0.01  # a calibration fit that moved: other floats, relative to max(1, |x|)
    _set_scenes(b, brighter)
    code, out = _cli(["compare", a, b], capsys)
    assert code == 2 and "other floats (scene compose/0000/000001.ambient) 0.01 relative > 0.001" in out, out
    code, out = _cli(["compare", a, b, "--float-tol", "0.02"], capsys)
    assert code == 0 and "other floats 0.01 relative (scene compose/0000/000001.ambient)" in out, out
    recalibrated = _scenes(b)
    recalibrated[0].response.tone = [[1.3, -0.3]] * 3  # another fit: the pixels change
    _set_scenes(b, recalibrated)
    code, out = _cli(["compare", a, b], capsys)
    assert code == 2 and "camera response (mean)" in out and "8-bit levels > 0.1" in out, out
    other = _scenes(b)
    other[2].objects[0].model = "025_mug"
    _set_scenes(b, other)
    code, out = _cli(["compare", a, b], capsys)
    assert code == 2 and "training scenes differ in content, not only in float noise" in out, out
    assert "objects[0].model: '011_banana' against '025_mug'" in out


def test_compare_refuses_other_inputs_naming_them(tmp_path, capsys):
    import json
    from pathlib import Path

    a = _fake_run(tmp_path, "a", "[0, 1]")
    b = _fake_run(tmp_path, "b", "[2, 3]")
    ident = json.loads((Path(a) / "scenes" / "manifest.json").read_text())["identity"]
    assert len(ident["frames"]) == 64 and len(ident["models"]) == 64 and ident["twingap"]
    man_path = Path(b) / "scenes" / "manifest.json"
    man = json.loads(man_path.read_text())
    man["identity"]["models"] = "0" * 64
    man_path.write_text(json.dumps(man))
    code, out = _cli(["compare", a, b], capsys)
    assert code == 2 and "another study: its model library differs" in out, out
    man["identity"] = {**ident, "twingap": "0.0.1"}
    man_path.write_text(json.dumps(man))
    code, out = _cli(["compare", a, b], capsys)
    assert code == 2 and "made with twingap 0.0.1" in out, out


def test_compare_older_runs_without_a_recorded_identity(tmp_path, capsys):
    """Runs made before identities were recorded compare as before, and say what they lack."""
    import json
    from pathlib import Path

    a = _fake_run(tmp_path, "a", "[0, 1, 2]")
    b = _fake_run(tmp_path, "b", "[3, 4, 5]")
    for run in (a, b):
        man_path = Path(run) / "scenes" / "manifest.json"
        man = json.loads(man_path.read_text())
        del man["identity"]
        man_path.write_text(json.dumps(man))
    code, out = _cli(["compare", a, b], capsys)
    assert code == 0 and "training scenes: identical" in out, out
    assert "not recorded by A (made before twingap recorded them): frames, models" in out
    _set_scenes(a, _scenes(a))  # and their scenes are measured when the hashes differ
    _set_scenes(b, _perturbed(_scenes(b), 1e-15))
    code, out = _cli(["compare", a, b], capsys)
    assert code == 0 and "scenes_hash differs" in out, out
    (Path(b) / "scenes" / "train_scenes.json").unlink()  # nothing to measure: refused as before
    code, out = _cli(["compare", a, b], capsys)
    assert code == 2 and "its training scenes differ (scenes_hash)" in out


def test_settings_that_do_not_change_the_recipe_are_not_its_identity(tmp_path):
    from twingap.study.replication import study_identity

    a = _bare_run(tmp_path, "a", seed=0, threads=1, device="cpu", amp_dtype="none")
    b = _bare_run(tmp_path, "b", seed=1, threads=4, device="cuda", amp_dtype="bfloat16")
    assert study_identity(a)["recipe"] == study_identity(b)["recipe"]


def test_folder_hash_is_content_not_place(tmp_path):
    import shutil

    from twingap.study.identity import folder_hash, frames_hash

    root = tmp_path / "data"
    for v in ("0000", "0001"):
        (root / v).mkdir(parents=True)
        (root / v / "000001-color.png").write_bytes(v.encode())
    shutil.copytree(root, tmp_path / "copy")
    assert folder_hash(root) == folder_hash(tmp_path / "copy")
    assert frames_hash(root, ["0000"]) == frames_hash(tmp_path / "copy", ["0000"])
    (tmp_path / "copy" / "0001" / "000001-color.png").write_bytes(b"x")
    assert frames_hash(root, ["0000"]) == frames_hash(tmp_path / "copy", ["0000"])  # another video
    assert frames_hash(root, ["0000", "0001"]) != frames_hash(tmp_path / "copy", ["0000", "0001"])
    assert frames_hash(root, ["0002"]) is None


def test_scene_difference_measures_the_files_the_scenes_name(tmp_path):
    """Background meshes (vertices, metres) and inpainted images (levels), found inside each run."""
    import trimesh
    from PIL import Image

    from twingap.render.scene import BackgroundSpec, save_scenes
    from twingap.study.identity import SceneTolerance, scene_difference

    def run(name: str, vertex_shift: float, rows: int) -> str:
        root = tmp_path / name
        scenes = _scenes(str(root), n=2)
        env = root / "scenes" / "env" / "0000"
        mesh = trimesh.creation.box((0.5, 0.5, 0.01))
        mesh.vertices += vertex_shift
        mesh.export(env / "background.glb")
        img = np.asarray(Image.open(env / "background.png")).astype(int)
        img[:rows] = np.clip(img[:rows] + 3, 0, 255)  # 3 levels brighter
        Image.fromarray(img.astype(np.uint8)).save(env / "background.png")
        scenes[1].background = BackgroundSpec("mesh", path=str(env / "background.glb"))
        save_scenes(root / "scenes" / "train_scenes.json", scenes)
        return str(root)

    a = run("a", 0.0, 0)
    d = scene_difference(a, run("b", 1e-7, 1))  # float32 vertices: 1e-7 m is a few ulps
    assert d.files == 2 and d.files_differ == 2 and d.structure == []
    assert 0 < d.mesh_m < 1e-6 and d.image_levels == 3 and 0 < d.image_mean_levels < 0.2
    assert d.exceeded(SceneTolerance()) == []
    far = scene_difference(a, run("c", 1e-3, 24))
    assert far.mesh_m == pytest.approx(1e-3, rel=1e-3) and 2 < far.image_mean_levels <= 3
    assert far.exceeded(SceneTolerance()) == [
        f"background mesh vertices {far.mesh_m:.3g} m > 1e-06",
        f"background images (mean) {far.image_mean_levels:.3g} 8-bit levels > 1",
    ]


def test_config_identity_leaves_out_seeds_and_what_does_not_change_the_recipe():
    from twingap.study.config import load_study_config
    from twingap.study.identity import config_identity, identity_differences

    base = load_study_config(None, "quick")
    ident = config_identity(base.to_dict())
    other = load_study_config(None, "quick")
    other.seeds, other.conditions = [7, 8], ["clean", "noise-3"]
    other.executor.workers, other.stats.ci = 12, 0.9
    other.train.overrides = {"threads": 4, "device": "cuda", "iterations": ident["train"]["iterations"]}
    other.frames_root = "/elsewhere/ycbv_real_frames"  # enters as the frames' content hash
    assert config_identity(other.to_dict()) == ident
    other.train.overrides = {"lr": 0.05}
    other.scenes.twin_views = 5
    a = {"config": ident, "frames": None, "models": None, "twingap": "0.1.0", "test_sets": {"t": "h"}}
    b = {**a, "config": config_identity(other.to_dict())}
    a["recipe"] = b["recipe"] = None
    assert identity_differences(a, b) == ["its configuration differs (scenes.twin_views, train.lr)"]
