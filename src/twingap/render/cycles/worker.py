"""The Blender worker process and the choice of its interpreter.

A worker is ``python -m twingap.render.cycles`` run by an interpreter that can ``import bpy``:
this one when it can, else ``$TWINGAP_BPY_PYTHON`` (a main environment with NumPy 2 drives
Blender installed in a separate environment, since bpy 4.5 needs NumPy < 2). The protocol is
one JSON request per stdin line and one JSON reply per stdout line (:func:`worker_main`);
arrays travel as ``.npz`` files in a temporary folder. :class:`Worker` is the parent's side.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import weakref
from dataclasses import asdict
from pathlib import Path

import numpy as np

from twingap.assets.asset import Asset
from twingap.errors import TwingapError
from twingap.render.backend import BACKGROUND_ASSET_KEY, RenderResult
from twingap.render.cycles.convert import check_scene
from twingap.render.cycles.settings import CyclesSettings
from twingap.render.scene import SceneSpec

#: Environment variable naming a Python interpreter that can ``import bpy``.
BPY_PYTHON_ENV = "TWINGAP_BPY_PYTHON"

#: The one-line hint shown when bpy is missing.
INSTALL_HINT = (
    "the Cycles backend needs Blender as a Python module (bpy 4.5, Python 3.11, numpy<2): "
    "pip install 'twingap[cycles]' (in a separate environment if this one needs numpy 2, then set "
    f"{BPY_PYTHON_ENV}=/path/to/that/python)"
)

# ---------------------------------------------------------------------------------------------
# Which interpreter runs Blender


def bpy_available() -> bool:
    """True when ``bpy`` can be imported in this interpreter (without importing it)."""
    return importlib.util.find_spec("bpy") is not None


def _python_has_bpy(python: str) -> bool:
    try:
        proc = subprocess.run(
            [python, "-c", "import importlib.util, sys; sys.exit(importlib.util.find_spec('bpy') is None)"],
            capture_output=True,
            timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def _resolve_python(python: str | None) -> str | None:
    """Interpreter for worker processes: argument, then this one if it has bpy, then the env var."""
    if python:
        return python
    if bpy_available():
        return sys.executable
    return os.environ.get(BPY_PYTHON_ENV) or None


def check_available(python: str | None = None) -> str:
    """Check that Cycles can run (before spawning workers), without importing ``bpy`` here.

    Args:
        python: Interpreter to use for worker processes (see
            :class:`~twingap.render.cycles.CyclesRenderer`).

    Returns:
        The interpreter that will run Blender.

    Raises:
        TwingapError: With the install hint, if no interpreter with ``bpy`` is available.
    """
    py = _resolve_python(python)
    if py is None:
        raise TwingapError(INSTALL_HINT)
    if py != sys.executable and not _python_has_bpy(py):
        raise TwingapError(f"{py} cannot import bpy; {INSTALL_HINT}")
    return py


# ---------------------------------------------------------------------------------------------
# The worker's side (python -m twingap.render.cycles)


def save_asset(path: Path, asset: Asset) -> None:
    """Write an asset as the ``.npz`` a worker reads (:func:`load_asset`)."""
    np.savez(
        path,
        name=np.asarray(asset.name),
        vertices=asset.vertices,
        faces=asset.faces,
        uvs=asset.uvs,
        texture=asset.texture,
        textured=np.asarray(asset.textured),
    )


def load_asset(path: Path) -> Asset:
    """Read an asset written by :func:`save_asset`."""
    with np.load(path) as z:
        return Asset(
            str(z["name"]),
            np.ascontiguousarray(z["vertices"]),
            np.ascontiguousarray(z["faces"]),
            np.ascontiguousarray(z["uvs"]),
            np.ascontiguousarray(z["texture"]),
            bool(z["textured"]),
        )


def _serve(req: dict, session, cache: dict[str, Asset]):
    """Render one request; returns the session (a new one when the settings changed)."""
    from twingap.render.cycles.session import BlenderSession

    settings = CyclesSettings(**req["settings"])
    if session is None or session.settings != settings:
        if session is not None:
            session.close()
        session = BlenderSession(settings)
    assets = {}
    for name, p in req["assets"].items():
        if p not in cache:
            cache[p] = load_asset(Path(p))
        assets[name] = cache[p]
    scene = SceneSpec.from_dict(req["scene"])
    res = session.render(scene, assets, return_linear=bool(req.get("return_linear")))
    arrays = {"rgb": res.rgb, "depth": res.depth, "instance_ids": res.instance_ids}
    if res.linear is not None:
        arrays.update(linear=res.linear, coverage=res.coverage)
    tmp = req["out"] + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, req["out"])
    return session


def worker_main(argv: list[str] | None = None) -> int:
    """Worker loop: one JSON request per stdin line, one JSON reply per stdout line.

    A request is ``{"scene": <SceneSpec dict>, "assets": {name: npz path}, "out": npz path,
    "settings": <CyclesSettings dict>, "return_linear": bool}``; the reply is ``{"ok": true}`` or
    ``{"ok": false, "user_error": bool, "message": str}``. Blender's own chatter goes to
    stderr so that stdout carries only replies.
    """
    del argv
    reply = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # bpy prints to fd 1
    cache: dict[str, Asset] = {}
    session = None
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            session = _serve(json.loads(line), session, cache)
            reply.write(json.dumps({"ok": True}) + "\n")
        except TwingapError as exc:
            reply.write(json.dumps({"ok": False, "user_error": True, "message": exc.message}) + "\n")
        except Exception as exc:
            import traceback

            traceback.print_exc()
            reply.write(json.dumps({"ok": False, "user_error": False, "message": repr(exc)}) + "\n")
    if session is not None:
        session.close()
    return 0


# ---------------------------------------------------------------------------------------------
# The parent's side


class Worker:
    """A Blender worker process, restarted every ``scenes_per_process`` scenes.

    Args:
        python: Interpreter that can ``import bpy``.
        settings: Quality settings sent with every request.
        scenes_per_process: Restart the process after this many scenes (bounds Blender's memory).
    """

    def __init__(self, python: str, settings: CyclesSettings, scenes_per_process: int) -> None:
        self.python = python
        self.settings = settings
        self.scenes_per_process = max(1, int(scenes_per_process))
        self.dir = Path(tempfile.mkdtemp(prefix="twingap-cycles-worker-"))
        self._proc: subprocess.Popen | None = None
        self._count = 0
        self._asset_paths: dict[str, str] = {}
        self._hashes: weakref.WeakKeyDictionary[Asset, str] = weakref.WeakKeyDictionary()

    def _start(self) -> subprocess.Popen:
        import twingap

        # The worker runs this very twingap package, and nothing else from this environment (its
        # site-packages may hold a NumPy that the worker's bpy cannot use): a folder holding
        # only a link to the package goes first on its path.
        link_dir = self.dir / "pythonpath"
        if not (link_dir / "twingap").exists():
            link_dir.mkdir(exist_ok=True)
            os.symlink(Path(twingap.__file__).resolve().parent, link_dir / "twingap")
        from twingap.procguard import child_env

        env = child_env({k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")})
        env["PYTHONPATH"] = str(link_dir)  # child_env: the worker ends when this process dies
        return subprocess.Popen(
            [self.python, "-m", "twingap.render.cycles"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL if not os.environ.get("TWINGAP_DEBUG") else None,
            text=True,
            env=env,
        )

    def _asset_path(self, asset: Asset) -> str:
        h = self._hashes.get(asset)
        if h is None:
            h = self._hashes[asset] = asset.content_hash
        p = self._asset_paths.get(h)
        if p is None:
            p = str(self.dir / f"asset-{h[:24]}.npz")
            save_asset(Path(p), asset)
            self._asset_paths[h] = p
        return p

    def _request(self, scene: SceneSpec, assets: dict[str, Asset], out: Path, return_linear: bool) -> dict:
        needed = {o.model for o in scene.objects}
        if scene.background.kind == "mesh" and BACKGROUND_ASSET_KEY in assets:
            needed.add(BACKGROUND_ASSET_KEY)
        return {
            "scene": scene.to_dict(),
            "assets": {name: self._asset_path(assets[name]) for name in sorted(needed)},
            "out": str(out),
            "settings": asdict(self.settings),
            "return_linear": return_linear,
        }

    def render(self, scene: SceneSpec, assets: dict[str, Asset], return_linear: bool = False) -> RenderResult:
        """Render one scene in the worker process (started or restarted as needed).

        Raises:
            TwingapError: If the scene is invalid (here or in the worker).
            RuntimeError: If the worker died or failed for another reason.
        """
        check_scene(scene, assets)
        if self._proc is None or self._proc.poll() is not None or self._count >= self.scenes_per_process:
            self.stop()
            self._proc = self._start()
            self._count = 0
        out = self.dir / "result.npz"
        req = self._request(scene, assets, out, return_linear)
        assert self._proc.stdin is not None and self._proc.stdout is not None
        try:
            self._proc.stdin.write(json.dumps(req) + "\n")
            self._proc.stdin.flush()
            line = self._proc.stdout.readline()
        except BrokenPipeError:
            line = ""
        self._count += 1
        if not line:
            self.stop()
            raise RuntimeError(
                f"the Cycles worker ({self.python}) died while rendering scene {scene.scene_id!r}; "
                "rerun with --debug to see its output"
            )
        rep = json.loads(line)
        if not rep["ok"]:
            if rep.get("user_error"):
                raise TwingapError(rep["message"])
            raise RuntimeError(f"the Cycles worker failed on scene {scene.scene_id!r}: {rep['message']}")
        with np.load(out) as z:
            res = RenderResult(
                rgb=z["rgb"],
                depth=z["depth"],
                instance_ids=z["instance_ids"],
                linear=z["linear"] if "linear" in z else None,
                coverage=z["coverage"] if "coverage" in z else None,
            )
        out.unlink()
        return res

    def stop(self) -> None:
        """End the worker process (it finishes its current request first)."""
        if self._proc is not None:
            with contextlib.suppress(Exception):
                assert self._proc.stdin is not None
                self._proc.stdin.close()
            try:
                self._proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    def close(self) -> None:
        """Stop the process and remove the temporary folder."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
