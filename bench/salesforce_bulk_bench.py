"""Salesforce REST against Bulk API 2.0: reads and writes, and where to switch over.

Every call takes 80–150 ms (faults ``latency_ms=80, jitter_ms=70``). Each
path is forced through the connection settings ``bulk_read_threshold`` and
``bulk_write_threshold`` (1 = always Bulk, 10**9 = never).

* Reads: a full dry-run sync (pull + plan, no write) over each of
  ``--read-sizes`` accounts, REST pages of 2,000 against one Bulk query job.
* Writes: a full sync writing every one of ``--write-accounts`` accounts,
  from the same snapshot: REST collections (shipped settings), Bulk forced
  (the adapter sizes the runner's write chunks: one job), and Bulk forced
  with the runner's chunk held at 500 updates (what the runner did before
  the adapter sized its chunks: one job per 500).

    .venv/bin/python bench/salesforce_bulk_bench.py [--read-sizes 10000,100000]
        [--write-accounts 20000]
"""

from __future__ import annotations

import argparse
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

LATENCY = {"latency_ms": 80, "jitter_ms": 70, "seed": 3}
NEVER = 10**9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--read-sizes", default="10000,100000")
    parser.add_argument("--write-accounts", type=int, default=20_000)
    args = parser.parse_args()
    report: dict[str, Any] = {"when": stamp(), "args": vars(args), "reads": [], "writes": []}

    for size in [int(s) for s in args.read_sizes.split(",") if s]:
        work = OUT / f"sf-read-{size}"
        with SandboxProcess(work, size, only="salesforce") as sb:
            provision(sb.config, "salesforce")
            for route, threshold in (("REST", NEVER), ("Bulk 2.0", 1)):
                config = tune_config(
                    sb.config,
                    work / f"{route[:4].lower()}.toml",
                    salesforce={"bulk_read_threshold": threshold},
                )
                sb.call("clear")
                sb.call("faults", crm="salesforce", faults=LATENCY)
                result = sync(config, "salesforce", full=True, dry_run=True)
                summary = sb.call("summary", crm="salesforce")
                row = {"accounts": size, "path": route, **result_row(result)}
                row["calls_by_kind"] = summary["kinds"]
                row["records_per_second"] = round(result.summary.counts.read / result.seconds)
                report["reads"].append(row)
                print(
                    f"read {size:>8,} via {route:<8}: {result.api_calls:>4} calls, "
                    f"{result.seconds:6.1f} s, {row['records_per_second']:,} records/s "
                    f"{summary['kinds']}",
                    flush=True,
                )

    n = args.write_accounts
    work = OUT / f"sf-write-{n}"
    with SandboxProcess(work, n, only="salesforce") as sb:
        provision(sb.config, "salesforce")
        snapshot = sb.call("snapshot", dir=str(work / "snapshot"))["snapshot"]
        variants: tuple[tuple[str, dict[str, int], int | None], ...] = (
            ("REST collections (shipped settings)", {}, None),
            ("Bulk 2.0 forced (bulk_write_threshold = 1)", {"bulk_write_threshold": 1}, None),
            ("Bulk 2.0 forced, runner chunk held at 500", {"bulk_write_threshold": 1}, 500),
        )
        for index, (label, settings, chunk) in enumerate(variants):
            sb.call("restore", dir=snapshot)
            config = tune_config(
                sb.config,
                work / f"write{index}.toml",
                salesforce={"bulk_read_threshold": NEVER, **settings},
            )
            config.with_name(f"state{index}.db").unlink(missing_ok=True)
            text = config.read_text().replace("state.db", f"state{index}.db")
            config.write_text(text)
            sb.call("faults", crm="salesforce", faults=LATENCY)
            result = sync(config, "salesforce", full=True, write_chunk=chunk)
            summary = sb.call("summary", crm="salesforce")
            check = sb.call("check", crm="salesforce")
            row = {"accounts": n, "path": label, **result_row(result)}
            row["calls_by_kind"] = summary["kinds"]
            row["state_check"] = check
            report["writes"].append(row)
            print(
                f"write {n:,} via {label}: {result.api_calls} calls, {result.seconds:.1f} s, "
                f"written {result.written:,}, wrong after {check['wrong']} {summary['kinds']}",
                flush=True,
            )
    path = save("salesforce-bulk", report)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
