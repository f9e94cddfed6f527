"""The planner: what to write, given what we want, what the CRM holds and what we last wrote.

Pure: values in, values out; no I/O, no logging, and the clock is an argument.

The core is :func:`plan_record`, one record at a time, so a runner can plan an
org of millions page by page: it feeds each :class:`Decision` to a
:class:`PlanBuilder`, which keeps only counts, the transition matrix and (if
asked) a bounded sample. :func:`plan` does the whole thing for a small set and
returns an immutable :class:`Plan`.

Rules, per output field of a record (``desired`` names the only fields that
may ever be written):

1. A locked record is never written.
2. A field whose CRM value equals the desired one (see
   :func:`connector.sync.values.same_value`) is left alone.
3. A field whose CRM value differs from what the connector last wrote was
   edited by someone since: a *manual override*. Policy ``respect`` leaves it
   and reports it; ``overwrite`` writes and reports it. A field the connector
   has no memory of (a first sync, a new or lost state store) is an override
   only when the CRM's own audit trail says a person set its current value
   (:attr:`PlanInput.set_by_person`); otherwise the connector owns its output
   fields and simply writes.
4. With hysteresis on, a field in ``Hysteresis.fields`` that already holds a
   value moves to a new value only once the record has qualified for that
   same new value in ``runs`` consecutive plans and for ``dwell`` time; until
   then the old value is held (other fields still update) and the candidate is
   returned as the record's new :class:`Pending` state for the store to keep.
5. Volatile fields (an updated-at stamp) never cause a write on their own but
   are written along with any real change.
6. What the connector last wrote is tracked per field: a write carries the
   record's whole new baseline (:attr:`Write.baseline`), and a record with no
   write whose CRM already holds desired values the store does not know
   carries them as :attr:`Decision.adopt`, so a person's later edit of such a
   field is recognized as an override.
7. A write a dead run sent and never recorded (its write intent left behind)
   is segsync's, not a person's edit, when the CRM holds exactly what it sent
   in every non-volatile field it sent: :func:`landed_baseline` gives the
   last-written values the record is then planned against, whatever the plan
   wants now. Anything else the CRM holds is judged by rules 1 to 5.

``now`` must be timezone-aware (UTC), like every date-time the store returns.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from operator import itemgetter
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast

from connector.state import Candidate, Pending
from connector.sync.values import as_text, is_blank, same_value

if TYPE_CHECKING:
    from connector.config import SyncSettings

OverridePolicy = Literal["respect", "overwrite"]
Status = Literal["unchanged", "changed", "locked"]
OverrideAction = Literal["kept", "overwritten"]

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _frozen(values: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(values))


@dataclass(frozen=True, slots=True)
class PlanInput:
    """Everything the planner needs to know about one record.

    Attributes:
        record_id: the CRM id.
        desired: output field → the value the mapping computed; the only fields
            the planner may write.
        current: output field → what the CRM holds now (a missing key is blank).
        last_written: output field → what the connector last wrote, from the
            state store; ``None`` when it never wrote this record.
        locked: the record's lock field is set: never write it.
        pending: the record's hysteresis state from the state store.
        set_by_person: output fields whose current CRM value a person set, by
            the CRM's audit trail (property or field history); consulted only
            for fields ``last_written`` does not know.

    """

    record_id: str
    desired: Mapping[str, Any]
    current: Mapping[str, Any]
    last_written: Mapping[str, Any] | None = None
    locked: bool = False
    pending: Pending | None = None
    set_by_person: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Policy:
    """How to plan: the override policy and which fields are special.

    Attributes:
        overrides: ``respect`` (leave a manual edit, report it) or ``overwrite``.
        volatile: fields that never cause a write on their own (updated-at).
        tracked: fields whose changes are transitions (segment, tier, persona):
            listed on each write for the ledger, counted in the transition
            matrix.
        guarded: fields whose rewrite the mass-change guard counts. When empty,
            the tracked fields; when both are empty, every non-volatile field.

    """

    overrides: OverridePolicy = "respect"
    volatile: frozenset[str] = frozenset()
    tracked: frozenset[str] = frozenset()
    guarded: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.overrides not in ("respect", "overwrite"):
            raise ValueError(
                f"override policy must be respect or overwrite, not {self.overrides!r}"
            )

    @classmethod
    def from_settings(
        cls,
        settings: SyncSettings,
        *,
        volatile: Iterable[str] = (),
        tracked: Iterable[str] = (),
        guarded: Iterable[str] = (),
    ) -> Policy:
        """The policy configured in ``[sync]``, with the mapping's special fields."""
        return cls(
            settings.override_policy, frozenset(volatile), frozenset(tracked), frozenset(guarded)
        )


@dataclass(frozen=True, slots=True)
class Hysteresis:
    """How long a record must qualify for a new value before a field moves.

    Attributes:
        fields: the fields it applies to (tier, and segment if wanted).
        runs: consecutive plans a record must qualify in; 1 means no wait.
        dwell: time since it first qualified; zero means no wait.

    """

    fields: frozenset[str] = frozenset()
    runs: int = 1
    dwell: timedelta = timedelta(0)

    def __post_init__(self) -> None:
        if self.runs < 1:
            raise ValueError(f"hysteresis runs must be at least 1, not {self.runs}")
        if self.dwell < timedelta(0):
            raise ValueError(f"hysteresis dwell must not be negative, not {self.dwell}")

    @property
    def active(self) -> bool:
        """Whether any field can be held at all."""
        return bool(self.fields) and (self.runs > 1 or self.dwell > timedelta(0))

    @classmethod
    def from_settings(cls, settings: SyncSettings, fields: Iterable[str]) -> Hysteresis:
        """The hysteresis configured in ``[sync]``, applied to ``fields``."""
        return cls(
            frozenset(fields),
            settings.hysteresis_runs,
            timedelta(seconds=settings.hysteresis_dwell_seconds),
        )


NO_HYSTERESIS = Hysteresis()


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One field moving from the CRM's value to ours."""

    field: str
    old: Any
    new: Any


@dataclass(frozen=True, slots=True)
class Override:
    """A field someone edited in the CRM since the connector last wrote it.

    Attributes:
        record_id: the record.
        field: the output field.
        crm_value: what the CRM holds now.
        our_last: what the connector last wrote (``None`` when the state store
            does not know, and the CRM's audit trail named a person).
        desired: what the mapping computes now.
        action: ``kept`` (policy respect: not written) or ``overwritten``.
        from_audit_trail: found by the CRM's audit trail (the store knew
            nothing of the field), not by the store's last-written value.

    """

    record_id: str
    field: str
    crm_value: Any
    our_last: Any
    desired: Any
    action: OverrideAction
    from_audit_trail: bool = False


@dataclass(frozen=True, slots=True)
class Hold:
    """A field kept at its old value by hysteresis while the record qualifies for a new one."""

    record_id: str
    field: str
    current: Any
    candidate: Candidate


@dataclass(frozen=True, slots=True)
class Write:
    """One record's update.

    Attributes:
        record_id: the record.
        fields: the fields to send: the changed ones plus the volatile ones.
        changes: every non-volatile field that changes, old → new, for display.
        transitions: the changes of tracked fields, for the ledger.
        baseline: the record's last-written values once this write succeeds;
            the runner stores it as is (``WrittenRecord.values``).

    """

    record_id: str
    fields: Mapping[str, Any]
    changes: tuple[FieldChange, ...]
    transitions: tuple[FieldChange, ...]
    baseline: Mapping[str, Any]

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", _frozen(self.fields))
        object.__setattr__(self, "baseline", _frozen(self.baseline))


@dataclass(frozen=True, slots=True)
class Decision:
    """What the planner decided for one record.

    Attributes:
        record_id: the record.
        status: ``changed`` (there is a write), ``unchanged`` or ``locked``.
        write: the write, if any.
        overrides: manual overrides found (kept or overwritten).
        holds: fields held back by hysteresis.
        pending: the record's new hysteresis state (``None``: nothing pending).
        pending_changed: whether ``pending`` differs from the input's, i.e.
            whether the store must save it.
        rewrite: the write replaces a non-blank value of a guarded field (see
            :attr:`Policy.tracked`); what the mass-change guard counts.
        adopt: for a record with no write: its new last-written values when
            the CRM already holds some desired value the store does not know
            of (a first sync of values set elsewhere, or a crash after a write
            landed); store it (``WrittenRecord(record_id, adopt)``) so a later
            edit of that field is recognized as a person's override. ``None``
            when the store is up to date.

    """

    record_id: str
    status: Status
    write: Write | None = None
    overrides: tuple[Override, ...] = ()
    holds: tuple[Hold, ...] = ()
    pending: Pending | None = None
    pending_changed: bool = False
    rewrite: bool = False
    adopt: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.adopt is not None:
            object.__setattr__(self, "adopt", _frozen(self.adopt))


_NUMBERS = (int, float)
_ABSENT: Any = object()


def _same(have: Any, want: Any) -> bool:
    """:func:`same_value`, answering the spellings a CRM sends back first.

    Equal values of one type, blanks, and the numbers the CRMs send back
    (HubSpot returns ``80`` as ``"80"``, Salesforce as ``80.0``) are decided
    here without its cleaning and parsing; anything else goes to it.
    """
    if have is want:
        return True
    wc, hc = want.__class__, have.__class__
    if wc is hc:
        if have == want:
            return True
        if wc is str and have and want and "\r" not in have and "\r" not in want:
            # Two different texts, neither blank nor padded (so cleaning leaves
            # them as they are), at least one not starting like a number (so
            # they do not compare as numbers): same_value compares them as
            # text, and they differ. (\d in its number pattern is any decimal
            # digit, as isdecimal() is.)
            h, w = have[0], want[0]
            if not (
                h.isspace() or have[-1].isspace() or w.isspace() or want[-1].isspace()
            ) and not ((h in "+-." or h.isdecimal()) and (w in "+-." or w.isdecimal())):
                return False
    elif wc is int and hc is str:
        if have == str(want):
            return True
    elif wc in _NUMBERS and hc in _NUMBERS:
        if have == want:
            return True
    elif have is None:
        # Blank is only equal to blank: None, or text that is all whitespace.
        return wc is str and not want.strip()
    elif want is None:
        return hc is str and not have.strip()
    return same_value(have, want)


def _unchanged(
    record_id: str, pending: Pending | None, adopt: Mapping[str, Any] | None
) -> Decision:
    """``Decision(record_id, "unchanged", pending_changed=…, adopt=adopt)``, built directly.

    The frozen dataclass's ``__init__`` sets each field through
    ``object.__setattr__``; on the path almost every record of a steady-state
    run takes, setting the slots directly is twice as fast. The value is the
    same (a test compares them field by field).
    """
    d = _new(Decision)
    _set_record_id(d, record_id)
    _set_status(d, "unchanged")
    _set_write(d, None)
    _set_overrides(d, ())
    _set_holds(d, ())
    _set_pending(d, None)
    _set_pending_changed(d, pending is not None)
    _set_rewrite(d, False)
    _set_adopt(d, None if adopt is None else MappingProxyType(adopt))
    return d


_new = object.__new__
(
    _set_record_id,
    _set_status,
    _set_write,
    _set_overrides,
    _set_holds,
    _set_pending,
    _set_pending_changed,
    _set_rewrite,
    _set_adopt,
) = (Decision.__dict__[name].__set__ for name in Decision.__slots__)


def landed_baseline(
    sent: Mapping[str, Any],
    changes: Iterable[tuple[str, str | None, str | None]],
    current: Mapping[str, Any],
    last_written: Mapping[str, Any] | None,
    volatile: Iterable[str] = (),
) -> dict[str, Any] | None:
    """The last-written values of a record whose left-behind write landed, else ``None``.

    A dead run's write intent says what it sent (``sent``: field → value; its
    ledger ``changes``: (field, old, new) in the ledger's text spelling). The
    write landed, and nothing moved those fields since, when the record's
    ``current`` values are exactly what it sent (:func:`same_value`) and every
    change's new value (:func:`as_text`). Volatile fields (an updated-at
    stamp) are not compared: the planner never decides on them, and the CRM
    may spell a date-time it stores its own way. Then the write was segsync's:
    its values are what the dead run would have recorded had it lived (the
    stored ``last_written`` with every sent field), and the record is planned
    against them, so a value it wrote is never read as a person's override.
    Anything else (a person's edit after the write, a write that never
    landed) gives ``None``: the record is planned as it is.
    """
    changes = tuple(changes)
    if not sent and not changes:
        return None
    skip = frozenset(volatile)
    for name, value in sent.items():
        if name not in skip and not same_value(current.get(name), value):
            return None
    for name, _old, new in changes:
        if as_text(current.get(name)) != new:
            return None
    baseline: dict[str, Any] = dict(last_written) if last_written is not None else {}
    baseline.update(sent)
    for name, _old, _new in changes:
        if name not in sent:
            # An intent that kept no sent values (recorded before they were
            # kept): the CRM's value, which spells the change's new value.
            baseline[name] = current.get(name)
    return baseline


def plan_record(item: PlanInput, policy: Policy, hysteresis: Hysteresis, now: datetime) -> Decision:
    """Decide one record: the per-record core of the planner (see the module rules)."""
    if item.locked:
        # A pinned record keeps its hysteresis state untouched: when it is
        # unlocked it resumes where it was.
        return Decision(item.record_id, "locked", pending=item.pending)

    # The common case first: every field already holds what we want. Nothing
    # to write, override or hold; only the baseline may need adopting. Any
    # other record is decided in full by _plan_record.
    last = item.last_written
    have_of = item.current.get
    ours_of = last.get if last is not None else None
    volatile = policy.volatile
    stale = False
    for name, want in item.desired.items():
        if name in volatile:
            continue
        have = have_of(name)
        if (
            have is not want
            and (have.__class__ is not want.__class__ or have != want)
            and not _same(have, want)
        ):
            return _plan_record(item, policy, hysteresis, now)
        if not stale:
            if ours_of is None:
                stale = True
            else:
                ours = ours_of(name, _ABSENT)
                stale = (
                    ours is not want
                    and (ours.__class__ is not want.__class__ or ours != want)
                    and (ours is _ABSENT or not _same(ours, want))
                )
    if not stale:
        return _unchanged(item.record_id, item.pending, None)
    baseline: dict[str, Any] = dict(last) if last is not None else {}
    for name, want in item.desired.items():
        if name not in volatile:
            baseline[name] = want
    return _unchanged(item.record_id, item.pending, baseline)


def _plan_record(
    item: PlanInput, policy: Policy, hysteresis: Hysteresis, now: datetime
) -> Decision:
    """:func:`plan_record` in full, for any unlocked record."""
    last = item.last_written
    previous = item.pending.candidates if item.pending is not None else _EMPTY
    guarded = policy.guarded or policy.tracked or None
    fields: dict[str, Any] = {}
    baseline: dict[str, Any] = dict(last) if last is not None else {}
    changes: list[FieldChange] = []
    overrides: list[Override] = []
    holds: list[Hold] = []
    candidates: dict[str, Candidate] = {}
    rewrite = False
    stale = False

    for name, want in item.desired.items():
        if name in policy.volatile:
            continue
        have = item.current.get(name)
        if _same(have, want):
            if last is None or name not in last or not _same(last[name], want):
                stale = True
            baseline[name] = want
            continue
        known = last is not None and name in last
        ours = last[name] if last is not None and known else None
        if (known and not _same(have, ours)) or (
            not known and name in item.set_by_person and not is_blank(have)
        ):
            kept = policy.overrides == "respect"
            overrides.append(
                Override(
                    item.record_id,
                    name,
                    have,
                    ours,
                    want,
                    "kept" if kept else "overwritten",
                    from_audit_trail=not known,
                )
            )
            if kept:
                continue
            # Overwriting a person's edit is deliberate: hysteresis protects
            # the connector's own routing from flip-flopping, not theirs.
        elif name in hysteresis.fields and hysteresis.active and not is_blank(have):
            before = previous.get(name)
            if before is not None and same_value(before.value, want):
                candidate = Candidate(want, before.count + 1, before.first_seen)
            else:
                candidate = Candidate(want, 1, now)
            if candidate.count < hysteresis.runs or now - candidate.first_seen < hysteresis.dwell:
                candidates[name] = candidate
                holds.append(Hold(item.record_id, name, have, candidate))
                continue
        fields[name] = want
        baseline[name] = want
        changes.append(FieldChange(name, have, want))
        if not is_blank(have) and (guarded is None or name in guarded):
            rewrite = True

    pending = Pending(candidates) if candidates else None
    write = None
    if fields:
        for name in item.desired:
            if name in policy.volatile:
                fields[name] = item.desired[name]
                baseline[name] = item.desired[name]
        transitions = tuple(c for c in changes if c.field in policy.tracked)
        write = Write(item.record_id, fields, tuple(changes), transitions, baseline)
    return Decision(
        item.record_id,
        "unchanged" if write is None else "changed",
        write,
        overrides=tuple(overrides),
        holds=tuple(holds),
        pending=pending,
        pending_changed=pending != item.pending,
        rewrite=rewrite,
        adopt=baseline if write is None and stale else None,
    )


class Evaluated(Protocol):
    """What :class:`RecordPlanner` needs of an evaluation: the engine's ``Assignment``."""

    def outputs(self, crm: str, now: datetime) -> dict[str, Any]:
        """CRM field → value of every declared output, ``now`` in the updated-at one."""
        ...


#: Assignments whose outputs a :class:`RecordPlanner` remembers. A run meets a few
#: hundred to a few thousand distinct ones; beyond the limit a record is planned
#: the same way, only without the memory (each entry is about 1 kB).
PLANNER_CACHE_LIMIT = 20_000
#: A want no CRM value is taken to spell.
_NO_SPELLING: Any = object()


class RecordPlanner:
    """:func:`plan_record` for one run's evaluated records, without a :class:`PlanInput` each.

    What the runner does per record, in one step: take the assignment's
    outputs for ``crm`` (``Assignment.outputs(crm, now)``), round the score
    fields to whole numbers (they are provisioned as such: a fraction would
    come back rounded and look changed on every run), read the output fields'
    current values from the record, and plan it. :meth:`decide` returns
    exactly ``plan_record(self.plan_input(…), policy, hysteresis, now)``.

    Why: a steady-state run finds almost every record already holding what
    it wants. Records share assignments (the engine interns them), so the
    outputs are computed once per assignment and kept with the two tuples a
    record is compared with: the wanted values, and the same with whole
    numbers spelled as text (HubSpot sends ``80`` back as ``"80"``). A record
    whose output fields and last-written values equal one of those (tuple
    equality: identity, then ``==``, which for the text, whole numbers and
    blanks an assignment outputs implies :func:`same_value`) is decided
    unchanged without its dict of current values, its ``PlanInput`` or a
    per-field comparison; every other record takes :func:`plan_record` on
    the input it would have had.
    """

    def __init__(
        self,
        crm: str,
        policy: Policy,
        hysteresis: Hysteresis,
        now: datetime,
        out_fields: Iterable[str],
        round_fields: Iterable[str] = (),
    ) -> None:
        self.crm = crm
        self.policy = policy
        self.hysteresis = hysteresis
        self.now = now
        self.out_fields = tuple(out_fields)
        self.round_fields = tuple(round_fields)
        # id(assignment) → (assignment, desired, checked-field getter, wants, spelled wants);
        # the entry holds the assignment, so its id is not reused while it is cached.
        self._cache: dict[int, tuple[Any, dict[str, Any], Any, Any, Any]] = {}
        self._decide = cast(Callable[..., Decision], self._decider(quiet=False))
        self.decide = self._decide  # type: ignore[method-assign]
        self._decide_quiet = self._decider(quiet=True)
        self.decide_quiet = self._decide_quiet  # type: ignore[method-assign]

    def desired(self, assignment: Evaluated) -> dict[str, Any]:
        """The record's outputs as the planner compares them (scores rounded); a new dict."""
        desired = assignment.outputs(self.crm, self.now)
        for name in self.round_fields:
            if isinstance(desired.get(name), float):
                desired[name] = round(desired[name])
        return desired

    def plan_input(
        self,
        record_id: str,
        assignment: Evaluated,
        fields: Mapping[str, Any],
        last_written: Mapping[str, Any] | None,
        locked: bool,
        pending: Pending | None,
    ) -> PlanInput:
        """The record's :class:`PlanInput` (what :meth:`decide` plans, spelled out)."""
        current = {f: fields.get(f) for f in self.out_fields}
        return PlanInput(
            record_id, self.desired(assignment), current, last_written, locked, pending
        )

    def _entry(self, assignment: Evaluated) -> tuple[Any, dict[str, Any], Any, Any, Any]:
        desired = self.desired(assignment)
        checked = [name for name in desired if name not in self.policy.volatile]
        wants = tuple(desired[name] for name in checked)
        spelled = tuple(str(w) if w.__class__ is int else w for w in wants)
        # Tuple equality stands in for same_value only for what assignments output:
        # text, whole numbers and blanks (not booleans or floats: True == 1.0, yet
        # same_value says they differ).
        if len(checked) < 2 or not all(w is None or w.__class__ in (str, int) for w in wants):
            getter: Any = None
        else:
            getter = itemgetter(*checked)
        entry = (
            assignment,
            desired,
            getter,
            wants,
            spelled if spelled != wants else _NO_SPELLING,
        )
        if len(self._cache) < PLANNER_CACHE_LIMIT:
            self._cache[id(assignment)] = entry
        return entry

    def decide(
        self,
        record_id: str,
        assignment: Evaluated,
        fields: Mapping[str, Any],
        last_written: Mapping[str, Any] | None,
        locked: bool,
        pending: Pending | None,
    ) -> Decision:
        """``plan_record(self.plan_input(record_id, …), policy, hysteresis, now)``, faster.

        (Replaced per instance by the same steps with their names bound once.)
        """
        return self._decide(record_id, assignment, fields, last_written, locked, pending)

    def decide_quiet(
        self,
        record_id: str,
        assignment: Evaluated,
        fields: Mapping[str, Any],
        last_written: Mapping[str, Any] | None,
        locked: bool,
        pending: Pending | None,
    ) -> Decision | None:
        """:meth:`decide`, or ``None`` for a steady record with nothing to keep.

        ``None`` stands for ``Decision(record_id, "unchanged")`` with every
        other slot at its default (no write, override, hold, pending state or
        adoption): what :meth:`decide` returns for a record that holds what it
        wants, as the store last wrote it, with no pending state. It is given
        only on that path; a caller counts it (:meth:`PlanBuilder.add_unchanged`)
        without building a :class:`Decision` for most records of a steady run.
        """
        return self._decide_quiet(record_id, assignment, fields, last_written, locked, pending)

    def _decider(self, *, quiet: bool) -> Callable[..., Decision | None]:
        cache_get, entry_of, out_fields = self._cache.get, self._entry, self.out_fields
        policy, hysteresis, now = self.policy, self.hysteresis, self.now

        def decide(
            record_id: str,
            assignment: Evaluated,
            fields: Mapping[str, Any],
            last_written: Mapping[str, Any] | None,
            locked: bool,
            pending: Pending | None,
        ) -> Decision | None:
            entry = cache_get(id(assignment))
            if entry is None or entry[0] is not assignment:
                entry = entry_of(assignment)
            getter = entry[2]
            if getter is not None and not locked and last_written is not None:
                try:
                    current = getter(fields)
                    ours = getter(last_written)
                except KeyError:
                    pass  # a field the record or the store does not hold: the full rules
                else:
                    wants = entry[3]
                    if (current == wants or current == entry[4]) and ours == wants:
                        if quiet and pending is None:
                            return None
                        return _unchanged(record_id, pending, None)
            item = PlanInput(
                record_id,
                dict(entry[1]),
                {f: fields.get(f) for f in out_fields},
                last_written,
                locked,
                pending,
            )
            return plan_record(item, policy, hysteresis, now)

        return decide


@dataclass(frozen=True, slots=True)
class PlanCounts:
    """Record counts of a plan.

    ``read == changed + unchanged + locked``; ``overrides`` (records with at
    least one manual override), ``held`` (records with a field held by
    hysteresis) and ``rewritten`` (records whose write replaces a non-blank
    guarded value) overlap with those.
    """

    read: int = 0
    changed: int = 0
    unchanged: int = 0
    locked: int = 0
    overrides: int = 0
    held: int = 0
    rewritten: int = 0


@dataclass(frozen=True, slots=True)
class TransitionCount:
    """How many records move a tracked field from ``old`` to ``new`` (as text; None is blank)."""

    field: str
    old: str | None
    new: str | None
    count: int


@dataclass(frozen=True, slots=True)
class PlanSummary:
    """Counts and the transition matrix: everything about a plan that stays small."""

    counts: PlanCounts = field(default_factory=PlanCounts)
    transitions: tuple[TransitionCount, ...] = ()

    def matrix(self, name: str) -> dict[str | None, dict[str | None, int]]:
        """The transition matrix of one field: old value → new value → record count."""
        result: dict[str | None, dict[str | None, int]] = {}
        for t in self.transitions:
            if t.field == name:
                result.setdefault(t.old, {})[t.new] = t.count
        return result


@dataclass(frozen=True, slots=True)
class Plan:
    """An immutable plan: what a sync would do.

    Attributes:
        summary: counts and transition matrix over every record planned.
        writes: the writes, in input order.
        overrides: every manual override found, in input order.
        locked: ids of locked records.
        holds: fields held back by hysteresis.
        pending: record id → new hysteresis state (``None`` clears it), only for
            records whose state changed.
        adopt: record id → last-written values to store for records with no
            write (see :attr:`Decision.adopt`).
        complete: ``False`` when the builder kept only a sample of the lists.

    """

    summary: PlanSummary
    writes: tuple[Write, ...] = ()
    overrides: tuple[Override, ...] = ()
    locked: tuple[str, ...] = ()
    holds: tuple[Hold, ...] = ()
    pending: Mapping[str, Pending | None] = field(default_factory=dict)
    adopt: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    complete: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "pending", _frozen(self.pending))
        object.__setattr__(self, "adopt", _frozen(self.adopt))

    @property
    def counts(self) -> PlanCounts:
        """The plan's counts."""
        return self.summary.counts

    @property
    def is_empty(self) -> bool:
        """Whether the plan writes nothing."""
        return self.summary.counts.changed == 0


def _sort_key(key: tuple[str, str | None, str | None]) -> tuple[str, str, str, str, str]:
    name, old, new = key
    # None sorts first; a tuple keeps "" and None apart.
    return (name, "" if old is None else "1", old or "", "" if new is None else "1", new or "")


class PlanBuilder:
    """Accumulates decisions page by page into counts, a transition matrix and a sample.

    Memory stays bounded by the number of distinct transitions plus ``keep``:
    with ``keep=None`` every write, override, hold, pending update and adoption is kept
    (fine for small sets and tests); with ``keep=n`` only the first ``n`` of
    each, for a dry-run's sample. A runner that writes page by page takes the
    writes from the decisions themselves and uses ``keep=0``.
    """

    def __init__(self, *, keep: int | None = None) -> None:
        if keep is not None and keep < 0:
            raise ValueError(f"keep must not be negative, not {keep}")
        self._keep = keep
        # Counts as plain numbers (a Counter's update costs twice as much, per record).
        self._read = self._changed = self._unchanged = self._locked_count = 0
        self._overridden = self._held = self._rewritten = 0
        self._transitions: Counter[tuple[str, str | None, str | None]] = Counter()
        self._writes: list[Write] = []
        self._overrides: list[Override] = []
        self._locked: list[str] = []
        self._holds: list[Hold] = []
        self._pending: dict[str, Pending | None] = {}
        self._adopt: dict[str, Mapping[str, Any]] = {}
        self._complete = True

    def _room(self, size: int) -> bool:
        if self._keep is None or size < self._keep:
            return True
        self._complete = False
        return False

    def add(self, decision: Decision) -> None:
        """Count one decision and keep it in the sample if there is room."""
        self._read += 1
        status = decision.status
        if status == "unchanged":
            self._unchanged += 1
        elif status == "changed":
            self._changed += 1
        elif status == "locked":
            self._locked_count += 1
            if self._room(len(self._locked)):
                self._locked.append(decision.record_id)
        if decision.overrides:
            self._overridden += 1
            for override in decision.overrides:
                if self._room(len(self._overrides)):
                    self._overrides.append(override)
        if decision.holds:
            self._held += 1
            for hold in decision.holds:
                if self._room(len(self._holds)):
                    self._holds.append(hold)
        if decision.rewrite:
            self._rewritten += 1
        write = decision.write
        if write is not None:
            for change in write.transitions:
                self._transitions[(change.field, as_text(change.old), as_text(change.new))] += 1
            if self._room(len(self._writes)):
                self._writes.append(write)
        if decision.pending_changed and self._room(len(self._pending)):
            self._pending[decision.record_id] = decision.pending
        if decision.adopt is not None and self._room(len(self._adopt)):
            self._adopt[decision.record_id] = decision.adopt

    def add_unchanged(self) -> None:
        """Count one record decided unchanged with nothing else to keep.

        What :meth:`add` does with ``Decision(record_id, "unchanged")`` (every
        other slot at its default), without the decision.
        """
        self._read += 1
        self._unchanged += 1

    def add_all(self, decisions: Iterable[Decision]) -> None:
        """Add each decision in turn."""
        for decision in decisions:
            self.add(decision)

    def summary(self) -> PlanSummary:
        """The counts and transition matrix so far (a snapshot)."""
        counts = PlanCounts(
            read=self._read,
            changed=self._changed,
            unchanged=self._unchanged,
            locked=self._locked_count,
            overrides=self._overridden,
            held=self._held,
            rewritten=self._rewritten,
        )
        transitions = tuple(
            TransitionCount(name, old, new, self._transitions[(name, old, new)])
            for name, old, new in sorted(self._transitions, key=_sort_key)
        )
        return PlanSummary(counts, transitions)

    def build(self) -> Plan:
        """The plan so far (a snapshot)."""
        return Plan(
            self.summary(),
            tuple(self._writes),
            tuple(self._overrides),
            tuple(self._locked),
            tuple(self._holds),
            dict(self._pending),
            dict(self._adopt),
            self._complete,
        )


def plan(
    inputs: Iterable[PlanInput],
    policy: Policy | None = None,
    hysteresis: Hysteresis = NO_HYSTERESIS,
    *,
    now: datetime,
) -> Plan:
    """Plan a (small) set of records at once, keeping every write."""
    rules = policy if policy is not None else Policy()
    builder = PlanBuilder()
    for item in inputs:
        builder.add(plan_record(item, rules, hysteresis, now))
    return builder.build()
