from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from connector.sync.runner import prefetch


def test_prefetch_keeps_order_and_reads_ahead() -> None:
    fetched: list[int] = []

    def pages() -> Iterator[int]:
        for i in range(10):
            fetched.append(i)
            yield i

    seen = []
    for item in prefetch(pages(), depth=2):
        time.sleep(0.01)  # the consumer is slower: the worker stays ahead
        seen.append(item)
        assert len(fetched) >= min(10, len(seen))
    assert seen == list(range(10))


def test_prefetch_raises_the_workers_error_in_order() -> None:
    def pages() -> Iterator[int]:
        yield 1
        yield 2
        raise RuntimeError("page 3 failed")

    got = []
    with pytest.raises(RuntimeError, match="page 3 failed"):
        for item in prefetch(pages()):
            got.append(item)
    assert got == [1, 2]


def test_prefetch_stops_the_worker_when_the_consumer_stops() -> None:
    produced: list[int] = []

    def pages() -> Iterator[int]:
        for i in range(1000):
            produced.append(i)
            yield i

    before = threading.active_count()
    for item in prefetch(pages(), depth=2):
        if item == 3:
            break
    time.sleep(0.3)
    assert len(produced) < 10  # it did not run the whole cursor down
    assert threading.active_count() <= before
