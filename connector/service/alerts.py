"""Alerts: an optional webhook that hears about runs that need a person.

The payload is Slack-compatible, ``{"text": "..."}`` (Slack incoming webhooks,
Mattermost, Rocket.Chat, Teams' Slack-compatible connectors and most chat-ops
relays take it). Alerts go out on a failed run, on a run whose share of
failed records is above ``service.alert_failure_share``, and when the
mass-change guard stops a run; a job failing the same way at every tick
alerts once, and a note follows when it completes again. Texts carry names, counts and the error
message, redacted of every configured secret; never a record's values. A
webhook that cannot be reached is logged and otherwise ignored: an alert
must never fail a sync.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import requests

from connector.service.logs import redact

log = logging.getLogger("segsync.service.alerts")


class Alerter:
    """Posts alert texts to a webhook (a no-op without one)."""

    def __init__(
        self,
        url: str | None,
        secrets: Sequence[str] = (),
        *,
        timeout: float = 10.0,
        session: requests.Session | None = None,
    ) -> None:
        self._url = url
        self._secrets = list(secrets)
        self._timeout = timeout
        self._session = session or requests.Session()
        self.sent = 0

    @property
    def enabled(self) -> bool:
        """Whether a webhook is configured."""
        return bool(self._url)

    def send(self, text: str) -> bool:
        """Post ``text``; True when the webhook accepted it. Never raises."""
        if not self._url:
            return False
        body = {"text": redact(text, self._secrets)}
        try:
            response = self._session.post(self._url, json=body, timeout=self._timeout)
        except requests.RequestException as exc:
            # The URL is itself a secret (it authorizes posting): never log it.
            log.warning("the alert webhook could not be reached: %s", type(exc).__name__)
            return False
        if response.status_code >= 300:
            log.warning("the alert webhook answered HTTP %d", response.status_code)
            return False
        self.sent += 1
        return True

    def close(self) -> None:
        """Close the HTTP session."""
        self._session.close()


def failed_run_text(job: str, run_id: int | None, message: str) -> str:
    """The alert for a run that stopped on an error."""
    run = f" (run {run_id})" if run_id is not None else ""
    return f":red_circle: segsync {job}{run} failed: {message or 'no message'}"


def failure_share_text(
    job: str, run_id: int | None, failed: int, attempted: int, threshold: float
) -> str:
    """The alert for a run that left too many records failed."""
    share = failed / attempted if attempted else 0.0
    return (
        f":warning: segsync {job} (run {run_id}): {failed:,} of {attempted:,} writes failed "
        f"({share:.1%}, above the {threshold:.1%} alert threshold); "
        "`segsync errors` lists them, and they are retried on every run"
    )


def mass_change_text(job: str, message: str) -> str:
    """The alert for a run the mass-change guard stopped."""
    return (
        f":octagonal_sign: segsync {job} stopped by the mass-change guard: {message} "
        "Nothing was written. Check the mapping and the source data, then run "
        "`segsync sync --force` if the change is intended."
    )


def recovered_text(job: str, run_id: int | None) -> str:
    """The note that a job alerted about is healthy again."""
    return f":large_green_circle: segsync {job} (run {run_id}) completed again"
