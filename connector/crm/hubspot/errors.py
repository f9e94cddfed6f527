"""The one table from hubspot-api-client and transport errors to segsync's.

The client's own retries are off, so every failure reaches :func:`translate`
exactly once, and what it returns decides what the retry policy does: a
:class:`~connector.errors.RetriableError` is tried again (after
``Retry-After`` when HubSpot sends one), a
:class:`~connector.errors.FatalSyncError` stops the run with one clear line.
No answer at all is :class:`~connector.errors.CrmUnreachable` (retried, then
exit status 4); a refused token, scope or certificate is
:class:`~connector.errors.CrmAccessError` (exit status 4); both say what to
check.
"""

from __future__ import annotations

import json
from typing import Any

import urllib3

from connector.crm.base import transport_reason
from connector.errors import (
    CrmAccessError,
    CrmUnreachable,
    FatalSyncError,
    RetriableError,
    SegsyncError,
)

# Statuses HubSpot documents as "wait, then try again", besides 429 and 5xx.
_RETRY_STATUSES = frozenset({423, 477})


class RequestRefused(FatalSyncError):
    """HubSpot refused a request as a whole (a 4xx other than 401, 403, 429).

    Fatal unless the caller knows better: a batch write refused with 400
    ``VALIDATION_ERROR`` is a bad value in one of its inputs, which
    :mod:`.write` isolates by splitting the batch.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        category: str,
        reason: str,
        details: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.category = category
        self.reason = reason
        self.details = details or []


def translate(exc: Exception, what: str, base_url: str = "HubSpot") -> SegsyncError:
    """``exc``, raised while doing ``what`` against ``base_url``, as a segsync error."""
    status = getattr(exc, "status", None)
    if isinstance(status, int) and status:
        body = _body(exc)
        message = body.get("message") or str(getattr(exc, "reason", "")) or "no message"
        if status == 429:
            policy = body.get("policyName", "")
            if policy == "DAILY":
                return FatalSyncError(f"HubSpot {what}: the portal's daily API limit is spent")
            return RetriableError(
                f"HubSpot {what}: rate limited ({policy or 'RATE_LIMIT'})",
                retry_after=_retry_after(exc),
            )
        if status >= 500 or status in _RETRY_STATUSES:
            # 423: a record lock (HubSpot asks for a pause of 2 s or more);
            # 477: the portal is moving between data centers, Retry-After says
            # for how long. Both pass, like a 5xx.
            return RetriableError(
                f"HubSpot {what}: HTTP {status}: {message}", retry_after=_retry_after(exc)
            )
        if status == 401:
            return CrmAccessError(
                f"HubSpot {what}: the access token was refused ({body.get('category', status)}); "
                "check the connection's access_token: a private app's token, of this portal"
            )
        if status == 403:
            return CrmAccessError(
                f"HubSpot {what}: missing scope or permission: {message}; give the private "
                "app the scopes the README lists"
            )
        return RequestRefused(
            f"HubSpot {what}: HTTP {status}: {message}",
            status=status,
            category=str(body.get("category") or ""),
            reason=str(message),
            details=[
                {"message": str(d.get("message") or ""), "code": str(d.get("code") or "")}
                for d in body.get("errors") or []
                if isinstance(d, dict)
            ],
        )
    if isinstance(exc, urllib3.exceptions.SSLError):
        return CrmAccessError(
            f"HubSpot {what}: TLS verification of {base_url} failed ({transport_reason(exc)}); "
            "check base_url and the certificate authorities this machine trusts"
        )
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
        return CrmUnreachable(
            f"HubSpot {what}: cannot reach {base_url} ({transport_reason(exc)}); "
            "check base_url, the network and any proxy"
        )
    if isinstance(exc, SegsyncError):
        return exc
    return FatalSyncError(f"HubSpot {what}: {type(exc).__name__}: {exc}")


def _retry_after(exc: Exception) -> float | None:
    """The Retry-After header in seconds, when the response had a usable one."""
    headers = getattr(exc, "headers", None) or {}
    after = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return float(after) if after else None
    except ValueError:  # an HTTP date: the policy's own back-off will do
        return None


def _body(exc: Exception) -> dict[str, Any]:
    """The error's JSON body, or its first 200 characters as the message."""
    raw = getattr(exc, "body", None)
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if isinstance(raw, str) and raw:
        try:
            parsed = json.loads(raw)
        except ValueError:
            return {"message": raw[:200]}
        return parsed if isinstance(parsed, dict) else {}
    return {}
