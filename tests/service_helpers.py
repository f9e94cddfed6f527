"""What the tests of `segsync run` as a process share: start one, wait for a condition, freeze one.

These tests run with ``-n 2`` on a busy machine. So a wait is for a condition
in the store, the sandbox or a log, never for a fixed time; its deadline
(:data:`PATIENCE`) only turns "never" into a failure and says nothing about
speed (speed is measured in ``bench/``).
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent

#: Seconds a condition that must come true may take. Generous on purpose: on a
#: 2-core machine at a load average of 16, starting `segsync run` alone (Python
#: and its imports) took over 30 s, and a full first run as long again.
PATIENCE = 180.0

T = TypeVar("T")


def start_service(config: Path, log: Path) -> subprocess.Popen[bytes]:
    """`segsync run --config CONFIG` in its own process, its stderr into ``log``."""
    with log.open("wb") as stderr:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "connector", "run", "--config", str(config)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )


def until(
    condition: Callable[[], Any],
    timeout: float,
    what: str,
    *,
    alive: Iterable[subprocess.Popen[bytes]] = (),
) -> Any:
    """The first truthy ``condition()`` within ``timeout`` seconds, else fail naming ``what``.

    A process of ``alive`` that has exited fails the wait at once (it would
    only wait out the deadline otherwise).
    """
    watched = list(alive)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        gone = [p for p in watched if p.poll() is not None]
        if gone:
            codes = ", ".join(f"pid {p.pid} exited {p.returncode}" for p in gone)
            raise AssertionError(f"while waiting for {what}: {codes}")
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def started(log: Path) -> bool:
    """Whether the `segsync run` writing ``log`` has scheduled its jobs (it logs each)."""
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return False
    return '"message": "scheduled ' in text


def stopped(pid: int) -> bool:
    """Whether every thread of process ``pid`` is stopped (state T in /proc)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
        states = []
        for task in tasks:
            with open(f"/proc/{pid}/task/{task}/stat", encoding="ascii") as fh:
                # "pid (comm) S ...": the state follows the last ')'.
                states.append(fh.read().rsplit(")", 1)[1].split()[0])
    except (FileNotFoundError, ProcessLookupError):
        return False
    return bool(states) and all(s in ("T", "t") for s in states)


def freeze_when(
    found: Callable[[], tuple[int, T] | None], timeout: float, what: str, *, every: float = 0.05
) -> tuple[int, T]:
    """SIGSTOP the process ``found()`` names, and return once ``found()`` holds while it is stopped.

    ``found`` looks at shared state (the store, the locks) and returns
    ``(pid, detail)`` when process ``pid`` is in the wanted state (e.g. in the
    middle of a run), else None. Looking and then signalling races the process:
    its run may end in between. So the process is stopped first and ``found``
    asked again: a stopped process changes nothing, so what ``found`` says then
    stays true until the caller resumes (SIGCONT) or kills it. When it no longer
    holds, the process is resumed and the search goes on, looking ``every`` seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = found()
        if seen is None:
            time.sleep(every)
            continue
        pid = seen[0]
        os.kill(pid, signal.SIGSTOP)
        until(functools.partial(stopped, pid), PATIENCE, f"process {pid} to stop")
        confirmed = found()
        if confirmed is not None and confirmed[0] == pid:
            return confirmed
        os.kill(pid, signal.SIGCONT)
    raise AssertionError(f"timed out waiting for {what}")
