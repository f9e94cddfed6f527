"""The error tree. Every error segsync raises on purpose derives from SegsyncError.

::

    SegsyncError
    ├── UserError             the user's to fix; printed as a list, no traceback
    │   ├── ConfigError       config.toml / environment
    │   └── MappingError      mappings/*.toml
    └── SyncError             raised while talking to a CRM
        ├── FatalSyncError    abort the run (auth refused, schema missing, guard tripped)
        ├── Interrupted       asked to stop (shutdown); stopped between recorded batches
        ├── RetriableError    back off and try again (429, 5xx, timeouts, row locks)
        └── SkippableError    one record failed; record it, go on with the rest
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


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


class UserError(SegsyncError):
    """A problem the user fixes in a file; carries every problem found, not just the first."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class ConfigError(UserError):
    """The configuration is invalid."""


class MappingError(UserError):
    """A mapping file is invalid."""


class SyncError(SegsyncError):
    """Something went wrong while talking to a CRM."""


class FatalSyncError(SyncError):
    """The run cannot go on."""


class Interrupted(SyncError):
    """The run was asked to stop; it stopped between batches, every earlier batch recorded."""


class RetriableError(SyncError):
    """A transient failure; ``retry_after`` is the server's hint in seconds, if any."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SkippableError(SyncError):
    """One record failed; its batch-mates are unaffected."""

    def __init__(self, record_id: str, code: str, message: str) -> None:
        super().__init__(f"{record_id}: {code}: {message}")
        self.record_id = record_id
        self.code = code
        self.message = message
