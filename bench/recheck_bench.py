"""Write only what is still true: what the re-read before each write chunk costs.

For each CRM and each size (``--sizes``), two fresh sandboxes with that many
accounts: provision, then one full accounts sync that writes every record,
once with ``sync.recheck_before_write = true`` (the default) and once with it
off. Reports the API calls (by kind, from the sandbox's request log), the
re-read's own calls (``RunResult.recheck_calls``) and the wall time of the
run. Salesforce above ``bulk_write_threshold`` (10,000) would write through
Bulk 2.0; the sizes here take the Collections path, as an incremental run does.

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
    args = parser.parse_args()

    report: dict[str, Any] = {"when": stamp(), "args": vars(args), "runs": []}
    crms = ["salesforce", "hubspot"] if args.crm == "all" else [args.crm]
    for crm in crms:
        for size in args.sizes:
            for recheck in (False, True):
                workdir = OUT / f"recheck-{crm}-{size}-{'on' if recheck else 'off'}"
                with SandboxProcess(workdir, size, only=crm) as sb:
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
                    **result_row(result),
                    "recheck_calls": result.recheck_calls,
                    "changed_since_plan": result.changed_since_plan,
                    "calls_by_kind": kinds,
                }
                report["runs"].append(row)
                print(
                    f"{crm:<10} {size:>6,} recheck {'on ' if recheck else 'off'} "
                    f"written {row['written']:>6,} calls {row['api_calls']:>4,} "
                    f"(re-read {row['recheck_calls']:>3}) {row['seconds']:>6.2f} s  {kinds}",
                    flush=True,
                )
    path = save("recheck", report)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
