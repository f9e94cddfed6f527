"""The service's HTTP endpoint: ``/healthz``, ``/readyz`` and Prometheus ``/metrics``.

- ``/healthz``: 200 while the process serves requests and no job's run is
  stalled (a liveness probe); 503 naming each stalled job and its last step
  (``sync.stall_seconds``, connector/store/leases.py), so an orchestrator
  restarts a process with a stuck thread.
- ``/readyz``: 200 when the store answers, every connection's last CRM call
  succeeded (its own calls, or a cached token's last use; a real check only
  when none succeeded within the hour: no CRM call per probe), and each
  job's last successful run is younger than
  ``service.ready_max_age_minutes``; 503 otherwise. The body is JSON and
  names each check, so a failing probe says why.
- ``/metrics``: the Prometheus text format, from a registry of the service's
  own (:class:`Metrics`), so several services in one process (tests) do not
  collide.

A plain :class:`http.server.ThreadingHTTPServer` on a daemon thread: three
read-only endpoints do not justify a web framework.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from connector.store.records import RunRow

log = logging.getLogger("segsync.service.http")

#: Run-duration buckets, in seconds: a quiet incremental run takes a second,
#: a full pull of a large org an hour.
DURATION_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)

Readiness = Callable[[], tuple[bool, Mapping[str, Any]]]
Liveness = Callable[[], tuple[bool, Sequence[str]]]


class Metrics:
    """The service's Prometheus metrics, in a registry of their own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.runs = Counter(
            "segsync_runs",
            "Sync runs finished, by final status (succeeded, partial, failed, aborted).",
            ["connection", "crm", "object", "status"],
            registry=r,
        )
        self.records = Counter(
            "segsync_records",
            "Records handled by runs: read, changed (planned), written, failed, "
            "changed_since_plan (held back: edited in the CRM between pull and write).",
            ["connection", "crm", "object", "outcome"],
            registry=r,
        )
        self.api_calls = Counter(
            "segsync_api_calls",
            "CRM API calls made by sync runs, retries included.",
            ["connection", "crm"],
            registry=r,
        )
        self.budget_remaining = Gauge(
            "segsync_api_budget_remaining",
            "API calls segsync may still make today within its share (NaN before a reading).",
            ["connection", "crm"],
            registry=r,
        )
        self.last_success = Gauge(
            "segsync_last_success_timestamp_seconds",
            "When the job's last completed (succeeded or partial) run finished, any replica.",
            ["connection", "object"],
            registry=r,
        )
        self.duration = Histogram(
            "segsync_run_duration_seconds",
            "How long sync runs take, start to recorded end.",
            ["connection", "crm", "object"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.skips = Counter(
            "segsync_job_skips",
            "Scheduled ticks this replica skipped: locked (another replica runs the job), "
            "done (the tick's run already happened), stopping; fresh (object deal: an "
            "account job's deal pull, already done for its cycle).",
            ["connection", "object", "reason"],
            registry=r,
        )
        self.stalled = Gauge(
            "segsync_stalled_jobs",
            "Jobs whose run made no progress for sync.stall_seconds and whose stuck call "
            "has not returned (their leases are given up; /healthz fails meanwhile).",
            registry=r,
        )
        self.job_errors = Counter(
            "segsync_job_errors",
            "Jobs that failed before a run could be recorded (store unreachable, say).",
            ["connection", "object"],
            registry=r,
        )

    def watch_budget(self, connection: str, crm: str, remaining: Callable[[], int | None]) -> None:
        """Report ``remaining()`` (None: unknown, NaN) at every scrape."""

        def read() -> float:
            value = remaining()
            return math.nan if value is None else float(value)

        self.budget_remaining.labels(connection, crm).set_function(read)

    def watch_stalls(self, count: Callable[[], int]) -> None:
        """Report ``count()`` stalled jobs at every scrape."""
        self.stalled.set_function(lambda: float(count()))

    def watch_last_success(
        self, connection: str, object: str, last: Callable[[], datetime | None]
    ) -> None:
        """Report ``last()`` as a Unix time at every scrape (NaN when never, or unreadable)."""

        def read() -> float:
            try:
                value = last()
            except Exception:
                # A scrape must answer even when the store does not; readyz says why.
                return math.nan
            return math.nan if value is None else value.timestamp()

        self.last_success.labels(connection, object).set_function(read)

    def observe_run(self, row: RunRow) -> None:
        """Count one finished run (as the store recorded it)."""
        labels = (row.connection, row.crm, row.object)
        self.runs.labels(*labels, row.status).inc()
        c = row.counts
        for outcome, value in (
            ("read", c.read),
            ("changed", c.changed),
            ("written", c.written),
            ("failed", c.failed),
            ("changed_since_plan", c.changed_since_plan),
        ):
            self.records.labels(*labels, outcome).inc(value)
        self.api_calls.labels(row.connection, row.crm).inc(row.api_calls)
        if row.finished_at is not None:
            seconds = (row.finished_at - row.started_at).total_seconds()
            self.duration.labels(*labels).observe(max(0.0, seconds))

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


class HealthServer:
    """Serves the three endpoints on a daemon thread; :attr:`port` is the bound port."""

    def __init__(
        self,
        host: str,
        port: int,
        metrics: Metrics,
        readiness: Readiness,
        liveness: Liveness | None = None,
    ) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "segsync"

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                try:
                    status, body, kind = outer.respond(path)
                except Exception:
                    log.exception("serving %s failed", path)
                    status, body, kind = 500, b"internal error\n", "text/plain; charset=utf-8"
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                # Probes hit these every few seconds: access lines would drown the log.
                log.debug("%s %s", self.address_string(), format % args)

        self.metrics = metrics
        self._readiness = readiness
        self._liveness = liveness or (lambda: (True, []))
        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        return int(self._server.server_address[1])

    @property
    def host(self) -> str:
        """The bound address."""
        return str(self._server.server_address[0])

    def respond(self, path: str) -> tuple[int, bytes, str]:
        """Status, body and content type for ``path``."""
        if path == "/healthz":
            alive, problems = self._liveness()
            if alive:
                return HTTPStatus.OK, b"ok\n", "text/plain; charset=utf-8"
            text = "".join(f"{line}\n" for line in problems)
            return HTTPStatus.SERVICE_UNAVAILABLE, text.encode(), "text/plain; charset=utf-8"
        if path == "/readyz":
            ready, checks = self._readiness()
            body = json.dumps({"ready": ready, "checks": checks}, indent=2, default=str)
            status = HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE
            return status, body.encode() + b"\n", "application/json"
        if path == "/metrics":
            return HTTPStatus.OK, self.metrics.render(), CONTENT_TYPE_LATEST
        return HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8"

    def start(self) -> None:
        """Serve on a daemon thread."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="segsync-http", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()
