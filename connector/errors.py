"""The error tree. Every error segsync raises on purpose derives from SegsyncError.

::

    SegsyncError                     exit status of a command it ends
    ├── UserError                  2  the user's to fix; printed as a list, no traceback
    │   ├── ConfigError               config.toml / environment
    │   └── MappingError              mappings/*.toml
    ├── StoreError                 3  the state store cannot be opened or used
    │   └── StoreUnavailable          for now: a statement or lock timed out, the
    │                                 connection was lost; also a RetriableError
    └── SyncError                  1  raised while talking to a CRM
        ├── FatalSyncError            abort the run (schema missing, guard tripped)
        │   └── CrmAccessError     4  the CRM refused segsync (credentials, TLS, access)
        ├── Interrupted               asked to stop (shutdown); stopped between recorded batches
        ├── RetriableError            back off and try again (429, 5xx, timeouts, row locks)
        │   └── CrmUnreachable     4  no answer at all (refused, DNS, timeout, TLS handshake)
        └── SkippableError            one record failed; record it, go on with the rest

The command line catches :class:`SegsyncError` in one place
(:mod:`connector.cli`) and prints it as one line (a :class:`UserError`: one
line per problem) with the exit status of :data:`EXIT_CODES`; anything else
is a bug and keeps its traceback. Messages never carry a secret: store URLs
go through :func:`redact_url`, CRM answers through the adapters' scrubbing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

#: Exit statuses of the ``segsync`` command (README "Exit status" documents them).
EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_USER = 2
EXIT_STORE = 3
EXIT_CRM = 4
EXIT_BUSY = 5

EXIT_CODES: dict[int, str] = {
    EXIT_OK: "success",
    EXIT_RUN_FAILED: "a run failed, was stopped by the mass-change guard or left record errors",
    EXIT_USER: "a command-line, configuration or mapping problem: fix the file or the option",
    EXIT_STORE: "the state store cannot be used: unreachable, driver missing, permission, corrupt",
    EXIT_CRM: "a CRM cannot be used: unreachable, TLS failure, credentials or access refused",
    EXIT_BUSY: "a job is running in another process (segsync sync or segsync run holds it)",
}

# ``scheme://user:password@host``: the password is what lies between the
# user's colon and the last ``@`` before the host.
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][\w+.-]*://[^:/@\s]*:)(?P<secret>[^\s]*)@")


def redact_url(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@…`` in it replaced by ***.

    Works on strings no URL parser accepts, which is when a message is most
    likely to quote one.
    """
    return _URL_PASSWORD.sub(lambda m: f"{m['head']}***@", text)


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong in a file: where it is and what was expected."""

    file: str
    location: str
    message: str
    suggestion: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}: {self.location}" if self.location else self.file
        hint = f" (did you mean {self.suggestion!r}?)" if self.suggestion else ""
        return f"{where}: {self.message}{hint}"


class SegsyncError(Exception):
    """Root of every error segsync raises on purpose."""

    #: The command's exit status when this error ends it.
    exit_code: ClassVar[int] = EXIT_RUN_FAILED


class UserError(SegsyncError):
    """A problem the user fixes in a file; carries every problem found, not just the first."""

    exit_code: ClassVar[int] = EXIT_USER

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class ConfigError(UserError):
    """The configuration is invalid."""


class MappingError(UserError):
    """A mapping file is invalid."""


class StoreError(SegsyncError):
    """The state store cannot be opened or used as asked; the message says what to do."""

    exit_code: ClassVar[int] = EXIT_STORE


class SyncError(SegsyncError):
    """Something went wrong while talking to a CRM."""


class FatalSyncError(SyncError):
    """The run cannot go on."""


class CrmAccessError(FatalSyncError):
    """The CRM answered but refused segsync: credentials, certificate, permission."""

    exit_code: ClassVar[int] = EXIT_CRM


class Interrupted(SyncError):
    """The run was asked to stop; it stopped between batches, every earlier batch recorded."""


class RetriableError(SyncError):
    """A transient failure; ``retry_after`` is the server's hint in seconds, if any."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CrmUnreachable(RetriableError):
    """No answer from the CRM at all (connection refused, DNS, timeout), retried like a 5xx."""

    exit_code: ClassVar[int] = EXIT_CRM


class StoreUnavailable(StoreError, RetriableError):
    """A store call failed in a way a retry may fix: a timeout, a lock, a lost connection.

    Both a :class:`StoreError` (a command it ends exits 3) and a
    :class:`RetriableError`: the runner retries the step that raised it with
    the one retry policy (connector/crm/retry.py); each store step is one
    transaction, rolled back when it fails.
    """


class SkippableError(SyncError):
    """One record failed; its batch-mates are unaffected."""

    def __init__(self, record_id: str, code: str, message: str) -> None:
        super().__init__(f"{record_id}: {code}: {message}")
        self.record_id = record_id
        self.code = code
        self.message = message
