"""Engine throughput on the sync path: records/s for a shipped definition on one core.

What a sync does with every record it pulls, minus the I/O: evaluate it
(``Engine.evaluate``), turn the assignment into the CRM's output fields
(``Assignment.outputs``), build the planner's input and decide the record
(``plan_record``), with the runner's own glue between those calls (reading
the lock, rounding scores, building the ``PlanInput``). Timed together in CPU
time (``time.process_time``), one core, best of ``--repeat`` passes, each
with a freshly compiled engine (its memos start empty, as in a sync process).
Records come in pages of each API's size (Salesforce 2,000, HubSpot 100),
each unpickled untimed just before it is timed, as a sync decodes a page and
plans it at once.

The records are synthetic (own seeded generator) and spelled the way each API
sends them:

- Salesforce: JSON numbers, booleans and nulls; a Date field as
  ``2026-11-29``; a datetime as ``2026-11-29T10:11:12.000+0000``.
- HubSpot: every property value a string (``"1200"``, ``"true"``), a datetime
  as ISO 8601 with milliseconds and ``Z``; every timestamp is unique, so no
  memo ever hits on it.

The output fields hold what a steady state holds: most records as segsync
last wrote them, some changed since, some never written (see ``--changed``,
``--new``), with the state store's last-written values beside them.

    .venv/bin/python bench/engine_bench.py [--records 300000] [--repeat 3] [--seed 7]
    .venv/bin/python bench/engine_bench.py --old-method   # the pre-2026-11-29 figure, labeled
    .venv/bin/python bench/engine_bench.py --records 2000 --ops 2000   # bytecodes, not time

``--old-method`` times ``evaluate`` alone on records whose HubSpot dates
repeat (one time of day per calendar day, so the coercion memo always hits):
what this bench reported until 2026-11-30. It is kept to compare, not to quote.
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import pickle
import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connector import templates  # noqa: E402
from connector.engine import Engine, compile_mapping  # noqa: E402
from connector.mapping import load_mapping  # noqa: E402
from connector.sync.planner import (  # noqa: E402
    NO_HYSTERESIS,
    PlanBuilder,
    PlanInput,
    Policy,
    RecordPlanner,
    plan_record,
)
from connector.sync.runner import (  # noqa: E402
    TRACKED_KEYS,
    UNGUARDED_KEYS,
    Runner,
    _recheck_fields,
    _spool_due,
)
from segsync_sandbox.data import TECH_STACK  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import save, stamp  # noqa: E402

INDUSTRIES_SF = [
    "Technology",
    "Software",
    "Computer Software",
    "SaaS",
    "Information Technology",
    "Financial Services",
    "Banking",
    "Finance",
    "Insurance",
    "Healthcare",
    "Hospital & Health Care",
    "Manufacturing",
    "Retail",
    "Education",
    "Telecommunications",
    "Media",
    "",
    None,
    "  software ",
    "BANKING",
    "Agriculture",
]
INDUSTRIES_HS = [
    "COMPUTER_SOFTWARE",
    "INFORMATION_TECHNOLOGY_AND_SERVICES",
    "FINANCIAL_SERVICES",
    "BANKING",
    "HOSPITAL_HEALTH_CARE",
    "MACHINERY",
    "RETAIL",
    "HIGHER_EDUCATION",
    "TELECOMMUNICATIONS",
    "INSURANCE",
    "",
]
COUNTRIES = [
    "United States",
    "USA",
    "US",
    "U.S.",
    "United States of America",
    "United Kingdom",
    "UK",
    "Great Britain",
    "GB",
    "Germany",
    "Deutschland",
    "DE",
    "France",
    "Canada",
    "CA",
    "Australia",
    "Netherlands",
    "India",
    "Brazil",
    "Japan",
    "",
    None,
]
TECH = list(TECH_STACK)
NOW = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)
#: When segsync last wrote the records (the previous run), a base for unique stamps.
LAST_RUN = datetime(2026, 11, 21, 6, 0, tzinfo=UTC)
CRMS = ("salesforce", "hubspot")


def sf_datetime(moment: datetime) -> str:
    """A datetime as the Salesforce REST API sends it: ``2026-11-29T10:11:12.000+0000``."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def hs_datetime(moment: datetime) -> str:
    """A datetime as HubSpot sends a property value: ``2026-11-29T10:11:12.000Z``."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def unique_moment(day: date, i: int) -> datetime:
    """An instant on ``day`` that no other record ``i`` gets on that day (ms resolution)."""
    # 86,400,000 ms per day; 7,919 is prime to it, so i ↦ ms-of-day is one-to-one
    # for i below 86,400,000.
    ms = (i * 7_919 + 12_345) % 86_400_000
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(milliseconds=ms)


def salesforce_records(n: int, seed: int) -> list[dict[str, Any]]:
    """Raw Account input fields the way the Salesforce REST API returns them."""
    rnd = random.Random(seed)
    today = NOW.date()
    out: list[dict[str, Any]] = []
    for i in range(n):
        size = rnd.choice((5, 20, 60, 150, 400, 800, 2500, 12000))
        employees: Any = int(size * rnd.uniform(0.5, 1.5)) if rnd.random() > 0.08 else None
        revenue: Any = (
            round(employees * rnd.uniform(50_000, 400_000), 2)
            if employees and rnd.random() > 0.2
            else None
        )
        # Both CRMs return a multi-select's values in the picklist's own order.
        stack = sorted(rnd.sample(TECH, rnd.randint(0, 5)), key=TECH.index)
        intent: Any = round(rnd.uniform(0, 100), 1) if rnd.random() > 0.3 else None
        last: Any = (
            (today - timedelta(days=rnd.randint(0, 400))).isoformat()
            if rnd.random() > 0.15
            else None
        )
        out.append(
            {
                "Id": f"001{i:015d}",
                "Name": f"Company {i}",
                "Industry": rnd.choice(INDUSTRIES_SF),
                "NumberOfEmployees": employees,
                "AnnualRevenue": revenue,
                "BillingCountry": rnd.choice(COUNTRIES),
                "Tech_Stack__c": ";".join(stack) if stack else None,
                "Intent_Score__c": intent,
                "LastActivityDate": last,
                "Segsync_Lock__c": rnd.random() < 0.01,
                "SystemModstamp": sf_datetime(unique_moment(LAST_RUN.date(), i)),
            }
        )
    return out


def hubspot_records(sf: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """The same companies as HubSpot sends them: every property a string, unique timestamps."""
    rnd = random.Random(seed + 1)

    def s(v: Any) -> str:
        return "" if v is None else str(v)

    out: list[dict[str, Any]] = []
    for i, r in enumerate(sf):
        last = r["LastActivityDate"]
        # A note's timestamp: the day the Salesforce twin has, at a time no other record has.
        notes = "" if last is None else hs_datetime(unique_moment(date.fromisoformat(last), i))
        out.append(
            {
                "hs_object_id": str(1000 + i),
                "name": r["Name"],
                "industry": rnd.choice(INDUSTRIES_HS),
                "numberofemployees": s(r["NumberOfEmployees"]),
                "annualrevenue": s(r["AnnualRevenue"]),
                "country": s(r["BillingCountry"]),
                "tech_stack": s(r["Tech_Stack__c"]),
                "intent_score": s(r["Intent_Score__c"]),
                "notes_last_updated": notes,
                "segsync_lock": "true" if r["Segsync_Lock__c"] else "false",
                "hs_lastmodifieddate": hs_datetime(unique_moment(LAST_RUN.date(), i)),
            }
        )
    return out


def repeating_dates(hs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The old bench's HubSpot dates: one time of day per calendar day (memo always hits)."""
    out = []
    for r in hs:
        notes = r["notes_last_updated"]
        out.append({**r, "notes_last_updated": f"{notes[:10]}T13:05:00.000Z" if notes else ""})
    return out


def spelled(value: Any, crm: str) -> Any:
    """A value segsync wrote, as the CRM sends it back."""
    if isinstance(value, datetime):
        return hs_datetime(value) if crm == "hubspot" else sf_datetime(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        # HubSpot number properties come back as text, Salesforce ones as JSON doubles.
        return str(value) if crm == "hubspot" else float(value)
    return value


def edited(record: dict[str, Any], crm: str, rnd: random.Random) -> dict[str, Any]:
    """The record before someone edited it: another intent score, headcount or industry."""
    before = dict(record)
    field = rnd.choice(("intent", "employees", "industry"))
    if field == "intent":
        key = "Intent_Score__c" if crm == "salesforce" else "intent_score"
        value: Any = round(rnd.uniform(0, 100), 1)
    elif field == "employees":
        key = "NumberOfEmployees" if crm == "salesforce" else "numberofemployees"
        value = rnd.choice((8, 80, 300, 3000))
    else:
        key = "Industry" if crm == "salesforce" else "industry"
        value = rnd.choice(INDUSTRIES_SF if crm == "salesforce" else INDUSTRIES_HS)
    before[key] = str(value) if crm == "hubspot" else value
    return before


def with_state(
    engine: Engine,
    records: list[dict[str, Any]],
    crm: str,
    seed: int,
    changed: float,
    new: float,
) -> list[tuple[str, dict[str, Any], dict[str, Any] | None]]:
    """(id, fields with the output fields' current values, last written) per record.

    A share ``new`` was never written (output fields blank, nothing in the
    store); a share ``changed`` holds what segsync wrote before one input
    was edited (its intent score, headcount or industry), so some outputs
    differ; the rest holds exactly what segsync last wrote, as the CRM spells
    it. Every ``updated_at`` stamp is unique.
    """
    rnd = random.Random(seed + 2)
    id_field = "Id" if crm == "salesforce" else "hs_object_id"
    out = []
    for i, r in enumerate(records):
        stamp = unique_moment(LAST_RUN.date(), i)
        draw = rnd.random()
        last: dict[str, Any] | None
        if draw < new:
            last, current = None, dict.fromkeys(engine.output_fields(crm).values())
        else:
            source = edited(r, crm, rnd) if draw < new + changed else r
            last = engine.evaluate(source, crm, NOW).outputs(crm, stamp)
            current = {k: spelled(v, crm) for k, v in last.items()}
        out.append((r[id_field], {**r, **current}, last))
    return out


Rows = list[tuple[str, dict[str, Any], dict[str, Any] | None]]
#: A timed loop over one page: built once per pass by a body(engine, crm).
Loop = Callable[[Rows], None]
#: Records per page as each API returns them: a Salesforce REST query page
#: holds 2,000 records, a HubSpot list page 100.
PAGE = {"salesforce": 2_000, "hubspot": 100}


def _policy(outputs: dict[str, str]) -> Policy:
    """The policy the runner builds for these outputs (``respect``, no hysteresis)."""
    return Policy(
        "respect",
        volatile=frozenset([outputs["updated_at"]]),
        tracked=frozenset(outputs[k] for k in TRACKED_KEYS if k in outputs),
        guarded=frozenset(f for k, f in outputs.items() if k not in UNGUARDED_KEYS),
    )


def _planner(engine: Engine, crm: str) -> RecordPlanner:
    """The runner's planner for ``crm``'s outputs, scores rounded, no hysteresis."""
    outputs = engine.output_fields(crm)
    return RecordPlanner(
        crm,
        _policy(outputs),
        NO_HYSTERESIS,
        NOW,
        outputs.values(),
        [f for key, f in outputs.items() if key.startswith("score.")],
    )


def sync_path(engine: Engine, crm: str, *, due: bool = False) -> Loop:
    """What the runner does per record (``Runner._plan``) minus the store, spool and I/O.

    Read the lock, evaluate, then :meth:`RecordPlanner.decide` (outputs, whole-number
    scores, plan_record), as the runner calls them. With ``due``,
    :meth:`Engine.assign` instead of ``evaluate``, as the runner calls it: it
    also finds when time alone changes the record (one more evaluation per
    future ``within_days`` boundary).
    """
    planner = _planner(engine, crm)
    evaluate, lock_reading, decide, now = (
        engine.assign if due else engine.evaluate,
        engine.lock_reading,
        planner.decide,
        NOW,
    )

    def loop(rows: Rows) -> None:
        for record_id, fields, last in rows:
            locked = lock_reading(fields, crm).locked
            decide(record_id, evaluate(fields, crm, now), fields, last, locked, None)

    return loop


def runner_path(engine: Engine, crm: str, *, stored_due: dict[str, datetime | None]) -> Loop:
    """:func:`sync_path` with ``assign`` and the rest of ``Runner._plan``'s per-record loop.

    A mirror of the loop (keep it in step with ``Runner._plan``): the lock,
    ``assign``, the planned tuple, the due date against the store's
    (``stored_due``: what the previous run stored), what the re-read before a
    write compares (``Seen``, built for a write only), then per record
    ``RecordPlanner.decide_quiet`` and either ``PlanBuilder.add_unchanged`` (a
    steady record: only a new due date is spooled) or ``PlanBuilder.add`` and
    ``Runner._spool``, into memory. The store's page reads, the pull and the
    spool's file are left out.
    """
    planner = _planner(engine, crm)
    recheck_fields = _recheck_fields(engine, crm)
    assign, lock_reading, decide, now = (
        engine.assign,
        engine.lock_reading,
        planner.decide_quiet,
        NOW,
    )
    spool_entry, spool_due = Runner._spool, _spool_due
    builder = PlanBuilder(keep=0)
    add, add_unchanged = builder.add, builder.add_unchanged
    spool = io.BytesIO()

    def loop(rows: Rows) -> None:
        spool.seek(0)
        spool.truncate()
        planned = []
        for record_id, fields, last in rows:
            lock_state = lock_reading(fields, crm)
            assignment = assign(fields, crm, now, None)
            item = (record_id, assignment, fields, last, lock_state.locked, None)
            due = assignment.due_at
            changed_due = None if stored_due.get(record_id) == due else (due,)
            planned.append((item, (assignment.reason, changed_due, LAST_RUN, fields, None)))
        for item, (reason, changed_due, modstamp, seen_fields, read_at) in planned:
            decision = decide(*item)
            if decision is None:
                add_unchanged()
                if changed_due is not None:
                    spool_due(spool, item[0], changed_due)
                continue
            add(decision)
            seen = None
            if decision.write is not None:
                seen = (modstamp, {f: seen_fields.get(f) for f in recheck_fields}, read_at)
            spool_entry(spool, decision, reason, changed_due, seen)

    return loop


def old_sync_path(engine: Engine, crm: str) -> Loop:
    """The runner's glue before ``RecordPlanner``: outputs, a ``PlanInput``, plan_record."""
    outputs = engine.output_fields(crm)
    out_fields = list(outputs.values())
    score_fields = [f for key, f in outputs.items() if key.startswith("score.")]
    policy = _policy(outputs)
    evaluate, lock_reading, hysteresis, now = (
        engine.evaluate,
        engine.lock_reading,
        NO_HYSTERESIS,
        NOW,
    )

    def loop(rows: Rows) -> None:
        for record_id, fields, last in rows:
            locked = lock_reading(fields, crm).locked
            desired = evaluate(fields, crm, now).outputs(crm, now)
            for name in score_fields:
                if isinstance(desired.get(name), float):
                    desired[name] = round(desired[name])
            item = PlanInput(
                record_id, desired, {f: fields.get(f) for f in out_fields}, last, locked, None
            )
            plan_record(item, policy, hysteresis, now)

    return loop


def evaluate_lock(engine: Engine, crm: str) -> Loop:
    """:func:`sync_path` without the planner: read the lock and evaluate."""
    evaluate, lock_reading, now = engine.evaluate, engine.lock_reading, NOW

    def loop(rows: Rows) -> None:
        for _, fields, _ in rows:
            lock_reading(fields, crm)
            evaluate(fields, crm, now)

    return loop


def evaluate_only(engine: Engine, crm: str) -> Loop:
    """``Engine.evaluate`` alone: the old bench's loop."""
    evaluate, now = engine.evaluate, NOW

    def loop(rows: Rows) -> None:
        for _, fields, _ in rows:
            evaluate(fields, crm, now)

    return loop


def evaluate_outputs(engine: Engine, crm: str) -> Loop:
    """``evaluate`` + ``outputs``."""
    evaluate, now = engine.evaluate, NOW

    def loop(rows: Rows) -> None:
        for _, fields, _ in rows:
            evaluate(fields, crm, now).outputs(crm, now)

    return loop


def paged(rows: Rows, size: int) -> list[bytes]:
    """The rows as pickled pages: each pass unpickles a page just before timing it."""
    return [
        pickle.dumps(rows[i : i + size], pickle.HIGHEST_PROTOCOL) for i in range(0, len(rows), size)
    ]


def measure(
    mapping: str, pages: list[bytes], crm: str, body: Callable[[Engine, str], Loop], repeat: int
) -> tuple[float, float]:
    """Best (CPU s, wall s) of ``repeat`` passes, each with a freshly compiled engine.

    A sync decodes a page and plans it at once, so its records are fresh in
    the CPU's caches; each page here is unpickled (not timed) right before its
    records are timed, rather than walking records generated long before.
    """
    best_cpu = best_wall = float("inf")
    for _ in range(repeat):
        loop = body(compile_mapping(load_mapping(mapping)), crm)
        gc.collect()
        gc.disable()
        cpu = wall = 0.0
        try:
            for blob in pages:
                rows = pickle.loads(blob)
                wall -= time.perf_counter()
                cpu -= time.process_time()
                loop(rows)
                cpu += time.process_time()
                wall += time.perf_counter()
                del rows
        finally:
            gc.enable()
        best_cpu, best_wall = min(best_cpu, cpu), min(best_wall, wall)
    return best_cpu, best_wall


def count_ops(loop: Loop, rows: Rows) -> tuple[float, float]:
    """Python bytecodes and Python-level calls per record of ``loop`` over ``rows``.

    Deterministic, so it compares two versions of the code on a machine too
    busy for timings to (C-level work, such as parsing a timestamp or
    building a dict, counts as the one bytecode that calls it). One warm
    pass first, as a sync's memos and caches are warm after its first pages.
    """
    loop(rows)
    ops = calls = 0

    def trace(frame: Any, event: str, arg: Any) -> Any:
        nonlocal ops, calls
        if event == "opcode":
            ops += 1
        elif event == "call":
            calls += 1
            frame.f_trace_opcodes = True
        return trace

    sys.settrace(trace)
    try:
        loop(rows)
    finally:
        sys.settrace(None)
    # The loop's own frame is entered once: not a per-record call.
    return ops / len(rows), (calls - 1) / len(rows)


def report(label: str, n: int, cpu: float, wall: float) -> dict[str, Any]:
    print(
        f"{label:<52} {n / cpu:>9,.0f} records/s CPU ({cpu:5.2f} s)"
        f"   wall {n / wall:>9,.0f}/s ({wall:5.2f} s)"
    )
    return {
        "label": label,
        "records": n,
        "cpu_s": round(cpu, 3),
        "wall_s": round(wall, 3),
        "per_s_cpu": round(n / cpu),
        "per_s_wall": round(n / wall),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=3, help="passes; the best is reported")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--mapping", default=str(templates.ACCOUNTS))
    parser.add_argument("--changed", type=float, default=0.10, help="share with an input edited")
    parser.add_argument("--new", type=float, default=0.05, help="share never written")
    parser.add_argument(
        "--old-method",
        action="store_true",
        help="also time the old figure: evaluate only, HubSpot dates repeating (memo hits)",
    )
    parser.add_argument(
        "--ops",
        type=int,
        default=0,
        metavar="N",
        help="instead of timing, count Python bytecodes per record over N records (load-proof)",
    )
    args = parser.parse_args()

    # A trivial loop, to tell a slow (or busy) machine from a slow engine.
    probe = [{"a": i} for i in range(1_000_000)]
    cpu = time.process_time()
    for r in probe:
        r.get("a")
    calibration = len(probe) / (time.process_time() - cpu)
    del probe
    print(f"calibration: bare dict-get loop {calibration:,.0f} iterations/s (CPU)")
    print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))

    state_engine = compile_mapping(load_mapping(args.mapping))
    n = args.records
    print(
        f"mapping {args.mapping} version {state_engine.version}; {n:,} records per CRM, "
        f"{args.changed:.0%} changed, {args.new:.0%} never written; best of {args.repeat} …"
    )
    sf = salesforce_records(n, args.seed)
    hs = hubspot_records(sf, args.seed)
    distinct = len({r["notes_last_updated"] for r in hs if r["notes_last_updated"]})
    dated = sum(1 for r in hs if r["notes_last_updated"])
    print(f"hubspot notes_last_updated: {distinct:,} distinct of {dated:,} set")
    rows = {
        "salesforce": with_state(state_engine, sf, "salesforce", args.seed, args.changed, args.new),
        "hubspot": with_state(state_engine, hs, "hubspot", args.seed, args.changed, args.new),
    }
    # The due dates the previous run stored: this run's (no record's inputs moved in time).
    stored = {
        crm: {i: state_engine.assign(fields, crm, NOW).due_at for i, fields, _ in rows[crm]}
        for crm in CRMS
    }
    del state_engine

    def parts_of(crm: str) -> tuple[tuple[str, Callable[[Engine, str], Loop]], ...]:
        runner = partial(runner_path, stored_due=stored[crm])
        return (*parts, ("the runner's loop: + due, seen, builder, spool", runner))

    parts: tuple[tuple[str, Callable[[Engine, str], Loop]], ...] = (
        ("evaluate", evaluate_only),
        ("lock + evaluate", evaluate_lock),
        ("evaluate + outputs", evaluate_outputs),
        ("full path with Engine.assign (due dates)", partial(sync_path, due=True)),
        ("full path, the glue before RecordPlanner", old_sync_path),
    )
    if args.ops:
        counted = []
        print(f"\nbytecodes executed per record (first {args.ops:,} records, after a warm pass)")
        for crm in CRMS:
            for name, body in (("sync path", sync_path), *parts_of(crm)):
                engine = compile_mapping(load_mapping(args.mapping))
                ops, calls = count_ops(body(engine, crm), rows[crm][: args.ops])
                print(f"  {crm}: {name:<44} {ops:8.1f} bytecodes {calls:6.2f} calls")
                counted.append({"crm": crm, "label": name, "bytecodes": ops, "calls": calls})
        save("engine_ops", {**stamp(), "records": args.ops, "results": counted})
        return

    pages = {crm: paged(rows[crm], PAGE[crm]) for crm in CRMS}
    results = []
    print("\nsync path: lock + evaluate + outputs + plan_record (what `make bench` reports)")
    for crm in CRMS:
        cpu, wall = measure(args.mapping, pages[crm], crm, sync_path, args.repeat)
        results.append(report(f"  {crm} (pages of {PAGE[crm]:,})", n, cpu, wall))
    print("\nparts of it, and what the runner calls (same records):")
    for crm in CRMS:
        for name, body in parts_of(crm):
            cpu, wall = measure(args.mapping, pages[crm], crm, body, args.repeat)
            results.append(report(f"  {crm}: {name}", n, cpu, wall))
    if args.old_method:
        print("\nOLD METHOD, not a sync's cost: evaluate only, HubSpot dates repeating (memo hits)")
        old = [
            (i, f, last)
            for i, f, last in zip(
                (r[0] for r in rows["hubspot"]),
                repeating_dates(hs),
                (r[2] for r in rows["hubspot"]),
                strict=True,
            )
        ]
        # As the old bench did: one pass over every record generated beforehand.
        cpu, wall = measure(
            args.mapping, paged(old, len(old)), "hubspot", evaluate_only, args.repeat
        )
        results.append(report("  hubspot (old method)", n, cpu, wall))
    print("load average after: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))

    path = save(
        "engine",
        {
            **stamp(),
            "records": n,
            "repeat": args.repeat,
            "results": results,
            "loadavg": os.getloadavg(),
            "calibration": calibration,
        },
    )
    print(f"raw results: {path}")


if __name__ == "__main__":
    main()
