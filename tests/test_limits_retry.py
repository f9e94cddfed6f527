from __future__ import annotations

import random

import pytest

from connector.crm.limits import BudgetExhausted, DailyBudget, RollingWindowLimiter
from connector.crm.retry import RetryPolicy
from connector.errors import RetriableError, SkippableError


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
