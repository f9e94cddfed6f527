from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import SecretStr

from connector.config import HubSpotConnection
from connector.crm.hubspot.search import search_since
from connector.crm.hubspot.session import HubSpotSession
from connector.crm.limits import BudgetExhausted, DailyBudget, RollingWindowLimiter
from connector.crm.retry import RetryPolicy
from connector.errors import RetriableError, SkippableError
from segsync_sandbox.hubspot import start_hubspot


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_rolling_window_never_exceeds_limit() -> None:
    clock = FakeClock()
    limiter = RollingWindowLimiter(limit=5, window=10.0, margin=0.0, clock=clock, sleep=clock.sleep)
    starts = []
    for _ in range(23):
        limiter.acquire()
        starts.append(clock.now)
        clock.now += 0.1  # each call takes 100 ms
    for i, start in enumerate(starts):
        in_window = [s for s in starts if 0 <= s - start < 10.0 - 1e-6]
        assert len(in_window) <= 5, f"window starting at call {i} holds {len(in_window)}"
    # Pacing, not idling: calls 20-22 start as soon as calls 15-17 leave the window.
    assert starts[-1] - starts[0] == pytest.approx(40.2, abs=0.01)


def test_daily_budget_share() -> None:
    budget = DailyBudget(share=0.5)
    budget.check(10**6)  # nothing known yet: no reason to stop
    budget.observe(used=40_000, total=100_000)
    assert budget.remaining == 10_000
    budget.check(10_000)
    with pytest.raises(BudgetExhausted, match="40000 of 100000"):
        budget.check(10_001)


def test_retry_backs_off_and_honors_retry_after() -> None:
    clock = FakeClock()
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise RetriableError("429", retry_after=7.0)
        if len(calls) < 4:
            raise RetriableError("503")
        return "ok"

    seen: list[float] = []
    policy = RetryPolicy(attempts=5, initial_wait=1.0, sleep=clock.sleep, rng=random.Random(1))
    assert policy.call(flaky, on_retry=lambda exc, wait: seen.append(wait)) == "ok"
    assert len(calls) == 4
    assert clock.slept == seen
    assert clock.slept[0] >= 7.0  # Retry-After wins over the 1 s back-off
    assert 1.0 <= clock.slept[1] <= 2.0 and 2.0 <= clock.slept[2] <= 4.0


def test_retry_gives_up_and_does_not_retry_other_errors() -> None:
    clock = FakeClock()
    attempts = []

    def always() -> None:
        attempts.append(1)
        raise RetriableError("503")

    with pytest.raises(RetriableError):
        RetryPolicy(attempts=3, sleep=clock.sleep).call(always)
    assert len(attempts) == 3

    def skip() -> None:
        attempts.append(1)
        raise SkippableError("001", "INVALID", "bad")

    attempts.clear()
    with pytest.raises(SkippableError):
        RetryPolicy(attempts=3, sleep=clock.sleep).call(skip)
    assert len(attempts) == 1


def _serve(limiter: RollingWindowLimiter, clock: FakeClock, calls: int, seed: int) -> list[float]:
    """One caller at a time: each call counted by the server 80-150 ms after it is sent
    (the network's jitter), answered 1-20 ms later. The times the server counted."""
    rng = random.Random(seed)
    counted = []
    for _ in range(calls):
        slot = limiter.begin()
        clock.now += rng.uniform(0.08, 0.15)
        counted.append(clock.now)
        clock.now += rng.uniform(0.001, 0.02)
        slot.done()
    return counted


def _most_in_a_window(counted: list[float], window: float) -> int:
    # As HubSpot's window counts: a call exactly one window later is in the next.
    return max(sum(1 for c in counted if t - window < c <= t) for t in counted)


def test_search_pacing_keeps_the_server_count_within_the_limit_at_nearly_full_rate() -> None:
    clock = FakeClock()
    limiter = RollingWindowLimiter(5, window=1.0, margin=0.01, clock=clock, sleep=clock.sleep)
    counted = _serve(limiter, clock, 300, seed=3)
    assert _most_in_a_window(counted, 1.0) == 5
    rate = len(counted) / (counted[-1] - counted[0])
    assert rate > 4.7  # 5 / (1 s + the jitter's mean excess over its fastest + margin)
    # Paced by send times with that margin instead, the jitter shows through.
    clock = FakeClock()
    by_start = RollingWindowLimiter(5, window=1.0, margin=0.01, clock=clock, sleep=clock.sleep)
    by_start.begin = lambda: _started(by_start)  # type: ignore[method-assign]
    assert _most_in_a_window(_serve(by_start, clock, 300, seed=3), 1.0) > 5


def _started(limiter: RollingWindowLimiter) -> Any:
    limiter.acquire()

    class _Done:
        def done(self) -> None:
            pass

    return _Done()


def test_a_call_in_flight_holds_its_place_and_an_answer_frees_it_a_window_later() -> None:
    clock = FakeClock()
    limiter = RollingWindowLimiter(2, window=10.0, margin=0.0, clock=clock, sleep=clock.sleep)
    first = limiter.begin()
    clock.now += 0.1
    second = limiter.begin()
    clock.now += 5.0  # both in flight, holding their places
    first.done()  # a 5.1 s round trip: the fastest seen, so lead 5.1
    second.done()  # 5.0 s round trip: lead 5.0, free at 1005.1 + 10 - 5.0
    assert limiter.lead == 5.0
    third_at = clock.now
    limiter.begin()
    # The first call's place: its answer (1005.1) + 10 s - its own 5.1 s lead = 1010.0.
    assert clock.now == pytest.approx(1010.0) and clock.now > third_at


def test_calls_counted_elsewhere_keep_their_place_for_a_window() -> None:
    clock = FakeClock()
    limiter = RollingWindowLimiter(3, window=10.0, margin=0.0, clock=clock, sleep=clock.sleep)
    limiter.begin().done()
    limiter.observe(3, 0, 10.0)  # the portal counts 3: two of them not ours
    limiter.begin()
    assert clock.now == pytest.approx(1010.0)  # a window from when they were reported


def test_a_refusal_holds_places_longer_until_answers_wear_it_off() -> None:
    clock = FakeClock()
    limiter = RollingWindowLimiter(1, window=1.0, margin=0.0, clock=clock, sleep=clock.sleep)

    def hold() -> float:
        """How long one call of a 0.1 s round trip keeps the next one waiting."""
        slot = limiter.begin()
        started = clock.now
        clock.now += 0.1
        slot.done()
        limiter.begin().done()  # waits for the place
        return clock.now - started

    assert hold() == pytest.approx(1.0)  # a window after the answer, less the 0.1 s lead
    limiter.refused()
    limiter.refused()
    assert limiter.extra == pytest.approx(0.02)
    assert hold() > 1.0  # 20 ms longer, less what this answer wore off
    for _ in range(200):
        limiter.begin().done()
    assert limiter.extra == 0.0
    for _ in range(100):
        limiter.refused()
    assert limiter.extra == pytest.approx(0.05)  # at most a twentieth of the window


def test_a_429_makes_the_session_hold_search_places_longer() -> None:
    with start_hubspot(search_per_second=1_000) as sandbox:
        settings = HubSpotConnection(
            base_url=sandbox.base_url,
            access_token=SecretStr(sandbox.access_token),
            search_per_second=1_000,
        )
        session = HubSpotSession("hs", settings, retry=RetryPolicy(initial_wait=0.01))
        sandbox.app.faults.update(rate_limit_next=1)  # the next request: 429 (search policy)
        list(search_since(session, "companies", ["name"], datetime(2000, 1, 1, tzinfo=UTC)))
        assert session._search_limiter.extra > 0
        assert session._limiter.extra == 0.0
