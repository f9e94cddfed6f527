"""Steady state: runs on a schedule, a small share of the accounts edited between runs.

For each CRM on a fresh sandbox (``--accounts``, no contacts): provision, a full
accounts sync, a quiet incremental run right after it (nothing changed outside
segsync: the true minimum is one call), then ``--cycles`` times: ``--share`` of
the accounts get an input edit that changes their outputs (the sandbox's
``mutate``, a different sample each cycle), and one incremental run. Runs
follow each other within the look-back window (300 s), the case where every
earlier edit and write is still inside it.

Each run's calls are counted by the sandbox's request log, by kind, and set
against the true minimum computed here from what the bench itself edited
(E records, all of whose outputs change): ⌈E/page⌉ reads (at least one) +
⌈E/batch⌉ writes (docs/crm-apis.md#minimum-calls); HubSpot 200 a search page
and 100 a batch update, Salesforce 2,000 a query page and 200 a collection.
Two ratios: all calls, and calls less the kinds the minimum leaves out on
purpose (Salesforce's token and describe per process, until they are cached;
the re-read before each write chunk, ``recheck_before_write``).

    .venv/bin/python bench/steady_bench.py [--accounts 20000] [--share 0.01] [--cycles 5]
"""

from __future__ import annotations

import argparse
import math
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import OUT, SandboxProcess, provision, save, stamp, sync

#: (read page, write batch) of the true minimum, per CRM.
PAGES = {"salesforce": (2000, 200), "hubspot": (200, 100)}
#: Calls the minimum leaves out on purpose (fixed per process; the re-read before writing).
FIXED = {"salesforce": ("token", "describe"), "hubspot": ()}
RECHECK = {"salesforce": ("query", "composite"), "hubspot": ("batch.read",)}


def true_minimum(crm: str, edited: int) -> int:
    page, batch = PAGES[crm]
    return max(1, math.ceil(edited / page)) + math.ceil(edited / batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--share", type=float, default=0.01)
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument("--crm", choices=["salesforce", "hubspot", "all"], default="all")
    args = parser.parse_args()

    report: dict[str, Any] = {"when": stamp(), "args": vars(args), "runs": []}
    crms = ["salesforce", "hubspot"] if args.crm == "all" else [args.crm]
    for crm in crms:
        with SandboxProcess(
            OUT / f"steady-{crm}", args.accounts, contacts_per_account=0, only=crm
        ) as sb:
            provision(sb.config, crm)

            def run(label: str, edited: int | None, crm: str = crm) -> dict[str, Any]:
                sb.call("clear")
                cpu = time.process_time()
                result = sync(sb.config, crm, "account", full=edited is None)
                cpu = time.process_time() - cpu
                kinds: dict[str, int] = sb.call("summary", crm=crm)["kinds"]
                calls = sum(kinds.values())
                row: dict[str, Any] = {
                    "crm": crm,
                    "run": label,
                    "edited": edited,
                    "read": result.summary.counts.read,
                    "outside": result.outside,
                    "rereads": result.rereads,
                    "echoes": result.echoes,
                    "written": result.written,
                    "calls": calls,
                    "calls_by_kind": kinds,
                    "runner_minimum": result.minimum_calls,
                    "runner_read_floor": result.read_floor_calls,
                    "cpu_seconds": round(cpu, 2),
                    "loadavg": Path("/proc/loadavg").read_text().split()[:3],
                }
                if edited is not None:
                    best = true_minimum(crm, edited)
                    own = sum(kinds.get(k, 0) for k in FIXED[crm])
                    # The re-read before writing: HubSpot's batch reads, Salesforce's
                    # queries beyond the pull's own first one, and its Composite calls.
                    rereads = sum(kinds.get(k, 0) for k in RECHECK[crm])
                    recheck = max(0, rereads - 1) if crm == "salesforce" else rereads
                    row["true_minimum"] = best
                    row["ratio"] = round(calls / best, 3)
                    row["calls_less_fixed_and_recheck"] = calls - own - recheck
                    row["ratio_less_fixed_and_recheck"] = round((calls - own - recheck) / best, 3)
                    row["reads_over_edits"] = (
                        round(result.summary.counts.read / edited, 3) if edited else None
                    )
                report["runs"].append(row)
                print(
                    f"{crm:<10} {label:<28} edited {edited if edited is not None else '-':>6} "
                    f"read {row['read']:>6,} (rereads {row['rereads']:,}, echoes "
                    f"{row['echoes']:,}) written {row['written']:>6,} calls {calls:>4} "
                    f"min {row.get('true_minimum', '-')} ratio {row.get('ratio', '-')} "
                    f"(less fixed/recheck {row.get('ratio_less_fixed_and_recheck', '-')})\n"
                    f"           by kind: {kinds}",
                    flush=True,
                )
                return row

            run("full accounts", None)
            run("quiet, right after the write", 0)
            for cycle in range(1, args.cycles + 1):
                edited = sb.call("mutate", crm=crm, share=args.share, seed=100 + cycle)["edited"]
                run(f"cycle {cycle}", edited)
            run("quiet, after the last cycle", 0)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    report["peak_rss_mb"] = round(usage.ru_maxrss / 1024, 1)
    path = save("steady", report)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
