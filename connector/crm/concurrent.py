"""Several page streams read at once, their pages handed on as they arrive.

A paged CRM read follows a cursor, one request after the other; at 80-150
ms a call, one cursor cannot use a rate limit of 19 requests a second.
:func:`merged` reads each stream on its own thread and yields the pages in
the order they arrive (each stream's own pages in their order); with one
stream it is a read-ahead of ``depth`` pages. An exception in a stream is
raised to the consumer, and closing the iterator stops the threads.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

_DONE = object()


@dataclass(frozen=True)
class _Raised:
    exc: BaseException


def merged(
    sources: Sequence[Iterable[T]], depth: int = 2, *, name: str = "segsync-read"
) -> Iterator[T]:
    """The items of every source, each read on its own thread (``depth`` ahead per source)."""
    buffer: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth * len(sources)))
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work(source: Iterable[T]) -> None:
        try:
            for item in source:
                if not put(item):
                    return
        except BaseException as exc:
            put(_Raised(exc))
            return
        put(_DONE)

    workers = [
        threading.Thread(target=work, args=(source,), name=f"{name}-{i}", daemon=True)
        for i, source in enumerate(sources)
    ]
    for worker in workers:
        worker.start()
    running = len(workers)
    try:
        while running:
            item = buffer.get()
            if item is _DONE:
                running -= 1
                continue
            if isinstance(item, _Raised):
                raise item.exc
            yield item
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=5)


def at_once(calls: Sequence[Callable[[], T]], *, name: str = "segsync-call") -> list[T]:
    """The results of ``calls``, each made on its own thread (one alone: on this one).

    Each call paces itself (the session's limiters), so they go out as fast
    as the limits allow. The first exception, in ``calls``' order, is raised.
    """
    if len(calls) <= 1:
        return [call() for call in calls]
    with ThreadPoolExecutor(max_workers=len(calls), thread_name_prefix=name) as pool:
        futures = [pool.submit(call) for call in calls]
        return [future.result() for future in futures]
