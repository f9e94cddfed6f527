"""One sync cycle for one connection and object: pull, evaluate, plan, guard, write, record.

The cycle runs in two phases so that nothing is written before the whole plan
is known:

1. **Plan.** Pull page by page (plus records with open errors or pending
   hysteresis, fetched by id), evaluate each record with the engine, plan it
   against the CRM's current values and the last-written values from the
   store. Counts and the transition matrix stay in memory; the writes go to a
   spool file on disk, so memory stays flat however large the org.
2. **Guard, then execute.** The mass-change guard sees the whole plan. Then
   the spool is written in chunks; each chunk's outcome (written values,
   failures, ledger entries, hysteresis state) is recorded in one store
   transaction. The watermark advances last, past records whose outcome is
   durable, so a crash at any point re-plans from the old watermark: records
   already written compare equal and are not written again, so at most the
   chunk in flight is rewritten. Before a chunk is sent its writes are recorded
   as write intents (settled with the outcome): a record a killed run wrote
   but never recorded is fetched again by the next run and, when the CRM holds
   exactly what the killed run sent, adopted before it is planned (its values
   taken as the last written, its ledger rows recorded under the killed run),
   whatever the plan now wants; when the CRM holds anything else, a person
   moved it, and the usual rules apply (see :meth:`Runner._adopt_landed`).

When the CRM counts the records of the pull (:class:`~connector.crm.base.CountsPull`),
phase 2 may start while phase 1 still reads, once no rest of the pull can make
the guard refuse the plan (:mod:`connector.sync.pipeline`).

The runner holds no SDK: it drives a :class:`~connector.crm.base.CrmAdapter`.
"""

from __future__ import annotations

import logging
import pickle
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import IO, Any, TypeVar, cast

from connector.config import SyncSettings
from connector.crm.base import (
    CountsPull,
    CrmAdapter,
    CrmRecord,
    KnownWindow,
    ObjectName,
    RecordUpdate,
    pull_began,
)
from connector.crm.concurrent import merged
from connector.crm.ids import well_formed_id
from connector.crm.retry import RetryPolicy
from connector.engine import Assignment, Engine
from connector.errors import Interrupted, SegsyncError
from connector.state import Candidate, Pending, Watermark
from connector.store.leases import Fence, watching
from connector.store.records import (
    FailedRecord,
    LandedWrite,
    RunCounts,
    Transition,
    WriteIntent,
    WrittenRecord,
)
from connector.store.store import Store
from connector.sync.agreement import Agreement, Notes
from connector.sync.audit import AuditTrail
from connector.sync.bulkjobs import StoreJournal
from connector.sync.echo import EchoFilter, known_window
from connector.sync.guard import MassChangeError, check_guard
from connector.sync.ownership import OwnershipError, judge, refusal_message, unrecorded
from connector.sync.parents import (
    StoreParents,
    known_parents,
    note_read,
    note_written,
    stores_parents,
)
from connector.sync.pipeline import WriteAhead
from connector.sync.planner import (
    Decision,
    FieldChange,
    Hysteresis,
    Override,
    PlanBuilder,
    PlanInput,
    PlanSummary,
    Policy,
    RecordPlanner,
    Write,
    landed_baseline,
    plan_record,
)
from connector.sync.recheck import Recheck, Seen
from connector.sync.rollups import RollupFeed
from connector.sync.steps import StoreSteps
from connector.sync.values import as_text, is_blank, same_value
from connector.sync.watermark import WatermarkTracker, needs_full, query_start
from connector.sync.window import Known, Recent, read_open

log = logging.getLogger("segsync.sync")
T = TypeVar("T")

#: Logical output keys whose changes are transitions (ledger, matrix).
TRACKED_KEYS = ("segment", "tier", "persona")
#: The outputs of a parent (account) that a child (contact) mapping can inherit.
INHERITABLE_KEYS = ("segment", "tier")
#: The error code that keeps a contact deferred until its account is computed:
#: an open error, so the next run fetches the contact again by id.
DEFERRED = "PARENT_NOT_COMPUTED"
DEFERRED_MESSAGE = (
    "deferred: its account has no segment and tier yet (no account run has computed it); "
    "planned again at the next run"
)
#: Output keys the mass-change guard ignores: every other output field counts
#: (segment, tier, persona, scores, reason, and any adopted field mapped to
#: them). ``version`` changes on every record with each release of the
#: definition by design; ``updated_at`` never causes a write on its own.
UNGUARDED_KEYS = ("version", "updated_at")

Progress = Callable[[str, int], None]
Planned = tuple[str, tuple[datetime | None] | None, datetime, Mapping[str, Any], datetime | None]
"""What a planned record carries to the spool: its reason, its new due date if changed,
and its stamp, fields and read time, from which a write's :data:`Seen` is taken (what
the plan saw of it, for the re-read before the write, ``sync/recheck.py``)."""
#: RecordPlanner.decide's arguments: id, assignment, fields, last written, locked, pending.
PlanArgs = tuple[str, Assignment, Mapping[str, Any], Mapping[str, Any] | None, bool, Pending | None]


@dataclass(frozen=True)
class Job:
    """What one cycle syncs: a connection's adapter, the object's engine and its parent's.

    ``adopted``: output fields the config lets segsync write without having
    provisioned them (``connections.<name>.adopt_fields.<object>``).
    """

    connection: str
    adapter: CrmAdapter
    engine: Engine
    parent_engine: Engine | None = None
    adopted: frozenset[str] = frozenset()
    agreement: Agreement | None = None
    """The agreement policy's view of the other CRM (``[parity] source``), if set."""


@dataclass
class RunResult:
    """What a cycle did (or, on a dry run, would do)."""

    connection: str
    crm: str
    object: str
    full: bool
    dry_run: bool
    run_id: int | None = None
    status: str = "running"
    summary: PlanSummary = field(default_factory=PlanSummary)
    written: int = 0
    failed: int = 0
    api_calls: int = 0
    minimum_calls: int = 0
    """The true minimum: the floor for what changed in the CRM since the last run
    (:attr:`outside` records read, the changes written; 1 call for a quiet object)."""
    read_floor_calls: int = 0
    """The floor for what this run read, re-reads and due or retried records included."""
    planned_calls: int = 0
    seconds: float = 0.0
    sample_writes: list[Write] = field(default_factory=list)
    sample_overrides: list[Override] = field(default_factory=list)
    sample_failures: list[FailedRecord] = field(default_factory=list)
    message: str = ""
    echoes: int = 0
    """Pulled records skipped as echoes of segsync's own writes (connector/sync/echo.py)."""
    rereads: int = 0
    """Pulled records skipped as already processed at their stamp (connector/sync/window.py)."""
    outside: int = 0
    """Pulled records planned: changed by someone else since the last run (every one, when full)."""
    audited: int = 0
    """Records whose output values the CRM's audit trail was asked about (sync/audit.py)."""
    audit_persons: int = 0
    """Of those, records with a value a person set by that audit trail."""
    deferred: int = 0
    """Contacts not planned: their account has no segment and tier yet (see DEFERRED)."""
    changed_since_plan: int = 0
    """Planned writes held back: the re-read before the write found the record
    changed since the plan (a person's edit, a lock set); re-planned next run."""
    sample_changed: list[tuple[str, str]] = field(default_factory=list)
    """Some of those: (record id, what moved)."""
    recheck_calls: int = 0
    """API calls the re-reads before writing took (their own: not the pull's alongside)."""

    @property
    def counts(self) -> RunCounts:
        """The run's counts as the store keeps them."""
        c = self.summary.counts
        return RunCounts(
            read=c.read,
            changed=c.changed,
            written=self.written,
            failed=self.failed,
            skipped=c.unchanged,
            overrides=c.overrides,
            locked=c.locked,
            held=c.held,
            changed_since_plan=self.changed_since_plan,
        )


class Runner:
    """Runs sync cycles against a state store with the ``[sync]`` settings."""

    def __init__(
        self,
        store: Store,
        settings: SyncSettings,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sample_size: int = 10,
        write_chunk: int | None = None,
        progress: Progress | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock
        self._sample = sample_size
        self._chunk = write_chunk  # None: as the adapter prefers
        self._progress = progress or (lambda phase, n: None)
        # Store steps that fail for now (a statement or lock timeout, a lost
        # connection: StoreUnavailable) are tried again under this policy.
        self._retry = retry or RetryPolicy.from_settings(settings)

    @property
    def retry(self) -> RetryPolicy:
        """The policy store steps (and the deal sync's, the rollback's) are retried under."""
        return self._retry

    def _stored(
        self, what: str, lease: Fence | None, step: Callable[..., T], *args: Any, **kwargs: Any
    ) -> T:
        """Run one store step, trying it again while it fails for now (StoreUnavailable).

        A store step is one transaction, rolled back when it fails, so trying
        it again writes it once. Before each new try the lease is fenced
        (:class:`~connector.sync.steps.StoreSteps`).
        """
        return StoreSteps(self._retry, lease)(what, step, *args, **kwargs)

    def _written(
        self, what: str, lease: Fence | None, step: Callable[..., T], *args: Any, **kwargs: Any
    ) -> T:
        """:meth:`_stored` for a step that writes the store: its first try is fenced too.

        A run that lost its job records nothing more (:meth:`StoreSteps.write
        <connector.sync.steps.StoreSteps.write>`).
        """
        return StoreSteps(self._retry, lease).write(what, step, *args, **kwargs)

    # -- the cycle -------------------------------------------------------
    def run(
        self,
        job: Job,
        *,
        full: bool = False,
        dry_run: bool = False,
        force: bool = False,
        lease: Fence | None = None,
    ) -> RunResult:
        """Run one cycle; raises a SegsyncError subclass when the run cannot finish.

        ``lease``: the job's claim (connector/store/leases.py), held by the
        caller for the whole run. It is fenced before every write chunk, so a
        process that lost its job (stopped past its lease) writes nothing
        more; and only with it may the run mark a run left ``running``
        ``interrupted`` (see :meth:`Store.start_run`).
        """
        # Every CRM answer is progress too: a Bulk job polled for an hour is
        # no stall (connector/store/leases.py, "Stalls").
        with watching(lease, lambda: job.adapter.api_calls):
            return self._run(job, full=full, dry_run=dry_run, force=force, lease=lease)

    def _run(
        self, job: Job, *, full: bool, dry_run: bool, force: bool, lease: Fence | None
    ) -> RunResult:
        """:meth:`run`, the CRM's answers watched."""
        started = time.monotonic()
        engine, adapter, store = job.engine, job.adapter, self._store
        crm, obj, conn = adapter.crm, cast(ObjectName, engine.object), job.connection
        now = self._clock()
        # Every store step of the run is tried again while it fails for now.
        steps = StoreSteps(self._retry, lease)
        previous = steps("read the watermark", store.watermark, conn, obj)
        full = full or needs_full(previous, engine.version)
        since = (
            None
            if full
            else query_start(previous, timedelta(seconds=self._settings.lookback_seconds))
        )
        result = RunResult(conn, crm, obj, full, dry_run)
        calls_before = adapter.api_calls
        context = {"crm": crm, "object": obj, "connection": conn}
        if not dry_run:
            # Retried like every store step; a try whose commit landed unheard
            # left a "running" row that the next try (claimed) marks interrupted.
            result.run_id = self._stored(
                "record the run's start",
                None,
                store.start_run,
                conn,
                crm,
                obj,
                engine.version,
                full=full,
                claimed=lease is not None,
            )
            context["run_id"] = str(result.run_id)
        log.info("sync started (%s)", "full" if full else f"since {since}", extra=context)
        marks = steps("read the parent marks", self._changed_parents, job)
        known = Known(None if full else previous, engine.version)
        echoes = None if full else EchoFilter(store, conn, obj, known, steps)
        # What this run processes, kept with its watermark (a dry run keeps none).
        lookback = timedelta(seconds=self._settings.lookback_seconds)
        recent = None if dry_run else Recent(known, lookback)
        window = known_window(known, previous, since)
        audit = AuditTrail()
        try:
            self._check_owned(job, steps, record=not dry_run)
            # Rollup attributes: the account's deals from the store (sync/rollups.py).
            feed = RollupFeed.of(store, conn, engine, steps)
            if result.run_id is not None:
                # Bulk jobs a crashed run left: finished (or aborted) before planning.
                journal = StoreJournal(store, conn, obj, result.run_id, steps)
                if lease is not None:
                    lease.fence()  # resuming a job writes too: still ours?
                for line in adapter.resume(obj, journal):
                    log.warning("%s", line, extra=context)
                    if lease is not None:
                        lease.progress("a bulk job a crashed run left, resumed")
            with tempfile.TemporaryFile(prefix="segsync-plan-") as spool:
                population = steps("count the records", store.record_count, conn, obj)
                # Writing may start before the plan is complete once the guard's
                # outcome is certain (connector/sync/pipeline.py); not with
                # children still to read after the pull, whose number is unknown.
                ahead = (
                    WriteAhead(
                        spool,
                        lambda tail: self._execute(job, result, tail, lease, recent),
                        adapter.pull_expected,
                        population,
                        self._settings.max_change_share,
                        force=force,
                    )
                    if not dry_run and not marks and isinstance(adapter, CountsPull)
                    else None
                )
                try:
                    builder, watermark = self._plan(
                        job,
                        now,
                        None if full else previous,
                        since,
                        spool,
                        dry_run=dry_run,
                        parents=[] if full else [parent for parent, _ in marks],
                        echoes=echoes,
                        audit=audit,
                        result=result,
                        feed=feed,
                        after_page=ahead.after_page if ahead is not None else None,
                        recent=recent,
                        window=window,
                        lease=lease,
                    )
                    result.summary = builder.summary()
                    plan = builder.build()
                    result.sample_writes = list(plan.writes)
                    result.sample_overrides = list(plan.overrides)
                    result.planned_calls = adapter.minimum_calls(0, result.summary.counts.changed)
                    check_guard(
                        result.summary,
                        population,
                        self._settings.max_change_share,
                        self._settings.min_records_for_guard,
                        force,
                        full=full,
                        label=f"{crm} {obj} records",
                    )
                except BaseException:
                    if ahead is not None:
                        ahead.abort()
                    raise
                if ahead is not None and ahead.started:
                    ahead.finish()
                elif not dry_run:
                    spool.seek(0)
                    self._execute(job, result, spool, lease, recent)
                if not dry_run:
                    if lease is not None:
                        # A run with nothing to write checks too: one that
                        # lost its job leaves the marks and watermark alone.
                        lease.fence()
                    self._written(
                        "clear parent marks", lease, self._clear_changed_parents, job, marks
                    )
                    if feed is not None:
                        feed.clear()
                    if watermark is not None and recent is not None:
                        self._written(
                            "advance the watermark",
                            lease,
                            store.advance_watermark,
                            conn,
                            obj,
                            recent.mark(watermark),
                        )
            result.status = "succeeded" if result.failed == 0 else "partial"
        except SegsyncError as exc:
            result.status = (
                "aborted" if isinstance(exc, MassChangeError | Interrupted) else "failed"
            )
            result.message = str(exc)
            raise
        except BaseException as exc:
            result.status = "failed"
            result.message = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            result.echoes = echoes.skipped if echoes is not None else 0
            result.rereads = echoes.rereads if echoes is not None else 0
            result.audited, result.audit_persons = audit.asked, audit.found
            result.api_calls = adapter.api_calls - calls_before
            changed = result.summary.counts.changed
            result.read_floor_calls = adapter.minimum_calls(
                result.summary.counts.read, changed, incremental=not full
            )
            # A quiet object still costs the one call that finds nothing changed.
            outside = result.outside if full else max(result.outside, 1)
            result.minimum_calls = adapter.minimum_calls(outside, changed, incremental=not full)
            result.seconds = time.monotonic() - started
            if result.run_id is not None:
                # Not fenced: a run that lost its job still says how it ended.
                self._stored(
                    "record the run's end",
                    None,
                    store.finish_run,
                    result.run_id,
                    result.status,
                    result.counts,
                    result.api_calls,
                    result.minimum_calls,
                    result.message or None,
                    api_calls_read_floor=result.read_floor_calls,
                )
            log.info(
                "sync %s: read %d, changed %d, written %d, failed %d, %d API calls",
                result.status,
                result.summary.counts.read,
                result.summary.counts.changed,
                result.written,
                result.failed,
                result.api_calls,
                extra=context,
            )
        return result

    # -- phase 1: plan ---------------------------------------------------
    def _plan(
        self,
        job: Job,
        now: datetime,
        previous: Watermark | None,
        since: datetime | None,
        spool: IO[bytes],
        *,
        dry_run: bool = False,
        parents: Sequence[str] = (),
        echoes: EchoFilter | None = None,
        audit: AuditTrail | None = None,
        result: RunResult | None = None,
        feed: RollupFeed | None = None,
        after_page: Callable[[PlanSummary, int, int], None] | None = None,
        recent: Recent | None = None,
        window: KnownWindow | None = None,
        lease: Fence | None = None,
    ) -> tuple[PlanBuilder, Watermark | None]:
        engine, adapter, store = job.engine, job.adapter, self._store
        crm, obj, conn = adapter.crm, cast(ObjectName, engine.object), job.connection
        outputs = engine.output_fields(crm)
        out_fields = list(outputs.values())
        lock = engine.lock_field(crm)
        fields = list(
            dict.fromkeys([*engine.input_fields(crm), *out_fields, *([lock] if lock else [])])
        )
        parent_keys: dict[str, str] = {}
        if engine.inherits and job.parent_engine is not None:
            parent_out = job.parent_engine.output_fields(crm)
            parent_keys = {k: parent_out[k] for k in ("segment", "tier") if k in parent_out}
        policy = Policy.from_settings(
            self._settings,
            volatile=[outputs["updated_at"]] if "updated_at" in outputs else [],
            tracked=[outputs[k] for k in TRACKED_KEYS if k in outputs],
            guarded=[f for k, f in outputs.items() if k not in UNGUARDED_KEYS],
        )
        hysteresis = Hysteresis.from_settings(
            self._settings, [outputs["tier"]] if "tier" in outputs else []
        )
        inherited = _inherited_fields(engine, crm)
        recheck_fields = _recheck_fields(engine, crm)
        open_fields = _open_fields(engine, crm)
        if audit is not None:
            audit.bind(adapter, obj, policy)
        builder = PlanBuilder(keep=self._sample)
        # Outputs, whole-number scores (provisioned as such: a fraction would come
        # back rounded and look changed on every run) and plan_record in one step.
        planner = RecordPlanner(
            crm,
            policy,
            hysteresis,
            now,
            out_fields,
            [f for key, f in outputs.items() if key.startswith("score.")],
        )
        tracker = WatermarkTracker(previous, engine.version)
        steps = StoreSteps(self._retry, lease)
        # Writes dead runs left in flight: fetched again, and adopted, where
        # they landed, before planning.
        left_behind = set(steps("read the intents left behind", store.intent_ids, conn, obj))
        retry_ids = steps(
            "read the ids to retry", self._retry_ids, conn, crm, obj, left_behind, drop=not dry_run
        )
        # A full pull reads every record anyway; an incremental one also
        # fetches the records time has changed (their due_at has passed).
        due_ids = (
            []
            if previous is None
            else steps("read the due ids", self._due_ids, conn, crm, obj, now)
        )
        # Under an agreement policy, also the records whose counterpart in the
        # other CRM changed (connector/sync/agreement.py).
        agreed = job.agreement.prepare(since) if job.agreement is not None else []
        # And the accounts whose deals changed, for their rollups (sync/rollups.py).
        marked = feed.marked_ids(crm) if feed is not None and previous is not None else []
        wanted = sorted(set(retry_ids).union(due_ids, agreed, marked))
        # Contacts take their accounts' values from the store where it vouches for them.
        known = (
            known_parents(store, conn, job.parent_engine.object, steps)
            if parent_keys and job.parent_engine is not None and stores_parents(crm)
            else None
        )
        parent_fields = list(parent_keys.values())
        extra = adapter.fetch(obj, wanted, fields, parent_fields, known) if wanted else []
        seen_extra = {r.id for r in extra}
        _spool_gone(spool, [i for i in due_ids if i not in seen_extra])

        # The pull, once made: when it began on the CRM's clock goes with the watermark.
        the_pull: list[Iterator[list[CrmRecord]]] = []

        def pages() -> Iterator[tuple[list[CrmRecord], bool]]:
            if extra:
                yield extra, False
            pulled = adapter.pull(
                obj, fields, since, parent_fields, echo=echoes, known=known, window=window
            )
            the_pull.append(pulled)
            for page in prefetch(pulled):
                yield page, True
            # Last, so the children already pulled (or fetched) are not read again.
            for page in self._children(job, parents, fields, parent_keys, seen_extra, known):
                yield page, False

        # Contacts deferred by an earlier run: their open error closes once planned.
        was_deferred = (
            {
                e.record_id
                for e in steps("read the open errors", store.open_errors, conn, obj)
                if e.code == DEFERRED
            }
            if parent_keys
            else set()
        )

        add, add_unchanged, spool_entry = builder.add, builder.add_unchanged, self._spool
        decide_quiet = planner.decide_quiet

        def decide(planned: Sequence[tuple[PlanInput | PlanArgs, Planned]]) -> None:
            for item, (reason, changed_due, stamp, seen_fields, read_at) in planned:
                if isinstance(item, PlanInput):  # through the audit trail
                    decision = plan_record(item, policy, hysteresis, now)
                else:
                    quiet = decide_quiet(*item)
                    if quiet is None:
                        # Unchanged with nothing to keep (most records of a steady
                        # run): counted, and only a new due date is spooled.
                        add_unchanged()
                        if changed_due is not None:
                            _spool_due(spool, item[0], changed_due)
                        continue
                    decision = quiet
                add(decision)
                seen: Seen | None = None
                if decision.write is not None:
                    # What the re-read before the write compares: only a write needs it.
                    # Read before its stamp's second closed, a record's inputs too: a
                    # save later in that second keeps the stamp (window.read_open).
                    opened = read_open(stamp, read_at)
                    compared = open_fields if opened else recheck_fields
                    seen = (stamp, {f: seen_fields.get(f) for f in compared}, read_at)
                spool_entry(spool, decision, reason, changed_due, seen)

        # Under an agreement policy: one noted copy per assignment and note.
        noted = Notes()
        read = unreadable_locks = deferred = pulled_records = 0
        for page, pulled in pages():
            if pulled:
                pulled_records += len(page)
                kept, in_page = [], set()
                for record in page:
                    if record.id in in_page:  # a repeat within a page counts once
                        continue
                    in_page.add(record.id)
                    if recent is not None:
                        recent.seen(record.id, record.stamp, record.read_at)
                    if tracker.see(record.id, record.stamp) and record.id not in seen_extra:
                        kept.append(record)
                page = echoes.drop(kept) if echoes is not None else kept
                if result is not None:
                    result.outside += len(page)
                if parents:
                    # Echoes stay out of this set: a contact of an account whose
                    # tier changed is read again below, with its new parent.
                    seen_extra.update(r.id for r in page)
            ids = [r.id for r in page]
            if lease is not None:
                lease.progress(f"read a page of {len(page):,} records ({read:,} planned before it)")
            if inherited and not dry_run and stores_parents(crm):
                self._written(
                    "note the page's parents", lease, note_read, store, conn, obj, page, inherited
                )
            last, pending, stored_due = self._stored(
                "read the page's stored state", lease, _stored_state, store, conn, obj, ids
            )
            if left_behind and not left_behind.isdisjoint(ids):
                last = self._adopt_landed(
                    job,
                    page,
                    [i for i in ids if i in left_behind],
                    last,
                    policy.volatile,
                    None if dry_run or result is None else result.run_id,
                    lease,
                )
            decided = job.agreement.resolve(page) if job.agreement is not None else {}
            if feed is not None:
                feed.load(ids)
            planned: list[tuple[PlanArgs, Planned]] = []
            for record in page:
                if inherited and _inherited_changed(record, inherited, last.get(record.id)):
                    # A person changed a value contacts inherit (kept under
                    # "respect", or the record is locked): they take it too.
                    pickle.dump(("changed", record.id), spool, protocol=pickle.HIGHEST_PROTOCOL)
                # The engine reads the lock (fail safe: unreadable means locked).
                lock_state = engine.lock_reading(record.fields, crm)
                unreadable_locks += lock_state.unreadable
                parent = self._parent(record, parent_keys) if parent_keys else None
                if parent is None and parent_keys and record.parent is not None:
                    # It has an account, but one not computed yet (no account
                    # run reached it): its fallback values would be wrong and,
                    # written, trip the guard. Not planned; fetched again next run.
                    deferred += 1
                    pickle.dump(("deferred", record.id), spool, protocol=pickle.HIGHEST_PROTOCOL)
                    continue
                if record.id in was_deferred:
                    pickle.dump(("undeferred", record.id), spool, protocol=pickle.HIGHEST_PROTOCOL)
                agreed_input = decided.get(record.id)
                if feed is not None:  # an account with rollups (its deals are this CRM's)
                    source = agreed_input or record
                    source_crm = agreed_input.crm if agreed_input is not None else crm
                    assignment = feed.assign(record.id, source.fields, source_crm, now, parent)
                    if agreed_input is not None:
                        assignment = noted(assignment, agreed_input.note)
                elif agreed_input is None:
                    assignment = engine.assign(record.fields, crm, now, parent)
                else:
                    assignment = engine.assign(agreed_input.fields, agreed_input.crm, now, parent)
                    assignment = noted(assignment, agreed_input.note)
                item: PlanArgs = (
                    record.id,
                    assignment,
                    record.fields,
                    last.get(record.id),
                    lock_state.locked,
                    pending.get(record.id),
                )
                due = assignment.due_at
                changed_due = None if stored_due.get(record.id) == due else (due,)
                planned.append(
                    (
                        item,
                        (
                            assignment.reason,
                            changed_due,
                            record.stamp,
                            record.fields,
                            record.read_at,
                        ),
                    )
                )
            if audit is not None:
                decide(audit.hold([(planner.plan_input(*item), p) for item, p in planned]))
            else:
                decide(planned)
            read += len(page)
            self._progress("plan", read)
            if after_page is not None:
                after_page(builder.summary(), read, pulled_records)
        if audit is not None:
            decide(audit.release())
        if unreadable_locks:
            log.warning(
                "%d records have an unreadable lock value in %s; they are kept locked",
                unreadable_locks,
                lock,
            )
        if deferred:
            log.warning(
                "%d %ss deferred: their account has no segment and tier yet; "
                "planned again at the next run (after an account run)",
                deferred,
                obj,
            )
        if result is not None:
            result.deferred = deferred
        # A pull longer than the look-back: the next one starts below its start.
        began = pull_began(the_pull[0]) if the_pull else None
        return builder, tracker.watermark(began) or previous

    # -- propagation: contacts of accounts whose inherited values changed ----
    def _changed_parents(self, job: Job) -> list[tuple[str, int]]:
        """The parent marks a child job consumes: (account id, marking run), else none."""
        if not job.engine.inherits or job.parent_engine is None:
            return []
        return self._store.changed_parents(job.connection, job.parent_engine.object)

    def _clear_changed_parents(self, job: Job, marks: Sequence[tuple[str, int]]) -> None:
        """Forget the marks this run consumed: their children's outcomes are recorded."""
        if marks and job.parent_engine is not None:
            self._store.clear_changed_parents(job.connection, job.parent_engine.object, marks)

    @staticmethod
    def _children(
        job: Job,
        parents: Sequence[str],
        fields: Sequence[str],
        parent_keys: Mapping[str, str],
        seen: set[str],
        known: StoreParents | None = None,
    ) -> Iterator[list[CrmRecord]]:
        """Pages of the children of ``parents`` not planned yet; their ids join ``seen``.

        A child on several pages (a HubSpot contact of two marked companies),
        one pulled in this run and one fetched for another reason are planned
        once; the adapter skips reading those in ``seen`` where it can.
        """
        wanted = [p for p in parents if well_formed_id(job.adapter.crm, p)]
        if not wanted:
            return
        pages = job.adapter.children(
            wanted, fields, list(parent_keys.values()), exclude=seen, known=known
        )
        for page in pages:
            fresh = []
            for record in page:
                if record.id not in seen:
                    seen.add(record.id)
                    fresh.append(record)
            if fresh:
                yield fresh

    def _check_owned(self, job: Job, steps: StoreSteps, *, record: bool) -> None:
        """Refuse the run, before any read or write, if an output field is not segsync's.

        The store's record of provisioned fields and the adopted ones answer
        without a call; only fields missing from both are looked up in the CRM
        (once, e.g. after provisioning through another store), and recorded
        when they carry segsync's mark.
        """
        crm, obj = job.adapter.crm, cast(ObjectName, job.engine.object)
        outputs = list(job.engine.output_fields(crm).values())
        recorded = steps("read the owned fields", self._store.owned_fields, job.connection, obj)
        unknown = unrecorded(crm, outputs, recorded, job.adopted)
        if not unknown:
            return
        verdict = judge(crm, obj, job.adapter.describe(obj, unknown))
        if verdict.marked and record:
            steps(
                "record the owned fields",
                self._store.record_owned,
                job.connection,
                obj,
                verdict.marked,
            )
        if verdict.refused:
            raise OwnershipError(refusal_message(job.connection, crm, obj, verdict.refused))

    def _retry_ids(
        self, conn: str, crm: str, obj: ObjectName, left_behind: set[str], *, drop: bool
    ) -> list[str]:
        """Ids to fetch again (open errors, pending hysteresis, intents), malformed ones dropped.

        ``left_behind``: the records with a write intent a dead run left (the
        run read them once, for this and for adopting their landed writes).

        A malformed id (a store edited by hand, a row from another CRM) would
        fail the whole fetch, and so the job, on every run: it is dropped with
        a warning, and (unless ``drop`` is false: a dry run changes nothing)
        its open error closed so the warning is not repeated.
        """
        store = self._store
        errors = {e.record_id for e in store.open_errors(conn, obj)}
        # Records a crashed run may have written: read again, their writes adopted.
        wanted = errors | set(store.pending_ids(conn, obj)) | left_behind
        bad = sorted(i for i in wanted if not well_formed_id(crm, i))
        if bad:
            log.warning(
                "dropped %d malformed %s record id(s) from the store's retry list: %s",
                len(bad),
                crm,
                ", ".join(repr(i[:40]) for i in bad[:5]) + (" …" if len(bad) > 5 else ""),
                extra={"crm": crm, "object": obj, "connection": conn},
            )
            if drop:
                store.drop_errors(conn, obj, [i for i in bad if i in errors])
        return sorted(wanted.difference(bad))

    def _adopt_landed(
        self,
        job: Job,
        page: Sequence[CrmRecord],
        ids: Sequence[str],
        last: Mapping[str, Mapping[str, Any]],
        volatile: Iterable[str],
        run_id: int | None,
        lease: Fence | None,
    ) -> dict[str, Mapping[str, Any]]:
        """``last`` with the landed writes dead runs left among ``ids`` taken as written.

        ``ids``: the page's records with a write intent left behind (a run
        died between sending a write and recording it). Where the CRM holds
        exactly what that write sent (:func:`~connector.sync.planner.landed_baseline`),
        the write was segsync's, whatever the plan wants now: its values are
        the last written the record is planned against, so none of them is
        read as a person's edit, and (unless ``run_id`` is ``None``: a dry run
        records nothing) the store adopts it before anything can replace the
        intent (:meth:`~connector.store.store.Store.adopt_landed`: the last
        written, the ledger rows under the dead run, once however many runs
        try). Where the CRM holds anything else, the record is planned as it
        is, and the intent is cleared at the run's end.
        """
        store, conn, obj = self._store, job.connection, cast(ObjectName, job.engine.object)
        intents = self._stored("read the intents left behind", lease, store.intents, conn, obj, ids)
        if not intents:
            return dict(last)
        volatile = frozenset(volatile)
        landed: list[LandedWrite] = []
        for record in page:
            intent = intents.get(record.id)
            if intent is None:
                continue
            values = landed_baseline(
                intent.written or {},
                intent.changes,
                record.fields,
                last.get(record.id),
                volatile,
            )
            if values is not None:
                landed.append(LandedWrite(intent, values))
        out = dict(last)
        for write in landed:
            out[write.intent.record_id] = write.values
        if landed and run_id is not None:
            # Contacts inherit these: re-planned, as after the dead run's own batch.
            inherited = set(_inherited_fields(job.engine, job.adapter.crm))
            changed = [
                w.intent.record_id
                for w in landed
                if any(f in inherited for f, _old, _new in w.intent.changes)
            ]
            adopted = self._written(
                "adopt the landed writes of dead runs",
                lease,
                store.adopt_landed,
                run_id,
                conn,
                obj,
                landed,
                changed,
            )
            if adopted:  # none: another run adopted them first (once, whoever)
                log.info(
                    "%d write(s) a dead run landed and never recorded, adopted as segsync's",
                    len(adopted),
                    extra={"crm": job.adapter.crm, "object": obj, "connection": conn},
                )
        return out

    def _due_ids(self, conn: str, crm: str, obj: ObjectName, now: datetime) -> list[str]:
        """Ids of records whose stored ``due_at`` has passed: time alone changed them."""
        return [i for i in self._store.due_ids(conn, obj, now) if well_formed_id(crm, i)]

    @staticmethod
    def _parent(record: CrmRecord, keys: Mapping[str, str]) -> Assignment | None:
        if not keys or record.parent is None:
            return None
        segment = record.parent.get(keys.get("segment", ""))
        tier = record.parent.get(keys.get("tier", ""))
        if is_blank(segment) or is_blank(tier):
            return None
        return Assignment(str(segment), str(tier), {}, None, "")

    @staticmethod
    def _spool(
        spool: IO[bytes],
        decision: Decision,
        reason: str,
        due: tuple[datetime | None] | None,
        seen: Seen | None = None,
    ) -> None:
        """Keep what phase 2 needs, as plain picklable data: writes and state-only updates.

        ``due`` is ``None`` when the record's ``due_at`` is unchanged, else a
        one-tuple of the new value (which may be ``None``: never due).
        """
        w = decision.write
        if w is not None:
            entry: tuple[Any, ...] = (
                "write",
                w.record_id,
                dict(w.fields),
                [(c.field, c.old, c.new) for c in w.transitions],
                dict(w.baseline),
                reason,
                _plain_pending(decision.pending),
                due,
                seen,
            )
        elif decision.adopt is not None or decision.pending_changed:
            adopt = dict(decision.adopt) if decision.adopt is not None else None
            pending = _plain_pending(decision.pending)
            entry = ("state", decision.record_id, adopt, pending, decision.pending_changed, due)
        elif due is not None:
            _spool_due(spool, decision.record_id, due)
            return
        else:
            return
        pickle.dump(entry, spool, protocol=pickle.HIGHEST_PROTOCOL)

    # -- phase 2: execute ------------------------------------------------
    def _execute(
        self,
        job: Job,
        result: RunResult,
        spool: IO[bytes],
        lease: Fence | None = None,
        recent: Recent | None = None,
    ) -> None:
        engine, adapter, store = job.engine, job.adapter, self._store
        obj, conn = cast(ObjectName, engine.object), job.connection
        run_id = result.run_id
        if run_id is None:
            raise RuntimeError("execute needs a recorded run")
        done = 0
        inherited = set(_inherited_fields(engine, adapter.crm))
        # Intents a crashed run left behind: every one of their records was re-planned
        # (and those whose write landed adopted while planning: Runner._adopt_landed).
        steps = StoreSteps(self._retry, lease)
        leftover = steps("read the intents left behind", store.intent_ids, conn, obj)
        journal = StoreJournal(store, conn, obj, run_id, steps)
        size = self._chunk or adapter.write_chunk(result.summary.counts.changed)
        recheck = (
            Recheck(
                adapter,
                store,
                conn,
                obj,
                _open_fields(engine, adapter.crm),
                self._sample,
                keep=[lock] if (lock := engine.lock_field(adapter.crm)) else [],
                lag=timedelta(seconds=self._settings.lookback_seconds),
                steps=steps,
            )
            if self._settings.recheck_before_write
            else None
        )
        for chunk in self._chunks(spool, size):
            if recheck is not None:
                kept = _without_stale(chunk, recheck, result)
                if recent is not None:
                    # Changed since the plan: no longer known at the stamp it was read at,
                    # so the next run's window counts it unknown and reads it.
                    for record_id in {e[1] for e in chunk}.difference(e[1] for e in kept):
                        recent.forget(record_id)
                chunk = kept
            writes = [entry for entry in chunk if entry[0] == "write"]
            updates = [RecordUpdate(entry[1], entry[2]) for entry in writes]
            if lease is not None and updates:
                lease.fence()  # still this process's job? (LeaseLost ends the run)
            # Recorded before the write: a crash now leaves them for the next run to adopt.
            intents = [_intent(e, run_id, engine.version) for e in writes]
            self._stored("record write intents", lease, store.record_intents, conn, obj, intents)
            outcomes = {o.id: o for o in adapter.write(obj, updates, journal)} if updates else {}
            if lease is not None and updates:
                lease.progress(f"wrote a chunk of {len(updates):,} records ({done:,} before it)")
            written: list[WrittenRecord] = []
            failed: list[FailedRecord] = []
            transitions: list[Transition] = []
            pending: dict[str, Pending | None] = {}
            due: dict[str, datetime | None] = {}
            changed: list[str] = []
            deferred: list[FailedRecord] = []
            undeferred: list[str] = []
            for entry in chunk:
                if entry[0] == "changed":
                    changed.append(entry[1])
                    continue
                if entry[0] == "deferred":
                    deferred.append(FailedRecord(entry[1], DEFERRED, DEFERRED_MESSAGE))
                    continue
                if entry[0] == "undeferred":
                    undeferred.append(entry[1])
                    continue
                if entry[0] == "due":
                    due[entry[1]] = entry[2][0]
                    continue
                if entry[0] == "state":
                    _, record_id, adopt, state, state_changed, new_due = entry
                    if adopt is not None:
                        written.append(WrittenRecord(record_id, adopt))
                    if state_changed:
                        pending[record_id] = _pending(state)
                    if new_due is not None:
                        due[record_id] = new_due[0]
                    continue
                _, record_id, _fields, changes, baseline, reason, state, new_due, _seen = entry
                outcome = outcomes.get(record_id)
                if outcome is not None and outcome.ok:
                    written.append(WrittenRecord(record_id, baseline, outcome.stamp))
                    if recent is not None:
                        recent.wrote(record_id, outcome.stamp)
                    transitions.extend(
                        _transition(record_id, FieldChange(*change), reason, engine.version)
                        for change in changes
                    )
                    pending[record_id] = _pending(state)
                    if any(change[0] in inherited for change in changes):
                        # Contacts inherit this: re-plan them (marked with the outcome).
                        changed.append(record_id)
                    if new_due is not None:
                        # A failed write keeps the old due date: still due, and retried.
                        due[record_id] = new_due[0]
                else:
                    code = outcome.code if outcome is not None else "NO_RESULT"
                    message = outcome.message if outcome is not None else "no outcome returned"
                    failed.append(FailedRecord(record_id, code, message))
            if inherited and stores_parents(adapter.crm):
                # Before the batch: a crash between the two leaves a true note.
                sent = {e[1]: e[2] for e in writes if e[1] in outcomes and outcomes[e[1]].ok}
                self._written(
                    "note the written parents",
                    lease,
                    note_written,
                    store,
                    conn,
                    obj,
                    sent,
                    list(inherited),
                )
            if undeferred:
                # Before the batch: a write of theirs that fails reopens an error.
                self._written(
                    "close deferred errors", lease, store.drop_errors, conn, obj, undeferred
                )
            self._record(
                lease,
                [e[1] for e in writes],
                run_id=run_id,
                connection=conn,
                object=obj,
                written=written,
                failed=[*failed, *deferred],
                transitions=transitions,
                pending=pending or None,
                due=due or None,
                changed=changed,
                settled=[e[1] for e in chunk if e[0] in ("write", "state")],
                ledger_by_intent=True,
            )
            result.written += len(writes) - len(failed)
            result.failed += len(failed)
            if len(result.sample_failures) < self._sample:
                result.sample_failures.extend(failed[: self._sample - len(result.sample_failures)])
            done += len(writes)
            if lease is not None:
                lease.progress(f"recorded a batch ({done:,} writes recorded)")
            self._progress("write", done)
        if leftover:
            self._written(
                "clear old intents",
                lease,
                store.clear_intents,
                conn,
                obj,
                leftover,
                before_run=run_id,
            )

    def _record(self, lease: Fence | None, noted: Sequence[str], **batch: Any) -> None:
        """Record a chunk's outcome (:meth:`Store.record_batch`), again while it fails for now.

        Every ledger entry of a batch belongs to a record with a write intent
        (``noted``: the chunk's writes), which the batch settles in the same
        transaction, and a ledger row is recorded only while its intent is
        there (``ledger_by_intent``); a try
        whose commit landed unheard is detected by its settled intents
        (:meth:`~connector.sync.steps.StoreSteps.record_batch`).
        """
        StoreSteps(self._retry, lease).record_batch(self._store, noted, **batch)

    @staticmethod
    def _chunks(spool: IO[bytes], size: int) -> Iterator[list[tuple[Any, ...]]]:
        chunk: list[tuple[Any, ...]] = []
        while True:
            try:
                entry = pickle.load(spool)
            except EOFError:
                break
            chunk.append(entry)
            if len(chunk) >= size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


def prefetch(pages: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Iterate ``pages`` with up to ``depth`` items fetched ahead on a worker thread.

    Paged CRM reads follow a cursor, one request after the other; fetching the
    next page while this one is evaluated and planned overlaps the network
    wait with the work. An exception in the worker is raised here, in order.
    """
    return merged([pages], depth, name="segsync-prefetch")


def _stored_state(
    store: Store, conn: str, obj: str, ids: Sequence[str]
) -> tuple[dict[str, Mapping[str, Any]], dict[str, Pending], dict[str, datetime]]:
    """What the store keeps of a page's records: last written values, hysteresis, due dates."""
    return (
        store.last_written(conn, obj, ids),
        store.pending(conn, obj, ids),
        store.due(conn, obj, ids),
    )


def _inherited_fields(engine: Engine, crm: str) -> list[str]:
    """The output fields of an account that contacts can inherit (none for contacts)."""
    if engine.object != "account":
        return []
    outputs = engine.output_fields(crm)
    return [outputs[key] for key in INHERITABLE_KEYS if key in outputs]


def _inherited_changed(
    record: CrmRecord, fields: Sequence[str], last: Mapping[str, Any] | None
) -> bool:
    """Whether the CRM holds an inheritable value other than the one segsync last wrote."""
    if last is None:
        return False
    return any(f in last and not same_value(record.fields.get(f), last[f]) for f in fields)


def _intent(entry: tuple[Any, ...], run_id: int, version: str) -> WriteIntent:
    """The write intent of a spooled write: its ledger entries, before it is sent."""
    _, record_id, fields, changes, _baseline, reason, *_ = entry
    ledger = [_transition(record_id, FieldChange(*c), reason, version) for c in changes]
    return WriteIntent(
        record_id,
        run_id,
        tuple((t.field, t.from_value, t.to_value) for t in ledger),
        reason,
        version,
        fields,
    )


def _recheck_fields(engine: Engine, crm: str) -> list[str]:
    """The fields re-read before a write: every output field and the lock field."""
    lock = engine.lock_field(crm)
    return list(dict.fromkeys([*engine.output_fields(crm).values(), *([lock] if lock else [])]))


def _open_fields(engine: Engine, crm: str) -> list[str]:
    """The fields re-read before a write: the outputs and the lock, then the inputs.

    The inputs are compared only for records read before their stamp's second
    closed (see :func:`~connector.sync.window.read_open`); selecting them for
    every record costs no call (the re-read goes by ids).
    """
    return list(dict.fromkeys([*_recheck_fields(engine, crm), *engine.input_fields(crm)]))


def _without_stale(
    chunk: list[tuple[Any, ...]], recheck: Recheck, result: RunResult
) -> list[tuple[Any, ...]]:
    """``chunk`` without the writes of records changed since the plan (re-read now).

    Their other entries go too (state, due date): the next run plans them afresh.
    """
    seen = {entry[1]: entry[8] for entry in chunk if entry[0] == "write" and entry[8] is not None}
    before = recheck.held
    stale = recheck.stale(seen)
    result.changed_since_plan = recheck.held
    result.recheck_calls = recheck.calls
    result.sample_changed = list(recheck.sample)
    if recheck.held > before:
        log.info(
            "%d planned writes held back: changed in the CRM since the plan",
            recheck.held - before,
        )
    return [entry for entry in chunk if entry[0] == "changed" or entry[1] not in stale]


def _spool_due(spool: IO[bytes], record_id: str, due: tuple[datetime | None]) -> None:
    """Spool a record's new due date (``(None,)``: never due), its only change."""
    pickle.dump(("due", record_id, due), spool, protocol=pickle.HIGHEST_PROTOCOL)


def _spool_gone(spool: IO[bytes], ids: Iterable[str]) -> None:
    """Clear the due date of records that came due but no longer exist (deleted)."""
    for record_id in ids:
        _spool_due(spool, record_id, (None,))


def _transition(record_id: str, change: FieldChange, reason: str, version: str) -> Transition:
    """The ledger entry of a written change, its values in the ledger's text spelling."""
    return Transition(
        record_id, change.field, as_text(change.old), as_text(change.new), reason, version
    )


def _plain_pending(state: Pending | None) -> dict[str, tuple[Any, int, datetime]] | None:
    if state is None:
        return None
    return {k: (c.value, c.count, c.first_seen) for k, c in state.candidates.items()}


def _pending(plain: dict[str, tuple[Any, int, datetime]] | None) -> Pending | None:
    if plain is None:
        return None
    return Pending({k: Candidate(*v) for k, v in plain.items()})


def run_many(runner: Runner, jobs: Iterable[Job], **options: Any) -> list[RunResult]:
    """Run jobs in order (accounts before contacts, so contacts inherit fresh values)."""
    ordered = sorted(jobs, key=lambda j: (j.connection, j.engine.object != "account"))
    return [runner.run(job, **options) for job in ordered]
