"""The one table from simple-salesforce, zeep and transport errors to the segsync error tree.

Every Salesforce call the adapter makes fails through :func:`translate`:
retriable failures (429, 5xx, a dropped connection, too many concurrent
requests) become :class:`~connector.errors.RetriableError` for the
:class:`~connector.crm.retry.RetryPolicy` (no answer at all:
:class:`~connector.errors.CrmUnreachable`); a spent daily allocation becomes
:class:`~connector.crm.limits.BudgetExhausted`; a refusal of segsync itself
(permissions, session, certificate) is :class:`~connector.errors.CrmAccessError`;
everything else is a :class:`~connector.errors.FatalSyncError` with one line
that says what to fix.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import requests
from simple_salesforce.exceptions import (
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceOperationError,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)
from zeep.exceptions import Error as ZeepError
from zeep.exceptions import Fault as ZeepFault
from zeep.exceptions import TransportError as ZeepTransportError

from connector.crm.base import transport_reason
from connector.crm.limits import BudgetExhausted
from connector.errors import (
    CrmAccessError,
    CrmUnreachable,
    FatalSyncError,
    RetriableError,
    SegsyncError,
)

#: The save-result code of a row lock: the one per-record failure worth re-sending.
LOCK_ERROR = "UNABLE_TO_LOCK_ROW"

_NO_COLUMN = re.compile(r"No such column '([^']+)' on entity '([^']+)'")


def _errors(content: Any) -> list[dict[str, Any]]:
    """The ``[{"errorCode","message"}]`` list of a simple-salesforce exception's ``.content``."""
    if isinstance(content, bytes | str):
        return [{"message": str(content)[:300]}] if content else []
    if isinstance(content, Mapping):
        return [dict(content)]
    if isinstance(content, list):
        return [dict(e) for e in content if isinstance(e, Mapping)]
    return []


def _first(content: Any) -> tuple[str, str]:
    errors = _errors(content)
    if not errors:
        return "", ""
    first = errors[0]
    return str(first.get("errorCode") or ""), str(first.get("message") or "").strip()


def is_expired(exc: BaseException) -> bool:
    """True for a 401 INVALID_SESSION_ID (REST, Bulk) or the Metadata API's fault of it."""
    if isinstance(exc, SalesforceExpiredSession):
        return True
    if isinstance(exc, ZeepFault):
        return "INVALID_SESSION_ID" in str(exc.code or "") + str(exc.message or "")
    return False


def translate(exc: BaseException, what: str) -> SegsyncError:
    """``exc`` as a segsync error whose message names ``what`` was being done."""
    if isinstance(exc, SegsyncError):
        return exc
    where = f"Salesforce {what}"
    if isinstance(exc, SalesforceError):
        code, message = _first(exc.content)
        status = exc.status
        if isinstance(exc, SalesforceRefusedRequest):
            if code == "REQUEST_LIMIT_EXCEEDED":
                # The same code covers the daily allocation ("TotalRequests Limit
                # exceeded.") and too many concurrent long requests
                # ("ConcurrentPerOrgLongTxn Limit exceeded."): only the latter passes.
                if "concurrent" in message.lower():
                    return RetriableError(f"{where}: too many concurrent requests ({message})")
                return BudgetExhausted(
                    f"{where}: the org's daily API allocation is spent ({message}); "
                    "the run stops here and resumes when the allocation recovers"
                )
            return CrmAccessError(
                f"{where}: refused ({code or status}: {message}); check the integration "
                "user's permissions"
            )
        if isinstance(exc, SalesforceExpiredSession):
            return CrmAccessError(f"{where}: the session was refused ({code or status}: {message})")
        if isinstance(exc, SalesforceMalformedRequest):
            missing = _NO_COLUMN.search(message)
            if missing:
                return FatalSyncError(
                    f"{where}: the field {missing.group(1)!r} does not exist on "
                    f"{missing.group(2)} or the integration user cannot see it: fix the "
                    "mapping, run `segsync provision`, or grant field-level security"
                )
            return FatalSyncError(f"{where}: {code or 'HTTP 400'}: {message}")
        if isinstance(exc, SalesforceResourceNotFound):
            return FatalSyncError(f"{where}: not found ({code or status}: {message})")
        if isinstance(exc, SalesforceGeneralError) and (status == 429 or status >= 500):
            return RetriableError(f"{where}: HTTP {status}: {code or message or 'server error'}")
        return FatalSyncError(f"{where}: HTTP {status}: {code} {message}".rstrip())
    if isinstance(exc, requests.exceptions.SSLError):
        return CrmAccessError(
            f"{where}: TLS verification failed; set ca_file if the org uses a private "
            "certificate authority"
        )
    if isinstance(exc, requests.ConnectionError | requests.Timeout):
        return CrmUnreachable(
            f"{where}: cannot reach the org ({transport_reason(exc)}); check instance_url, "
            "the network and any proxy"
        )
    if isinstance(exc, requests.RequestException):
        return RetriableError(f"{where}: {type(exc).__name__}")
    if isinstance(exc, ZeepFault):
        code = str(exc.code or "").rpartition(":")[2]
        if code == "REQUEST_LIMIT_EXCEEDED":
            return BudgetExhausted(f"{where}: the org's daily API allocation is spent")
        return FatalSyncError(f"{where}: SOAP fault {code}: {exc.message}")
    if isinstance(exc, ZeepTransportError):
        if exc.status_code == 429 or exc.status_code >= 500:
            return RetriableError(f"{where}: HTTP {exc.status_code}")
        return FatalSyncError(f"{where}: HTTP {exc.status_code}")
    if isinstance(exc, ZeepError):
        return FatalSyncError(f"{where}: {type(exc).__name__}: {exc}")
    if isinstance(exc, SalesforceOperationError):
        return FatalSyncError(f"{where}: {exc}")
    if type(exc) is Exception:
        # simple-salesforce's mdapi reports failed SaveResults as a bare Exception.
        return FatalSyncError(f"{where}: {' '.join(str(exc).split()).rstrip(', ')}")
    return FatalSyncError(f"{where}: {type(exc).__name__}: {exc}")
