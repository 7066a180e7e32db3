"""What makes two runs runs of the same study, and how far apart their derived training scenes are.

A study is defined by its configuration (seeds aside, and the settings that change how fast it
runs, not what it computes), the content of its inputs (the twinned videos' frames, the model
library, the test sets' ground truth) and the twingap version. :func:`study_identity` collects
these from a run folder; :func:`identity_differences` names the parts in which two runs differ.

The training scenes (``scenes/train_scenes.json``) are *derived* from those inputs by float
arithmetic (twin poses, calibration, sampling), so the same study run on two machines (another
numpy, another CPU) writes scenes that differ in the last bits of their floats, and their
``scenes_hash`` differs. :func:`scene_difference` measures how far apart two scene sets are: the
largest difference of any camera or object pose (translation in metres, rotation as an angle in
radians and as the largest matrix entry), of the intrinsics (pixels), of the projections of
points around each object (pixels), of the camera response's output (8-bit levels: calibration
fits it, and a fit amplifies float noise into its coefficients), of every other float (lights,
ambient; relative) and of the files the scenes name (background images in 8-bit levels: largest
and mean difference; background meshes' vertices in metres). ``twingap compare`` accepts the two runs
when every figure is within :class:`SceneTolerance`.

The identity's input hashes are recorded in ``scenes/manifest.json`` (``"identity"``) when a
study builds its scenes; runs made before that have none, and their identity is what they
recorded (configuration, twingap version, test sets, training settings).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np

from twingap.errors import TwingapError
from twingap.io import dumps_json, read_json, sha256_bytes, sha256_file

if TYPE_CHECKING:
    from twingap.study.config import StudyConfig

#: Training settings that change how a model is computed (device, threads, kernels, precision:
#: other floats, as on another machine) or logged, not the recipe: two runs that differ only in
#: these are runs of one study.
NOT_RECIPE = frozenset(
    {
        "seed",
        "device",
        "threads",
        "checkpoint_every",
        "log_every",
        "amp_dtype",
        "channels_last",
        "fast_kernels",
    }
)

#: Parts of the study configuration that define it (the rest: seeds, conditions, executor,
#: statistics, cost table, name; the data folders enter as content hashes).
CONFIG_KEYS = ("stages", "twin_videos", "scenes", "render", "train")

#: Points around each object's origin whose projections are compared: the origin and +-5 cm
#: along each object axis (a 10 cm object), metres.
_PROBE = np.array(
    [[0, 0, 0], [0.05, 0, 0], [-0.05, 0, 0], [0, 0.05, 0], [0, -0.05, 0], [0, 0, 0.05], [0, 0, -0.05]], float
)
#: Linear radiances at which two camera responses are compared: 0..10 per channel, denser near 0
#: (the raster renderer's radiance: albedo times light intensity, up to ~10 with the calibrated lights).
_RADIANCE = (np.linspace(0, 1, 17) ** 2 * 10.0)[
    np.stack(np.meshgrid(*[np.arange(17)] * 3), -1).reshape(-1, 3)
]
#: Response fields whose effect is measured (in output levels) rather than compared as floats.
_RESPONSE_CURVE = ("exposure", "white_balance", "gamma", "color_matrix", "tone")
_IMAGE_EXT = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
_MESH_EXT = (".glb", ".gltf", ".ply", ".obj", ".stl", ".off")


# ---------------------------------------------------------------------- input hashes
def folder_hash(root: str | Path) -> str:
    """SHA-256 of a folder's content: every file's relative path and bytes (hidden files skipped).

    The folder's own location does not count: two copies of the same data hash the same.
    """
    root = Path(root)
    h = hashlib.sha256()
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    for p in files:
        rel = p.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        h.update(f"{rel.as_posix()}\0{sha256_file(p)}\n".encode())
    return h.hexdigest()


def _video_dir(root: Path, video: str) -> Path | None:
    """The folder of a video / BOP scene under a dataset root (``root/v`` or ``root/<split>/v``)."""
    names = [video] + ([f"{int(video):06d}"] if video.isdigit() else [])
    for name in names:
        for cand in [root / name, *sorted(root.glob(f"*/{name}"))]:
            if cand.is_dir():
                return cand
    return None


def frames_hash(root: str | Path, videos: list[str]) -> str | None:
    """Content hash of the frames a study twins: the folders of ``videos`` (all of ``root`` if empty).

    None when the folder (or a video's folder) does not exist.
    """
    root = Path(root)
    if not root.is_dir():
        return None
    if not videos:
        return folder_hash(root)
    per_video = {}
    for v in videos:
        d = _video_dir(root, str(v))
        if d is None:
            return None
        per_video[str(v)] = folder_hash(d)
    return sha256_bytes(dumps_json(per_video, indent=None).encode())


def input_hashes(cfg: StudyConfig) -> dict[str, Any]:
    """What a study records of its inputs when it builds its scenes (``scenes/manifest.json``).

    Returns:
        ``{"frames": hash of the twinned videos' frames, "models": hash of the model library folder,
        "twingap": version}``; a hash is None where its folder does not exist or cannot be read.
    """
    from twingap import __version__

    out: dict[str, Any] = {"frames": None, "models": None, "twingap": __version__}
    with contextlib.suppress(OSError):  # unreadable: not recorded (and not compared)
        out["frames"] = frames_hash(cfg.frames_root_path(), list(cfg.twin_videos))
    with contextlib.suppress(OSError):
        models = cfg.models_root_path()
        out["models"] = folder_hash(models) if models.is_dir() else None
    return out


# ---------------------------------------------------------------------- the identity of a run
def recipe_of(train: dict[str, Any]) -> dict[str, Any]:
    """A training config dict without the settings that are not part of the recipe (:data:`NOT_RECIPE`)."""
    return {k: v for k, v in train.items() if k not in NOT_RECIPE}


def config_identity(cfg_dict: dict[str, Any]) -> dict[str, Any]:
    """The defining part of a study configuration (:data:`CONFIG_KEYS`), training settings resolved.

    ``[train]`` becomes the training preset with its overrides applied, less :data:`NOT_RECIPE`
    and the stages' knobs (the fake stages' ``fake_*``), so ``preset = "quick"`` and the same
    settings spelled out compare equal, and so do configurations written before a setting existed
    (its default fills in).
    """
    from twingap.study.config import StudyConfig
    from twingap.train.config import PRESETS

    try:
        d = StudyConfig.from_dict(cfg_dict).to_dict()  # defaults filled in
    except (TwingapError, TypeError, ValueError):  # written by another version: as recorded
        d = dict(cfg_dict)
    out = {k: d.get(k) for k in CONFIG_KEYS}
    train = d.get("train")
    with contextlib.suppress(TwingapError, KeyError, TypeError, ValueError, AttributeError):
        over = dict(train.get("overrides") or {})
        knobs = set(_stage_knobs(str(d.get("stages")))) | {k for k in over if k.startswith("fake_")}
        opts = {k: v for k, v in over.items() if k not in knobs}
        out["train"] = recipe_of(PRESETS[train["preset"]].replace(**opts).to_dict())
    return out


def _stage_knobs(stages: str) -> tuple[str, ...]:
    """The ``[train] overrides`` keys that are knobs of the stages, not training settings."""
    from twingap.study.stages import load_stages

    try:
        return tuple(load_stages(stages).train_knobs)
    except TwingapError:
        return ()


def _recipe(run_dir: Path) -> dict[str, Any] | None:
    """The training settings of the run's first trained job, less :data:`NOT_RECIPE` (None: no model)."""
    for cfg_path in sorted((run_dir / "jobs").glob("*/model/config.json")):
        from twingap.train.config import TrainConfig

        return recipe_of(TrainConfig.from_dict(read_json(cfg_path)).to_dict())
    return None


def study_identity(run_dir: str | Path) -> dict[str, Any]:
    """What must be equal for two runs to be runs of the same study (None: not recorded by the run).

    Returns:
        ``{"config": the defining configuration (:func:`config_identity`) or None without
        ``study.json``, "frames", "models": input content hashes (recorded since identities were;
        None before), "twingap": version, "test_sets": {name: ground-truth content hash},
        "recipe": the settings of a trained job without the seed (None where no job has trained),
        "scenes_hash": the derived training scenes' hash}``.

    Raises:
        TwingapError: The folder is not a study run (no ``scenes/manifest.json``).
    """
    from twingap.data.coco import gt_content_hash

    run_dir = Path(run_dir)
    scenes = run_dir / "scenes" / "manifest.json"
    if not scenes.is_file():
        raise TwingapError("not a study run folder (no scenes/manifest.json)", run_dir)
    man = read_json(scenes)
    recorded = man.get("identity") or {}
    study = run_dir / "study.json"
    return {
        "config": config_identity(read_json(study)) if study.is_file() else None,
        "frames": recorded.get("frames"),
        "models": recorded.get("models"),
        "twingap": recorded.get("twingap") or (man.get("versions") or {}).get("twingap"),
        "test_sets": {
            gt.parent.name: gt_content_hash(gt) for gt in sorted((run_dir / "testsets").glob("*/gt.json"))
        },
        "recipe": _recipe(run_dir),
        "scenes_hash": man.get("scenes_hash"),
    }


def _dict_diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted keys at which two nested dicts differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _dict_diff(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if dumps_json(a) == dumps_json(b) else [prefix.rstrip(".")]


def identity_differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """What differs between two identities (:func:`study_identity`), in words; empty: the same study.

    Only parts both runs recorded are compared; the scenes hash is not (see :func:`scene_difference`).
    """
    out = []
    if a["config"] is not None and b["config"] is not None:
        keys = _dict_diff(a["config"], b["config"])
        if keys:
            out.append(f"its configuration differs ({', '.join(keys)})")
    for part, what in (("frames", "twinned frames differ"), ("models", "model library differs")):
        if a[part] and b[part] and a[part] != b[part]:
            out.append(f"its {what} (content hash)")
    if a["twingap"] and b["twingap"] and a["twingap"] != b["twingap"]:
        out.append(f"it was made with twingap {b['twingap']}, this one with {a['twingap']}")
    common = sorted(set(a["test_sets"]) & set(b["test_sets"]))
    out += [f"test set {ts!r} has other frames" for ts in common if a["test_sets"][ts] != b["test_sets"][ts]]
    if not common:
        out.append("no test set in common")
    if a["recipe"] and b["recipe"] and a["recipe"] != b["recipe"]:
        keys = sorted(
            k for k in set(a["recipe"]) | set(b["recipe"]) if a["recipe"].get(k) != b["recipe"].get(k)
        )
        out.append(f"its models trained with other settings ({keys})")
    return out


def not_recorded(ident: dict[str, Any]) -> list[str]:
    """Parts of an identity the run did not record (made before they were)."""
    return [k for k in ("config", "frames", "models", "twingap") if not ident[k]]


# ---------------------------------------------------------------------- derived scenes
@dataclass(frozen=True)
class SceneTolerance:
    """The largest differences between two runs' derived training scenes accepted as one study.

    Attributes:
        geometry: Translations and mesh vertices in metres, rotations in radians, intrinsics in
            pixels. 1e-6 (a micrometre, a microradian) is ten orders of magnitude above float64
            noise (~1e-16 relative) and far below what changes a rendered pixel.
        relative: Every other float (lights, ambient, sensor noise), as a difference relative to
            ``max(1, |value|)``. Lights and ambient are fitted by calibration too and written
            rounded to 6 decimals; 1e-3 leaves room for a fit that amplifies float noise.
        response_mean_levels: The camera response (colour matrix, exposure, white balance,
            gamma, tone curve): the mean difference of its output over a grid of radiances, 8-bit
            levels. Calibration's fit amplifies float noise into these coefficients: the quick
            preset's scenes built with numpy and OpenBLAS held to AVX2 moved a tone coefficient by
            2.2e-4 (poses: at most 1.1e-15 m, 1.4e-15 rad) and the response's output by 0.0034
            levels on average (0.75 at most); the two sample videos' calibrations differ by 17.
        image_mean_levels: Background images (inpainted real frames): their mean absolute
            difference, 8-bit levels; also the largest difference of the integer background
            colours (a median of those pixels). Inpainting (OpenCV's Telea) computes in floats, so
            another build may move a few inpainted pixels by a few levels; another frame moves the
            mean by tens of levels.
    """

    geometry: float = 1e-6
    relative: float = 1e-3
    image_mean_levels: float = 1.0
    response_mean_levels: float = 0.1


@dataclass
class SceneDiff:
    """How far two scene sets differ (see the module docstring); 0 where nothing of that kind differs.

    ``structure`` lists the first differences that are not float noise (ids, models, counts, paths).
    """

    n_scenes: int = 0
    n_objects: int = 0
    translation_m: float = 0.0
    rotation_rad: float = 0.0
    rotation_entry: float = 0.0
    intrinsics_px: float = 0.0
    projection_px: float = 0.0
    other_relative: float = 0.0
    other_at: str = ""
    files: int = 0
    files_differ: int = 0
    image_levels: float = 0.0
    image_mean_levels: float = 0.0
    colour_levels: float = 0.0
    response_levels: float = 0.0
    response_mean_levels: float = 0.0
    mesh_m: float = 0.0
    structure: list[str] = field(default_factory=list)
    worst_scene: str = ""  # the scene of the largest projection difference

    def exceeded(self, tol: SceneTolerance) -> list[str]:
        """The figures above ``tol``, in words (empty: within tolerance)."""
        g = tol.geometry
        checks = [
            ("translation", self.translation_m, g, "m"),
            ("rotation", self.rotation_rad, g, "rad"),
            ("intrinsics", self.intrinsics_px, g, "px"),
            ("background mesh vertices", self.mesh_m, g, "m"),
            (f"other floats ({self.other_at})", self.other_relative, tol.relative, "relative"),
            ("background images (mean)", self.image_mean_levels, tol.image_mean_levels, "8-bit levels"),
            ("background colours", self.colour_levels, tol.image_mean_levels, "8-bit levels"),
            ("camera response (mean)", self.response_mean_levels, tol.response_mean_levels, "8-bit levels"),
        ]
        return [f"{name} {v:.3g} {unit} > {t:g}" for name, v, t, unit in checks if v > t]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def _rot_angle(Ra: np.ndarray, Rb: np.ndarray) -> np.ndarray:
    """Angle (radians) between rotations, well-conditioned near 0: ``2 asin(|Ra - Rb|_F / 2 sqrt 2)``."""
    fro = np.linalg.norm(Ra - Rb, axis=(-2, -1))
    return 2 * np.arcsin(np.clip(fro / (2 * math.sqrt(2)), 0, 1))


def _locate(path: str, run_dir: Path, cache: dict[str, str | None]) -> str | None:
    """``path`` relative to ``run_dir``: the longest tail of it that exists under ``run_dir``.

    A run folder copied from another machine keeps the absolute paths it was built at; its files
    are found again by their path inside the run. None: not inside the run.
    """
    if path not in cache:
        parts = PurePosixPath(path.replace("\\", "/")).parts[1:]
        cache[path] = next(
            ("/".join(parts[i:]) for i in range(len(parts)) if run_dir.joinpath(*parts[i:]).exists()), None
        )
    return cache[path]


def _is_colour(where: str) -> bool:
    """Whether a walked JSON location is an 8-bit colour (``background.color[0]``, ``background_rgb``)."""
    key = where.rsplit(".", 1)[-1].split("[", 1)[0].lower()
    return key.endswith(("color", "colour", "rgb"))


class _Walker:
    """Compares two scene sets' JSON (see :func:`scene_difference`)."""

    def __init__(self, root_a: Path, root_b: Path) -> None:
        self.roots = (root_a, root_b)
        self.d = SceneDiff()
        self.files: dict[tuple[str, str], str] = {}  # (path in A, path in B) -> where
        self._where: dict[str, str | None] = {}
        self._where_b: dict[str, str | None] = {}

    def struct(self, where: str, what: str) -> None:
        if len(self.d.structure) < 5:
            self.d.structure.append(f"{where}: {what}")

    def walk(self, a: Any, b: Any, where: str) -> None:
        if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
            if a != b or type(a) is not type(b):
                self.struct(where, f"{a!r} against {b!r}")
        elif isinstance(a, (int, float)) and isinstance(b, (int, float)):
            if isinstance(a, int) and isinstance(b, int):
                if _is_colour(where):  # 8-bit colours (a median of inpainted pixels): levels
                    self.d.colour_levels = max(self.d.colour_levels, float(abs(a - b)))
                elif a != b:
                    self.struct(where, f"{a} against {b}")
                return
            rel = abs(a - b) / max(1.0, abs(a), abs(b))
            if not rel <= self.d.other_relative:  # NaN counts as a difference
                self.d.other_relative, self.d.other_at = (rel if rel == rel else math.inf), where
        elif isinstance(a, str) and isinstance(b, str):
            self.string(a, b, where)
        elif isinstance(a, dict) and isinstance(b, dict):
            if set(a) != set(b):
                self.struct(where, f"fields {sorted(set(a) ^ set(b))} in one run only")
            for k in sorted(set(a) & set(b)):
                self.walk(a[k], b[k], f"{where}.{k}")
        elif isinstance(a, list) and isinstance(b, list):
            if len(a) != len(b):
                self.struct(where, f"{len(a)} items against {len(b)}")
            for i, (x, y) in enumerate(zip(a, b, strict=False)):
                self.walk(x, y, f"{where}[{i}]")
        else:
            self.struct(where, f"{type(a).__name__} against {type(b).__name__}")

    def string(self, a: str, b: str, where: str) -> None:
        abs_a, abs_b = PurePosixPath(a).is_absolute(), PurePosixPath(b).is_absolute()
        if not (abs_a and abs_b):
            if a != b:
                self.struct(where, f"{a!r} against {b!r}")
            return
        ra = _locate(a, self.roots[0], self._where)
        rb = _locate(b, self.roots[1], self._where_b)
        if ra is not None or rb is not None:  # inside the run folders: same place in both
            if ra != rb:
                self.struct(where, f"{ra or a!r} against {rb or b!r}")
            elif (self.roots[0] / ra).is_file():
                self.files.setdefault((str(self.roots[0] / ra), str(self.roots[1] / rb)), where)
            return
        if PurePosixPath(a).name != PurePosixPath(b).name:  # outside: data folders of two checkouts
            self.struct(where, f"{a!r} against {b!r}")
        elif Path(a).is_file() and Path(b).is_file():
            self.files.setdefault((a, b), where)

    def response(self, a: Any, b: Any, where: str) -> None:
        """Two camera responses: their outputs' largest and mean difference on :data:`_RADIANCE` (levels).

        Calibration fits the colour matrix and tone curve, and a fit amplifies float noise into its
        coefficients (collinear terms trade off), so the response is judged by what it does to the
        pixels: the mean over the radiance grid (the largest is reported; it sits where a channel's
        value is near 0, where the gamma curve is steepest).
        """
        from twingap.render.response import response_float
        from twingap.render.scene import ResponseSpec

        if not (isinstance(a, dict) and isinstance(b, dict)):
            self.walk(a, b, where)
            return
        curve_a = {k: a[k] for k in _RESPONSE_CURVE if k in a}
        curve_b = {k: b[k] for k in _RESPONSE_CURVE if k in b}
        self.walk(
            {k: v for k, v in a.items() if k not in curve_a},
            {k: v for k, v in b.items() if k not in curve_b},
            where,
        )
        if set(curve_a) != set(curve_b):
            self.struct(where, f"fields {sorted(set(curve_a) ^ set(curve_b))} in one run only")
            return
        if dumps_json(curve_a) == dumps_json(curve_b):
            return
        try:
            ya = response_float(_RADIANCE, ResponseSpec(**curve_a))
            yb = response_float(_RADIANCE, ResponseSpec(**curve_b))
        except (TwingapError, TypeError, ValueError) as exc:
            self.struct(where, f"a camera response that cannot be evaluated ({exc})")
            return
        diff = np.abs(ya - yb) * 255
        self.d.response_levels = max(self.d.response_levels, float(diff.max()))
        self.d.response_mean_levels = max(self.d.response_mean_levels, float(diff.mean()))

    def scene(self, a: dict, b: dict, where: str) -> None:
        """One scene: poses, intrinsics, projections and camera response measured; the rest walked."""
        a, b = dict(a), dict(b)
        self.response(a.pop("response", None), b.pop("response", None), f"{where}.response")
        ca, cb = a.pop("camera", None), b.pop("camera", None)
        oa, ob = a.pop("objects", None), b.pop("objects", None)
        self.walk(a, b, where)
        if not (isinstance(ca, dict) and isinstance(cb, dict)) or not (
            isinstance(oa, list) and isinstance(ob, list)
        ):
            self.walk(ca, cb, f"{where}.camera")
            self.walk(oa, ob, f"{where}.objects")
            return
        ca, cb = dict(ca), dict(cb)
        try:
            Ka, Kb = np.asarray(ca.pop("K"), float), np.asarray(cb.pop("K"), float)
            Ca, Cb = np.asarray(ca.pop("cam_T_world"), float), np.asarray(cb.pop("cam_T_world"), float)
        except (KeyError, ValueError):
            self.struct(f"{where}.camera", "no K / cam_T_world in a run")
            return
        if Ka.shape != (3, 3) or Kb.shape != (3, 3) or Ca.shape != (4, 4) or Cb.shape != (4, 4):
            self.struct(f"{where}.camera", "K / cam_T_world of another shape")
            return
        self.walk(ca, cb, f"{where}.camera")
        if len(oa) != len(ob):
            self.struct(f"{where}.objects", f"{len(oa)} objects against {len(ob)}")
            return
        Wa, Wb = [], []
        for i, (x, y) in enumerate(zip(oa, ob, strict=True)):
            x, y = dict(x), dict(y)
            wa, wb = (
                np.asarray(x.pop("world_T_obj", np.eye(4)), float),
                np.asarray(y.pop("world_T_obj", np.eye(4)), float),
            )
            if wa.shape != (4, 4) or wb.shape != (4, 4):
                self.struct(f"{where}.objects[{i}]", "world_T_obj of another shape")
                return
            self.walk(x, y, f"{where}.objects[{i}]")
            Wa.append(wa)
            Wb.append(wb)
        Ta, Tb = np.stack([Ca, *Wa]), np.stack([Cb, *Wb])
        d = self.d
        d.n_scenes += 1
        d.n_objects += len(Wa)
        d.intrinsics_px = max(d.intrinsics_px, float(np.abs(Ka - Kb).max()))
        d.translation_m = max(d.translation_m, float(np.abs(Ta[:, :3, 3] - Tb[:, :3, 3]).max()))
        d.rotation_rad = max(d.rotation_rad, float(_rot_angle(Ta[:, :3, :3], Tb[:, :3, :3]).max()))
        d.rotation_entry = max(d.rotation_entry, float(np.abs(Ta[:, :3, :3] - Tb[:, :3, :3]).max()))
        if Wa:
            pts = np.c_[_PROBE, np.ones(len(_PROBE))].T  # (4, P)
            pa = np.einsum("ij,njk,kp->nip", Ca, np.stack(Wa), pts)[:, :3]  # (N, 3, P) camera frame
            pb = np.einsum("ij,njk,kp->nip", Cb, np.stack(Wb), pts)[:, :3]
            znear = float(ca.get("znear", 0.05) or 0.05)
            ok = (pa[:, 2] > znear) & (pb[:, 2] > znear)
            if ok.any():
                ua = np.einsum("ij,njp->nip", Ka, pa)
                ub = np.einsum("ij,njp->nip", Kb, pb)
                ua, ub = ua[:, :2] / ua[:, 2:3], ub[:, :2] / ub[:, 2:3]
                px = float(np.linalg.norm(ua - ub, axis=1)[ok].max())
                if px > d.projection_px:
                    d.projection_px, d.worst_scene = px, str(a.get("scene_id", where))

    def compare_files(self) -> None:
        """Files the scenes name: equal bytes, or images' level and meshes' vertex differences."""
        self.d.files = len(self.files)
        for (fa, fb), where in sorted(self.files.items()):
            if sha256_file(fa) == sha256_file(fb):
                continue
            self.d.files_differ += 1
            ext = Path(fa).suffix.lower()
            try:
                if ext in _IMAGE_EXT:
                    from PIL import Image

                    ia = np.asarray(Image.open(fa), dtype=np.int64)
                    ib = np.asarray(Image.open(fb), dtype=np.int64)
                    if ia.shape != ib.shape:
                        self.struct(where, f"image {Path(fa).name} of another size")
                        continue
                    diff = np.abs(ia - ib)
                    self.d.image_levels = max(self.d.image_levels, float(diff.max()))
                    self.d.image_mean_levels = max(self.d.image_mean_levels, float(diff.mean()))
                elif ext in _MESH_EXT:
                    import trimesh

                    va = np.asarray(trimesh.load(fa, force="mesh").vertices, float)
                    vb = np.asarray(trimesh.load(fb, force="mesh").vertices, float)
                    if va.shape != vb.shape:
                        self.struct(where, f"mesh {Path(fa).name} with another vertex count")
                        continue
                    self.d.mesh_m = max(self.d.mesh_m, float(np.abs(va - vb).max()) if va.size else 0.0)
                elif ext == ".json":
                    self.walk(read_json(fa), read_json(fb), f"{where} ({Path(fa).name})")
                else:
                    self.struct(where, f"file {Path(fa).name} differs")
            except (OSError, ValueError, TwingapError) as exc:
                self.struct(where, f"file {Path(fa).name} differs and could not be compared ({exc})")


def scene_difference(run_a: str | Path, run_b: str | Path) -> SceneDiff:
    """How far apart two runs' training scenes (``scenes/train_scenes.json``) are.

    Scene by scene (same order, same ids): camera and object poses (4x4, metres), intrinsics,
    projections of :data:`_PROBE` points around each object, every other float, and the files the
    scenes name (found inside each run folder by their path in it). Anything that is not a float
    (ids, model names, object counts, image sizes, paths inside the run) must be equal: otherwise
    ``structure`` lists the first differences.

    Raises:
        TwingapError: A run has no ``scenes/train_scenes.json``.
    """
    run_a, run_b = Path(run_a), Path(run_b)
    data = []
    for run in (run_a, run_b):
        path = run / "scenes" / "train_scenes.json"
        if not path.is_file():
            raise TwingapError("no scenes/train_scenes.json to compare the training scenes with", run)
        scenes = read_json(path)
        data.append(scenes if isinstance(scenes, list) else [scenes])
    w = _Walker(run_a, run_b)
    if len(data[0]) != len(data[1]):
        w.struct("scenes", f"{len(data[0])} against {len(data[1])}")
    for i, (a, b) in enumerate(zip(*data, strict=False)):
        if isinstance(a, dict) and isinstance(b, dict):
            w.scene(a, b, f"scene {a.get('scene_id', i)!s}")
        else:
            w.walk(a, b, f"scenes[{i}]")
    w.compare_files()
    return w.d
