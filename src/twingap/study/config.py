"""Study configuration: :class:`StudyConfig`, the ``quick`` and ``paper`` presets, TOML IO.

A study is the cross product *conditions x seeds*, every job trained on the same training scenes
(sampled once per study) and scored on every test set. The configuration is plain data, written
to ``RUN_DIR/study.json`` when a study starts so that a resumed run, or a Ray worker on another
machine, sees exactly the same settings.

TOML layout (every key optional; a ``preset`` key picks the starting point)::

    preset = "quick"
    conditions = "all"            # or a list of catalogue names; "clean" is always included
    seeds = [0]

    [data]
    frames_root = "data/sample/ycbv_real_frames"
    models_root = "data/sample/models"
    twin_videos = ["0000", "0001"]

    [scenes]
    include_twins = true          # the exact real views (twin renders over the inpainted photo)
    twin_views = 120              # training scenes sampled around the twins
    composed = 160                # composed layouts on the twins' support planes
    composed_objects = "test"     # "test" (objects of the test sets), "all", or a list of names
    width = 320                   # rendered training image size, pixels
    height = 240

    [train]
    preset = "quick"              # a twingap.train TrainConfig preset
    overrides = { iterations = 400 }

    [[test_sets]]                 # replaces the preset's list when given
    name = "ycb-real"
    kind = "twinned"              # the real frames of twin_videos
    [[test_sets]]
    name = "held-out"
    kind = "heldout"
    videos = ["0002"]
    [[test_sets]]
    name = "my-lab"
    kind = "user"
    root = "/data/my_lab_bop"     # YCB-Video or BOP layout
    [[test_sets]]
    name = "my-photos"
    kind = "coco"                 # plain photos + COCO instances (polygons or RLE), no poses
    root = "/data/photos"         # the images folder (default: the annotation file's folder)
    annotations = "/data/photos/instances.json"
    category_map = { "coffee mug" = "mug" }   # optional; then same name, then same id

    [stats]
    ci = 0.95
    min_scenes = 5
    pool_seed_variance = true

    [cost]
    artist_hours = "my_hours.toml"   # optional [<condition>] hours = ...; default: the catalogue's
    hours = { "texture-3" = 8.0 }    # optional per-condition overrides

    [executor]
    workers = 1
    cpus_per_job = 2
    gpus_per_job = 0
    group_size = 0                   # models trained together per process: 0 auto (CUDA: a seed's jobs)
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from twingap.configfile import check_choice, check_keys, did_you_mean, read_toml
from twingap.errors import TwingapError

TEST_SET_KINDS = ("twinned", "heldout", "user", "coco")


def _all_conditions() -> list[str]:
    """Every catalogue condition, in display order (the default of :attr:`StudyConfig.conditions`)."""
    from twingap.artifacts.catalogue import condition_names

    return list(condition_names())


def _sample_root() -> Path:
    from twingap.assets.asset import default_sample_root

    return default_sample_root()


@dataclass
class TestSetConfig:
    """One real test set.

    Attributes:
        name: Short name used in folders and the report (letters, digits, ``-``, ``_``).
        kind: ``"twinned"``: the real frames of the twinned videos (the paper's YCB-Real);
            ``"heldout"``: real frames of videos no training scene was built from;
            ``"user"``: any real set in YCB-Video or BOP layout;
            ``"coco"``: plain photos with a COCO instances file (:mod:`twingap.data.coco_real`).
        root: Dataset folder (for ``coco``: the images folder, default the annotation file's
            folder); empty = the study's ``data.frames_root``.
        videos: Videos (YCB-Video) or scenes (BOP) to use; empty = all (for ``twinned``: the
            study's ``twin_videos``).
        max_frames: Keep at most this many frames per video (evenly spaced); 0 = all.
        annotations: ``coco`` only: the COCO instances file.
        category_map: ``coco`` only: test category name (or id) -> model name (or id); ``""``
            leaves a category unscored.
        match: ``coco`` only: ``auto`` (map, then name, then id), ``name`` or ``id``.
    """

    __test__ = False  # not a pytest class

    name: str
    kind: str = "user"
    root: str = ""
    videos: list[str] = field(default_factory=list)
    max_frames: int = 0
    annotations: str = ""
    category_map: dict[str, Any] = field(default_factory=dict)
    match: str = "auto"


@dataclass
class ScenesConfig:
    """How the training scenes are built (once per study; every condition renders them).

    Attributes:
        seed: Seed of scene sampling and of the artifacts' random draws.
        include_twins: Also train on the twins themselves: the exact real views, rendered over the
            real frame with its objects inpainted (the paper's twin renders).
        twin_views: Scenes sampled around the twins (new views of the real layouts).
        composed: Composed layouts of ``composed_objects`` on the twins' support planes.
        composed_objects: ``"test"`` (every object of the test sets), ``"all"`` (the whole
            model library) or a list of model names.
        objects_per_scene: (min, max) objects in a composed layout.
        width: Rendered image width, pixels (the twins' intrinsics are scaled to it).
        height: Rendered image height, pixels.
        max_twin_frames: Twin at most this many frames per video (evenly spaced); 0 = all.
        calibrate: Fit each twinned video's camera response and lights to its real frames.
    """

    seed: int = 0
    include_twins: bool = True
    twin_views: int = 160
    composed: int = 160
    composed_objects: str | list[str] = "test"
    objects_per_scene: tuple[int, int] = (3, 6)
    width: int = 320
    height: int = 240
    max_twin_frames: int = 0
    calibrate: bool = True


@dataclass
class RenderSection:
    """Rendering of the training sets.

    ``backend`` is ``"raster"`` or ``"cycles"`` (see :func:`twingap.render.backend.get_renderer`);
    ``options`` are backend options (raster: ``msaa``; cycles: ``samples``, ``denoise``, ...).
    """

    backend: str = "raster"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainSection:
    """Detector training: a ``twingap.train`` preset plus overrides of its fields."""

    preset: str = "quick"
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class StatsConfig:
    """Interval settings (see :mod:`twingap.study.stats`).

    Attributes:
        ci: Two-sided level of every interval.
        min_scenes: Fewest scenes (videos / BOP scenes) of a test set for which scene sampling
            enters its intervals; with fewer, the scenes are held fixed and the report says so.
        pool_seed_variance: Pool the seed variance of the paired differences over the conditions
            of a test set (more degrees of freedom; assumes alike training noise, which the
            report tests with Bartlett's test).
    """

    ci: float = 0.95
    min_scenes: int = 5
    pool_seed_variance: bool = True


@dataclass
class CostConfig:
    """Artist-hours table (a TOML path; empty = the package default) and per-condition overrides.

    ``rank_by``: the test set whose AP differences rank the fix list, or ``"mean"`` (average
    over test sets).
    """

    artist_hours: str = ""
    hours: dict[str, float] = field(default_factory=dict)
    rank_by: str = "mean"


@dataclass
class ExecutorConfig:
    """How jobs run: ``workers`` parallel jobs locally; resources each job declares (Ray).

    ``group_size``: how many jobs' models one process trains together (:mod:`twingap.train.group`).
    0 (default): automatic: where training runs on CUDA, every job of a seed in one group; on CPU
    no groups (one job per process, as before). 1: never group. N >= 2: groups of up to N jobs on
    any device (to test or benchmark the group path on CPU). With groups, ``workers`` is the
    number of groups run at a time (Ray: one task per group, declaring ``gpus_per_job``).
    """

    workers: int = 1
    cpus_per_job: float = 2
    gpus_per_job: float = 0
    threads_per_job: int = 0
    group_size: int = 0


@dataclass
class StudyConfig:
    """Everything a study needs; see the module docstring for the TOML form.

    Attributes:
        name: Preset or study name (shown in the report).
        conditions: Condition names (``"clean"`` first; it is the reference of every difference).
        seeds: Training seeds; each seed trains every condition (seeds are blocks: common
            random numbers). Two or more are needed for an interval; three or more for the
            report's split-half replication check.
        frames_root: Real frames of the twinned videos (YCB-Video or BOP layout).
        models_root: Model library folder (BOP ``models/``, an ``objects.toml`` folder, the
            sample's ``models_info.json``, or meshes; see :mod:`twingap.assets.library`).
        twin_videos: Videos (YCB-Video) or scene folders (BOP) whose frames are twinned.
        test_sets: Real test sets.
        gallery_object: Model drawn in the report's gallery of conditions.
        stages: Which stage implementations run the jobs: ``"real"``, ``"fake"`` (a
            deterministic stand-in for testing the orchestration, never real results) or
            ``"module:attribute"``.
    """

    name: str = "custom"
    conditions: list[str] = field(default_factory=_all_conditions)
    seeds: list[int] = field(default_factory=lambda: [0])
    frames_root: str = ""
    models_root: str = ""
    twin_videos: list[str] = field(default_factory=lambda: ["0000", "0001"])
    test_sets: list[TestSetConfig] = field(default_factory=list)
    scenes: ScenesConfig = field(default_factory=ScenesConfig)
    render: RenderSection = field(default_factory=RenderSection)
    train: TrainSection = field(default_factory=TrainSection)
    stats: StatsConfig = field(default_factory=StatsConfig)
    cost: CostConfig = field(default_factory=CostConfig)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    gallery_object: str = "006_mustard_bottle"
    stages: str = "real"

    # ------------------------------------------------------------------ helpers
    def frames_root_path(self) -> Path:
        """The twinned videos' dataset folder (default: the shipped sample)."""
        return Path(self.frames_root) if self.frames_root else _sample_root() / "ycbv_real_frames"

    def models_root_path(self) -> Path:
        """The model library folder (default: the shipped sample's models)."""
        return Path(self.models_root) if self.models_root else _sample_root() / "models"

    def test_set_root(self, ts: TestSetConfig) -> Path:
        """Dataset folder of a test set."""
        if ts.kind == "coco" and not ts.root:
            return Path(ts.annotations).parent
        return Path(ts.root) if ts.root else self.frames_root_path()

    def test_set_videos(self, ts: TestSetConfig) -> list[str] | None:
        """Videos of a test set (None = all of its root)."""
        if ts.kind == "coco":
            return None
        if ts.kind == "twinned" and not ts.videos:
            return list(self.twin_videos)
        return list(ts.videos) or None

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (JSON / TOML serialisable)."""
        d = asdict(self)
        d["scenes"]["objects_per_scene"] = list(self.scenes.objects_per_scene)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str | Path | None = None) -> StudyConfig:
        """Build from plain data (as written by :meth:`to_dict`), validating keys and types.

        Raises:
            TwingapError: On an unknown key or a value of the wrong type.
        """
        d = copy.deepcopy(d)
        _check_keys(d, cls, "study config", source)
        kwargs: dict[str, Any] = {}
        sections = {
            "scenes": ScenesConfig,
            "render": RenderSection,
            "train": TrainSection,
            "stats": StatsConfig,
            "cost": CostConfig,
            "executor": ExecutorConfig,
        }
        for key, value in d.items():
            if key in sections:
                if not isinstance(value, dict):
                    raise TwingapError(f"[{key}] must be a table", source)
                _check_keys(value, sections[key], f"[{key}]", source)
                if key == "scenes" and "objects_per_scene" in value:
                    value["objects_per_scene"] = tuple(value["objects_per_scene"])
                kwargs[key] = sections[key](**value)
            elif key == "test_sets":
                if not isinstance(value, list):
                    raise TwingapError("test_sets must be a list of tables ([[test_sets]])", source)
                items = []
                for item in value:
                    if not isinstance(item, dict) or "name" not in item:
                        raise TwingapError("every [[test_sets]] entry needs a name", source)
                    _check_keys(item, TestSetConfig, f"test set {item['name']!r}", source)
                    items.append(TestSetConfig(**item))
                kwargs[key] = items
            else:
                kwargs[key] = value
        return cls(**kwargs)


def _check_keys(d: dict, klass: type, what: str, source: str | Path | None) -> None:
    allowed = [f.name for f in fields(klass)] + (["preset"] if klass is StudyConfig else [])
    check_keys(d, allowed, what, source)


# ---------------------------------------------------------------------- presets
def _sample_test_sets() -> list[TestSetConfig]:
    # Twinned: the real frames the twins were built from (the paper's YCB-Real). Held out: video
    # 0002, the sample video with the most objects (6, five of them absent from 0000/0001), so the
    # generalisation score covers the most categories and instances; its objects are learnt from
    # composed layouts only.
    return [
        TestSetConfig(name="ycb-real", kind="twinned"),
        TestSetConfig(name="held-out-0002", kind="heldout", videos=["0002"]),
    ]


def _quick() -> StudyConfig:
    """The ``quick`` preset: the whole study on the shipped sample for a 2-core CPU.

    13 conditions x 3 seeds (every condition with every seed: the seed sd of each paired
    difference is measured, and the report's split-half check has two halves): 40 twins + 120 sampled
    views + 160 composed layouts at 320x240, the training stage's ``quick`` recipe (MobileNetV2-FPN
    Mask R-CNN, frozen cached body), two single-threaded jobs side by side. Twinned test set: videos
    0000 + 0001 (40 frames); held-out: video 0002 (20 frames, 6 objects, 5 of them only in composed
    layouts).
    """
    return StudyConfig(
        name="quick",
        seeds=[0, 1, 2],
        test_sets=_sample_test_sets(),
        scenes=ScenesConfig(include_twins=True, twin_views=120, composed=160, width=320, height=240),
        # msaa=1: llvmpipe's MSAA resolve cost 0.13 s of 0.23 s per 320x240 image
        render=RenderSection(options={"msaa": 1}),
        train=TrainSection(preset="quick"),
        # two single-threaded jobs side by side: on a shared 2-core CPU one torch thread per
        # process beats two (OpenMP barriers stall under contention; see TrainConfig.threads)
        executor=ExecutorConfig(workers=2, cpus_per_job=1, gpus_per_job=0),
    )


def _paper() -> StudyConfig:
    """The ``paper`` preset: the paper's scale for a GPU.

    ResNet-50-FPN, thousands of iterations, 640x480 renders, 3 seeds, more scenes.
    """
    return StudyConfig(
        name="paper",
        seeds=[0, 1, 2],
        test_sets=_sample_test_sets(),
        scenes=ScenesConfig(twin_views=1000, composed=1000, width=640, height=480),
        train=TrainSection(preset="paper"),
        executor=ExecutorConfig(workers=1, cpus_per_job=8, gpus_per_job=1),
    )


def _tiny() -> StudyConfig:
    """The ``tiny`` preset: a miniature for tests and smoke runs.

    2 conditions, tiny images, a few training iterations.
    """
    return StudyConfig(
        name="tiny",
        conditions=["clean", "texture-3"],
        seeds=[0],
        test_sets=[
            TestSetConfig(name="ycb-real", kind="twinned", max_frames=2),
            TestSetConfig(name="held-out-0002", kind="heldout", videos=["0002"], max_frames=3),
        ],
        twin_videos=["0001"],
        scenes=ScenesConfig(
            twin_views=4,
            composed=4,
            width=160,
            height=120,
            objects_per_scene=(2, 3),
            max_twin_frames=3,
            calibrate=False,
        ),
        train=TrainSection(
            preset="quick",
            overrides={
                "iterations": 4,
                "batch_size": 2,
                "image_size": [160, 120],
                "aug_variants": 1,
                "warmup_iters": 1,
                "checkpoint_every": 2,
            },
        ),
        executor=ExecutorConfig(workers=1, cpus_per_job=1),
    )


#: Study presets by name: each builds a fresh :class:`StudyConfig` (add one by adding an entry).
PRESETS: dict[str, Callable[[], StudyConfig]] = {"quick": _quick, "paper": _paper, "tiny": _tiny}


def preset(name: str) -> StudyConfig:
    """A fresh copy of the preset ``name`` (see :data:`PRESETS`).

    Raises:
        TwingapError: For an unknown preset name.
    """
    if name not in PRESETS:
        raise TwingapError(
            f"unknown study preset {name!r}{did_you_mean(name, PRESETS)} (have: {', '.join(PRESETS)})"
        )
    return PRESETS[name]()


# ---------------------------------------------------------------------- loading + validation
#: Tables whose keys are free-form (not fields): a config file's table replaces the preset's.
_REPLACED_TABLES = ("overrides", "hours", "options")


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k not in _REPLACED_TABLES:
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def load_study_config(path: str | Path | None = None, preset_name: str | None = None) -> StudyConfig:
    """Load a study configuration from a preset and/or a TOML file, validated.

    The TOML's ``preset`` key (or ``preset_name``; default ``quick``) gives the starting point;
    the file's keys override it (tables merge key by key; ``test_sets`` and the free-form maps
    ``[train] overrides``, ``[render] options`` and ``[cost] hours`` replace the preset's).

    Raises:
        TwingapError: If the file is missing or not TOML, a key is unknown, or a value is invalid
            (see :func:`validate`).
    """
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        data = read_toml(path, "study config")
    file_preset = data.pop("preset", None)
    name = preset_name or file_preset or "quick"
    base = preset(name).to_dict()
    merged = _deep_merge(base, data)
    if path is not None and "name" not in data:
        merged["name"] = f"{name}+{path.stem}"
    cfg = StudyConfig.from_dict(merged, path)
    if cfg.conditions == "all":  # type: ignore[comparison-overlap]
        cfg.conditions = _all_conditions()
    _resolve_relative(cfg, path)
    validate(cfg, path)
    return cfg


def _resolve_relative(cfg: StudyConfig, path: Path | None) -> None:
    """Make paths given in a TOML file relative to the file's folder (or the cwd) absolute."""
    base = path.parent if path is not None else Path.cwd()

    def fix(p: str) -> str:
        if not p:
            return p
        q = Path(p).expanduser()
        if not q.is_absolute():
            cand = base / q
            q = cand if cand.exists() or not (Path.cwd() / q).exists() else Path.cwd() / q
        return str(q.resolve())

    cfg.frames_root = fix(cfg.frames_root)
    cfg.models_root = fix(cfg.models_root)
    cfg.cost.artist_hours = fix(cfg.cost.artist_hours)
    for ts in cfg.test_sets:
        ts.root = fix(ts.root)
        ts.annotations = fix(ts.annotations)


def validate(cfg: StudyConfig, source: str | Path | None = None) -> StudyConfig:
    """Check a configuration; fix the order of conditions (``clean`` first).

    Raises:
        TwingapError: One line naming the problem: unknown condition, duplicate or negative
            seed, no test set, a test set whose folder is missing, a held-out set that overlaps
            the twinned videos, negative or non-numeric artist hours, bad sizes, unknown or invalid
            ``[render] options``.
    """
    if isinstance(cfg.conditions, str):
        raise TwingapError('conditions must be a list of names or "all"', source)
    known = _all_conditions()
    for cond in cfg.conditions:
        if cond not in known:
            raise TwingapError(
                f"unknown condition {cond!r}{did_you_mean(cond, known)} (known: {', '.join(known)})", source
            )
    if len(set(cfg.conditions)) != len(cfg.conditions):
        raise TwingapError("conditions are listed twice", source)
    cfg.conditions = ["clean"] + [c for c in cfg.conditions if c != "clean"]
    if not cfg.seeds or any(not isinstance(s, int) or s < 0 for s in cfg.seeds):
        raise TwingapError("seeds must be a non-empty list of non-negative integers", source)
    if len(set(cfg.seeds)) != len(cfg.seeds):
        raise TwingapError("seeds are listed twice", source)
    _validate_train(cfg, source)
    _validate_render(cfg, source)
    if not cfg.test_sets:
        raise TwingapError("the study needs at least one test set ([[test_sets]])", source)
    names = [ts.name for ts in cfg.test_sets]
    if len(set(names)) != len(names):
        raise TwingapError(f"test set names must be unique, got {names}", source)
    for ts in cfg.test_sets:
        if not ts.name or not all(ch.isalnum() or ch in "-_" for ch in ts.name):
            raise TwingapError(f"test set name {ts.name!r}: use letters, digits, '-' or '_'", source)
        if ts.kind not in TEST_SET_KINDS:
            raise TwingapError(f"test set {ts.name!r}: kind must be one of {TEST_SET_KINDS}", source)
        if ts.kind == "user" and not ts.root:
            raise TwingapError(f"test set {ts.name!r}: a user test set needs root = <folder>", source)
        if ts.kind == "coco":
            from twingap.study.byod import check_coco_test_set

            check_coco_test_set(cfg, ts, source)
        root = cfg.test_set_root(ts)
        if not root.is_dir():
            raise TwingapError(f"test set {ts.name!r}: folder not found: {root}", source)
        if ts.kind == "heldout":
            if not ts.videos:
                raise TwingapError(f"test set {ts.name!r}: a held-out set needs videos = [...]", source)
            same_root = root.resolve() == cfg.frames_root_path().resolve()
            overlap = sorted(set(ts.videos) & set(cfg.twin_videos)) if same_root else []
            if overlap:
                raise TwingapError(
                    f"test set {ts.name!r}: held-out videos {overlap} are also twinned for training", source
                )
        if ts.max_frames < 0:
            raise TwingapError(f"test set {ts.name!r}: max_frames must be >= 0", source)
    if not cfg.frames_root_path().is_dir():
        raise TwingapError("frames_root folder not found", cfg.frames_root_path())
    if not cfg.models_root_path().is_dir():
        raise TwingapError("models_root folder not found", cfg.models_root_path())
    if not cfg.twin_videos:
        raise TwingapError("twin_videos must name at least one video", source)
    s = cfg.scenes
    if s.width < 32 or s.height < 32:
        raise TwingapError("scenes.width and scenes.height must be at least 32 pixels", source)
    if s.twin_views < 0 or s.composed < 0 or (s.twin_views + s.composed == 0 and not s.include_twins):
        raise TwingapError("the study needs training scenes (include_twins, twin_views or composed)", source)
    if not (0.5 <= cfg.stats.ci < 1):
        raise TwingapError("stats.ci must be in [0.5, 1)", source)
    if cfg.stats.min_scenes < 2:
        raise TwingapError("stats.min_scenes must be at least 2", source)
    if cfg.executor.workers < 1:
        raise TwingapError("executor.workers must be at least 1", source)
    if not isinstance(cfg.executor.group_size, int) or cfg.executor.group_size < 0:
        raise TwingapError("executor.group_size must be an integer >= 0 (0: automatic, 1: no groups)", source)
    check_keys(cfg.cost.hours, known, "[cost] hours", source)
    for cond, hours in cfg.cost.hours.items():
        if not isinstance(hours, int | float) or isinstance(hours, bool) or hours < 0:
            raise TwingapError(f"cost.hours: hours for {cond!r} must be a number >= 0, got {hours!r}", source)
    if cfg.cost.artist_hours and not Path(cfg.cost.artist_hours).is_file():
        raise TwingapError("artist-hours table not found", cfg.cost.artist_hours)
    if cfg.cost.rank_by != "mean" and cfg.cost.rank_by not in names:
        raise TwingapError(f"cost.rank_by must be 'mean' or a test set name {names}", source)
    # The hours table itself is checked here too, so a bad table fails before any job runs.
    from twingap.study.cost import artist_hours

    artist_hours(cfg)
    return cfg


def _validate_train(cfg: StudyConfig, source: str | Path | None) -> None:
    """``[train]``: a known training preset; ``overrides`` are its fields (or knobs of the stages)."""
    from twingap.study.stages import load_stages
    from twingap.train.config import PRESETS as TRAIN_PRESETS
    from twingap.train.config import TrainConfig

    name = cfg.train.preset
    check_choice(name, TRAIN_PRESETS, "[train] preset", source)
    knobs = load_stages(cfg.stages).train_knobs
    allowed = [f.name for f in fields(TrainConfig)] + list(knobs)
    check_keys(cfg.train.overrides, allowed, "[train] overrides", source)
    options = {k: v for k, v in cfg.train.overrides.items() if k not in knobs}
    try:
        TRAIN_PRESETS[name].replace(**options)
    except TwingapError as exc:
        raise TwingapError(f"[train] overrides: {exc.message}", source) from exc
    except (TypeError, ValueError) as exc:
        raise TwingapError(f"[train] overrides: invalid value ({exc})", source) from exc


def _validate_render(cfg: StudyConfig, source: str | Path | None) -> None:
    """``[render]``: a known backend whose options are valid and that can run here."""
    from twingap.render.backend import BACKENDS, check_backend, check_options

    backend = cfg.render.backend
    check_choice(backend, BACKENDS, "[render] backend", source)
    try:  # before check_backend: a typo in the file is reported even where the backend cannot run
        check_options(backend, cfg.render.options)
    except TwingapError as exc:
        raise TwingapError(f"[render] options: {exc.message}", source) from None
    check_backend(backend)  # e.g. cycles without bpy: one line with the install hint


def config_to_toml(cfg: StudyConfig) -> str:
    """Serialise a configuration as TOML (round-trips through :func:`load_study_config`)."""
    import tomli_w

    d = cfg.to_dict()
    d.pop("name", None)
    return tomli_w.dumps({"name": cfg.name, **d})
