"""The service as one object: open everything, schedule, serve, stop cleanly.

:class:`Service` is what ``segsync run`` drives (and what tests drive in
process). Its life:

1. :meth:`Service.open` loads the mappings, opens the store, builds an
   adapter per scheduled connection (with a retry policy whose back-off
   sleep the stop event cuts short), picks the job locks, and installs the
   process-wide :class:`~connector.service.scheduler.ServiceContext`.
2. :meth:`Service.start` binds the HTTP endpoint and starts the scheduler.
3. :meth:`Service.stop` (after SIGTERM / SIGINT) stops scheduling, lets the
   batch in flight finish and be recorded (the runner's progress hook raises
   :class:`~connector.service.scheduler.ShutdownRequested` between batches,
   a back-off sleep raises it instead of sleeping), waits for the jobs at
   most ``service.shutdown_timeout_seconds``, then closes everything.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, cast

from connector.config import HubSpotConnection, SalesforceConnection, Settings, warn_insecure
from connector.crm.base import CrmAdapter
from connector.crm.health import Health
from connector.crm.retry import RetryPolicy
from connector.errors import ConfigError, Problem, SegsyncError
from connector.service.alerts import Alerter
from connector.service.http import HealthServer, Metrics
from connector.service.locks import locks_for
from connector.service.logs import collect_secrets, redact
from connector.service.scheduler import (
    Outcome,
    ServiceContext,
    ShutdownRequested,
    build_scheduler,
    install,
    jobs_in_order,
    plan_jobs,
    run_job,
)
from connector.store.deals import DEAL_OBJECT
from connector.store.store import Store
from connector.sync.rollups import rollups_need_deals
from connector.sync.runner import Runner
from connector.sync.steps import open_store

log = logging.getLogger("segsync.service")

#: How long a connection counts as checked after its last successful call.
#: /readyz answers from the adapter's own record of its calls (the runs keep
#: it fresh, and a cached Salesforce token carries its last use across
#: processes); only when no call succeeded for this long does it make one
#: real check (a describe), at most once per this period. Probes come every
#: few seconds; a check per probe would spend the daily API allocation.
AUTH_CHECK_TTL = 3600.0
#: How long the first /readyz waits for the first authentication check.
AUTH_CHECK_WAIT = 10.0


def make_service_adapter(
    name: str,
    connection: SalesforceConnection | HubSpotConnection,
    retry: RetryPolicy,
    cache: Store | None = None,
) -> CrmAdapter:
    """The adapter for one connection, with the service's retry policy and cache (the store)."""
    if isinstance(connection, HubSpotConnection):
        from connector.crm.hubspot import HubSpotAdapter

        # The rate limiter keeps a plain sleep: its pauses are short, and one
        # that returned early on shutdown would only spin.
        return HubSpotAdapter(name, connection, retry=retry, sleep=time.sleep)
    from connector.crm.salesforce import SalesforceAdapter

    return cast(CrmAdapter, SalesforceAdapter(name, connection, retry=retry, cache=cache))


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _remaining(budget: Any) -> int | None:
    value = budget.remaining
    return None if value is None else int(value)


class Service:
    """The long-running service on one settings object."""

    def __init__(
        self,
        settings: Settings,
        *,
        port: int | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        alerter: Alerter | None = None,
        adapter_factory: Callable[
            [str, SalesforceConnection | HubSpotConnection, RetryPolicy, Store | None], CrmAdapter
        ] = make_service_adapter,
    ) -> None:
        self.settings = settings
        self.port = settings.service.port if port is None else port
        self.secrets = collect_secrets(settings)
        self.stop_event = threading.Event()
        self._clock = clock
        self._alerter = alerter
        self._adapter_factory = adapter_factory
        self._started_at = time.monotonic()
        self._auth_cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self._auth_threads: dict[str, threading.Thread] = {}
        self._auth_lock = threading.Lock()
        self.context: ServiceContext | None = None
        self.http: HealthServer | None = None
        self._scheduler: Any = None

    # -- lifecycle -------------------------------------------------------
    def open(self) -> ServiceContext:
        """Load mappings, open the store, build adapters and locks; install the context."""
        from connector.commands.crm import load_engines

        settings = self.settings
        warn_insecure(settings, log)
        plans = plan_jobs(settings)
        if not plans:
            raise ConfigError(
                [Problem("config", "service.jobs", "no jobs are configured: nothing to schedule")]
            )
        engines = load_engines(settings.sync.mappings)
        missing = sorted({p.object for p in plans.values()} - set(engines) - {DEAL_OBJECT})
        if missing:
            raise ConfigError(
                [
                    Problem("config", "service.jobs", f"no mapping defines the {obj!r} object")
                    for obj in missing
                ]
            )
        # Every [sync] retry setting, the initial wait included, with a sleep
        # that a stop request cuts short.
        retry = RetryPolicy.from_settings(settings.sync, sleep=self._backoff_sleep)
        store = open_store(settings.store, retry)
        adapters: dict[str, CrmAdapter] = {}
        try:
            # The agreement policy reads the other CRM too, scheduled or not.
            wanted = [*(p.connection for p in plans.values()), *settings.policy_connections()]
            for name in dict.fromkeys(wanted):
                try:
                    adapters[name] = self._adapter_factory(
                        name, settings.connections[name], retry, store
                    )
                except SegsyncError as exc:
                    if isinstance(exc, ConfigError):
                        raise
                    # A missing token or key is the operator's to fix: say so, no traceback.
                    raise ConfigError(
                        [Problem("config", f"connections.{name}", self._safe(exc))]
                    ) from None
            metrics = Metrics()
            context = ServiceContext(
                settings=settings,
                engines=engines,
                store=store,
                adapters=adapters,
                runner=Runner(store, settings.sync, progress=self._progress, retry=retry),
                locks=locks_for(store.engine),
                jobs=plans,
                metrics=metrics,
                alerter=self._alerter
                or Alerter(
                    settings.service.alert_webhook_url.get_secret_value()
                    if settings.service.alert_webhook_url
                    else None,
                    self.secrets,
                ),
                stop=self.stop_event,
                clock=self._clock,
                deals_first=settings.sync.deals or rollups_need_deals(engines),
                deal_marks=rollups_need_deals(engines),
            )
        except BaseException:
            for adapter in adapters.values():
                adapter.close()
            store.close()
            raise
        for name, adapter in adapters.items():
            budget = getattr(adapter, "budget", None)
            if budget is not None:
                metrics.watch_budget(name, adapter.crm, partial(_remaining, budget))
        metrics.watch_stalls(lambda: len(context.claims.stalled()))
        for plan in plans.values():
            metrics.watch_last_success(
                plan.connection,
                plan.object,
                partial(store.last_success, plan.connection, plan.object),
            )
        self.context = context
        install(context)
        return context

    def start(self) -> None:
        """Serve the HTTP endpoint and start the scheduler (opening first if needed)."""
        context = self.context or self.open()
        host = self.settings.service.host
        try:
            self.http = HealthServer(
                host, self.port, context.metrics, self.readiness, self.liveness
            )
        except OSError as exc:
            self.close()
            raise ConfigError(
                [Problem("config", "service.port", f"cannot listen on {host}:{self.port}: {exc}")]
            ) from None
        self.http.start()
        log.info(
            "segsync service listening on http://%s:%d (/healthz /readyz /metrics)",
            self.http.host,
            self.http.port,
        )
        self._scheduler = build_scheduler(self.settings, context.jobs)
        self._scheduler.start()
        for job in self._scheduler.get_jobs():
            log.info(
                "scheduled %s: %s, next at %s",
                job.name,
                job.trigger,
                job.next_run_time,
                extra={"job": job.name},
            )

    def run_once(self) -> list[Outcome]:
        """Run every configured job once, accounts before contacts (``segsync run --once``)."""
        context = self.context or self.open()
        outcomes: list[Outcome] = []
        # Runs recorded from here on are this cycle's: an account job does not
        # pull the deals the deal job just pulled (scheduler._deals_fresh).
        latest = context.store.runs(1)
        context.cycle_after = latest[0].id if latest else 0
        try:
            for plan in jobs_in_order(context.jobs):
                if self.stop_event.is_set():
                    break
                outcomes.append(run_job(plan.connection, plan.object, check_tick=False))
        finally:
            context.cycle_after = None
        return outcomes

    def request_stop(self) -> None:
        """Ask the service to stop (what the signal handlers call); returns at once."""
        self.stop_event.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a stop is requested; False when ``timeout`` passed first."""
        return self.stop_event.wait(timeout)

    def stop(self) -> bool:
        """Stop scheduling, wait for the jobs in flight, close everything.

        Returns:
            True when every job finished within ``service.shutdown_timeout_seconds``.

        """
        deadline = time.monotonic() + self.settings.service.shutdown_timeout_seconds
        self.stop_event.set()
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        clean = True
        if self.context is not None:
            busy = self.context.inflight
            if busy:
                log.info("stopping: waiting for %d job(s) to record their batch in flight", busy)
            # Keep a little time for closing the store and adapters.
            clean = self.context.wait_idle(max(0.0, deadline - time.monotonic() - 1.0))
            if not clean:
                log.error(
                    "stopping: jobs still running after %.0f s; exiting anyway (the next "
                    "run marks the unfinished one interrupted and resumes from its watermark)",
                    self.settings.service.shutdown_timeout_seconds,
                )
        self.close(jobs_done=clean)
        return clean

    def close(self, *, jobs_done: bool = True) -> None:
        """Close the HTTP endpoint, and (when no job uses them) the adapters, locks and store."""
        if self.http is not None:
            self.http.stop()
            self.http = None
        context, self.context = self.context, None
        if context is None:
            return
        install(None)
        if not jobs_done:
            # A job still runs on these: closing them under it would only turn
            # a clean interruption into a confusing error. The process exits.
            return
        for adapter in context.adapters.values():
            adapter.close()
        context.locks.close()
        context.alerter.close()
        context.store.close()

    # -- seams handed to the runner and the adapters ---------------------
    def _backoff_sleep(self, seconds: float) -> None:
        """A retry back-off that a stop request cuts short (raising, so the run ends)."""
        if self.stop_event.wait(seconds):
            raise ShutdownRequested("the service is stopping (back-off cut short)")

    def _progress(self, phase: str, count: int) -> None:
        """Called after each planned page and each recorded write batch: stop there."""
        if self.stop_event.is_set():
            raise ShutdownRequested(
                f"the service is stopping (after {count:,} records {phase}ned)"
                if phase == "plan"
                else f"the service is stopping (after {count:,} writes recorded)"
            )

    # -- liveness and readiness -----------------------------------------
    def liveness(self) -> tuple[bool, list[str]]:
        """/healthz: alive unless a job's run stalled (stuck in a call past ``sync.stall_seconds``).

        A stalled run's thread cannot be stopped from outside; its job has
        already been given up (its lease lapses), and failing the liveness
        probe lets the orchestrator restart the process. Alive again if the
        stuck call returns first.
        """
        context = self.context
        if context is None:
            return True, []
        stalls = context.claims.stalled()
        return not stalls, [f"{s} (found at {s.since.isoformat()})" for s in stalls]

    def readiness(self) -> tuple[bool, Mapping[str, Any]]:
        """/readyz: store reachable, CRMs authenticated, each job's last success recent."""
        context = self.context
        if context is None:
            return False, {"service": {"ok": False, "error": "not started"}}
        checks: dict[str, dict[str, Any]] = {}
        try:
            context.store.runs(1)
            checks["store"] = {"ok": True, "url": context.store.url}
        except Exception as exc:
            checks["store"] = {"ok": False, "error": self._safe(exc)}
        for name, adapter in context.adapters.items():
            checks[f"crm:{name}"] = self._auth_check(name, adapter)
        bound = timedelta(minutes=self.settings.service.ready_max_age_minutes)
        now = self._clock()
        uptime = timedelta(seconds=time.monotonic() - self._started_at)
        for plan in context.jobs.values():
            check: dict[str, Any]
            if not checks["store"]["ok"]:
                check = {"ok": False, "error": "store unreachable"}
            else:
                try:
                    last = context.store.last_success(plan.connection, plan.object)
                except Exception as exc:
                    last, check = None, {"ok": False, "error": self._safe(exc)}
                else:
                    if last is None:
                        # A fresh deployment gets the bound's time to succeed once.
                        check = {"ok": uptime < bound, "last_success": None}
                    else:
                        age = now - last
                        check = {
                            "ok": age <= bound,
                            "last_success": last.isoformat(),
                            "age_seconds": round(age.total_seconds(), 1),
                        }
            checks[f"job:{plan.key}"] = check
        for stall in context.claims.stalled():
            check = checks.setdefault(f"job:{stall.job}", {})
            check.update(
                ok=False,
                stalled=str(stall),
                last_step=stall.step,
                stalled_since=stall.since.isoformat(),
            )
        return all(c["ok"] for c in checks.values()), checks

    def _auth_check(self, name: str, adapter: CrmAdapter) -> dict[str, Any]:
        """The connection's health from its own calls; a real check only when they say nothing.

        A refusal (credentials, permissions) or an unreachable CRM since the last
        success fails the check at once. A success within AUTH_CHECK_TTL passes
        it without a call. Otherwise one real check runs (:meth:`_checked`).
        """
        health = getattr(adapter, "health", None)
        if not isinstance(health, Health):
            return self._checked(name, adapter)
        state = health.state()
        recent = (
            state.ok_at is not None
            and (datetime.now(UTC) - state.ok_at).total_seconds() < AUTH_CHECK_TTL
        )
        if state.error is None and recent:
            return {"ok": True, "crm": adapter.crm, "last_call_ok": _iso(state.ok_at)}
        checked = self._checked(name, adapter)
        state = health.state()  # the check's own call updated it
        if state.error is not None:
            return {
                "ok": False,
                "crm": adapter.crm,
                "error": redact(state.error, self.secrets)[:500],
                "since": _iso(state.error_at),
            }
        return checked

    def _checked(self, name: str, adapter: CrmAdapter) -> dict[str, Any]:
        """The connection's last real check (a CRM call), refreshed in the background.

        A probe must answer quickly, but a CRM call may back off for a minute:
        the check runs on its own thread, and the probe waits for it only the
        first time (at most AUTH_CHECK_WAIT seconds).
        """
        with self._auth_lock:
            cached = self._auth_cache.get(name)
            stale = cached is None or time.monotonic() - cached[0] >= AUTH_CHECK_TTL
            worker = self._auth_threads.get(name)
            if stale and (worker is None or not worker.is_alive()):
                worker = threading.Thread(
                    target=self._refresh_auth,
                    args=(name, adapter),
                    name=f"segsync-auth-{name}",
                    daemon=True,
                )
                self._auth_threads[name] = worker
                worker.start()
        if cached is None and worker is not None:
            worker.join(AUTH_CHECK_WAIT)
            with self._auth_lock:
                cached = self._auth_cache.get(name)
        if cached is None:
            return {"ok": False, "crm": adapter.crm, "error": "authentication check pending"}
        return cached[1]

    def _refresh_auth(self, name: str, adapter: CrmAdapter) -> None:
        try:
            # The cheapest authenticated call every adapter has: one describe.
            adapter.describe("account", [])
            result: dict[str, Any] = {"ok": True, "crm": adapter.crm}
        except Exception as exc:
            result = {"ok": False, "crm": adapter.crm, "error": self._safe(exc)}
        with self._auth_lock:
            self._auth_cache[name] = (time.monotonic(), result)

    def _safe(self, exc: BaseException) -> str:
        return redact(f"{type(exc).__name__}: {exc}", self.secrets)[:500]
