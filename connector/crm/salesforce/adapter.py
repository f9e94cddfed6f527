"""The Salesforce adapter: the :class:`~connector.crm.base.CrmAdapter` of one org.

It holds the org's :class:`.session.SalesforceSession` and composes the
concern modules around it, each a small class over that session:

- :class:`.describe.Describer`: cached describes, FieldSpecs;
- :class:`.pull.Puller`: REST pulls and fetches, handing big pulls to
- :class:`.bulk.Bulk`: Bulk API 2.0 query and ingest jobs;
- :class:`.write.CollectionWriter`: sObject Collections of 200 on a pool;
- :class:`.provision.Provisioner`: custom fields through the Metadata API.

Writes above ``bulk_write_threshold`` updates go through one ingest job; its
row locks and rows the job never reached are re-sent through Collections.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from connector.config import SalesforceConnection
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
from connector.crm.cache import Cache
from connector.crm.health import Health
from connector.crm.limits import SF_COLLECTION_BATCH, SF_QUERY_PAGE, DailyBudget
from connector.crm.retry import RetryPolicy
from connector.crm.salesforce.bulk import BULK_RESULT_PAGE, BULK_WRITE_CHUNK, Bulk
from connector.crm.salesforce.cache import DescribeCache
from connector.crm.salesforce.deals import DealPuller
from connector.crm.salesforce.deals import minimum_calls as deal_minimum_calls
from connector.crm.salesforce.describe import Describer
from connector.crm.salesforce.history import FieldHistory
from connector.crm.salesforce.native import provision_list_views, read_list_views
from connector.crm.salesforce.provision import Provisioner
from connector.crm.salesforce.pull import RECHECK_CALL, Puller
from connector.crm.salesforce.session import SalesforceSession
from connector.crm.salesforce.soql import SOBJECTS, ParentMemory
from connector.crm.salesforce.write import CollectionWriter, check_writable, schema_refusals


class SalesforceAdapter:
    """segsync's view of one Salesforce org.

    Args:
        connection: the connection's name in the config (for messages).
        settings: the connection's settings.
        retry: the retry policy (the default one when None).
        bulk_wait: seconds simple-salesforce waits before polling a Bulk 2.0 job.
        cache: where the token and describes outlive the process (the state
            store, :mod:`.cache`); None: every process asks the org again.

    """

    crm = "salesforce"

    def __init__(
        self,
        connection: str,
        settings: SalesforceConnection,
        retry: RetryPolicy | None = None,
        bulk_wait: float = 2,
        cache: Cache | None = None,
    ) -> None:
        self.connection = connection
        self._settings = settings
        self._session = SalesforceSession(connection, settings, retry or RetryPolicy(), cache)
        self._describer = Describer(self._session, DescribeCache(cache, connection, settings))
        parents = ParentMemory()
        self._parents = parents
        self._bulk = Bulk(self._session, self._describer, parents, bulk_wait)
        self._puller = Puller(self._session, self._bulk, parents, self._describer)
        self._writer = CollectionWriter(self._session)
        self._provisioner = Provisioner(self._session, self._describer)
        self._history = FieldHistory(self._session)
        self._deals = DealPuller(self._session, self._describer)

    def __repr__(self) -> str:
        return (
            f"SalesforceAdapter(connection={self.connection!r}, auth={self._settings.auth!r}, "
            f"instance_url={self._session.instance_url!r})"
        )

    @property
    def budget(self) -> DailyBudget:
        """The org's daily API budget (fed from ``Sforce-Limit-Info``)."""
        return self._session.budget

    @property
    def health(self) -> Health:
        """When the org last answered, and the last refusal (what ``/readyz`` reads)."""
        return self._session.health

    @property
    def api_calls(self) -> int:
        """HTTP calls made so far: token requests, retries, bulk polls and SOAP included."""
        return self._session.api_calls

    def authenticate(self) -> None:
        """Obtain a session now (else the first call does); FatalSyncError when refused."""
        self._session.authenticate()

    def describe(self, obj: ObjectName, names: Sequence[str]) -> dict[str, FieldSpec]:
        """The org's view of ``names`` on the object (``Account.X`` names a contact's parent)."""
        return self._describer.specs(obj, names)

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
        """Pages of records with ``SystemModstamp >= since`` (all when None), oldest first.

        REST pages of up to 2,000 records, or Bulk API 2.0 when the query's
        ``totalSize`` (on its first REST page: no extra call) reaches
        ``bulk_read_threshold``. A SELECT list with two to four long text
        areas (known from the kept describe) is split over the queries of
        one Composite call a keyset page, with a ``COUNT()`` of the window
        in its place (docs/crm-apis.md#long-text-split). An incremental pull leaves out records the
        integration user edited last (segsync's own writes), so ``echo`` is
        not needed: parents come with the query at no cost anyway (and so
        ``known`` is not used either). ``window`` is not used: the look-back
        window comes on the same query pages (2,000 records a page), and a
        count would cost a call of its own.
        """
        return self._puller.pull(obj, fields, since, parent_fields)

    def fetch(
        self,
        obj: ObjectName,
        ids: Sequence[str],
        fields: Sequence[str],
        parent_fields: Sequence[str] = (),
        known: KnownParents | None = None,
    ) -> list[CrmRecord]:
        """Records by id (for retrying earlier failures); unknown or deleted ids are left out.

        Parents come with the query (``known`` is not used).
        """
        return self._puller.fetch(obj, ids, fields, parent_fields)

    def children(
        self,
        parent_ids: Sequence[str],
        fields: Sequence[str],
        parent_fields: Sequence[str] = (),
        *,
        exclude: Collection[str] = frozenset(),
        known: KnownParents | None = None,
    ) -> Iterator[list[CrmRecord]]:
        """Pages of the contacts of the accounts ``parent_ids`` (``AccountId IN (...)``).

        Parents come with the query (``known`` is not used).
        """
        return self._puller.children(parent_ids, fields, parent_fields, exclude)

    def set_by_person(
        self, obj: ObjectName, current: Mapping[str, Mapping[str, Any]]
    ) -> dict[str, frozenset[str]]:
        """The values a user other than the integration user set, by field history."""
        return self._history.set_by_person(obj, current)

    def current(
        self,
        obj: ObjectName,
        ids: Sequence[str],
        fields: Sequence[str],
        settled: Collection[str] = frozenset(),
        keep: Sequence[str] = (),
    ) -> dict[str, Current]:
        """``ids`` as they stand now (``SystemModstamp``, ``fields``, edited last by us?).

        Five ``Id IN`` queries to a Composite call; ``settled`` ids without the
        fields outside ``keep`` (see :meth:`.pull.Puller.current`).
        """
        return self._puller.current(obj, ids, fields, settled, keep)

    def write_chunk(self, total: int) -> int:
        """One Bulk 2.0 job's worth above the bulk threshold, else rounds of 200-record calls.

        The rounds are made up to whole re-read calls (``RECHECK_CALL``
        fresh records each): with the default concurrency 2,000, not 1,600
        (whose second 600 cost a re-read call of their own).
        """
        if total > self._settings.bulk_write_threshold:
            return max(self._settings.bulk_write_threshold + 1, BULK_WRITE_CHUNK)
        rounds = SF_COLLECTION_BATCH * self._settings.max_concurrency * 2
        return -(-rounds // RECHECK_CALL) * RECHECK_CALL

    def write(
        self,
        obj: ObjectName,
        updates: Sequence[RecordUpdate],
        journal: JobJournal | None = None,
    ) -> list[WriteOutcome]:
        """Write the updates; one outcome per update, in order.

        sObject Collections of 200 on up to ``max_concurrency`` threads, or one Bulk
        API 2.0 ingest job above ``bulk_write_threshold`` updates, noted in
        ``journal`` before each step (create, upload, close).
        """
        if not updates:
            return []
        sobject = SOBJECTS[obj]
        check_writable(self._describer, sobject, updates)
        if len(updates) > self._settings.bulk_write_threshold:
            outcomes = self._bulk.ingest(sobject, self._parents.order(sobject, updates), journal)
            # Row locks and rows the job never reached get the REST path, which retries them.
            again = [u for u in updates if u.id not in outcomes or outcomes[u.id].retriable]
            if again:
                outcomes.update(self._writer.write(sobject, self._parents.order(sobject, again)))
        else:
            outcomes = self._writer.write(sobject, self._parents.order(sobject, updates))
        # Refused for a schema reason: the (cached) describe was stale. Describe
        # again; send once more what is still writable, report the rest.
        again, refused = schema_refusals(self._describer, sobject, updates, outcomes)
        outcomes.update(refused)
        if again:
            outcomes.update(self._writer.write(sobject, self._parents.order(sobject, again)))
        return [outcomes[u.id] for u in updates]

    def provision_native(
        self,
        obj: ObjectName,
        views: Sequence[NativeView],
        dry_run: bool,
        *,
        shared_to: str = "AllInternalUsers",
    ) -> list[NativeAction]:
        """One list view per view (Metadata API ``ListView``), shared with ``shared_to``."""
        return provision_list_views(self._session, obj, views, dry_run, shared_to)

    def read_native(self, obj: ObjectName, views: Sequence[NativeView]) -> list[NativeSummary]:
        """The list views of ``views`` that exist, with how many records each selects."""
        return read_list_views(self._session, obj, views)

    def resume(self, obj: ObjectName, journal: JobJournal) -> list[str]:
        """Finish (close, wait for) or abort the ingest jobs a crashed run left in ``journal``."""
        return self._bulk.resume(SOBJECTS[obj], journal)

    def provision(
        self,
        obj: ObjectName,
        outputs: Sequence[OutputField],
        inputs: Sequence[str],
        dry_run: bool,
    ) -> ProvisionReport:
        """Create missing output fields, add new picklist values, check access to every field.

        Nothing is ever deleted: picklist values no longer defined are reported as
        ``stale_options``. A dry run reads but changes nothing.
        """
        return self._provisioner.provision(obj, outputs, inputs, dry_run)

    def minimum_calls(self, read: int, changed: int, *, incremental: bool = False) -> int:
        """Query pages plus collection calls, or Bulk API 2.0's floor where a run uses it.

        A Bulk query (from ``bulk_read_threshold`` records): create, one
        status poll, and a result page per :data:`BULK_RESULT_PAGE` rows. A
        Bulk ingest job (above ``bulk_write_threshold`` updates) per
        :data:`BULK_WRITE_CHUNK` rows: create, upload, close, one status
        poll, one results read.
        """
        settings = self._settings
        if read >= settings.bulk_read_threshold:
            reads = 2 + math.ceil(read / BULK_RESULT_PAGE)
        else:
            reads = math.ceil(read / SF_QUERY_PAGE)
        if changed > settings.bulk_write_threshold:
            writes = 5 * math.ceil(changed / BULK_WRITE_CHUNK)
        else:
            writes = math.ceil(changed / SF_COLLECTION_BATCH)
        return reads + writes

    def pull_deals(
        self, since: datetime | None, window: KnownWindow | None = None
    ) -> Iterator[DealPage]:
        """Pages of opportunities (read-only) modified at or after ``since``; see :mod:`.deals`.

        A large ``window`` of known deals is proven by a count in the same call
        as the page above it, and not read again.
        """
        return self._deals.pull(since, window)

    def deal_minimum_calls(self, read: int, *, incremental: bool) -> int:
        """Query pages: the REST floor of a deal pull."""
        return deal_minimum_calls(read)

    def close(self) -> None:
        """Stop the write threads and close every HTTP session this adapter opened."""
        self._writer.close()
        self._session.close()
