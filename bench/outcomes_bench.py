"""Deals: API calls of deal pulls against the minimum, and the outcome report's time on 1M deals.

Part 1, per CRM, on in-process sandboxes of ``--accounts`` companies (about
1.37 deals each): a full deal sync, a quiet incremental one, then ``--edited``
deals edited through the API and one more incremental sync. Reports the
deals read, the API calls and the minimum (docs/crm-apis.md, "Deals,
read-only"), and the seconds.

Part 2, pure: ``--deals`` synthetic deals over ``--deals / 5`` accounts with
three tiers, twelve segments and ten rules each; the grouping by tier per
quarter and the rule lift table, two ways, each in a process of its own so
that its peak RSS is its own: ``listed`` (the deals read into a list first,
as the command did before 2026-11-30) and ``streamed`` (one pass over the
deals as they come, as ``segsync outcomes`` reads them from the store now:
``OutcomeTally`` / ``LiftTally``). Reports CPU seconds (``process_time``)
and the process's peak RSS.

    .venv/bin/python bench/outcomes_bench.py [--accounts 2000] [--deals 1000000]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from connector.analysis.outcomes import Account, LiftTally, OutcomeTally, outcomes, rule_lift
from connector.config import HubSpotConnection, SalesforceConnection
from connector.crm.hubspot import HubSpotAdapter
from connector.crm.salesforce import SalesforceAdapter
from connector.state import DealRecord
from connector.store.store import Store
from connector.sync.deals import sync_deals
from segsync_sandbox.launcher import start_sandboxes

OUT = Path(__file__).resolve().parent / "out"


def pulls(accounts: int, edited: int) -> list[dict[str, Any]]:
    """Part 1: calls of full, quiet and edited deal syncs in both CRMs."""
    rows: list[dict[str, Any]] = []
    with (
        start_sandboxes(accounts=accounts, save_interval=None) as sb,
        Store.open("sqlite://") as store,
    ):
        sf, hs = sb.salesforce, sb.hubspot
        limits = hs.portal.limits
        adapters = {
            "salesforce": SalesforceAdapter(
                "salesforce",
                SalesforceConnection(
                    auth="client_credentials",
                    login_url=sf.login_url,
                    instance_url=sf.instance_url,
                    ca_file=sf.ca_file,
                    client_id=sf.client_id,
                    client_secret=SecretStr(sf.client_secret),
                ),
            ),
            "hubspot": HubSpotAdapter(
                "hubspot",
                HubSpotConnection(
                    base_url=hs.base_url,
                    access_token=SecretStr(hs.access_token),
                    requests_per_10s=int(limits.requests_per_10s),
                    search_per_second=max(1, int(limits.search_per_second) - 1),
                ),
            ),
        }
        for crm, adapter in adapters.items():

            def run(label: str, crm: str = crm, adapter: Any = adapter) -> None:
                result = sync_deals(adapter, store, crm, lookback=timedelta(0))
                rows.append(
                    {
                        "crm": crm,
                        "run": label,
                        "read": result.read,
                        "api_calls": result.api_calls,
                        "minimum": result.minimum_calls,
                        "ratio": round(result.api_calls / max(1, result.minimum_calls), 2),
                        "seconds": round(result.seconds, 2),
                    }
                )

            run("full")
            run("quiet")
            if crm == "salesforce":
                client = sf.client()
                for r in list(sf.org.records("Opportunity"))[:edited]:
                    client.Opportunity.update(r["Id"], {"Amount": 777})
            else:
                client = hs.client()
                for r in hs.portal.snapshot("deals")[:edited]:
                    client.crm.deals.basic_api.update(r.id, {"properties": {"amount": "777"}})
            run(f"{edited} edited")
            adapter.close()
    return rows


def _deals(n_deals: int, n_accounts: int, rng: random.Random) -> Iterator[DealRecord]:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    for i in range(n_deals):
        created = start + timedelta(minutes=rng.randrange(700 * 24 * 60))
        closed = rng.random() < 0.8
        yield DealRecord(
            id=f"d{i}",
            account_id=f"a{rng.randrange(n_accounts)}",
            pipeline="default",
            stage="s",
            is_closed=closed,
            is_won=closed and rng.random() < 0.3,
            amount=float(rng.randrange(1000, 100000)),
            created_at=created,
            closed_at=created + timedelta(days=rng.randrange(10, 200)) if closed else None,
            lost_reason=None,
            stamp=created,
        )


def report_time(n_deals: int, mode: str, seed: int = 7) -> dict[str, Any]:
    """Part 2: the pure analysis on ``n_deals`` synthetic deals, ``listed`` or ``streamed``."""
    rng = random.Random(seed)
    n_accounts = max(1, n_deals // 5)
    tiers, segments = ("Tier 1", "Tier 2", "Tier 3"), [f"Segment {i}" for i in range(12)]
    accounts = {
        f"a{i}": Account({"tier": rng.choice(tiers), "segment": rng.choice(segments)})
        for i in range(n_accounts)
    }
    rules = {
        f"a{i}": {f"rule {k}": rng.random() < 0.5 for k in range(10)} for i in range(n_accounts)
    }
    base_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Timed without tracemalloc (it slows Python several times); peak RSS after.
    t0 = time.process_time()
    if mode == "listed":
        deals = list(_deals(n_deals, n_accounts, rng))
        report = outcomes(deals, accounts, "tier", period="quarter", order=tiers)
        lift = rule_lift(deals, rules)
    else:
        tally = OutcomeTally(accounts, "tier", period="quarter", order=tiers)
        lifts = LiftTally(rules)
        for deal in _deals(n_deals, n_accounts, rng):
            tally.add(deal)
            lifts.add(deal)
        report, lift = tally.report(), lifts.rows()
    t1 = time.process_time()
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "mode": mode,
        "deals": n_deals,
        "accounts": n_accounts,
        "groups": len(report.groups),
        "periods": len(report.periods),
        "won": sum(g.won for g in report.groups),
        "rules": len(lift),
        "cpu_seconds": round(t1 - t0, 2),
        "peak_rss_mib_process": round(peak_kib / 1024, 1),
        "rss_mib_before_deals": round(base_kib / 1024, 1),
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
    }


def main() -> None:
    """Run both parts; print one JSON line per measurement and save them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--edited", type=int, default=50)
    parser.add_argument("--deals", type=int, default=1_000_000)
    parser.add_argument("--skip-pulls", action="store_true", help="only the report's time")
    parser.add_argument("--report-mode", choices=["listed", "streamed"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.report_mode:  # one measurement, in this process (see the docstring)
        print(json.dumps(report_time(args.deals, args.report_mode)))
        return
    result: dict[str, Any] = {
        "args": vars(args),
        "pulls": [] if args.skip_pulls else pulls(args.accounts, args.edited),
    }
    for row in result["pulls"]:
        print(json.dumps(row))
    result["report"] = []
    for mode in ("listed", "streamed"):
        done = subprocess.run(
            [sys.executable, __file__, "--deals", str(args.deals), "--report-mode", mode],
            check=True,
            capture_output=True,
            text=True,
        )
        row = json.loads(done.stdout.strip().splitlines()[-1])
        print(json.dumps(row))
        result["report"].append(row)
    OUT.mkdir(exist_ok=True)
    (OUT / "outcomes.json").write_text(json.dumps(result, indent=1), encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
