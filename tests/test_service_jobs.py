"""The job function against a real store with a scripted runner: skips, full runs, alerts, metrics.

The runner is the one thing scripted here (the sandbox tests run the real
one): it records runs in the real SQLite store exactly as the runner does
(start_run, finish_run, then raise or return), so the service's reading of
outcomes is what is tested.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connector.config import Settings
from connector.errors import FatalSyncError
from connector.service.alerts import Alerter
from connector.service.http import Metrics
from connector.service.locks import LocalLocks
from connector.service.scheduler import ServiceContext, install, plan_jobs, run_job
from connector.store import RunCounts, Store
from connector.sync.guard import MassChangeError

NOW = datetime(2026, 11, 22, 5, 0, 30, tzinfo=UTC)


class RecordingAlerter(Alerter):
    def __init__(self) -> None:
        super().__init__("http://127.0.0.1:9/never-called")
        self.texts: list[str] = []

    def send(self, text: str) -> bool:
        self.texts.append(text)
        return True


class ScriptedRunner:
    """Records each run in the store as the real runner would, with a scripted outcome."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.script: list[str] = []
        self.calls: list[dict[str, Any]] = []

    def run(self, job: Any, *, full: bool = False, **_: Any) -> None:
        self.calls.append({"connection": job.connection, "full": full})
        step = self.script.pop(0)
        run_id = self.store.start_run(job.connection, "hubspot", "account", "v1", full=full)
        if step == "succeed":
            self.store.finish_run(run_id, "succeeded", RunCounts(read=10, written=4), 3, 2)
        elif step == "partial":
            counts = RunCounts(read=10, changed=10, written=7, failed=3)
            self.store.finish_run(run_id, "partial", counts, 5, 2)
        elif step == "mass_change":
            self.store.finish_run(run_id, "aborted", RunCounts(read=10), 1, 1, "too many")
            raise MassChangeError(
                "the plan would rewrite 90% of records",
                reason="mass_change",
                changed=9,
                total=10,
                limit=0.5,
            )
        elif step == "fail":
            self.store.finish_run(run_id, "failed", RunCounts(), 1, 1, "HubSpot list: HTTP 401")
            raise FatalSyncError("HubSpot list: HTTP 401")
        elif step == "crash":
            self.store.finish_run(run_id, "failed", RunCounts(), 0, 0, "KeyError: 'x'")
            raise KeyError("x")


@pytest.fixture
def context(tmp_path: Path) -> Iterator[ServiceContext]:
    settings = Settings.model_validate(
        {
            "connections": {"hs": {"crm": "hubspot"}},
            "service": {
                "alert_failure_share": 0.2,
                "jobs": [
                    {
                        "connection": "hs",
                        "object": "account",
                        "interval_minutes": 1,
                        "full_every_hours": 6,
                    }
                ],
            },
        }
    )
    clock = {"now": NOW}
    store = Store.open(f"sqlite:///{tmp_path / 'state.db'}", clock=lambda: clock["now"])
    ctx = ServiceContext(
        settings=settings,
        engines={"account": object()},  # type: ignore[dict-item]
        store=store,
        adapters={"hs": object()},  # type: ignore[dict-item]
        runner=ScriptedRunner(store),  # type: ignore[arg-type]
        locks=LocalLocks(),
        jobs=plan_jobs(settings),
        metrics=Metrics(),
        alerter=RecordingAlerter(),
        clock=lambda: clock["now"],
    )
    ctx.now = clock  # type: ignore[attr-defined]
    install(ctx)
    try:
        yield ctx
    finally:
        install(None)
        store.close()


def _runner(ctx: ServiceContext) -> ScriptedRunner:
    runner = ctx.runner
    assert isinstance(runner, ScriptedRunner)
    return runner


def _alerts(ctx: ServiceContext) -> list[str]:
    alerter = ctx.alerter
    assert isinstance(alerter, RecordingAlerter)
    return alerter.texts


def _sample(ctx: ServiceContext, name: str, **labels: str) -> float:
    value = ctx.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def _tick(ctx: ServiceContext, seconds: float) -> None:
    ctx.now["now"] += timedelta(seconds=seconds)  # type: ignore[attr-defined]


def test_one_run_per_tick_and_full_when_due(context: ServiceContext) -> None:
    runner = _runner(context)
    runner.script = ["succeed", "succeed", "succeed"]
    assert run_job("hs", "account") == "succeeded"
    # No full run recorded yet: full_every_hours asks for one.
    assert runner.calls[-1]["full"] is True
    # The same tick fires again (another replica, a catch-up): skipped.
    _tick(context, 5)
    assert run_job("hs", "account") == "skipped:done"
    assert (
        _sample(
            context, "segsync_job_skips_total", connection="hs", object="account", reason="done"
        )
        == 1
    )
    # The next tick runs, incrementally: the full run is recent.
    _tick(context, 60)
    assert run_job("hs", "account") == "succeeded"
    assert runner.calls[-1]["full"] is False
    # Six hours on, a full pull again.
    _tick(context, 6 * 3600)
    assert run_job("hs", "account") == "succeeded"
    assert runner.calls[-1]["full"] is True
    assert (
        _sample(
            context,
            "segsync_runs_total",
            connection="hs",
            crm="hubspot",
            object="account",
            status="succeeded",
        )
        == 3
    )
    assert (
        _sample(
            context,
            "segsync_records_total",
            connection="hs",
            crm="hubspot",
            object="account",
            outcome="written",
        )
        == 12
    )
    assert _alerts(context) == []


def test_a_job_held_elsewhere_is_skipped(context: ServiceContext) -> None:
    with context.locks.hold("hs.account"):
        assert run_job("hs", "account") == "skipped:locked"
    assert _runner(context).calls == []


def test_failures_are_returned_alerted_and_never_raised(context: ServiceContext) -> None:
    runner = _runner(context)
    runner.script = ["fail", "crash", "mass_change", "partial", "succeed"]
    outcomes = []
    for _ in range(5):
        outcomes.append(run_job("hs", "account"))
        _tick(context, 60)
    assert outcomes == ["failed", "failed", "aborted", "partial", "succeeded"]
    alerts = _alerts(context)
    assert len(alerts) == 5
    assert "completed again" in alerts[4]
    assert "hs.account" in alerts[0] and "failed" in alerts[0] and "HTTP 401" in alerts[0]
    assert "KeyError" in alerts[1]
    assert "mass-change guard" in alerts[2] and "90%" in alerts[2]
    # 3 of 10 writes failed: above the 20 % threshold.
    assert "3 of 10 writes failed" in alerts[3]
    assert (
        _sample(
            context,
            "segsync_runs_total",
            connection="hs",
            crm="hubspot",
            object="account",
            status="failed",
        )
        == 2
    )


def test_a_failure_streak_alerts_once_then_recovers(context: ServiceContext) -> None:
    _runner(context).script = ["fail", "fail", "fail", "succeed", "succeed", "fail"]
    for _ in range(6):
        run_job("hs", "account")
        _tick(context, 60)
    alerts = _alerts(context)
    assert [a.split(" ", 1)[0] for a in alerts] == [
        ":red_circle:",
        ":large_green_circle:",
        ":red_circle:",
    ]


def test_failure_share_below_threshold_is_quiet(context: ServiceContext) -> None:
    context.settings.service.alert_failure_share = 0.5
    _runner(context).script = ["partial"]
    assert run_job("hs", "account") == "partial"
    assert _alerts(context) == []


def test_nothing_runs_once_stopping(context: ServiceContext) -> None:
    context.stop.set()
    assert run_job("hs", "account") == "skipped:stopping"
    assert _runner(context).calls == []
