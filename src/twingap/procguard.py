"""Child processes that end with their parent: a killed study leaves no process behind.

A study runs its jobs in pool workers (spawned processes); each job renders in a process of its
own (:func:`twingap.study.real.in_subprocess`), which may render with a pool of its own or drive
Blender in another process. After a ``kill -9`` of the study (or of a worker), the processes below
it used to live on as orphans, still computing, and could write into a job folder that the resumed
study writes too. Every such child calls :func:`die_with_parent` first thing, which ends it when
its parent process dies, by two means:

- On Linux, ``prctl(PR_SET_PDEATHSIG)``: the kernel signals the child when its parent dies. The
  kernel sends it when the parent *thread* that started the child exits, which may happen while
  the parent process lives on (a process pool starts replacement workers from its manager thread;
  a thread may start a child and return). So a child gets a catchable signal whose handler first
  checks that the parent *process* is gone (``os.getppid()`` changed: the child was re-parented
  to init or a subreaper) and ignores it otherwise. A child started from its parent's main thread
  (which lives as long as the parent process) gets ``SIGKILL``, which also ends a child busy in C
  code that holds the GIL; :func:`child_env` tells a child started with :mod:`subprocess` which
  case it is.
- Everywhere: a daemon watchdog thread compares ``os.getppid()`` with the parent's pid every
  :data:`WATCH_INTERVAL_S` seconds (the portable fallback, and a second net on Linux).

Only the standard library is used: the Blender worker imports this module from its own
environment.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time

#: Seconds between two looks of the watchdog thread at the parent's pid.
WATCH_INTERVAL_S = 0.5

#: Exit status of a process that ended because its parent process died.
ORPHAN_EXIT_CODE = 86

#: Environment variables :func:`child_env` sets for a child started with :mod:`subprocess`.
PARENT_PID_ENV = "TWINGAP_PARENT_PID"
PARENT_MAIN_THREAD_ENV = "TWINGAP_PARENT_MAIN_THREAD"

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_watchdog: threading.Thread | None = None


def _end(parent_pid: int) -> None:
    """End this process at once (no cleanup: an orphan's half-written files are the resume's to redo)."""
    with contextlib.suppress(OSError):
        os.write(2, f"twingap: parent process {parent_pid} is gone; ending process {os.getpid()}\n".encode())
    os._exit(ORPHAN_EXIT_CODE)


def child_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a child started with :mod:`subprocess` that calls :func:`die_with_parent`.

    Args:
        env: The child's environment (default: a copy of this process's).

    Returns:
        ``env`` with this process's pid and whether this is its main thread (whose exit is the
        process's: then the child can take ``SIGKILL`` as its parent-death signal).
    """
    out = dict(os.environ if env is None else env)
    out[PARENT_PID_ENV] = str(os.getpid())
    out[PARENT_MAIN_THREAD_ENV] = "1" if threading.current_thread() is threading.main_thread() else "0"
    return out


def _parent_given() -> tuple[int, bool]:
    """The parent's pid (as the parent told it) and whether it started this process from its main thread."""
    import multiprocessing as mp

    pid_text = os.environ.pop(PARENT_PID_ENV, "")  # popped: not inherited by this process's children
    main_thread = os.environ.pop(PARENT_MAIN_THREAD_ENV, "") == "1"
    parent = mp.parent_process()  # set in a process started by multiprocessing
    if parent is not None and parent.pid:
        return int(parent.pid), False
    if pid_text.isdigit():
        return int(pid_text), main_thread
    return os.getppid(), False


def _arm_pdeathsig(parent_pid: int, parent_main_thread: bool) -> bool:
    """Have Linux signal this process when its parent dies; returns whether it could."""
    if not sys.platform.startswith("linux"):
        return False
    if parent_main_thread:
        signum = signal.SIGKILL
    else:
        if threading.current_thread() is not threading.main_thread():
            return False  # a signal handler can only be installed from the main thread

        def on_parent_thread_exit(signum: int, frame: object) -> None:
            if os.getppid() != parent_pid:
                _end(parent_pid)
            # else: only the thread that started this process ended; the parent lives on

        signum = signal.SIGRTMIN + 3
        signal.signal(signum, on_parent_thread_exit)
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent_pid: int, interval: float) -> None:
    while True:
        time.sleep(interval)
        if os.getppid() != parent_pid:
            _end(parent_pid)


def die_with_parent(
    parent_pid: int | None = None,
    *,
    pdeathsig: bool = True,
    interval: float | None = WATCH_INTERVAL_S,
) -> None:
    """End this process when its parent process dies (call it first thing in a child process).

    Use it as the ``initializer`` of a spawned process pool (``initargs=(os.getpid(),)``), or at
    the start of a child started with :mod:`subprocess` and :func:`child_env`. It must not run in
    a process whose parent may rightly die first (a command run from a shell).

    Args:
        parent_pid: The parent's pid, as the parent saw it when it started this process (so a
            parent that died before this call is noticed); default: ``multiprocessing``'s record of
            the parent, else the one :func:`child_env` passed, else ``os.getppid()``.
        pdeathsig: Use Linux's parent-death signal (see the module docstring).
        interval: Seconds between the watchdog thread's looks at the parent's pid; None: no
            watchdog.
    """
    global _watchdog

    given, main_thread = _parent_given()
    parent_pid = given if parent_pid is None else int(parent_pid)
    if os.getppid() != parent_pid:
        _end(parent_pid)
    if pdeathsig:
        _arm_pdeathsig(parent_pid, main_thread)
    if interval and (_watchdog is None or not _watchdog.is_alive()):
        _watchdog = threading.Thread(
            target=_watch, args=(parent_pid, float(interval)), name="twingap-parent-watchdog", daemon=True
        )
        _watchdog.start()
    if os.getppid() != parent_pid:  # the parent died while the signal was being armed
        _end(parent_pid)
