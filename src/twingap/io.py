"""Small file-system helpers: atomic writes, JSON, hashing.

Every long job writes its outputs through these helpers so that a killed process never
leaves a half-written file under its final name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the same folder; rename it to ``path`` on success.

    The temporary file keeps the final suffix so that libraries choosing a format by
    extension (PIL, OpenCV, torch) still work. On an exception the temporary file is removed
    and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file + rename)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def dumps_json(obj: Any, indent: int | None = 2) -> str:
    """Serialise to JSON deterministically (sorted keys; numpy arrays become lists)."""
    return json.dumps(obj, indent=indent, sort_keys=True, default=_json_default)


def write_json_atomic(path: str | Path, obj: Any, indent: int | None = 2) -> None:
    """Write ``obj`` as deterministic JSON to ``path`` atomically."""
    write_text_atomic(path, dumps_json(obj, indent=indent) + "\n")


def read_json(path: str | Path) -> Any:
    """Read a JSON file, raising :class:`~twingap.errors.TwingapError` on problems."""
    from twingap.errors import TwingapError

    path = Path(path)
    if not path.is_file():
        raise TwingapError("file not found", path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TwingapError(f"not valid JSON ({exc})", path) from exc


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's content."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_arrays(*arrays: np.ndarray) -> str:
    """Hex SHA-256 over arrays' dtype, shape and bytes (order matters)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()
