"""The scheduler: triggers from config, job options, tick alignment, errors that never escape."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from connector.config import Settings
from connector.errors import ConfigError
from connector.service.scheduler import (
    build_scheduler,
    crontab_trigger,
    latest_fire_time,
    make_trigger,
    plan_jobs,
)


def _settings(**service: Any) -> Settings:
    return Settings.model_validate(
        {
            "connections": {
                "sf": {"crm": "salesforce"},
                "hs": {"crm": "hubspot"},
            },
            "service": service,
        }
    )


JOBS = [
    {"connection": "sf", "object": "account", "interval_minutes": 15},
    {"connection": "sf", "object": "contact", "cron": "30 2 * * 1-5", "full_every_hours": 24},
    {"connection": "hs", "object": "account", "interval_minutes": 0.5},
]


def test_triggers_follow_the_config() -> None:
    settings = _settings(timezone="Europe/Berlin", misfire_grace_seconds=120, jobs=JOBS)
    plans = plan_jobs(settings)
    assert list(plans) == ["sf.account", "sf.contact", "hs.account"]

    interval = plans["sf.account"].triggers[0]
    assert isinstance(interval, IntervalTrigger)
    assert interval.interval == timedelta(minutes=15)
    assert str(interval.timezone) == "Europe/Berlin"

    cron = plans["sf.contact"].triggers[0]
    assert isinstance(cron, CronTrigger)
    fields = {f.name: str(f) for f in cron.fields}
    assert (fields["minute"], fields["hour"]) == ("30", "2")
    assert str(cron.timezone) == "Europe/Berlin"
    assert plans["sf.contact"].full_every == timedelta(hours=24)
    assert plans["sf.account"].full_every is None

    # The cron line is read in the service's zone: 02:30 Berlin on a weekday.
    monday = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
    fire = cron.get_next_fire_time(None, monday)
    assert fire.astimezone(ZoneInfo("Europe/Berlin")).replace(tzinfo=None) == datetime(
        2026, 11, 23, 2, 30
    )


def test_scheduler_jobs_are_coalesced_single_instance_with_grace() -> None:
    settings = _settings(misfire_grace_seconds=77, jobs=JOBS)
    scheduler = build_scheduler(settings, start_now=False)
    scheduler.start(paused=True)
    try:
        jobs = {job.id: job for job in scheduler.get_jobs()}
        assert set(jobs) == {"sf.account", "sf.contact", "hs.account"}
        for job in jobs.values():
            assert job.coalesce is True
            assert job.max_instances == 1
            assert job.misfire_grace_time == 77
        assert jobs["sf.contact"].args == ("sf", "contact")
        assert jobs["sf.contact"].func.__name__ == "run_job"
    finally:
        scheduler.shutdown(wait=False)


def test_interval_jobs_also_run_at_start_without_leaving_the_grid() -> None:
    settings = _settings(jobs=JOBS)
    scheduler = build_scheduler(settings)
    scheduler.start(paused=True)
    try:
        jobs = {job.id: job for job in scheduler.get_jobs()}
    finally:
        scheduler.shutdown(wait=False)
    # Interval jobs get a one-off run now; cron jobs wait for their schedule.
    assert set(jobs) == {
        "sf.account",
        "sf.contact",
        "hs.account",
        "sf.account@start",
        "hs.account@start",
    }
    assert jobs["hs.account@start"].args == ("hs", "account")
    # The interval job itself stays on the 30-second grid.
    assert jobs["hs.account"].next_run_time.second in (0, 30)
    assert jobs["hs.account"].next_run_time.microsecond == 0


def test_interval_ticks_are_aligned_across_replicas() -> None:
    settings = _settings(jobs=JOBS)
    zone = ZoneInfo("UTC")
    first = make_trigger(settings.service.jobs[2], zone)
    second = make_trigger(settings.service.jobs[2], zone)
    now = datetime(2026, 11, 22, 5, 0, 7, 250000, tzinfo=UTC)
    # Two processes building the same job at different moments tick together.
    a = first.get_next_fire_time(None, now)
    b = second.get_next_fire_time(None, now + timedelta(seconds=3))
    assert a == datetime(2026, 11, 22, 5, 0, 30, tzinfo=UTC)
    assert b == a
    assert latest_fire_time(first, now, timedelta(minutes=5)) == datetime(
        2026, 11, 22, 5, 0, 0, tzinfo=UTC
    )


def _weekdays(expr: str) -> list[str]:
    trigger = crontab_trigger(expr, UTC)
    moment, days = datetime(2026, 11, 21, tzinfo=UTC), []  # a Saturday
    for _ in range(7):
        moment = trigger.get_next_fire_time(None, moment)
        days.append(moment.strftime("%a"))
        moment += timedelta(days=1) - timedelta(hours=moment.hour, minutes=moment.minute)
    return sorted(set(days), key=["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"].index)


@pytest.mark.parametrize(
    ("expr", "days"),
    [
        ("30 2 * * 1-5", ["Mon", "Tue", "Wed", "Thu", "Fri"]),
        ("0 9 * * 0", ["Sun"]),
        ("0 9 * * 7", ["Sun"]),
        ("0 9 * * 5-7", ["Sun", "Fri", "Sat"]),
        ("0 9 * * */2", ["Sun", "Tue", "Thu", "Sat"]),
        ("0 9 * * mon,WED", ["Mon", "Wed"]),
        ("0 9 * * *", ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]),
    ],
)
def test_crontab_weekdays_count_from_sunday(expr: str, days: list[str]) -> None:
    # APScheduler 3's own from_crontab would shift numbered weekdays by one.
    assert _weekdays(expr) == days


def test_latest_fire_time_of_a_cron_line() -> None:
    trigger = crontab_trigger("*/10 * * * *", UTC)
    now = datetime(2026, 11, 22, 5, 27, tzinfo=UTC)
    assert latest_fire_time(trigger, now, timedelta(minutes=15)) == datetime(
        2026, 11, 22, 5, 20, tzinfo=UTC
    )
    # Nothing inside a short window: no tick to deduplicate against.
    assert latest_fire_time(trigger, now, timedelta(minutes=5)) is None


def test_bad_cron_line_and_zone_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="cron"):
        plan_jobs(_settings(jobs=[{"connection": "sf", "object": "account", "cron": "61 * * *"}]))
    with pytest.raises(ConfigError, match="cron"):
        plan_jobs(_settings(jobs=[{"connection": "sf", "object": "account", "cron": "0 0 * * 9"}]))
    with pytest.raises(ConfigError, match="time zone"):
        plan_jobs(_settings(timezone="Mars/Olympus", jobs=JOBS[:1]))


def test_a_job_that_raises_is_logged_and_the_scheduler_keeps_ticking(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[tuple[str, str]] = []
    enough = threading.Event()

    def boom(connection: str, object: str) -> None:
        calls.append((connection, object))
        if len(calls) >= 3:
            enough.set()
        raise RuntimeError(f"boom {len(calls)}")

    settings = _settings(
        jobs=[{"connection": "hs", "object": "account", "interval_minutes": 0.2 / 60}]
    )
    scheduler = build_scheduler(settings, func=boom)
    caplog.set_level(logging.ERROR, logger="segsync.service")
    scheduler.start()
    try:
        assert enough.wait(10), "the scheduler stopped ticking after a failing job"
        assert scheduler.running
    finally:
        scheduler.shutdown(wait=True)
    raised = [r for r in caplog.records if "raised RuntimeError" in r.getMessage()]
    assert len(raised) >= 2
    assert raised[0].job == "hs.account"
