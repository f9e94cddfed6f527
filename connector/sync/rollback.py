"""Rollback of a run: put back what the ledger says each record held before it.

``segsync rollback RUN_ID`` undoes one run. For every record the run changed
(its ledger entries: segment, tier, persona, old → new), it reads the record
from the CRM by id and restores the old value, unless the record moved since:

- a later run changed that field (the ledger says so), or
- the CRM no longer holds what the run wrote (a person, or another tool,
  edited it);

such a record is a *conflict*: listed and left alone, unless ``--force``.
A record deleted since is listed as gone.

A rollback is a run of its own: it goes through the mass-change guard,
writes only fields segsync owns (the ownership check of every run), and
records a run row, ledger entries (reason ``rollback of run N``), errors and
counts, so ``segsync history`` shows it and a rollback of the rollback
returns to the run's values. A blank old value is written as a real clear
(Salesforce ``null``, ``#N/A`` in a Bulk upload; HubSpot ``""``).

Only the runner-like execution here does I/O (through the adapter and the
store); :func:`plan_rollback`'s decision per record is plain data.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from connector.config import SyncSettings
from connector.crm.base import CrmAdapter, ObjectName, RecordUpdate
from connector.crm.retry import RetryPolicy
from connector.engine import Engine
from connector.errors import Interrupted, Problem, SegsyncError, UserError
from connector.store.leases import Fence, watching
from connector.store.records import (
    FailedRecord,
    RunCounts,
    RunRow,
    Transition,
    WriteIntent,
    WrittenRecord,
)
from connector.store.store import Store
from connector.sync.guard import MassChangeError, check_guard
from connector.sync.ownership import OwnershipError, judge, refusal_message, unrecorded
from connector.sync.planner import Decision, FieldChange, PlanBuilder, PlanSummary, Write
from connector.sync.steps import StoreSteps
from connector.sync.values import as_text, is_blank, same_value

log = logging.getLogger("segsync.sync")

#: The output keys a contact inherits from its account (their change marks the account).
_INHERITABLE = ("segment", "tier")


@dataclass(frozen=True, slots=True)
class Restore:
    """One field of one record: what the run wrote, what it replaced, what the CRM holds now.

    Attributes:
        record_id: the record.
        field: the output field.
        run_value: what the run wrote (the ledger's new value, as text).
        restore: what it replaced (the ledger's old value; ``None``: blank).
        current: what the CRM holds now (``None`` also when the record is gone).
        conflict: why the field moved since the run (``""``: it did not).

    """

    record_id: str
    field: str
    run_value: str | None
    restore: str | None
    current: Any
    conflict: str = ""


@dataclass
class RollbackPlan:
    """What a rollback would do: writes per record, conflicts, records gone."""

    run: RunRow
    writes: dict[str, list[Restore]] = field(default_factory=dict)
    conflicts: dict[str, list[Restore]] = field(default_factory=dict)
    already: int = 0
    """Records that hold the old values already: nothing to write."""
    gone: list[str] = field(default_factory=list)
    forced: bool = False
    summary: PlanSummary = field(default_factory=PlanSummary)

    @property
    def records(self) -> int:
        """Records the run changed (the ledger's)."""
        return len(self.writes) + len(self.conflicts) + self.already + len(self.gone)


@dataclass
class RollbackResult:
    """A rollback's plan and, unless a dry run, its outcome."""

    plan: RollbackPlan
    dry_run: bool
    run_id: int | None = None
    status: str = "planned"
    written: int = 0
    failed: int = 0
    api_calls: int = 0
    seconds: float = 0.0
    failures: list[FailedRecord] = field(default_factory=list)
    message: str = ""


def reason_of(run_id: int) -> str:
    """The ledger reason (and run message) of a rollback of ``run_id``."""
    return f"rollback of run {run_id}"


def run_to_undo(store: Store, run_id: int, retry: RetryPolicy) -> RunRow | None:
    """The run ``run_id`` (None: no such run), read before its job is claimed.

    ``segsync rollback`` reads the run first to know which connection and
    object (so which job) to claim; no lease is held yet, so nothing is
    fenced, but the read is a store step like every other of a rollback:
    tried again under ``retry`` while the store fails for now (a statement or
    lock timeout, a lost connection: ``connector/sync/steps.py``).
    """
    return StoreSteps(retry)("read the run to roll back", store.run, run_id)


def plan_rollback(
    run: RunRow,
    entries: Sequence[tuple[str, str, str | None, str | None]],
    current: Mapping[str, Mapping[str, Any]],
    later: Mapping[tuple[str, str], int],
    *,
    force: bool,
) -> RollbackPlan:
    """Decide each record a run changed (pure).

    Args:
        run: the run to undo.
        entries: its ledger, oldest first: (record, field, old, new) as text.
        current: record id → field → what the CRM holds now (gone records absent).
        later: (record, field) → a later run that moved it.
        force: restore conflicts too.

    Returns:
        The plan: a record with any conflicting field is a conflict as a
        whole (left alone unless ``force``).

    """
    first: dict[tuple[str, str], tuple[str | None, str | None]] = {}
    for record_id, name, old, new in entries:
        key = (record_id, name)
        first[key] = (first[key][0], new) if key in first else (old, new)
    by_record: dict[str, list[tuple[str, str | None, str | None]]] = {}
    for (record_id, name), (old, new) in first.items():
        by_record.setdefault(record_id, []).append((name, old, new))
    plan = RollbackPlan(run, forced=force)
    builder = PlanBuilder(keep=0)
    for record_id, fields in by_record.items():
        now = current.get(record_id)
        if now is None:
            plan.gone.append(record_id)
            continue
        restores: list[Restore] = []
        for name, old, new in fields:
            have = now.get(name)
            conflict = ""
            if same_value(have, old):
                pass  # back where it was already: nothing to restore, nothing in the way
            elif (record_id, name) in later:
                conflict = f"changed by run {later[(record_id, name)]}"
            elif not same_value(have, new):
                conflict = f"changed in the CRM since (now {as_text(have) or 'blank'})"
            restores.append(Restore(record_id, name, new, old, have, conflict))
        if any(r.conflict for r in restores):
            plan.conflicts[record_id] = restores
            if not force:
                continue
        todo = [r for r in restores if not same_value(r.current, r.restore)]
        if not todo:
            plan.already += 1
            builder.add(Decision(record_id, "unchanged"))
            continue
        plan.writes[record_id] = todo
        changes = tuple(FieldChange(r.field, r.current, r.restore) for r in todo)
        builder.add(
            Decision(
                record_id,
                "changed",
                Write(record_id, {r.field: r.restore for r in todo}, changes, changes, {}),
                rewrite=any(not is_blank(r.current) for r in todo),
            )
        )
    plan.summary = builder.summary()
    return plan


class Rollback:
    """Plans and runs the rollback of one run with one connection's adapter."""

    def __init__(
        self,
        store: Store,
        settings: SyncSettings,
        adapter: CrmAdapter,
        engine: Engine,
        *,
        adopted: frozenset[str] = frozenset(),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        retry: RetryPolicy | None = None,
    ) -> None:
        self._store = store
        self._settings = settings
        # Store steps that fail for now are tried again, as in a sync run.
        self._retry = retry or RetryPolicy.from_settings(settings)
        self._adapter = adapter
        self._engine = engine
        self._adopted = adopted
        self._clock = clock

    def run(
        self,
        run_id: int,
        *,
        dry_run: bool = False,
        force: bool = False,
        lease: Fence | None = None,
    ) -> RollbackResult:
        """Plan the rollback of ``run_id`` and, unless ``dry_run``, carry it out.

        ``lease``: the job's claim (connector/store/leases.py), as a sync holds
        it: checked before each write chunk, so a rollback that lost its job
        writes nothing more.

        Raises:
            UserError: no such run, or it belongs to another connection or object.
            MassChangeError: the guard stopped it (no ``force``).
            OwnershipError: a field to restore is not segsync's.

        """
        # Every CRM answer is progress too (connector/store/leases.py, "Stalls").
        with watching(lease, lambda: self._adapter.api_calls):
            return self._run(run_id, dry_run=dry_run, force=force, lease=lease)

    def _run(
        self, run_id: int, *, dry_run: bool, force: bool, lease: Fence | None
    ) -> RollbackResult:
        """:meth:`run`, the CRM's answers watched."""
        started = time.monotonic()
        store, adapter = self._store, self._adapter
        steps = StoreSteps(self._retry, lease)
        run = steps("read the run", store.run, run_id)
        if run is None:
            raise UserError([Problem("RUN_ID", "", f"no run {run_id} in the state store")])
        if run.connection != adapter.connection or run.object != self._engine.object:
            raise UserError([Problem("RUN_ID", "", f"run {run_id} is not of {adapter.connection}")])
        obj = cast(ObjectName, run.object)
        rows = steps("read the run's ledger", store.run_transitions, run_id)
        entries = [(t.record_id, t.field, t.from_value, t.to_value) for t in rows]
        ids = list(dict.fromkeys(t.record_id for t in rows))
        fields = list(dict.fromkeys(t.field for t in rows))
        calls_before = adapter.api_calls
        if fields:
            self._check_owned(obj, fields, steps, record=not dry_run)
        current = {i: c.fields for i, c in adapter.current(obj, ids, fields).items()} if ids else {}
        if lease is not None:
            lease.progress(f"read the {len(current):,} records of run {run_id} again")
        later = (
            steps(
                "read the later ledger",
                store.later_transitions,
                run.connection,
                run.object,
                run_id,
                ids,
            )
            if ids
            else {}
        )
        plan = plan_rollback(run, entries, current, later, force=force)
        result = RollbackResult(plan, dry_run)

        def guard() -> None:
            check_guard(
                plan.summary,
                steps("count the records", store.record_count, run.connection, run.object),
                self._settings.max_change_share,
                self._settings.min_records_for_guard,
                force,
                full=False,
                label=f"{run.crm} {run.object} records",
            )

        if dry_run:
            guard()
            result.api_calls = adapter.api_calls - calls_before
            result.seconds = time.monotonic() - started
            return result
        # Not fenced; a try whose commit landed unheard left a "running" row
        # that the next try (claimed) marks interrupted.
        result.run_id = steps.fenced(None)(
            "record the run's start",
            store.start_run,
            run.connection,
            run.crm,
            run.object,
            run.mapping_version,
            full=False,
            claimed=lease is not None,
        )
        result.message = reason_of(run_id)
        try:
            guard()
            self._execute(run, plan, result, steps)
            result.status = "succeeded" if result.failed == 0 else "partial"
        except SegsyncError as exc:
            aborted = isinstance(exc, MassChangeError | Interrupted)
            result.status = "aborted" if aborted else "failed"
            result.message = f"{reason_of(run_id)}: {exc}"
            raise
        except BaseException as exc:
            result.status = "failed"
            result.message = f"{reason_of(run_id)}: {type(exc).__name__}: {exc}"
            raise
        finally:
            result.api_calls = adapter.api_calls - calls_before
            result.seconds = time.monotonic() - started
            counts = RunCounts(
                read=plan.records,
                changed=len(plan.writes),
                written=result.written,
                failed=result.failed,
                skipped=plan.already + len(plan.gone),
                overrides=len(plan.conflicts),
            )
            steps.fenced(None)(
                "record the run's end",
                store.finish_run,
                result.run_id,
                result.status,
                counts,
                result.api_calls,
                adapter.minimum_calls(len(ids), len(plan.writes)),
                result.message,
            )
            log.info(
                "%s %s: %d restored, %d failed, %d conflicts, %d gone",
                reason_of(run_id),
                result.status,
                result.written,
                result.failed,
                len(plan.conflicts),
                len(plan.gone),
                extra={"crm": run.crm, "object": run.object, "connection": run.connection},
            )
        return result

    def _check_owned(
        self, obj: ObjectName, fields: Sequence[str], steps: StoreSteps, *, record: bool
    ) -> None:
        """Refuse, before any write, a field that is not segsync's (as every run does)."""
        crm = self._adapter.crm
        outputs = set(self._engine.output_fields(crm).values())
        recorded = steps(
            "read the owned fields", self._store.owned_fields, self._adapter.connection, obj
        )
        unknown = unrecorded(crm, fields, recorded, self._adopted)
        refused = [f for f in fields if f not in outputs]
        if unknown:
            verdict = judge(crm, obj, self._adapter.describe(obj, unknown))
            if verdict.marked and record:
                steps(
                    "record the owned fields",
                    self._store.record_owned,
                    self._adapter.connection,
                    obj,
                    verdict.marked,
                )
            refused += [f for f in verdict.refused if f not in refused]
        if refused:
            raise OwnershipError(
                refusal_message(self._adapter.connection, crm, obj, refused)
                + " (a rollback writes only the current mapping's output fields)"
            )

    def _execute(
        self, run: RunRow, plan: RollbackPlan, result: RollbackResult, steps: StoreSteps
    ) -> None:
        """Write the plan chunk by chunk; each chunk's outcome recorded once, however tried.

        Before a chunk is sent its restores are recorded as write intents (as a
        sync run's writes are), and its batch settles them and records a
        ledger row only while its record's intent is there: a try of the batch
        after one whose commit landed unheard finds them settled and records
        nothing twice (:meth:`~connector.sync.steps.StoreSteps.record_batch`).
        """
        store, adapter, lease = self._store, self._adapter, steps.lease
        obj = cast(ObjectName, run.object)
        run_id = result.run_id
        if run_id is None:
            raise RuntimeError("a rollback needs a recorded run")
        outputs = self._engine.output_fields(adapter.crm)
        inherited = {outputs[k] for k in _INHERITABLE if k in outputs}
        marks_parents = self._engine.object == "account"
        reason = reason_of(run.id)
        items = list(plan.writes.items())
        size = adapter.write_chunk(len(items))
        for start in range(0, len(items), size):
            chunk = items[start : start + size]
            ids = [record_id for record_id, _ in chunk]
            last = steps(
                "read the last written values", store.last_written, run.connection, run.object, ids
            )
            ledger = {
                record_id: _ledger(record_id, restores, plan, reason, run.mapping_version)
                for record_id, restores in chunk
            }
            updates = [
                RecordUpdate(record_id, {r.field: r.restore for r in restores})
                for record_id, restores in chunk
            ]
            if lease is not None:
                lease.progress(f"rolling back: {start:,} of {len(items):,} records written")
                lease.fence()  # still this process's job? (LeaseLost ends the rollback)
            intents = [
                WriteIntent(
                    record_id,
                    run_id,
                    tuple((t.field, t.from_value, t.to_value) for t in rows),
                    rows[0].reason,
                    run.mapping_version,
                )
                for record_id, rows in ledger.items()
            ]
            steps("record write intents", store.record_intents, run.connection, run.object, intents)
            outcomes = {o.id: o for o in adapter.write(obj, updates)}
            written: list[WrittenRecord] = []
            failed: list[FailedRecord] = []
            transitions: list[Transition] = []
            changed: list[str] = []
            for record_id, restores in chunk:
                outcome = outcomes.get(record_id)
                if outcome is None or not outcome.ok:
                    code = outcome.code if outcome is not None else "NO_RESULT"
                    message = outcome.message if outcome is not None else "no outcome returned"
                    failed.append(FailedRecord(record_id, code, message))
                    continue
                baseline = dict(last.get(record_id) or {})
                baseline.update({r.field: r.restore for r in restores})
                written.append(WrittenRecord(record_id, baseline, outcome.stamp))
                transitions.extend(ledger[record_id])
                if marks_parents and any(r.field in inherited for r in restores):
                    changed.append(record_id)
            steps.record_batch(
                store,
                ids,
                run_id=run_id,
                connection=run.connection,
                object=run.object,
                written=written,
                failed=failed,
                transitions=transitions,
                changed=changed,
                settled=ids,
                ledger_by_intent=True,
            )
            result.written += len(written)
            result.failed += len(failed)
            result.failures.extend(failed[: max(0, 10 - len(result.failures))])


def _ledger(
    record_id: str, restores: Sequence[Restore], plan: RollbackPlan, reason: str, version: str
) -> list[Transition]:
    """The ledger entries of a record's restores (a forced conflict says why in the reason)."""
    conflict = next((r.conflict for r in plan.conflicts.get(record_id, ()) if r.conflict), "")
    why = f"{reason} (forced: {conflict})" if conflict else reason
    return [
        Transition(record_id, r.field, as_text(r.current), r.restore, why, version)
        for r in restores
    ]
