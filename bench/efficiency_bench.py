"""API-call efficiency: calls used ÷ the minimum (docs/crm-apis.md#minimum-calls), both CRMs.

For each CRM, on a fresh sandbox: provision, then (request log cleared before
each run) a full accounts sync, a full contacts sync, an incremental accounts
sync right after (it re-reads the records the full run just wrote: their
modstamps moved), then ``--changed`` of the accounts get an input edited that
must change their outputs, and one more incremental accounts sync. Calls are
reported by kind from the sandbox's request log, so the overheads (token,
describe, COUNT(), association and parent reads) are visible.

Then one more incremental run, with nothing edited since the edit run.

Two ratios per run: against the runner's ``minimum_calls`` (the floor for
what changed outside segsync since the last run) and, for incremental runs,
against the true minimum computed here from the records the bench edited
(one call when it edited none). ``read_floor`` is the runner's floor for
what the run read, re-reads included.

    .venv/bin/python bench/efficiency_bench.py [--accounts 5000] [--contacts-per-account 2]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    OUT,
    SandboxProcess,
    provision,
    result_row,
    save,
    stamp,
    sync,
    tune_config,
)

MIN_PAGE = {"salesforce": (2000, 2000, 200), "hubspot": (100, 200, 100)}


def ideal(crm: str, read: int, changed: int, incremental: bool) -> int:
    """The true minimum: an incremental run reads at least one page, even when quiet."""
    full_page, search_page, batch = MIN_PAGE[crm]
    page = search_page if incremental else full_page
    reads = max(1, math.ceil(read / page)) if incremental else math.ceil(read / page)
    return reads + math.ceil(changed / batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=5000)
    parser.add_argument("--contacts-per-account", type=int, default=2)
    parser.add_argument("--changed", type=float, default=0.2)
    parser.add_argument(
        "--lookback",
        type=int,
        default=None,
        help="[sync] lookback_seconds for the runs (default: the shipped 300)",
    )
    parser.add_argument("--crm", choices=["salesforce", "hubspot", "all"], default="all")
    parser.add_argument(
        "--no-recheck",
        action="store_true",
        help="[sync] recheck_before_write = false (no re-read of each write chunk by id)",
    )
    parser.add_argument(
        "--ingest-rows-per-second",
        type=float,
        default=2000.0,
        help="how fast the Salesforce sandbox applies a Bulk 2.0 ingest job's rows "
        "(0: the sandbox's poll-count model, 3 polls a job)",
    )
    args = parser.parse_args()

    report: dict[str, Any] = {"when": stamp(), "args": vars(args), "runs": []}
    crms = ["salesforce", "hubspot"] if args.crm == "all" else [args.crm]
    for crm in crms:
        with SandboxProcess(
            OUT / f"efficiency-{crm}",
            args.accounts,
            contacts_per_account=args.contacts_per_account,
            only=crm,
        ) as sb:
            config = sb.config
            tuned: dict[str, Any] = {}
            if args.lookback is not None:
                tuned["lookback_seconds"] = args.lookback
            if args.no_recheck:
                tuned["recheck_before_write"] = False
            if tuned:
                config = tune_config(sb.config, sb.config.with_name("tuned.toml"), sync=tuned)
            provision(config, crm)
            if crm == "salesforce" and args.ingest_rows_per_second:
                sb.call("bulk", ingest_rows_per_second=args.ingest_rows_per_second)

            def measured(
                label: str,
                obj: str,
                full: bool,
                edited: int | None = None,
                crm: str = crm,
                config: Path = config,
            ) -> None:
                sb.call("clear")
                result = sync(config, crm, obj, full=full)
                summary = sb.call("summary", crm=crm)
                row = {"crm": crm, "run": label, "object": obj, **result_row(result)}
                row["calls_by_kind"] = summary["kinds"]
                row["http_requests_seen_by_sandbox"] = summary["requests"]
                if edited is not None:
                    best = ideal(crm, edited, edited, incremental=True)
                    row["edited"] = edited
                    row["ideal_calls_for_edited_only"] = best
                    row["ratio_vs_edited_only"] = (
                        round(result.api_calls / best, 3) if best else None
                    )
                report["runs"].append(row)
                print(
                    f"{crm:<10} {label:<34} read {row['read']:>7,} changed {row['changed']:>7,} "
                    f"calls {row['api_calls']:>5,} min {row['minimum_calls']:>5,} "
                    f"ratio {row['ratio']} {row.get('ratio_vs_edited_only', '')}  "
                    f"{row['seconds']:.1f}s\n           by kind: {summary['kinds']}",
                    flush=True,
                )

            measured("full accounts", "account", True)
            if args.contacts_per_account:
                measured("full contacts", "contact", True)
            measured("incremental right after (echo)", "account", False, edited=0)
            mutated = sb.call("mutate", crm=crm, share=args.changed, seed=3)
            measured(f"incremental, {args.changed:.0%} edited", "account", False, mutated["edited"])
            measured("incremental right after the edit run", "account", False, edited=0)
            report.setdefault("mutations", {})[crm] = mutated
    name = f"efficiency-lookback{args.lookback}" + ("-norecheck" if args.no_recheck else "")
    path = save(name, report)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
