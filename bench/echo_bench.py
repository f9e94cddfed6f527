"""No echo: what quiet incremental runs read and cost after segsync's own writes.

For each CRM on a fresh sandbox: provision, a full accounts sync and a full
contacts sync (every record written), then two incremental accounts syncs
and two incremental contacts syncs with no edit in between, then a person
edits ``--edited`` accounts (as in the CRM's UI) and one more incremental
accounts sync. Then the audit-trail cost: a person pins the tier of
``--pinned`` of the accounts by hand, and a full accounts sync runs on a new,
empty state store (a lost volume): it asks the CRM's history only about the
records whose values differ from the definition. Reports, per run, the
records planned (``read``), the echoes skipped, the records asked about
(``audited``) and found set by a person, the API calls and the calls by kind
from the sandbox's request log. The runs follow each other at once, so the
300 s look-back covers every write of the previous runs: the worst case for
echo reads.

    .venv/bin/python bench/echo_bench.py [--accounts 2000] [--contacts-per-account 3]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import OUT, SandboxProcess, provision, result_row, save, stamp, sync


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--contacts-per-account", type=int, default=3)
    parser.add_argument("--edited", type=float, default=0.01, help="share of accounts edited")
    parser.add_argument("--pinned", type=float, default=0.01, help="share of tiers pinned")
    parser.add_argument("--crm", choices=["salesforce", "hubspot", "all"], default="all")
    args = parser.parse_args()

    report: dict[str, Any] = {"when": stamp(), "args": vars(args), "runs": []}
    crms = ["salesforce", "hubspot"] if args.crm == "all" else [args.crm]
    for crm in crms:
        with SandboxProcess(
            OUT / f"echo-{crm}",
            args.accounts,
            contacts_per_account=args.contacts_per_account,
            only=crm,
        ) as sb:
            provision(sb.config, crm)

            def measured(label: str, obj: str, full: bool, crm: str = crm) -> None:
                sb.call("clear")
                result = sync(sb.config, crm, obj, full=full)
                kinds = sb.call("summary", crm=crm)["kinds"]
                row = {"crm": crm, "run": label, "object": obj, **result_row(result)}
                row["echoes"] = getattr(result, "echoes", None)
                row["audited"] = getattr(result, "audited", None)
                row["audit_persons"] = getattr(result, "audit_persons", None)
                row["overrides"] = result.summary.counts.overrides
                row["calls_by_kind"] = kinds
                report["runs"].append(row)
                print(
                    f"{crm:<10} {label:<30} read {row['read']:>6,} echoes "
                    f"{row['echoes'] if row['echoes'] is not None else '-':>6} "
                    f"written {row['written']:>6,} overrides {row['overrides']:>4} audited "
                    f"{row['audited']} ({row['audit_persons']} by a person) "
                    f"calls {row['api_calls']:>4,}  {kinds}",
                    flush=True,
                )

            measured("full accounts", "account", True)
            measured("full contacts", "contact", True)
            measured("incremental accounts 1", "account", False)
            measured("incremental accounts 2", "account", False)
            measured("incremental contacts 1", "contact", False)
            measured("incremental contacts 2", "contact", False)
            mutated = sb.call("mutate", crm=crm, share=args.edited, seed=3)
            measured(f"accounts, {mutated['edited']} edited", "account", False)
            pinned = sb.call("pin", crm=crm, share=args.pinned)["pinned"]
            os.environ["SEGSYNC_STORE__URL"] = f"sqlite:///{sb.store.with_name('fresh.db')}"
            sb.store.with_name("fresh.db").unlink(missing_ok=True)
            try:
                measured(f"empty store, {pinned} pinned", "account", False)
            finally:
                del os.environ["SEGSYNC_STORE__URL"]
    path = save("echo", report)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
