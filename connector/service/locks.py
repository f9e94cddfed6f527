"""The job locks, kept importable here: they live in :mod:`connector.store.locks`.

The command line (``segsync sync``) takes the same locks as the service, and
the commands may not import the service, so the locks moved below both.
"""

from __future__ import annotations

from connector.store.locks import (
    ADVISORY_NAMESPACE,
    AdvisoryLocks,
    FileLocks,
    JobLocks,
    LocalLocks,
    locks_for,
)

__all__ = [
    "ADVISORY_NAMESPACE",
    "AdvisoryLocks",
    "FileLocks",
    "JobLocks",
    "LocalLocks",
    "locks_for",
]
