"""Write only what is still true: what the re-read before each write chunk costs.

For each CRM and each size (``--sizes``), two fresh sandboxes with that many
accounts: provision, then one full accounts sync that writes every record,
once with ``sync.recheck_before_write = true`` (the default) and once with it
off. Reports the API calls (by kind, from the sandbox's request log), the
re-read's own calls (``RunResult.recheck_calls``) and the wall time of the
run. Salesforce above ``bulk_write_threshold`` (10,000) would write through
Bulk 2.0; the sizes here take the Collections path, as an incremental run does.

Salesforce runs twice more: the seeded accounts are stamped at load (seconds
before the run: *fresh*, re-read with their output values, 200 ids a query)
and, with ``--settled-age`` seconds (default one day), stamped that long ago
(*settled*: re-read by stamp and lock, about 440 ids a query); five queries
go in one Composite call either way.

    .venv/bin/python bench/recheck_bench.py [--sizes 1000 5000] [--crm all]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import OUT, SandboxProcess, provision, result_row, save, stamp, sync, tune_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--crm", choices=["salesforce", "hubspot", "all"], default="all")
    parser.add_argument("--settled-age", type=float, default=86_400.0)
    args = parser.parse_args()

    report: dict[str, Any] = {"when": stamp(), "args": vars(args), "runs": []}
    crms = ["salesforce", "hubspot"] if args.crm == "all" else [args.crm]
    for crm in crms:
        ages = [0.0, args.settled_age] if crm == "salesforce" else [0.0]
        for age in ages:
            for size in args.sizes:
                for recheck in (False, True):
                    report["runs"].append(_run(crm, size, recheck, age))
    path = save("recheck", report)
    print(f"saved {path}")


def _run(crm: str, size: int, recheck: bool, age: float) -> dict[str, Any]:
    """One fresh sandbox of ``size`` accounts, provisioned, then one full sync."""
    tag = f"{crm}-{size}-{'on' if recheck else 'off'}" + (f"-aged{int(age)}" if age else "")
    workdir = OUT / f"recheck-{tag}"
    with SandboxProcess(workdir, size, only=crm, age_seconds=age) as sb:
        config = tune_config(
            sb.config,
            workdir / "tuned.toml",
            sync={"recheck_before_write": recheck},
        )
        provision(config, crm)
        sb.call("clear")
        result = sync(config, crm, "account", full=True)
        kinds = sb.call("summary", crm=crm)["kinds"]
    row = {
        "crm": crm,
        "accounts": size,
        "recheck": recheck,
        "stamped_seconds_ago": age,
        **result_row(result),
        "recheck_calls": result.recheck_calls,
        "changed_since_plan": result.changed_since_plan,
        "calls_by_kind": kinds,
    }
    print(
        f"{crm:<10} {size:>6,} {'settled' if age else 'fresh  '} "
        f"recheck {'on ' if recheck else 'off'} "
        f"written {row['written']:>6,} calls {row['api_calls']:>4,} "
        f"(re-read {row['recheck_calls']:>3}) {row['seconds']:>6.2f} s  {kinds}",
        flush=True,
    )
    return row


if __name__ == "__main__":
    main()
