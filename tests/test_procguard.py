"""Child processes end with their parent (``twingap.procguard``); a thread's exit is not a death.

Each test starts a middle process that starts a guarded child, kills the middle with SIGKILL and
checks that the child ends too. The study-level test (every process of a killed study ends) is
``test_study.py::test_kill_mid_run_loses_at_most_the_job_in_flight``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from tests.procs import HAVE_PROC, alive, survivors

pytestmark = pytest.mark.skipif(not HAVE_PROC, reason="needs Linux /proc to follow processes")

CHILD = """
import os, sys, time
from twingap.procguard import die_with_parent
die_with_parent(pdeathsig={pdeathsig}, interval={interval})
print("child", os.getpid(), flush=True)
time.sleep(600)
"""

# The middle process starts the child from its main thread or from a thread that ends once the
# child is armed (Linux then sends the child its parent-death signal although the parent lives).
MIDDLE = """
import subprocess, sys, threading, time
from twingap.procguard import child_env

def start():
    cmd = [sys.executable, "-c", sys.argv[1]]
    p = subprocess.Popen(cmd, env=child_env(), stdout=subprocess.PIPE, text=True)
    print(p.stdout.readline().strip(), flush=True)  # "child PID": armed

if sys.argv[2] == "thread":
    t = threading.Thread(target=start)
    t.start()
    t.join()
else:
    start()
print("middle ready", flush=True)
time.sleep(600)
"""


def _start(pdeathsig: bool, interval: float | None, where: str) -> tuple[subprocess.Popen, int]:
    code = CHILD.format(pdeathsig=pdeathsig, interval=interval)
    middle = subprocess.Popen(
        [sys.executable, "-c", MIDDLE, code, where], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    assert middle.stdout is not None
    first = middle.stdout.readline().split()
    assert first[:1] == ["child"], first
    assert middle.stdout.readline().strip() == "middle ready"
    return middle, int(first[1])


@pytest.mark.parametrize(
    ("pdeathsig", "interval", "where"),
    [
        (True, None, "main"),  # Linux's parent-death signal alone (SIGKILL: started from the main thread)
        (True, None, "thread"),  # the signal alone, caught and checked (started from another thread)
        (False, 0.2, "thread"),  # the watchdog thread alone (the portable fallback)
    ],
)
def test_child_ends_when_its_parent_is_killed(pdeathsig, interval, where):
    middle, child = _start(pdeathsig, interval, where)
    try:
        time.sleep(0.5)  # the thread that started the child has ended: the child lives on
        assert alive(child), "the child ended while its parent process lives"
        os.kill(middle.pid, signal.SIGKILL)
        middle.wait(timeout=30)
        assert survivors([child], timeout=10) == []
    finally:
        for pid in (middle.pid, child):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_child_of_a_dead_parent_ends_at_once():
    # the parent died before the child armed itself: the pid it was given is no longer its parent
    if os.getpid() == 1:  # pragma: no cover - pid 1 would be the child's real parent
        pytest.skip("the tests run as pid 1")
    code = "from twingap.procguard import die_with_parent\ndie_with_parent(1)\nprint('lived')"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and "lived" not in res.stdout
    assert "parent process 1 is gone" in res.stderr
