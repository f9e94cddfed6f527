"""What the tests of `segsync run` as a process share: start one, wait for a condition."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def start_service(config: Path, log: Path) -> subprocess.Popen[bytes]:
    """`segsync run --config CONFIG` in its own process, its stderr into ``log``."""
    with log.open("wb") as stderr:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "connector", "run", "--config", str(config)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )


def until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """The first truthy ``condition()`` within ``timeout`` seconds, else fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
