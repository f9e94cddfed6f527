"""One portal's client, and the one way every call to it goes out.

The client's own retries are off (``retry=False``): the one retry policy in
:mod:`connector.crm.retry` decides, after :func:`~.errors.translate` has said
what a failure means. Every call is paced by a rolling ten-second limiter
(search by its own per-second one), is counted, and stops before the portal's
daily limit is spent; the daily figures HubSpot sends back in its rate-limit
headers keep that budget true.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from hubspot import HubSpot

from connector.config import HubSpotConnection
from connector.crm.base import ReadClock
from connector.crm.health import Health
from connector.crm.hubspot.errors import translate
from connector.crm.limits import (
    HS_PARTITION_MIN,
    PACING_MARGIN,
    DailyBudget,
    RollingWindowLimiter,
)
from connector.crm.retry import RetryPolicy
from connector.crm.tally import count_call
from connector.errors import CrmAccessError, CrmUnreachable, FatalSyncError


class HubSpotSession:
    """The SDK's API objects for one portal, and :meth:`call` to use them."""

    def __init__(
        self,
        connection: str,
        settings: HubSpotConnection,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.connection = connection
        self.settings = settings
        token = settings.secret("access_token")
        if not token:
            raise FatalSyncError(
                f"connection {connection!r}: no HubSpot access token "
                f"(set SEGSYNC_CONNECTIONS__{connection.upper()}__ACCESS_TOKEN "
                "or access_token_file)"
            )
        self.client = HubSpot(access_token=token, host=settings.base_url, retry=False)
        self.retry = retry or RetryPolicy()
        pause = sleep or self.retry.sleep
        # The whole window: the configured limit until the portal reports its
        # own (X-HubSpot-RateLimit-Max / -Interval-Milliseconds), then that.
        # Each call holds its place until a window after its answer, less the
        # fastest round trip (the limiter's docstring): no fixed headroom.
        self._limiter = RollingWindowLimiter(
            settings.requests_per_10s, margin=PACING_MARGIN, sleep=pause
        )
        # Search sends no rate-limit headers: its configured rate, held the same way.
        self._search_limiter = RollingWindowLimiter(
            settings.search_per_second, window=1.0, margin=PACING_MARGIN, sleep=pause
        )
        self.budget = DailyBudget(share=1.0, total=settings.daily_limit, used=None)
        self._calls = 0
        #: When the portal last answered, and the last refusal (what /readyz reads).
        self.health = Health()
        self.expected: int | None = None
        """The records HubSpot counted for the pull in progress (a search's ``total``), when
        it is read in a way that writes made alongside cannot disturb (see :mod:`.partition`)."""
        self.partition_min = HS_PARTITION_MIN
        """The smallest pull read in parts (:mod:`.partition`)."""
        self.unwritable: dict[tuple[str, str], tuple[str, str]] = {}
        """(object type, record id) → (code, reason): read, but what to write for it cannot be
        known (an association that names no record id). Its writes fail with
        this reason, so the record is listed and tried again, until a read
        finds it sound."""
        self._count_lock = threading.Lock()
        self._clocks: set[ReadClock] = set()
        """The pulls in progress: each answer's serving time is noted to them."""
        self._timeout = settings.timeout_seconds
        # API objects are built once: each attribute access builds a new pool.
        crm = self.client.crm
        self.basic = {
            "companies": crm.companies.basic_api,
            "contacts": crm.contacts.basic_api,
            "deals": crm.deals.basic_api,
        }
        self.batch = {"companies": crm.companies.batch_api, "contacts": crm.contacts.batch_api}
        self.search = {
            "companies": crm.companies.search_api,
            "contacts": crm.contacts.search_api,
            "deals": crm.deals.search_api,
        }
        self.pipelines = crm.pipelines.pipelines_api
        self.properties = crm.properties.core_api
        self.groups = crm.properties.groups_api
        self.associations = crm.associations.v4.batch_api

    @property
    def calls(self) -> int:
        """Calls made so far, retries included."""
        return self._calls

    def window_rate(self) -> float:
        """Requests a second the ten-second window allows (as the portal last reported it)."""
        return self._limiter.limit / self._limiter.window

    @contextmanager
    def reads(self, clock: ReadClock) -> Iterator[ReadClock]:
        """Note every answer served while the block runs to ``clock`` (a pull's start)."""
        with self._count_lock:
            self._clocks.add(clock)
        try:
            yield clock
        finally:
            with self._count_lock:
                self._clocks.discard(clock)

    def call(
        self,
        what: str,
        fn: Callable[..., Any],
        *args: Any,
        search: bool = False,
        raw: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Call an SDK ``*_with_http_info`` method: paced, budgeted, retried, translated.

        ``what`` names the call in error messages; ``search`` paces it by the
        search endpoints' own per-second limiter instead of the general one.
        ``raw``: the response body as parsed JSON (``_preload_content=False``),
        no SDK model built; errors are raised and translated all the same.
        """
        kwargs.setdefault("_request_timeout", self._timeout)
        if raw:
            kwargs["_preload_content"] = False

        def attempt() -> Any:
            self.budget.check()
            limiter = self._search_limiter if search else self._limiter
            slot = limiter.begin()
            with self._count_lock:
                self._calls += 1
            count_call()
            sent = time.monotonic()
            try:
                if raw:
                    try:
                        response = fn(*args, **kwargs)
                        try:
                            body, headers = response.data, response.headers
                        finally:
                            response.release_conn()
                    finally:
                        slot.done()  # the answer is in: parsing it is no part of the round trip
                    data = json.loads(body) if body else {}
                else:
                    try:
                        data, _status, headers = fn(*args, **kwargs)
                    finally:
                        slot.done()
            except Exception as exc:
                if getattr(exc, "status", None) == 429:
                    limiter.refused()  # its pacing was a hair too close: hold places longer
                raise translate(exc, what, self.settings.base_url) from None
            self._observe(headers)
            self._note_served(headers, time.monotonic() - sent)
            self.health.ok()
            return data

        try:
            return self.retry.call(attempt)
        except (CrmAccessError, CrmUnreachable) as exc:
            self.health.failed(str(exc))
            raise

    def _note_served(self, headers: Any, took: float) -> None:
        """Note an answer's earliest serving time to the pulls in progress."""
        with self._count_lock:
            clocks = list(self._clocks)
        if clocks:
            moment = served_at(headers, took)
            for clock in clocks:
                clock.note(moment)

    def _observe(self, headers: Any) -> None:
        """Follow the figures HubSpot reports, when it reports them: the window, the day."""
        if not headers or not hasattr(headers, "get"):
            return
        window = _ints(headers, _WINDOW_HEADERS)
        if window is not None:
            most, left, interval_ms = window
            self._limiter.observe(most, left, interval_ms / 1000)
        daily = _ints(headers, _DAILY_HEADERS)
        if daily is not None:
            total, remaining = daily
            self.budget.observe(used=total - remaining, total=total)


_WINDOW_HEADERS = (
    "X-HubSpot-RateLimit-Max",
    "X-HubSpot-RateLimit-Remaining",
    "X-HubSpot-RateLimit-Interval-Milliseconds",
)
_DAILY_HEADERS = ("X-HubSpot-RateLimit-Daily", "X-HubSpot-RateLimit-Daily-Remaining")


def served_at(headers: Any, took: float) -> datetime | None:
    """The earliest HubSpot's clock can have shown when a request was served.

    The answer's ``Date`` (whole seconds, rounded down) less ``took``, the
    round trip measured on this host: the request was served after it was
    sent. None when the answer carries no readable ``Date``.
    """
    text = headers.get("Date") if headers is not None and hasattr(headers, "get") else None
    if not text:
        return None
    try:
        served = parsedate_to_datetime(str(text))
    except (TypeError, ValueError):
        return None
    if served.tzinfo is None:
        served = served.replace(tzinfo=UTC)
    return served.astimezone(UTC) - timedelta(seconds=took)


def _ints(headers: Any, names: tuple[str, ...]) -> tuple[int, ...] | None:
    """The named headers as integers, or None unless all are there and sound."""
    values = [headers.get(name) for name in names]
    if not all(values):
        return None
    try:
        return tuple(int(v) for v in values)
    except ValueError:
        return None
