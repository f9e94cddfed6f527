"""The HubSpot adapter: :class:`~connector.crm.base.CrmAdapter` for one portal.

It holds one :class:`~.session.HubSpotSession` (the client, pacing, budget,
retries and error translation every call goes through) and hands each
Protocol method to the module for its concern: :mod:`.describe`,
:mod:`.pull` (with :mod:`.search` and :mod:`.associations`), :mod:`.write`
and :mod:`.provision`. Those are plain functions of the session, so a new
capability is a new module beside them and a few lines here.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from connector.config import HubSpotConnection
from connector.crm.base import (
    CrmRecord,
    Current,
    DealPage,
    EchoTest,
    FieldSpec,
    JobJournal,
    KnownParents,
    KnownWindow,
    NativeAction,
    NativeSummary,
    NativeView,
    ObjectName,
    OutputField,
    ProvisionReport,
    RecordUpdate,
    WriteOutcome,
)
from connector.crm.health import Health
from connector.crm.hubspot.deals import DealPuller
from connector.crm.hubspot.deals import minimum_calls as deal_minimum_calls
from connector.crm.hubspot.describe import describe as describe_properties
from connector.crm.hubspot.history import set_by_person as history_set_by_person
from connector.crm.hubspot.native import provision_lists, read_lists
from connector.crm.hubspot.provision import provision as provision_object
from connector.crm.hubspot.pull import children as children_records
from connector.crm.hubspot.pull import fetch as fetch_records
from connector.crm.hubspot.pull import pull as pull_records
from connector.crm.hubspot.session import HubSpotSession
from connector.crm.hubspot.values import OBJECT_TYPES
from connector.crm.hubspot.write import write as write_updates
from connector.crm.hubspot.write import write_chunk
from connector.crm.limits import (
    HS_BATCH,
    HS_LIST_PAGE,
    HS_PARTITION_MIN,
    HS_SEARCH_PAGE,
    DailyBudget,
)
from connector.crm.retry import RetryPolicy


class HubSpotAdapter:
    """segsync's view of one HubSpot portal."""

    crm: Literal["hubspot"] = "hubspot"

    def __init__(
        self,
        connection: str,
        settings: HubSpotConnection,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] | None = None,
        *,
        partition_min: int = HS_PARTITION_MIN,
    ) -> None:
        self.connection = connection
        self._session = HubSpotSession(connection, settings, retry=retry, sleep=sleep)
        self._session.partition_min = (
            partition_min  # large pulls: connector/crm/hubspot/partition.py
        )

    @property
    def health(self) -> Health:
        """When the portal last answered, and the last refusal (what ``/readyz`` reads)."""
        return self._session.health

    @property
    def api_calls(self) -> int:
        """Calls made so far, retries included."""
        return self._session.calls

    @property
    def budget(self) -> DailyBudget:
        """The portal's daily call budget, as HubSpot last reported it."""
        return self._session.budget

    def describe(self, obj: ObjectName, names: Sequence[str]) -> dict[str, FieldSpec]:
        """HubSpot's view of the named properties of companies or contacts."""
        return describe_properties(self._session, OBJECT_TYPES[obj], names)

    def pull(
        self,
        obj: ObjectName,
        fields: Sequence[str],
        since: datetime | None,
        parent_fields: Sequence[str] = (),
        echo: EchoTest | None = None,
        known: KnownParents | None = None,
        window: KnownWindow | None = None,
    ) -> Iterator[list[CrmRecord]]:
        """Pages of records: the list endpoint when full, search windows when incremental.

        Echoes of segsync's own writes (``echo``) get no parent lookups;
        companies ``known`` vouches for are not read (see :mod:`.parents`); a
        ``window`` proven known by one count is not read (:mod:`.window`).
        """
        self._session.expected = None
        return pull_records(
            self._session, OBJECT_TYPES[obj], fields, since, parent_fields, echo, known, window
        )

    def pull_expected(self) -> int | None:
        """The records HubSpot counted for the pull in progress (its first search's ``total``)."""
        return self._session.expected

    def fetch(
        self,
        obj: ObjectName,
        ids: Sequence[str],
        fields: Sequence[str],
        parent_fields: Sequence[str] = (),
        known: KnownParents | None = None,
    ) -> list[CrmRecord]:
        """Records by id (for retrying earlier failures); unknown ids are left out."""
        return fetch_records(self._session, OBJECT_TYPES[obj], ids, fields, parent_fields, known)

    def children(
        self,
        parent_ids: Sequence[str],
        fields: Sequence[str],
        parent_fields: Sequence[str] = (),
        *,
        exclude: Collection[str] = frozenset(),
        known: KnownParents | None = None,
    ) -> Iterator[list[CrmRecord]]:
        """Pages of the contacts associated with the companies ``parent_ids`` (v4 associations)."""
        return children_records(self._session, parent_ids, fields, parent_fields, exclude, known)

    def set_by_person(
        self, obj: ObjectName, current: Mapping[str, Mapping[str, Any]]
    ) -> dict[str, frozenset[str]]:
        """The values a person set, by property history (batch reads of 50 with history)."""
        return history_set_by_person(self._session, OBJECT_TYPES[obj], current)

    def current(
        self,
        obj: ObjectName,
        ids: Sequence[str],
        fields: Sequence[str],
        settled: Collection[str] = frozenset(),
        keep: Sequence[str] = (),
    ) -> dict[str, Current]:
        """``ids`` as they stand now: batch reads of 100 (``updatedAt`` and ``fields``).

        HubSpot does not say who changed a record last: ``own`` stays false
        and the runner compares ``updatedAt`` with the stamp our write returned.
        ``settled`` is not used: the batch read is the only consistent read
        by id, and it costs one call per 100 ids whatever it selects.
        """
        records = fetch_records(self._session, OBJECT_TYPES[obj], ids, fields)
        return {r.id: Current(r.id, r.stamp, dict(r.fields)) for r in records}

    def write(
        self,
        obj: ObjectName,
        updates: Sequence[RecordUpdate],
        journal: JobJournal | None = None,
    ) -> list[WriteOutcome]:
        """Batch updates of 100, in parallel up to the connection's concurrency (no jobs)."""
        return write_updates(self._session, OBJECT_TYPES[obj], updates)

    def resume(self, obj: ObjectName, journal: JobJournal) -> list[str]:
        """Nothing: HubSpot has no bulk write jobs to resume."""
        return []

    def write_chunk(self, total: int) -> int:
        """Enough batches of 100 to keep every parallel writer busy for a few rounds."""
        return write_chunk(self._session)

    def provision(
        self,
        obj: ObjectName,
        outputs: Sequence[OutputField],
        inputs: Sequence[str],
        dry_run: bool,
    ) -> ProvisionReport:
        """Create the Segmentation group and missing properties; extend enumerations."""
        return provision_object(self._session, obj, OBJECT_TYPES[obj], outputs, inputs, dry_run)

    def provision_native(
        self,
        obj: ObjectName,
        views: Sequence[NativeView],
        dry_run: bool,
        *,
        shared_to: str = "AllInternalUsers",
    ) -> list[NativeAction]:
        """One dynamic list per view, in the definition's folder (``shared_to``: unused here)."""
        return provision_lists(self._session, obj, OBJECT_TYPES[obj], views, dry_run)

    def read_native(self, obj: ObjectName, views: Sequence[NativeView]) -> list[NativeSummary]:
        """The lists of ``views`` that exist, with their member counts (memberships API)."""
        return read_lists(self._session, obj, OBJECT_TYPES[obj], views)

    def minimum_calls(self, read: int, changed: int, *, incremental: bool = False) -> int:
        """Read pages (list, or search when incremental) plus batch updates.

        The floor HubSpot's page and batch sizes allow (see BENCHMARKS.md):
        association and parent reads are not counted.
        """
        page = HS_SEARCH_PAGE if incremental else HS_LIST_PAGE
        return -(-read // page) + -(-changed // HS_BATCH)

    def pull_deals(
        self, since: datetime | None, window: KnownWindow | None = None
    ) -> Iterator[DealPage]:
        """Pages of deals (read-only) modified at or after ``since``; see :mod:`.deals`."""
        return DealPuller(self._session).pull(since, window)

    def deal_minimum_calls(self, read: int, *, incremental: bool) -> int:
        """Pipelines, pages and association reads: the floor of a deal pull."""
        return deal_minimum_calls(read, incremental=incremental)

    def close(self) -> None:
        """Nothing to release: urllib3 pools close with the process."""
