"""Composed scenes: stable resting poses on the plane, no interpenetration, objects in view."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from twingap.assets.asset import ModelLibrary, default_sample_root
from twingap.data.ycbv import load_ycbv
from twingap.errors import TwingapError
from twingap.render.background import video_world
from twingap.render.compose import compose_scenes, footprint, stable_poses
from twingap.render.sampling import project_points
from twingap.render.scene import scenes_hash
from twingap.render.twin import twin_scene

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample" / "ycbv_real_frames"
OBJECTS = ["003_cracker_box", "010_potted_meat_can", "011_banana", "024_bowl", "061_foam_brick"]


@pytest.fixture(scope="module")
def library() -> ModelLibrary:
    return ModelLibrary(default_sample_root() / "models")


@pytest.fixture(scope="module")
def twins(library) -> list:
    frames = load_ycbv(SAMPLE, videos=["0002"], frames=["000001"])
    world = video_world(frames, library=library)
    s = twin_scene(frames[0], library, world.cam_T_world[frames[0].frame_id])
    s.meta["background_mesh"] = "/nonexistent/0002/background.glb"
    return [s]


@pytest.fixture(scope="module")
def composed(twins, library, tmp_path_factory) -> list:
    cache = tmp_path_factory.mktemp("stable")
    return compose_scenes(
        twins, library, 6, seed=5, objects=OBJECTS, n_objects=(3, 5), scale=0.5, cache_dir=cache
    )


def test_compose_deterministic(composed, twins, library):
    again = compose_scenes(twins, library, 6, seed=5, objects=OBJECTS, n_objects=(3, 5), scale=0.5)
    assert scenes_hash(again) == scenes_hash(composed)


def test_objects_rest_on_plane_without_interpenetration(composed, library):
    for s in composed:
        assert 1 <= len(s.objects) <= 5
        assert {o.model for o in s.objects} <= set(OBJECTS)
        grids = []
        for o in s.objects:
            _, _, hull = stable_poses(library.load(o.model))
            z = hull @ o.world_T_obj[2, :3] + o.world_T_obj[2, 3]
            assert abs(z.min()) < 1e-6, "lowest point must touch z = 0"
            grids.append(footprint(o.world_T_obj, hull))
        for i in range(len(grids)):
            for j in range(i + 1, len(grids)):
                assert not np.any(grids[i] & grids[j]), f"{s.scene_id}: footprints {i} and {j} overlap"


def test_stable_pose_is_statically_stable(library):
    T, prob, hull = stable_poses(library.load("003_cracker_box"))
    assert np.isclose(prob.sum(), 1.0)
    # most likely pose of a box: lying flat, so its lowest face is large and its centroid low
    v = hull @ T[0][:3, :3].T + T[0][:3, 3]
    assert np.count_nonzero(v[:, 2] < 1e-4) >= 3
    assert v[:, 2].max() < 0.1


def test_composed_objects_in_view(composed):
    for s in composed:
        assert (s.camera.width, s.camera.height) == (320, 240)
        uv = project_points(s, np.array([o.world_T_obj[:3, 3] for o in s.objects]))
        assert np.all((uv[:, 0] > 0) & (uv[:, 0] < 320) & (uv[:, 1] > 0) & (uv[:, 1] < 240))


def test_compose_unknown_object(twins, library):
    with pytest.raises(TwingapError, match="unknown model"):
        compose_scenes(twins, library, 1, objects=["999_nothing"])
