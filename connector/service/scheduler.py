"""The scheduler: one APScheduler job per configured connection × object.

Jobs are the module-level function :func:`run_job`, called with plain ids
(connection name, object, full flag); it finds everything else in the
process-wide :class:`ServiceContext` that :func:`install` sets. So a job can
be stored, logged and re-run by name, as APScheduler recommends.

Scheduling rules:

- ``interval_minutes`` ticks are aligned to a fixed epoch (2000-01-01 in
  ``service.timezone``), so every replica ticks at the same instants; interval
  jobs also fire once at start (catching up), cron jobs
  (standard crontab lines, Sunday = 0 or 7) only on their schedule.
- ``coalesce=True`` (missed ticks run once), ``max_instances=1``,
  ``misfire_grace_time = service.misfire_grace_seconds``.
- A job runs only while it holds its claim (:mod:`connector.store.leases`:
  the job lock plus a lease; a contact job also holds its accounts'),
  and only if no run of it started since the tick it belongs to: with
  several replicas each tick fires everywhere, one replica runs it, the
  others skip (``locked`` while it runs, ``done`` after).
- Jobs of one connection run one at a time in a process (accounts and
  contacts share the adapter, its rate limiter and its call count).
- ``full_every_hours``: a job pulls everything when the last completed full
  run is older than that.
- Deals (``object = "deal"``, read-only) are a job of their own, claimed as
  ``<connection>.deal``. When the account mapping has rollup attributes (or
  ``[sync] deals = true``) each account job first pulls its connection's
  deals under that claim, so the rollups read fresh deals; held elsewhere,
  the account run uses the deals the store has (the other run marks the
  accounts whose deals it changes for the next account run). A deal run
  that already succeeded for the same cycle (the deal job earlier in the
  same ``--once``, or since the account job's tick) is not repeated.
- A failing job is logged (and alerted) and simply runs again at its next
  tick; nothing a job raises reaches the scheduler.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Literal, cast

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from connector.config import JobSettings, ServiceSettings, Settings
from connector.crm.base import CrmAdapter, DealSource
from connector.engine import Engine
from connector.errors import ConfigError, Interrupted, Problem, SegsyncError
from connector.service.alerts import (
    Alerter,
    failed_run_text,
    failure_share_text,
    mass_change_text,
    recovered_text,
)
from connector.service.http import Metrics
from connector.store.deals import DEAL_OBJECT
from connector.store.leases import Busy, JobClaims, Lease, claim_order, job_key
from connector.store.locks import JobLocks
from connector.store.records import RunRow
from connector.store.store import Store
from connector.sync.agreement import agreement_for
from connector.sync.deals import sync_deals
from connector.sync.guard import MassChangeError
from connector.sync.runner import Job, Runner

log = logging.getLogger("segsync.service")

#: Interval ticks are multiples of the interval after this instant (in the
#: service's time zone), so independent replicas tick together.
EPOCH = datetime(2000, 1, 1)

Outcome = Literal[
    "succeeded",
    "partial",
    "failed",
    "aborted",
    "interrupted",
    "running",
    "skipped:locked",
    "skipped:done",
    "skipped:stopping",
    "error",
]


class ShutdownRequested(Interrupted):
    """The service is stopping: raised between batches and instead of a back-off sleep.

    The runner records the run as ended (see the service's report on the
    ``aborted`` status); the next run re-plans from the unchanged watermark.
    """


def timezone_of(settings: ServiceSettings) -> tzinfo:
    """``service.timezone`` as a tzinfo; a ConfigError names an unknown zone."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(settings.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            [Problem("config", "service.timezone", f"unknown time zone {settings.timezone!r}")]
        ) from None


_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _crontab_days(field: str) -> str:
    """A crontab day-of-week field (0 or 7 = Sunday) as APScheduler 3 day names.

    APScheduler 3 numbers weekdays from Monday = 0 (its issue 286), so
    ``from_crontab("0 9 * * 1-5")`` would run Tuesday to Saturday; names
    mean the same in both.
    """

    def day(token: str) -> int:
        token = token.strip().lower()
        if token[:3] in _DAY_NAMES:
            return _DAY_NAMES.index(token[:3])
        number = int(token)
        if not 0 <= number <= 7:
            raise ValueError(f"day of week {number} is not in 0-7")
        return number

    days: set[int] = set()
    for part in field.split(","):
        span, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ValueError(f"bad step in {part!r}")
        if span == "*":
            first, last = 0, 6
        elif "-" in span:
            start, end = span.split("-", 1)
            first, last = day(start), day(end)
        else:
            first = day(span)
            last = 7 if step_text else first
        if last < first:
            raise ValueError(f"bad day range {part!r}")
        days.update(d % 7 for d in range(first, last + 1, step))
    if len(days) == 7:
        return "*"
    return ",".join(_DAY_NAMES[d] for d in sorted(days))


def crontab_trigger(expr: str, zone: tzinfo) -> CronTrigger:
    """A trigger from a standard five-field crontab line, read in ``zone``."""
    values = expr.split()
    if len(values) != 5:
        raise ValueError(f"a crontab line has 5 fields, this one {len(values)}")
    minute, hour, day, month, weekdays = values
    return CronTrigger(
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=_crontab_days(weekdays),
        timezone=zone,
    )


def make_trigger(job: JobSettings, zone: tzinfo) -> BaseTrigger:
    """The APScheduler trigger of one job: an epoch-aligned interval, or a crontab line."""
    if job.cron is not None:
        try:
            return crontab_trigger(job.cron, zone)
        except ValueError as exc:
            raise ConfigError(
                [
                    Problem(
                        "config",
                        f"service.jobs ({job_key(job.connection, job.object)})",
                        f"bad cron line {job.cron!r}: {exc}",
                    )
                ]
            ) from None
    if job.interval_minutes is None:  # the settings model guarantees one of the two
        raise ConfigError([Problem("config", "service.jobs", "a job needs a trigger")])
    return IntervalTrigger(
        seconds=job.interval_minutes * 60,
        start_date=EPOCH.replace(tzinfo=zone),
        timezone=zone,
    )


def latest_fire_time(trigger: BaseTrigger, now: datetime, window: timedelta) -> datetime | None:
    """The last time ``trigger`` fired at or before ``now``, looking back at most ``window``."""
    fire: datetime | None = trigger.get_next_fire_time(None, now - window)
    latest: datetime | None = None
    # Bounded: at most one step per tick in the window, and a tick is >= 1 s.
    for _ in range(100_000):
        if fire is None or fire > now:
            break
        latest = fire
        fire = trigger.get_next_fire_time(fire, fire + timedelta(microseconds=1))
    return latest


@dataclass
class JobPlan:
    """What the service schedules for one connection × object (several triggers merge)."""

    connection: str
    object: str
    triggers: list[BaseTrigger] = field(default_factory=list)
    intervals: list[timedelta] = field(default_factory=list)
    full_every: timedelta | None = None

    @property
    def key(self) -> str:
        """``<connection>.<object>``."""
        return job_key(self.connection, self.object)


def plan_jobs(settings: Settings) -> dict[str, JobPlan]:
    """The configured jobs by key, with their triggers, in config order."""
    zone = timezone_of(settings.service)
    plans: dict[str, JobPlan] = {}
    for spec in settings.service.jobs:
        plan = plans.setdefault(
            job_key(spec.connection, spec.object), JobPlan(spec.connection, spec.object)
        )
        plan.triggers.append(make_trigger(spec, zone))
        if spec.interval_minutes is not None:
            plan.intervals.append(timedelta(minutes=spec.interval_minutes))
        if spec.full_every_hours is not None:
            every = timedelta(hours=spec.full_every_hours)
            plan.full_every = every if plan.full_every is None else min(plan.full_every, every)
    return plans


@dataclass
class ServiceContext:
    """Everything a job needs, shared by the jobs of one process."""

    settings: Settings
    engines: Mapping[str, Engine]
    store: Store
    adapters: Mapping[str, CrmAdapter]
    runner: Runner
    locks: JobLocks
    jobs: Mapping[str, JobPlan]
    metrics: Metrics
    alerter: Alerter
    stop: threading.Event = field(default_factory=threading.Event)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    alerted: dict[str, str] = field(default_factory=dict)
    """Job key → what it was last alerted for (cleared, with a note, when it recovers)."""
    _connection_locks: dict[str, threading.Lock] = field(default_factory=dict)
    _claims: JobClaims | None = None
    deals_first: bool = False
    """Each account job pulls its connection's deals first (rollups, or ``[sync] deals``)."""
    deal_marks: bool = False
    """Deal runs mark the accounts whose deals changed (the account mapping has rollups)."""
    cycle_after: int | None = None
    """``segsync run --once``: the store's last run id when the cycle began (a deal
    run after it is this cycle's), None outside ``--once``."""
    _inflight: int = 0
    _idle: threading.Condition = field(default_factory=threading.Condition)

    @property
    def claims(self) -> JobClaims:
        """The job claims of this process: its locks plus leases in the store."""
        with self._idle:
            if self._claims is None:
                self._claims = JobClaims(
                    self.store.engine,
                    self.locks,
                    lease_seconds=self.settings.sync.lease_seconds,
                    purpose="segsync run",
                    stall_seconds=self.settings.sync.stall_seconds,
                )
            return self._claims

    def connection_lock(self, connection: str) -> threading.Lock:
        """The in-process lock that serializes the jobs of one connection."""
        with self._idle:
            return self._connection_locks.setdefault(connection, threading.Lock())

    @contextlib.contextmanager
    def tracked(self) -> Iterator[None]:
        """Count a job as in flight for the block (shutdown waits for none)."""
        with self._idle:
            self._inflight += 1
        try:
            yield
        finally:
            with self._idle:
                self._inflight -= 1
                self._idle.notify_all()

    @property
    def inflight(self) -> int:
        """Jobs running now in this process."""
        return self._inflight

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no job runs; False when ``timeout`` seconds passed first."""
        with self._idle:
            return self._idle.wait_for(lambda: self._inflight == 0, timeout=timeout)

    def job(self, connection: str, object: str) -> Job:
        """The runner's job for a connection × object (contacts get the account engine)."""
        engine = self.engines.get(object)
        if engine is None:
            raise ConfigError(
                [Problem("config", "sync.mappings", f"no mapping defines the {object!r} object")]
            )
        parent = self.engines.get("account") if object == "contact" else None
        adopted = self.settings.connections[connection].adopted(object)
        agreement = agreement_for(self.settings, connection, engine, self.adapters.__getitem__)
        return Job(connection, self.adapters[connection], engine, parent, adopted, agreement)

    def tick_of(self, plan: JobPlan, now: datetime) -> datetime | None:
        """The latest scheduled instant at or before ``now`` of any of the job's triggers."""
        grace = timedelta(seconds=self.settings.service.misfire_grace_seconds)
        ticks = [
            latest_fire_time(trigger, now, max([grace, *plan.intervals]))
            for trigger in plan.triggers
        ]
        found = [t for t in ticks if t is not None]
        return max(found) if found else None

    def full_due(self, plan: JobPlan, now: datetime) -> bool:
        """Whether ``full_every_hours`` asks for a full pull now."""
        if plan.full_every is None:
            return False
        last = self.store.last_full_run(plan.connection, plan.object)
        if last is None:
            return True
        return (last.finished_at or last.started_at) <= now - plan.full_every


_CONTEXT: ServiceContext | None = None
_CONTEXT_LOCK = threading.Lock()


def install(context: ServiceContext | None) -> None:
    """Make ``context`` the one :func:`run_job` uses (None removes it)."""
    global _CONTEXT
    with _CONTEXT_LOCK:
        _CONTEXT = context


def current() -> ServiceContext:
    """The installed context; RuntimeError when the service is not running."""
    context = _CONTEXT
    if context is None:
        raise RuntimeError("no service context is installed (is `segsync run` running?)")
    return context


def run_job(connection: str, object: str, full: bool = False, check_tick: bool = True) -> Outcome:
    """One scheduled job: run a sync cycle of ``connection`` × ``object`` if it is this replica's.

    Args:
        connection: the connection's name in the config.
        object: ``account``, ``contact``, ``lead`` or ``deal``.
        full: pull every record (a full run is also forced by ``full_every_hours``).
        check_tick: skip when a run of this job already started since its
            latest tick (on any replica); ``segsync run --once`` passes False.

    Returns:
        The run's status, or why no run happened (``skipped:…``, ``error``).
        Never raises: a failure is logged, alerted and retried at the next tick.

    """
    ctx = current()
    key = job_key(connection, object)
    extra = {"job": key, "connection": connection, "object": object}
    # Counted in flight before looking at the stop flag: stop() sets the flag,
    # then waits for the count, so no job slips past both.
    with ctx.tracked():
        if ctx.stop.is_set():
            ctx.metrics.skips.labels(connection, object, "stopping").inc()
            return "skipped:stopping"
        try:
            return _guarded(ctx, connection, object, full, check_tick, extra)
        except Exception as exc:
            ctx.metrics.job_errors.labels(connection, object).inc()
            if isinstance(exc, SegsyncError):
                log.error("job %s failed: %s", key, exc, extra=extra)
            else:
                log.exception("job %s failed", key, extra=extra)
            ctx.alerter.send(failed_run_text(key, None, f"{type(exc).__name__}: {exc}"))
            return "error"


def _guarded(
    ctx: ServiceContext,
    connection: str,
    object: str,
    full: bool,
    check_tick: bool,
    extra: dict[str, str],
) -> Outcome:
    key = extra["job"]
    plan = ctx.jobs.get(key) or JobPlan(connection, object)
    serial = ctx.connection_lock(connection)
    # Wait for the connection's other job in this process, but not past a stop.
    while not serial.acquire(timeout=0.2):
        if ctx.stop.is_set():
            ctx.metrics.skips.labels(connection, object, "stopping").inc()
            return "skipped:stopping"
    try:
        key, after = claim_order(connection, object)
        with ctx.claims.claim(key, after=after) as lease:
            if isinstance(lease, Busy):
                # A contact job also skips while its accounts run elsewhere.
                log.debug("job %s skipped: %s", key, lease, extra=extra)
                ctx.metrics.skips.labels(connection, object, "locked").inc()
                return "skipped:locked"
            now = ctx.clock()
            latest = ctx.store.runs(1, connection=connection, object=object)
            if check_tick:
                tick = ctx.tick_of(plan, now)
                if tick is not None and latest and latest[0].started_at >= tick:
                    log.debug("job %s already ran for the %s tick", key, tick, extra=extra)
                    ctx.metrics.skips.labels(connection, object, "done").inc()
                    return "skipped:done"
            if ctx.stop.is_set():
                ctx.metrics.skips.labels(connection, object, "stopping").inc()
                return "skipped:stopping"
            full = full or ctx.full_due(plan, now)
            if object == "account" and ctx.deals_first:
                since = ctx.tick_of(plan, now) if check_tick else None
                if not _deals_fresh(ctx, connection, since, extra):
                    _deals_first(ctx, connection, extra)
            return _run(ctx, plan, full, latest[0].id if latest else 0, extra, lease)
    finally:
        serial.release()


def _run(
    ctx: ServiceContext,
    plan: JobPlan,
    full: bool,
    before: int,
    extra: dict[str, str],
    lease: Lease | None = None,
) -> Outcome:
    key = plan.key
    mass_change: MassChangeError | None = None
    stopped = False
    try:
        if plan.object == DEAL_OBJECT:
            _pull_deals(ctx, plan.connection, full, lease)
        else:
            ctx.runner.run(ctx.job(plan.connection, plan.object), full=full, lease=lease)
    except MassChangeError as exc:
        mass_change = exc
        log.warning("job %s stopped by the mass-change guard: %s", key, exc, extra=extra)
    except ShutdownRequested:
        stopped = True
        log.info("job %s stopped for shutdown after its last recorded batch", key, extra=extra)
    except SegsyncError as exc:
        log.error("job %s failed: %s", key, exc, extra=extra)
    except Exception:
        log.exception("job %s failed", key, extra=extra)
    row = _latest_after(ctx.store, plan, before)
    if row is None:
        # The run was never recorded (the store failed before start_run).
        ctx.metrics.job_errors.labels(plan.connection, plan.object).inc()
        if not stopped:
            ctx.alerter.send(failed_run_text(key, None, "the run could not be recorded"))
        return "error"
    ctx.metrics.observe_run(row)
    _alert(ctx, key, row, mass_change, stopped)
    return cast(Outcome, row.status)


def _deals_fresh(
    ctx: ServiceContext, connection: str, tick: datetime | None, extra: dict[str, str]
) -> bool:
    """Whether this account run's deals were already pulled for its cycle (no pull again).

    Fresh means the connection's latest deal run succeeded and belongs to the
    cycle this account run serves: recorded after ``--once`` began
    (:attr:`ServiceContext.cycle_after`), or started at or after the account
    job's tick (a deal job on the same schedule ran first). Pulling again
    would read only what changed in the seconds between the two runs, as a
    pull just before the accounts misses what changes during them; the next
    cycle reads it. A failed or older deal run is not fresh.
    """
    latest = ctx.store.runs(1, connection=connection, object=DEAL_OBJECT)
    if not latest or latest[0].status != "succeeded":
        return False
    run = latest[0]
    if ctx.cycle_after is not None:
        fresh = run.id > ctx.cycle_after
    else:
        fresh = tick is not None and run.started_at >= tick
    if fresh:
        log.info(
            "deals of %s were pulled for this cycle (run %d): not pulled again",
            connection,
            run.id,
            extra={**extra, "job": job_key(connection, DEAL_OBJECT), "object": DEAL_OBJECT},
        )
        ctx.metrics.skips.labels(connection, DEAL_OBJECT, "fresh").inc()
    return fresh


def _deals_first(ctx: ServiceContext, connection: str, extra: dict[str, str]) -> None:
    """Pull the connection's deals before its accounts, under the deal job's claim."""
    plan = ctx.jobs.get(job_key(connection, DEAL_OBJECT)) or JobPlan(connection, DEAL_OBJECT)
    deal_extra = {**extra, "job": plan.key, "object": DEAL_OBJECT}
    with ctx.claims.claim(plan.key) as lease:
        if isinstance(lease, Busy):
            log.info(
                "deals of %s are being pulled elsewhere: its accounts use the stored ones",
                connection,
                extra=deal_extra,
            )
            ctx.metrics.skips.labels(connection, DEAL_OBJECT, "locked").inc()
            return
        latest = ctx.store.runs(1, connection=connection, object=DEAL_OBJECT)
        _run(ctx, plan, False, latest[0].id if latest else 0, deal_extra, lease)


def _pull_deals(ctx: ServiceContext, connection: str, full: bool, lease: Lease | None) -> None:
    """One deal sync of ``connection`` (connector/sync/deals.py)."""
    sync_deals(
        cast(DealSource, ctx.adapters[connection]),
        ctx.store,
        connection,
        full=full,
        lookback=timedelta(seconds=ctx.settings.sync.lookback_seconds),
        mark_accounts=ctx.deal_marks,
        lease=lease,
        retry=ctx.runner.retry,
    )


def _latest_after(store: Store, plan: JobPlan, before: int) -> RunRow | None:
    rows = store.runs(1, connection=plan.connection, object=plan.object)
    return rows[0] if rows and rows[0].id > before else None


def _alert(
    ctx: ServiceContext,
    key: str,
    row: RunRow,
    mass_change: MassChangeError | None,
    stopped: bool,
) -> None:
    """Alert on a failed run, a mass-change stop, too many failed writes; once per streak."""
    if stopped:
        return
    text: str | None = None
    signature = ""
    if mass_change is not None:
        text = mass_change_text(key, str(mass_change))
        signature = f"mass_change:{mass_change.reason}"
    elif row.status == "failed":
        text = failed_run_text(key, row.id, row.message or "")
        signature = f"failed:{row.message}"
    else:
        attempted = row.counts.written + row.counts.failed
        threshold = ctx.settings.service.alert_failure_share
        if row.counts.failed and attempted and row.counts.failed / attempted > threshold:
            text = failure_share_text(key, row.id, row.counts.failed, attempted, threshold)
            signature = "failure_share"
    previous = ctx.alerted.get(key)
    if text is None:
        if previous is not None and row.status in ("succeeded", "partial"):
            del ctx.alerted[key]
            ctx.alerter.send(recovered_text(key, row.id))
        return
    # A job failing the same way at every tick alerts once, not every tick.
    if previous != signature:
        ctx.alerted[key] = signature
        ctx.alerter.send(text)


def _on_event(event: JobExecutionEvent) -> None:
    # run_job never raises; this catches what escapes anyway (a bug) and misses.
    key = re.sub(r"(@start|#\d+)$", "", str(event.job_id))
    if event.code == EVENT_JOB_MISSED:
        log.warning(
            "job %s missed its %s tick (later than misfire_grace_seconds)",
            key,
            event.scheduled_run_time,
            extra={"job": key},
        )
    elif event.exception is not None:
        log.error(
            "job %s raised %s: %s",
            key,
            type(event.exception).__name__,
            event.exception,
            extra={"job": key},
        )


def build_scheduler(
    settings: Settings,
    jobs: Mapping[str, JobPlan] | None = None,
    *,
    func: Callable[..., Any] = run_job,
    start_now: bool = True,
) -> BackgroundScheduler:
    """An unstarted scheduler with one APScheduler job per trigger of each planned job.

    Args:
        settings: the whole settings (``service`` is used).
        jobs: :func:`plan_jobs` of the settings (computed when omitted).
        func: the job function (a seam for tests; the service uses :func:`run_job`).
        start_now: interval jobs also run once when the scheduler starts (a
            one-off ``<key>@start`` job; skipped when this tick already ran).

    """
    service = settings.service
    zone = timezone_of(service)
    plans = plan_jobs(settings) if jobs is None else jobs
    workers = max(1, sum(len(p.triggers) for p in plans.values()))
    scheduler = BackgroundScheduler(
        executors={"default": ThreadPoolExecutor(max_workers=workers)},
        job_defaults={
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": service.misfire_grace_seconds,
        },
        timezone=zone,
    )
    for plan in plans.values():
        for index, trigger in enumerate(plan.triggers):
            scheduler.add_job(
                func,
                trigger=trigger,
                args=(plan.connection, plan.object),
                id=plan.key if index == 0 else f"{plan.key}#{index + 1}",
                name=plan.key,
                replace_existing=True,
            )
        if start_now and plan.intervals:
            # A separate one-off job: moving the interval job's first run to
            # "now" would shift all its later ticks off the shared epoch grid.
            scheduler.add_job(
                func,
                trigger=DateTrigger(datetime.now(zone), timezone=zone),
                args=(plan.connection, plan.object),
                id=f"{plan.key}@start",
                name=plan.key,
                replace_existing=True,
            )
    scheduler.add_listener(_on_event, EVENT_JOB_ERROR | EVENT_JOB_MISSED)
    return scheduler


#: The order of a connection's jobs in ``--once``: deals (read by the
#: accounts' rollups), accounts (inherited by contacts), then the rest.
_ONCE_ORDER = {DEAL_OBJECT: 0, "account": 1}


def jobs_in_order(plans: Mapping[str, JobPlan]) -> Sequence[JobPlan]:
    """The planned jobs: deals, then accounts, before contacts of each connection (``--once``)."""
    return sorted(plans.values(), key=lambda p: (p.connection, _ONCE_ORDER.get(p.object, 2)))
