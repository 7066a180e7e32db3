"""Process-tree helpers for the tests that kill a process (Linux ``/proc``)."""

from __future__ import annotations

import time
from pathlib import Path

HAVE_PROC = Path("/proc/self/stat").is_file()


def _stat(pid: int) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` after the command name (state, ppid, ...), None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (exited, waiting to be reaped)."""
    fields = _stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def descendants(pid: int) -> dict[int, int]:
    """Every living process below ``pid``: ``{pid: depth}`` (1 = child, 2 = grandchild, ...)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            fields = _stat(int(d.name))
            if fields is not None and fields[0] not in ("Z", "X"):
                children.setdefault(int(fields[1]), []).append(int(d.name))
    out: dict[int, int] = {}
    todo = [(pid, 0)]
    while todo:
        p, depth = todo.pop()
        for c in children.get(p, []):
            if c not in out:
                out[c] = depth + 1
                todo.append((c, depth + 1))
    return out


def survivors(pids, timeout: float) -> list[int]:
    """The processes of ``pids`` still alive after waiting up to ``timeout`` seconds for them to end."""
    deadline = time.monotonic() + timeout
    left = [p for p in pids if alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [p for p in left if alive(p)]
    return left
