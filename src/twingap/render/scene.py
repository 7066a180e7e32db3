"""``SceneSpec``: everything a renderer needs to draw one image, as plain JSON-able data.

Conventions:

* World frame: arbitrary right-handed frame in metres (for a twin, the first camera of the
  video or the fitted support plane; see :mod:`twingap.render.twin`).
* Camera: OpenCV (x right, y down, z forward). ``cam_T_world`` maps world points into the
  camera frame: ``p_cam = cam_T_world @ p_world``. Intrinsics ``K`` in pixels, pixel centres at
  integer coordinates (``u = fx * x / z + cx``).
* Object poses: ``world_T_obj`` maps the asset's pose frame (for YCB: the YCB-Video model frame)
  into the world; for a twin of a real frame ``cam_T_world @ world_T_obj`` equals the annotated
  object-to-camera pose.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from twingap.errors import TwingapError
from twingap.io import dumps_json, sha256_bytes, sha256_file, write_text_atomic

SCHEMA_VERSION = 1


def _mat(x: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.shape != shape:
        raise TwingapError(f"{what} must have shape {shape}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise TwingapError(f"{what} has non-finite values")
    return arr


def check_rigid(T: np.ndarray, what: str, tol: float = 1e-4) -> np.ndarray:
    """Validate a 4x4 rigid transform (rotation part orthonormal with det +1).

    Raises:
        TwingapError: If ``T`` is not a rigid transform.
    """
    T = _mat(T, (4, 4), what)
    R = T[:3, :3]
    if not np.allclose(R @ R.T, np.eye(3), atol=tol) or abs(np.linalg.det(R) - 1) > tol:
        raise TwingapError(f"{what}: rotation part is not a rotation matrix (R R^T != I or det != 1)")
    if not np.allclose(T[3], [0, 0, 0, 1], atol=1e-9):
        raise TwingapError(f"{what}: last row must be [0, 0, 0, 1]")
    return T


@dataclass
class CameraSpec:
    """Pinhole camera.

    Attributes:
        K: (3, 3) intrinsics in pixels.
        width: Image width in pixels.
        height: Image height in pixels.
        cam_T_world: (4, 4) world-to-camera rigid transform (OpenCV camera), metres.
        znear: Near clipping distance, metres.
        zfar: Far clipping distance, metres.
    """

    K: np.ndarray
    width: int
    height: int
    cam_T_world: np.ndarray = field(default_factory=lambda: np.eye(4))
    znear: float = 0.05
    zfar: float = 10.0

    def __post_init__(self) -> None:
        self.K = _mat(self.K, (3, 3), "camera K")
        if self.K[0, 0] <= 0 or self.K[1, 1] <= 0:
            raise TwingapError("camera K: focal lengths must be positive")
        self.cam_T_world = check_rigid(self.cam_T_world, "camera cam_T_world")
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise TwingapError("camera size must be positive")
        self.width, self.height = int(self.width), int(self.height)


@dataclass
class ObjectSpec:
    """One object instance in a scene.

    Attributes:
        model: Model name in the model library (e.g. ``"011_banana"``).
        obj_id: Class id written to annotations (the model library's id of the object).
        world_T_obj: (4, 4) object-to-world rigid transform, metres.
        condition: Artifact condition applied to this object's asset (``None`` = decided at
            render time, normally the dataset's condition).
    """

    model: str
    obj_id: int
    world_T_obj: np.ndarray
    condition: str | None = None

    def __post_init__(self) -> None:
        self.world_T_obj = check_rigid(self.world_T_obj, f"pose of {self.model}")
        self.obj_id = int(self.obj_id)


@dataclass
class LightSpec:
    """A light.

    ``kind`` is ``"directional"`` (``direction`` = world direction the light travels) or
    ``"point"`` (``position`` in world, metres). ``color`` is linear RGB, times ``intensity``.
    """

    kind: str = "directional"
    direction: tuple[float, float, float] = (0.0, 0.0, 1.0)
    position: tuple[float, float, float] = (0.0, 0.0, 0.0)
    color: tuple[float, float, float] = (1.0, 1.0, 1.0)
    intensity: float = 1.0


@dataclass
class ResponseSpec:
    """Camera response applied to the linear rendered radiance.

    ``out = clip(tone((exposure * wb * linear) ** (1/gamma)))``, then optional Gaussian sensor
    noise (``noise_sigma`` in 8-bit levels, seeded by the scene seed). ``color_matrix`` (3x3,
    applied in linear space before white balance) and ``tone`` (a quadratic curve
    ``a*x + b*x^2`` per channel, or empty for identity) come from twin calibration.
    """

    exposure: float = 1.0
    white_balance: tuple[float, float, float] = (1.0, 1.0, 1.0)
    gamma: float = 2.2
    color_matrix: list[list[float]] | None = None
    tone: list[list[float]] | None = None
    noise_sigma: float = 0.0


@dataclass
class BackgroundSpec:
    """What is behind the objects.

    ``kind``: ``"color"`` (uniform ``color``, sRGB 0-255), ``"image"`` (an image file ``path``,
    resized to the camera), or ``"mesh"`` (a textured mesh ``path`` in world coordinates, e.g.
    a video's reconstructed support surface; rendered like any object but never annotated).
    """

    kind: str = "color"
    color: tuple[int, int, int] = (0, 0, 0)
    path: str | None = None


@dataclass
class SceneSpec:
    """Everything needed to render one image; JSON round trip via :meth:`to_dict`/:meth:`from_dict`."""

    scene_id: str
    camera: CameraSpec
    objects: list[ObjectSpec]
    lights: list[LightSpec] = field(default_factory=list)
    ambient: float = 0.3
    background: BackgroundSpec = field(default_factory=BackgroundSpec)
    response: ResponseSpec = field(default_factory=ResponseSpec)
    seed: int = 0
    source_frame: str | None = None
    meta: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Plain-JSON form (numpy arrays become nested lists)."""
        d = asdict(self)
        d["schema"] = SCHEMA_VERSION
        return json.loads(dumps_json(d))

    @classmethod
    def from_dict(cls, d: dict) -> SceneSpec:
        """Inverse of :meth:`to_dict`, validating shapes and rotations.

        Raises:
            TwingapError: If a field is missing or invalid.
        """
        try:
            cam = d["camera"]
            if "K" not in cam:
                raise TwingapError(f"scene {d.get('scene_id')!r}: camera intrinsics K missing")
            return cls(
                scene_id=str(d["scene_id"]),
                camera=CameraSpec(**cam),
                objects=[ObjectSpec(**o) for o in d["objects"]],
                lights=[
                    LightSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in li.items()})
                    for li in d.get("lights", [])
                ],
                ambient=float(d.get("ambient", 0.3)),
                background=BackgroundSpec(**d.get("background", {})),
                response=ResponseSpec(**d.get("response", {})),
                seed=int(d.get("seed", 0)),
                source_frame=d.get("source_frame"),
                meta=dict(d.get("meta", {})),
            )
        except KeyError as exc:
            raise TwingapError(f"scene {d.get('scene_id')!r}: missing field {exc}") from exc
        except TypeError as exc:
            raise TwingapError(f"scene {d.get('scene_id')!r}: invalid field ({exc})") from exc

    def obj_T_cam(self, i: int) -> np.ndarray:
        """(4, 4) object-to-camera transform of object ``i``."""
        return self.camera.cam_T_world @ self.objects[i].world_T_obj


def scenes_hash(scenes: list[SceneSpec]) -> str:
    """SHA-256 of the canonical JSON of a list of scenes (identifies a training set).

    The hash identifies content, not location: every absolute path in a scene (background
    image or mesh, twin environment folder) enters as the SHA-256 of the file it names (a folder:
    its name), so the same study built in two folders, or on two machines, hashes the same.
    """
    file_hashes: dict[str, str] = {}

    def canon(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: canon(x) for k, x in v.items()}
        if isinstance(v, list):
            return [canon(x) for x in v]
        p = Path(v) if isinstance(v, str) and v else None
        if p is not None and p.is_absolute():
            if p.is_file():
                if v not in file_hashes:
                    file_hashes[v] = "sha256:" + sha256_file(p)
                return file_hashes[v]
            if p.is_dir():
                return "dir:" + p.name
        return v

    return sha256_bytes(dumps_json([canon(s.to_dict()) for s in scenes], indent=None).encode())


def save_scenes(path: str | Path, scenes: list[SceneSpec]) -> None:
    """Write scenes as a JSON list (atomic)."""
    write_text_atomic(path, dumps_json([s.to_dict() for s in scenes]) + "\n")


def load_scenes(path: str | Path) -> list[SceneSpec]:
    """Read a JSON list of scenes (or a single scene object).

    Raises:
        TwingapError: If the file is missing, not JSON, or a scene is invalid (the message
            names the file).
    """
    from twingap.io import read_json

    data = read_json(path)
    items = data if isinstance(data, list) else [data]
    out = []
    for item in items:
        try:
            out.append(SceneSpec.from_dict(item))
        except TwingapError as exc:
            raise TwingapError(exc.message, path) from exc
    return out
