"""Engine throughput: records/s for the shipped accounts definition on one core.

Generates synthetic raw records (Salesforce JSON types, then the same records
as HubSpot all-string properties) with its own seeded generator, evaluates
each one with ``Engine.evaluate`` and prints records per second.

    .venv/bin/python bench/engine_bench.py [--records 1000000] [--seed 7]
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connector import templates  # noqa: E402
from connector.engine import compile_mapping  # noqa: E402
from connector.mapping import load_mapping  # noqa: E402
from segsync_sandbox.data import TECH_STACK  # noqa: E402

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


def salesforce_records(n: int, seed: int) -> list[dict[str, Any]]:
    """Raw Account records the way the Salesforce REST API returns them."""
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
                "SystemModstamp": "2026-11-20T10:00:00.000+0000",
            }
        )
    return out


def hubspot_records(sf: list[dict[str, Any]], seed: int) -> list[dict[str, str]]:
    """The same companies as HubSpot sends them: every property a string."""
    rnd = random.Random(seed + 1)

    def s(v: Any) -> str:
        return "" if v is None else str(v)

    out: list[dict[str, str]] = []
    for i, r in enumerate(sf):
        last = r["LastActivityDate"]
        if last is None:
            notes = ""
        else:
            d = date.fromisoformat(last)
            ms = int(datetime(d.year, d.month, d.day, 13, 5, tzinfo=UTC).timestamp() * 1000)
            notes = str(ms) if rnd.random() < 0.5 else f"{last}T13:05:00.000Z"
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
            }
        )
    return out


def run(engine: Any, records: list[Any], crm: str, label: str) -> float:
    evaluate = engine.evaluate
    now = NOW
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        cpu_start = time.process_time()
        for r in records:
            evaluate(r, crm, now)
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu_start
    finally:
        gc.enable()
    rate = len(records) / elapsed
    # CPU time is what one core spent; on a busy machine it is the fairer figure.
    cpu_rate = len(records) / cpu if cpu > 0 else float("nan")
    print(
        f"{label:<40} {len(records):>9,} records: {elapsed:6.2f} s wall = {rate:>9,.0f}/s; "
        f"{cpu:6.2f} s CPU = {cpu_rate:>9,.0f}/s"
    )
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--mapping", default=str(templates.ACCOUNTS))
    args = parser.parse_args()

    # A trivial loop, to tell a slow (or busy) machine from a slow engine.
    probe = [{"a": i} for i in range(1_000_000)]
    start = time.perf_counter()
    for r in probe:
        r.get("a")
    calibration = len(probe) / (time.perf_counter() - start)
    del probe
    print(f"calibration: bare dict-get loop {calibration:,.0f} iterations/s")

    engine = compile_mapping(load_mapping(args.mapping))
    print(f"mapping {args.mapping} version {engine.version}; generating {args.records:,} records …")
    sf = salesforce_records(args.records, args.seed)
    hs = hubspot_records(sf, args.seed)

    run(engine, sf, "salesforce", "salesforce (JSON types)")
    run(engine, hs, "hubspot", "hubspot (all strings)")
    # A fresh engine: caches start empty, as in the first run of a sync.
    cold = compile_mapping(load_mapping(args.mapping))
    run(cold, sf[:100_000], "salesforce", "salesforce, fresh engine, first 100k")

    # Assignments are interned by decision (segment, tier, score rules hit,
    # persona): the reason line is built once per distinct decision.
    print(f"distinct assignments (reason lines built): {len(engine._compiler.intern):,}")

    counts: dict[tuple[str, str], int] = {}
    for r in sf:
        a = engine.evaluate(r, "salesforce", NOW)
        counts[(a.segment, a.tier)] = counts.get((a.segment, a.tier), 0) + 1
    print("\nsegment × tier (salesforce records):")
    for (seg, tier), n in sorted(counts.items()):
        print(f"  {seg:<20} {tier:<8} {n:>9,}  {n / len(sf):6.1%}")


if __name__ == "__main__":
    main()
