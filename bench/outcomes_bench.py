"""Deals: API calls of deal pulls against the minimum, and the outcome report's time on 1M deals.

Part 1, per CRM, on in-process sandboxes of ``--accounts`` companies (about
1.37 deals each): a full deal sync, a quiet incremental one, then ``--edited``
deals edited through the API and one more incremental sync. Reports the
deals read, the API calls and the minimum (docs/crm-apis.md, "Deals,
read-only"), and the seconds.

Part 2, pure: ``--deals`` synthetic deals over ``--deals / 5`` accounts with
three tiers, twelve segments and ten rules each; times the grouping by tier
per quarter (``outcomes``) and the rule lift table (``rule_lift``), and
reports the process's peak RSS (deals held in memory included).

    .venv/bin/python bench/outcomes_bench.py [--accounts 2000] [--deals 1000000]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from connector.analysis.outcomes import Account, outcomes, rule_lift
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


def report_time(n_deals: int, seed: int = 7) -> dict[str, Any]:
    """Part 2: the pure analysis on ``n_deals`` synthetic deals."""
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
    start = datetime(2025, 1, 1, tzinfo=UTC)
    deals = []
    for i in range(n_deals):
        created = start + timedelta(minutes=rng.randrange(700 * 24 * 60))
        closed = rng.random() < 0.8
        deals.append(
            DealRecord(
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
        )
    # Timed without tracemalloc (it slows Python several times); peak RSS after.
    t0 = time.perf_counter()
    report = outcomes(deals, accounts, "tier", period="quarter", order=tiers)
    t1 = time.perf_counter()
    lift = rule_lift(deals, rules)
    t2 = time.perf_counter()
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "deals": n_deals,
        "accounts": n_accounts,
        "groups": len(report.groups),
        "periods": len(report.periods),
        "rules": len(lift),
        "outcomes_seconds": round(t1 - t0, 2),
        "rule_lift_seconds": round(t2 - t1, 2),
        "peak_rss_mib_process": round(peak_kib / 1024, 1),
    }


def main() -> None:
    """Run both parts; print one JSON line per measurement and save them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--edited", type=int, default=50)
    parser.add_argument("--deals", type=int, default=1_000_000)
    parser.add_argument("--skip-pulls", action="store_true", help="only the report's time")
    args = parser.parse_args()
    result: dict[str, Any] = {
        "args": vars(args),
        "pulls": [] if args.skip_pulls else pulls(args.accounts, args.edited),
    }
    for row in result["pulls"]:
        print(json.dumps(row))
    result["report"] = report_time(args.deals)
    print(json.dumps(result["report"]))
    OUT.mkdir(exist_ok=True)
    (OUT / "outcomes.json").write_text(json.dumps(result, indent=1), encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
