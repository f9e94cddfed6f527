"""Always current: API calls of due re-evaluation and of propagation to contacts, both CRMs.

For each CRM on a fresh sandbox (look-back 0, so an incremental run pulls only
what changed since the previous one): provision, full accounts and contacts
syncs, one quiet incremental run of each (they re-read the full runs' own
writes). Then:

- **due**: the runner's clock is moved to successive due dates stored by the
  full run (the next ``within_days`` boundaries that change an account), and an
  incremental accounts run is measured at each: it fetches the due records by
  id and rewrites them. A quiet run follows each (the echo of those writes).
- **propagation**: ``--shares`` of the accounts get an intent edit, an
  incremental accounts run marks those whose segment or tier moved, and the
  next incremental contacts run is measured: it reads the contacts of exactly
  those accounts (Salesforce ``AccountId IN``; HubSpot association batch reads,
  then contacts by id with their companies' fields).

Calls by kind come from the sandbox's request log.

    .venv/bin/python bench/current_bench.py [--accounts 2000] [--contacts-per-account 3]
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    OUT,
    ROOT,
    SandboxProcess,
    provision,
    result_row,
    save,
    stamp,
    tune_config,
)

from connector.commands.crm import open_context
from connector.store.store import Store
from connector.sync.runner import Runner, RunResult


def run(config: Path, crm: str, obj: str, now: datetime, *, full: bool = False) -> RunResult:
    """One cycle through the production wiring, the runner's clock at ``now``."""
    os.chdir(ROOT)
    with open_context(config, crm=crm) as ctx:
        (job,) = ctx.jobs(crm, obj)
        runner = Runner(ctx.store, ctx.settings.sync, clock=lambda: now)
        return runner.run(job, full=full, force=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--contacts-per-account", type=int, default=3)
    parser.add_argument("--due-runs", type=int, default=4)
    parser.add_argument("--shares", type=float, nargs="*", default=[0.01, 0.1])
    parser.add_argument("--crm", choices=["salesforce", "hubspot", "all"], default="all")
    args = parser.parse_args()

    report: dict[str, Any] = {"when": stamp(), "args": vars(args), "runs": []}
    crms = ["salesforce", "hubspot"] if args.crm == "all" else [args.crm]
    for crm in crms:
        with SandboxProcess(
            OUT / f"current-{crm}",
            args.accounts,
            contacts_per_account=args.contacts_per_account,
            only=crm,
        ) as sb:
            config = tune_config(
                sb.config, sb.config.with_name("tuned.toml"), sync={"lookback_seconds": 0}
            )
            provision(config, crm)
            store = Store.open(f"sqlite:///{sb.store}")

            def measured(
                label: str,
                obj: str,
                now: datetime,
                crm: str = crm,
                config: Path = config,
                **extra: Any,
            ) -> RunResult:
                sb.call("clear")
                result = run(config, crm, obj, now)
                summary = sb.call("summary", crm=crm)
                row = {"crm": crm, "run": label, "object": obj, **extra, **result_row(result)}
                row["calls_by_kind"] = summary["kinds"]
                report["runs"].append(row)
                shown = "  ".join(f"{k}={v}" for k, v in extra.items())
                print(
                    f"{crm:<10} {label:<28} {shown:<22} read {row['read']:>6,} "
                    f"changed {row['changed']:>6,} calls {row['api_calls']:>4,}  "
                    f"by kind: {summary['kinds']}",
                    flush=True,
                )
                return result

            now = datetime.now(UTC)
            for obj in ("account", "contact"):
                run(config, crm, obj, now, full=True)
            now += timedelta(minutes=1)
            for obj in ("account", "contact"):
                run(config, crm, obj, now)

            # -- due re-evaluation ---------------------------------------------
            ids = sb.call("ids", crm=crm, share=1.0)["ids"]
            due = store.due(crm, "account", ids)
            print(f"{crm}: {len(due):,} of {len(ids):,} accounts have a due date")
            for moment in sorted(set(due.values()))[: args.due_runs]:
                now = max(now, moment)
                count = len(store.due_ids(crm, "account", now))
                measured("due", "account", now, due=count)
                now += timedelta(minutes=1)
                measured("echo of the due run", "account", now)

            # The due runs moved some tiers: their contacts follow (and the marks go).
            now += timedelta(minutes=1)
            marked = len(store.changed_parents(crm, "account"))
            measured("contacts after the due runs", "contact", now, marked=marked)
            now += timedelta(minutes=1)
            measured("echo of the contact run", "contact", now)

            # -- propagation -----------------------------------------------------
            for share in args.shares:
                sb.call("mutate", crm=crm, share=share, seed=int(share * 1000))
                now += timedelta(minutes=1)
                measured("accounts after edits", "account", now, share=share)
                marked = len(store.changed_parents(crm, "account"))
                now += timedelta(minutes=1)
                measured("contacts (propagation)", "contact", now, marked=marked)
                now += timedelta(minutes=1)
                measured("echo of the contact run", "contact", now)
            store.close()
    path = save("current", report)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
