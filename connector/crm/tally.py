"""Calls counted for one piece of work, whatever else the connection does meanwhile.

An adapter's ``api_calls`` counts every call of its connection, from every
thread: while the runner re-reads a write chunk (``sync/recheck.py``), the
pull may be reading pages on another thread (``sync/pipeline.py``), and a
difference of ``api_calls`` would count those too. So the sessions also
count each call to the :class:`Tally` of the block it is made in
(:func:`tallied`, a context variable); an adapter that hands calls to worker
threads runs them in the caller's context (:func:`carried`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, copy_context
from typing import TypeVar

A = TypeVar("A")
R = TypeVar("R")


class Tally:
    """The calls made inside one :func:`tallied` block (thread-safe)."""

    def __init__(self) -> None:
        self._calls = 0
        self._lock = threading.Lock()

    @property
    def calls(self) -> int:
        """Calls counted so far, retries and token requests included."""
        return self._calls

    def add(self) -> None:
        """Count one call."""
        with self._lock:
            self._calls += 1


_TALLY: ContextVar[Tally | None] = ContextVar("segsync_call_tally", default=None)


@contextmanager
def tallied() -> Iterator[Tally]:
    """A :class:`Tally` of the calls the block makes (and the workers it hands calls to)."""
    tally = Tally()
    token = _TALLY.set(tally)
    try:
        yield tally
    finally:
        _TALLY.reset(token)


def count_call() -> None:
    """Count a call to the tally of the block it is made in, if any (the sessions call it)."""
    tally = _TALLY.get()
    if tally is not None:
        tally.add()


def carried(fn: Callable[[A], R]) -> Callable[[A], R]:
    """``fn`` to run on worker threads, each call in a copy of the caller's context.

    A pool's threads start from an empty context: without this, their calls
    would reach no tally. Each call gets its own copy (a context cannot be
    entered by two threads at once); the tally in it is the caller's.
    """
    captured = copy_context()

    def run(arg: A) -> R:
        return captured.copy().run(fn, arg)

    return run
