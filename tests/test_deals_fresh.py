"""When an account job does not pull the deals again: a deal run of the same cycle succeeded."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from connector.service.http import Metrics
from connector.service.scheduler import _deals_fresh
from connector.store.records import RunCounts
from connector.store.store import Store

TICK = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = TICK

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[Store]:
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}", clock=clock) as opened:
        yield opened


def _deal_run(store: Store, status: str = "succeeded") -> int:
    run = store.start_run("hs", "hubspot", "deal", "deals-2", full=False)
    store.finish_run(run, status, RunCounts(), 2, 1)  # type: ignore[arg-type]
    return run


def _ctx(store: Store, cycle_after: int | None = None) -> Any:
    return SimpleNamespace(store=store, cycle_after=cycle_after, metrics=Metrics())


def _skips(ctx: Any) -> float:
    return ctx.metrics.skips.labels("hs", "deal", "fresh")._value.get()


def test_a_deal_run_since_the_tick_is_fresh_one_before_or_failed_is_not(
    store: Store, clock: Clock
) -> None:
    ctx = _ctx(store)
    extra = {"job": "hs.account"}
    assert not _deals_fresh(ctx, "hs", TICK, extra)  # no deal run at all
    clock.now = TICK - timedelta(seconds=1)
    _deal_run(store)
    assert not _deals_fresh(ctx, "hs", TICK, extra)  # the previous tick's
    clock.now = TICK
    _deal_run(store)
    assert _deals_fresh(ctx, "hs", TICK, extra) and _skips(ctx) == 1
    assert not _deals_fresh(ctx, "hs", TICK + timedelta(minutes=15), extra)  # the next tick
    assert not _deals_fresh(ctx, "hs", None, extra)  # no tick, no cycle: always pull
    clock.now = TICK + timedelta(seconds=5)
    _deal_run(store, "failed")
    assert not _deals_fresh(ctx, "hs", TICK, extra)  # the latest deal run failed
    assert not _deals_fresh(ctx, "other", TICK, extra)  # another connection's


def test_in_once_a_deal_run_recorded_since_the_cycle_began_is_fresh(
    store: Store, clock: Clock
) -> None:
    earlier = _deal_run(store)
    extra = {"job": "hs.account"}
    assert not _deals_fresh(_ctx(store, cycle_after=earlier), "hs", None, extra)
    this_cycle = _deal_run(store)
    assert _deals_fresh(_ctx(store, cycle_after=earlier), "hs", None, extra)
    # Whatever the clock says: --once goes by run ids, not ticks.
    assert not _deals_fresh(_ctx(store, cycle_after=this_cycle), "hs", TICK, extra)
