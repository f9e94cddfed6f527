"""The one small boundary between the sync core and a CRM.

Each CRM has one adapter package (``salesforce``, ``hubspot``) with a
class that satisfies :class:`CrmAdapter`. Adapters share no base class; the
helpers they share are plain functions. The core (planner, runner) never
imports an SDK: it sees :class:`CrmRecord` pages going in and
:class:`WriteOutcome` lists coming out.

Objects are named the segsync way, ``"account"``, ``"contact"`` and
``"lead"``; the adapter maps them to ``Account`` / ``companies``,
``Contact`` / ``contacts`` and ``Lead`` (Salesforce only: :data:`CRM_OBJECTS`).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

from connector.state import DealProblem, DealRecord

# "[Errno 111] Connection refused", "[Errno -2] Name or service not known"
_ERRNO_TEXT = re.compile(r"\[Errno [^\]]*\] ([^()\[\]]+)")

T = TypeVar("T")

Crm = Literal["salesforce", "hubspot"]
ObjectName = Literal["account", "contact", "lead"]

#: The mapped objects each CRM has, in the order a cycle runs them (accounts
#: first: contacts inherit from them). Salesforce leads have no HubSpot
#: counterpart: a HubSpot contact at any lifecycle stage is a contact.
CRM_OBJECTS: dict[str, tuple[ObjectName, ...]] = {
    "salesforce": ("account", "contact", "lead"),
    "hubspot": ("account", "contact"),
}


def objects_of(crm: str) -> tuple[ObjectName, ...]:
    """The mapped objects of ``crm`` (none for an unknown CRM)."""
    return CRM_OBJECTS.get(crm, ())


def transport_reason(exc: BaseException) -> str:
    """Why a request got no answer, in a few words ("connection refused", "timed out", …).

    Transport errors of requests and urllib3 nest the operating system's
    message inside a long repr of the connection; this is the part a person
    acts on. It never quotes a request, so no header or secret.
    """
    text = " ".join(str(exc).split())
    errno = _ERRNO_TEXT.search(text)
    if errno:
        return errno.group(1).strip().lower()
    lowered = text.lower()
    if "timed out" in lowered or "timeout" in lowered:
        return "no answer within timeout_seconds"
    if "certificate" in lowered or "ssl" in lowered:
        return "TLS handshake failed"
    if "connection aborted" in lowered or "remote end closed" in lowered:
        return "the connection was closed without an answer"
    return type(exc).__name__


def parse_stamp(value: Any) -> datetime:
    """A modification stamp as an aware UTC datetime.

    Salesforce sends ``2013-05-20T20:49:32.000+0000`` (REST) or ``…Z`` (Bulk),
    HubSpot ISO text or epoch milliseconds; a blank is the epoch.
    """
    if isinstance(value, datetime):
        moment = value
    else:
        text = str(value or "").strip()
        if not text:
            return datetime.fromtimestamp(0, tz=UTC)
        if text.isdigit():
            return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
        moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class CrmRecord:
    """One record as pulled: raw field values exactly as the CRM sent them.

    ``parent`` holds the parent account's output fields for a contact (its
    segment and tier as the CRM holds them now), keyed by the account's field
    names, or None when the contact has no account.
    """

    id: str
    stamp: datetime
    fields: Mapping[str, Any]
    parent: Mapping[str, Any] | None = None
    read_at: datetime | None = None
    """For a CRM whose stamps keep whole seconds (Salesforce): the earliest the
    CRM's clock can have shown when the record was read. A change later in
    the stamp's second carries the same stamp, so the record counts as
    processed at its stamp only when that second had closed, plus the commit
    lag, by then (:func:`connector.sync.window.settled`). None: the stamps tell
    every change apart (HubSpot's milliseconds)."""


#: The mark segsync puts in the description (and Salesforce help text) of every
#: field it provisions; a field carrying it is one segsync may write.
MANAGED_MARK = "Managed by segsync."


def carries_mark(*texts: str | None) -> bool:
    """Whether any of ``texts`` (a description, a help text) carries :data:`MANAGED_MARK`."""
    mark = MANAGED_MARK.rstrip(".").casefold()
    return any(text and mark in text.casefold() for text in texts)


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """What the CRM says about one field (from describe / the properties API).

    ``managed``: the field carries segsync's mark (it provisioned it).
    ``standard``: the CRM defines the field (a Salesforce standard field, a
    HubSpot default property): segsync never owns it unless adopted.
    """

    name: str
    type: str
    exists: bool = True
    updateable: bool = True
    options: tuple[str, ...] = ()
    length: int | None = None
    managed: bool = False
    standard: bool = False


@dataclass(frozen=True, slots=True)
class Current:
    """A record as it stands right before a write: its stamp, some fields, who changed it last.

    ``own``: the CRM says segsync's own integration user made the last change
    (Salesforce ``LastModifiedById``); ``False`` where the CRM does not say
    (HubSpot: the runner compares the stamp with the one our write returned).
    ``partial``: only some of the asked fields were read (the others are not in
    ``fields``); the stamp stands for them (see :mod:`connector.sync.recheck`).
    """

    id: str
    stamp: datetime
    fields: Mapping[str, Any]
    own: bool = False
    partial: bool = False


@dataclass(frozen=True, slots=True)
class RecordUpdate:
    """The output fields to write on one record (Python values; the adapter formats them)."""

    id: str
    fields: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    """What happened to one record's update.

    ``retriable`` failures (a row lock) may succeed on a later attempt;
    others (a restricted picklist value, a deleted record) will not until
    someone changes the CRM or the mapping.
    """

    id: str
    ok: bool
    code: str = ""
    message: str = ""
    retriable: bool = False
    stamp: datetime | None = None
    """The record's modification stamp after this write, when the CRM returns it
    (HubSpot's ``updatedAt``): a later pull that finds the same stamp reads our
    own write back, an echo nobody else touched since (docs/crm-apis.md)."""


@dataclass
class ProvisionAction:
    """One change provisioning makes (or would make, on a dry run)."""

    object: str
    field: str
    action: Literal[
        "create",
        "add_options",
        "reorder_options",
        "ok",
        "stale_options",
        "grant",
        "missing_access",
        "adopted",
        "not_owned",
    ]
    detail: str = ""


@dataclass
class ProvisionReport:
    """Everything provisioning did or would do, and what it found missing."""

    crm: Crm
    actions: list[ProvisionAction] = field(default_factory=list)

    @property
    def problems(self) -> list[ProvisionAction]:
        """Actions that need a person: fields we cannot read or write, or may not."""
        return [a for a in self.actions if a.action in ("missing_access", "not_owned")]


@dataclass(frozen=True, slots=True)
class OutputField:
    """An output field to provision: its CRM name, kind and, for picklists, the options."""

    name: str
    kind: Literal["picklist", "number", "text", "longtext", "datetime"]
    label: str
    description: str
    options: tuple[str, ...] = ()
    #: What a rep sees on hover (Salesforce inlineHelpText); ``description`` when empty.
    help: str = ""


@dataclass(frozen=True, slots=True)
class NativeView:
    """A native list segsync keeps in a CRM: the records whose output ``field`` is ``value``.

    A HubSpot dynamic list (segment) or a Salesforce list view, one per
    segment and per tier a definition can assign. ``folder`` names the
    definition (HubSpot puts its lists in a folder of that name);
    ``columns`` are the output fields a seller sees beside the name and
    owner (Salesforce list views).
    """

    object: ObjectName
    kind: Literal["segment", "tier"]
    value: str
    field: str
    folder: str
    columns: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class NativeAction:
    """One native object provisioning made, would make, or left alone.

    ``edited``: the object carries segsync's name but a person changed what
    it selects; it is reported and never overwritten or retired.
    """

    object: str
    name: str
    action: Literal["create", "update", "ok", "retire", "edited", "missing_access"]
    detail: str = ""
    id: str = ""


@dataclass(frozen=True, slots=True)
class NativeSummary:
    """A native list as the CRM reports it: its name, id and how many records it holds.

    ``kind`` and ``value`` repeat the view's (``tier``, ``Tier 1``).
    """

    object: str
    name: str
    id: str
    members: int
    kind: str = ""
    value: str = ""


JobStep = Literal["creating", "created", "uploaded", "closed"]


@dataclass(frozen=True, slots=True)
class JobNote:
    """A bulk write job, noted before each of its steps so a crash can resume it.

    ``marker``: the adapter's own name for the job, chosen before it is
    created. ``job_id``: the CRM's id, ``None`` while the create's answer is
    awaited (a crash then leaves a job nobody knows the id of). ``step``: the
    last step known to have landed. ``since``: when the create was sent (this
    machine's clock), to find a job whose id was never learned.
    """

    marker: str
    job_id: str | None
    step: JobStep
    since: datetime


class JobJournal(Protocol):
    """Where an adapter notes its bulk write jobs: durable (the state store), per object."""

    def note(self, note: JobNote) -> None:
        """Record (or replace) the note of ``note.marker``; durable when this returns."""
        ...

    def done(self, marker: str) -> None:
        """Forget a job that has ended (its results were read, or it was aborted)."""
        ...

    def notes(self) -> list[JobNote]:
        """Every job noted and not done: what a crashed run left behind."""
        ...


EchoTest = Callable[[Sequence[CrmRecord]], set[str]]


class KnownParents(Protocol):
    """Parents' inherited values as the state store knows them (``connector/sync/parents.py``).

    A pull of contacts takes a parent's values from :meth:`values` unless the
    parent was modified at or after :attr:`since` (the CRM's clock): those
    the adapter reads from the CRM, as it does parents the store does not
    know. ``since`` None: the store cannot vouch for any parent.
    """

    @property
    def since(self) -> datetime | None:
        """The stamp from which a parent must be read from the CRM."""
        ...

    def values(self, ids: Sequence[str]) -> dict[str, Mapping[str, Any]]:
        """Parent id → its inherited values (field → value), for those the store knows."""
        ...


"""Given a page of pulled records, the ids that are echoes of segsync's own writes."""


@runtime_checkable
class CountsPull(Protocol):
    """An adapter that can say how many records the pull in progress holds."""

    def pull_expected(self) -> int | None:
        """The records the CRM counted for the current pull (None: not known, or no pull)."""
        ...


class ReadClock:
    """When a pull began on the CRM's clock: the earliest moment its answers allow.

    Each answer noted (:meth:`note`) gives the earliest the CRM's clock can
    have shown when its request was served: the answer's ``Date`` (whole
    seconds, rounded down) less the time the request took, measured on this
    host (no clock of this host is compared with the CRM's). The lowest of
    them is no later than any read the pull made, however its requests
    overlapped: every request is served after it is sent. An answer noted
    that is not the pull's own (a write alongside) can only lower it, which
    costs a re-read, never a record. Thread-safe.
    """

    def __init__(self, earliest: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._earliest = earliest

    def note(self, moment: datetime | None) -> None:
        """One answer's earliest serving time (None: it carried no readable ``Date``)."""
        if moment is None:
            return
        with self._lock:
            if self._earliest is None or moment < self._earliest:
                self._earliest = moment

    def began(self) -> datetime | None:
        """The earliest noted (None: no answer carried a ``Date``)."""
        with self._lock:
            return self._earliest


class TimedPages(Iterator[T]):
    """The pages of a pull, and when the pull began on the CRM's clock (:class:`ReadClock`).

    The sync keeps :meth:`began` with the watermark: the next pull starts
    at ``min(watermark, began) - lookback`` (``connector/sync/watermark.py``).
    Read it once the pages are exhausted.
    """

    def __init__(self, pages: Iterator[T], clock: ReadClock) -> None:
        self._pages = pages
        self._clock = clock

    def __next__(self) -> T:
        return next(self._pages)

    def close(self) -> None:
        """Close the pages (a generator's ``finally`` runs), as a generator's own ``close``."""
        close = getattr(self._pages, "close", None)
        if close is not None:
            close()

    def began(self) -> datetime | None:
        """When the pull began on the CRM's clock (None: no answer said)."""
        return self._clock.began()


def pull_began(pages: Iterable[Any]) -> datetime | None:
    """:meth:`TimedPages.began` of a pull's pages; None for pages that do not say."""
    return pages.began() if isinstance(pages, TimedPages) else None


@dataclass(frozen=True, slots=True)
class KnownWindow:
    """What an incremental pull already knows of the stamps ``start`` ≤ stamp ≤ ``upto``.

    ``upto`` is the last watermark: the run that set it saw every record up
    to it, and any change since carries a later stamp (no window is given
    when that run read the watermark's own second before it closed:
    connector/sync/window.py). ``expected`` records
    segsync processed at exactly their stamp lie in that window (read by the
    last runs). When the CRM counts as many records there, less those of
    them (``moved``) now found above ``upto``, the window holds nothing else,
    and an adapter that can count without reading (HubSpot's search
    ``total``) reads only the records above ``upto`` (segsync's own last
    writes among them: a count could not vouch for those). See
    connector/sync/window.py for the proof.
    """

    start: datetime
    upto: datetime
    expected: int
    moved: Callable[[Iterable[tuple[str, datetime]]], int]
    """How many of ``(id, stamp)`` (found above ``upto``) were known inside the window (moved)."""
    known: Callable[[str, datetime], bool]
    """Whether a record was processed at exactly that stamp."""


class CrmAdapter(Protocol):
    """What the sync core needs from a CRM."""

    @property
    def crm(self) -> Crm:
        """Which CRM this adapter talks to."""
        ...

    @property
    def connection(self) -> str:
        """The connection's name in the config."""
        ...

    @property
    def api_calls(self) -> int:
        """API calls this adapter has made so far (all kinds, retries included)."""
        ...

    def describe(self, obj: ObjectName, names: Sequence[str]) -> dict[str, FieldSpec]:
        """The CRM's view of ``names`` on ``obj`` (missing ones with ``exists=False``)."""
        ...

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
        """Pages of records modified at or after ``since`` (all records when None).

        Records come in ascending modstamp order within the pull, so the
        watermark can follow them. ``parent_fields`` are the parent account's
        fields to attach to contacts. An incremental pull leaves out, where
        the CRM's query can say so, records whose last change is segsync's
        own write; records for which ``echo`` answers true are still yielded
        (the watermark follows them) but without parent lookups, since the
        runner will not plan them. ``known``: parents' values the store
        vouches for, where reading them would cost calls. With ``window``, an
        adapter may leave out the records of the window when it proves the window
        holds only known records (:class:`KnownWindow`); it may also ignore it.
        Pages that say when the pull began on the CRM's clock come as
        :class:`TimedPages` (the watermark keeps it); for others the sync
        takes the lowest stamp read instead.
        """
        ...

    def fetch(
        self,
        obj: ObjectName,
        ids: Sequence[str],
        fields: Sequence[str],
        parent_fields: Sequence[str] = (),
        known: KnownParents | None = None,
    ) -> list[CrmRecord]:
        """Records by id (to retry earlier failures); ids that no longer exist are left out."""
        ...

    def children(
        self,
        parent_ids: Sequence[str],
        fields: Sequence[str],
        parent_fields: Sequence[str] = (),
        *,
        exclude: Collection[str] = frozenset(),
        known: KnownParents | None = None,
    ) -> Iterator[list[CrmRecord]]:
        """Pages of the contacts of the accounts ``parent_ids`` (ids that no longer exist: none).

        For re-planning the contacts of accounts whose inherited values changed.
        A contact may appear on more than one page when it belongs to several
        of the accounts; ``parent_fields`` are its own (primary) account's.
        Contacts in ``exclude`` (already read by the caller) are left out,
        without reading them where the CRM allows.
        """
        ...

    def set_by_person(
        self, obj: ObjectName, current: Mapping[str, Mapping[str, Any]]
    ) -> dict[str, frozenset[str]]:
        """Which of the given output values a person set, by the CRM's own audit trail.

        ``current`` maps record id → output field → the value the CRM holds now;
        the answer maps record id → the fields whose current value was last set
        by a person (HubSpot property history from the UI, an import or the
        mobile apps; Salesforce field history by a user other than the
        integration user). Records with none are left out; so is everything
        when the CRM keeps no audit trail of those fields.
        """
        ...

    def current(
        self,
        obj: ObjectName,
        ids: Sequence[str],
        fields: Sequence[str],
        settled: Collection[str] = frozenset(),
        keep: Sequence[str] = (),
    ) -> dict[str, Current]:
        """The records ``ids`` as they stand now: stamp and ``fields`` (deleted ones left out).

        The re-read right before a write chunk (``sync.recheck_before_write``):
        as few calls as the CRM allows (Salesforce: ``Id IN`` queries, five to
        a Composite call; HubSpot: a batch read per 100), no parent lookups.
        For ids in ``settled`` the adapter may read only ``keep`` of
        ``fields`` (their :class:`Current` is then ``partial``): the caller
        judges the others by the stamp. Every call it makes, on whatever
        thread, counts to the caller's :func:`~connector.crm.tally.tallied`
        block (the re-read's own calls).
        """
        ...

    def write(
        self,
        obj: ObjectName,
        updates: Sequence[RecordUpdate],
        journal: JobJournal | None = None,
    ) -> list[WriteOutcome]:
        """Write the updates (batched and retried inside); one outcome per update.

        A bulk job (Salesforce Bulk 2.0) is noted in ``journal`` before each of
        its steps, so that :meth:`resume` can finish it after a crash.
        """
        ...

    def resume(self, obj: ObjectName, journal: JobJournal) -> list[str]:
        """Finish or abort the bulk jobs a crashed run left in ``journal``; what was done.

        A job whose rows were uploaded is closed (if still Open) and waited
        for, so the next plan finds its writes landed instead of sending them
        again; an Open job that may hold no rows, or one whose id was never
        learned (found by listing the CRM's jobs), is aborted. Nothing to do
        for a CRM without bulk writes.
        """
        ...

    def write_chunk(self, total: int) -> int:
        """How many updates to hand :meth:`write` at a time when ``total`` are planned.

        A whole number of the CRM's batches (so no call goes out half full),
        or one bulk job's worth when ``total`` warrants the bulk path. The
        runner records each chunk's outcome in one transaction.
        """
        ...

    def provision(
        self, obj: ObjectName, outputs: Sequence[OutputField], inputs: Sequence[str], dry_run: bool
    ) -> ProvisionReport:
        """Create missing output fields, extend picklists, check access to inputs."""
        ...

    def minimum_calls(self, read: int, changed: int, *, incremental: bool = False) -> int:
        """The fewest API calls that could read ``read`` records and write ``changed``.

        ``incremental`` pulls may read through a search API with larger pages.
        """
        ...

    def close(self) -> None:
        """Release connections."""
        ...


@runtime_checkable
class NativeLists(Protocol):
    """An adapter that keeps native lists in its CRM (``segsync provision``, the demo)."""

    def provision_native(
        self,
        obj: ObjectName,
        views: Sequence[NativeView],
        dry_run: bool,
        *,
        shared_to: str = "AllInternalUsers",
    ) -> list[NativeAction]:
        """Create, update or retire the native lists of ``obj`` so they match ``views``.

        HubSpot dynamic lists, Salesforce list views (shared with ``shared_to``).
        Never overwrites or retires one a person edited: reports it as ``edited``.
        """
        ...

    def read_native(self, obj: ObjectName, views: Sequence[NativeView]) -> list[NativeSummary]:
        """The native lists of ``views`` that exist, read back with their member counts."""


# -- deals (read-only) ------------------------------------------------------
# The deal values live in connector.state: the store keeps them and the
# analyses read them, and neither may import the adapters.


@dataclass(frozen=True, slots=True)
class DealPage:
    """One page of a deal pull: the deals read, the problems met, and every id and stamp seen.

    ``seen`` lists ``(id, stamp)`` of every row on the page, readable or not,
    so the watermark moves past bad rows too. ``gone`` lists the deals found
    deleted in the CRM (a Salesforce row with ``IsDeleted``, in ``seen`` too:
    deleting moves its stamp; a HubSpot deal in the archived list, not in
    ``seen``: that list is not in stamp order): the store drops them.
    """

    deals: tuple[DealRecord, ...]
    problems: tuple[DealProblem, ...]
    seen: tuple[tuple[str, datetime], ...]
    gone: tuple[str, ...] = ()
    read_at: datetime | None = None
    """As :attr:`CrmRecord.read_at`, for every deal on the page."""


class DealSource(Protocol):
    """What the deal sync needs from a CRM: incremental, read-only pulls of its deals."""

    @property
    def crm(self) -> Crm:
        """Which CRM this is."""
        ...

    @property
    def api_calls(self) -> int:
        """API calls made so far."""
        ...

    def pull_deals(
        self, since: datetime | None, window: KnownWindow | None = None
    ) -> Iterator[DealPage]:
        """Pages of deals modified at or after ``since`` (all when None).

        Incremental pulls (``since`` given) come in ascending stamp order, so
        the watermark can follow each page; a full pull may come in any order.
        ``window``: as for :meth:`CrmAdapter.pull`, a look-back window the
        source may leave unread once a count proves it known. An incremental
        pull also names the deals deleted since (:attr:`DealPage.gone`); a
        full pull lists every live deal, so a stored deal it does not list is
        gone as well. As for :meth:`CrmAdapter.pull`, the pages may be
        :class:`TimedPages`.
        """
        ...

    def deal_minimum_calls(self, read: int, *, incremental: bool) -> int:
        """The fewest API calls that could read ``read`` deals with their accounts."""
        ...
