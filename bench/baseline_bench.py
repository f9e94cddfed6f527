"""The hand-written RevOps script against segsync: calls and wall time, same data, same latency.

The baseline is what a RevOps engineer writes without segsync: read every
account, compute its values (with our engine, to be fair), and update each
record on its own — ``sf.Account.update(id, {...})`` with simple-salesforce,
``companies.basic_api.update(id, ...)`` with hubspot-api-client — no diff, so
it writes every record on every run, one call each, sequentially.

Per CRM, on ``--accounts`` accounts with 80–150 ms per call:

* baseline script (first run: every record needs its values);
* segsync full sync on the same starting state (restored snapshot);
* ``--changed`` of the accounts edited, segsync incremental sync; the baseline
  would do exactly what it did on its first run again (it does not diff), so
  its figures are reused for this row.

    .venv/bin/python bench/baseline_bench.py [--accounts 1000] [--changed 0.2]
"""

from __future__ import annotations

import argparse
import sys
import time
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    OUT,
    SandboxProcess,
    provision,
    result_row,
    save,
    stamp,
    sync,
)

from connector import templates
from connector.crm.hubspot import to_wire
from connector.crm.salesforce import to_json
from connector.engine import compile_mapping
from connector.mapping import load_mapping

LATENCY = {"latency_ms": 80, "jitter_ms": 70, "seed": 2}


def salesforce_script(config: dict[str, Any]) -> int:
    """The per-record Salesforce script; returns records updated."""
    from simple_salesforce.api import Salesforce

    conn = config["connections"]["salesforce"]
    http = requests.Session()
    http.trust_env = False
    http.verify = conn["ca_file"]
    token = http.post(
        conn["login_url"] + "/services/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": conn["client_id"],
            "client_secret": conn["client_secret"],
        },
        timeout=60,
    ).json()
    sf = Salesforce(
        instance_url=token["instance_url"], session_id=token["access_token"], session=http
    )
    engine = compile_mapping(load_mapping(templates.ACCOUNTS))
    fields = ", ".join(dict.fromkeys(["Id", *engine.input_fields("salesforce")]))
    now = datetime.now(UTC)
    updated = 0
    # sf.Account is built by __getattr__ (untyped for mypy).
    account: Any = sf.Account
    for record in sf.query_all_iter(f"SELECT {fields} FROM Account"):
        values = engine.evaluate(record, "salesforce", now).outputs("salesforce", now)
        account.update(record["Id"], {k: to_json(v) for k, v in values.items()})
        updated += 1
    return updated


def hubspot_script(config: dict[str, Any]) -> int:
    """The per-record HubSpot script; returns records updated."""
    from hubspot import HubSpot
    from hubspot.crm.companies import SimplePublicObjectInput

    conn = config["connections"]["hubspot"]
    client = HubSpot(access_token=conn["access_token"], host=conn["base_url"])
    engine = compile_mapping(load_mapping(templates.ACCOUNTS))
    now = datetime.now(UTC)
    companies = client.crm.companies
    updated = 0
    for company in companies.get_all(properties=list(engine.input_fields("hubspot"))):
        values = engine.evaluate(company.properties, "hubspot", now).outputs("hubspot", now)
        companies.basic_api.update(
            company.id,
            SimplePublicObjectInput(properties={k: to_wire(v) for k, v in values.items()}),
        )
        updated += 1
    return updated


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--changed", type=float, default=0.2)
    parser.add_argument("--crm", choices=["salesforce", "hubspot", "all"], default="all")
    args = parser.parse_args()

    report: dict[str, Any] = {"when": stamp(), "args": vars(args), "rows": []}
    crms = ["salesforce", "hubspot"] if args.crm == "all" else [args.crm]
    for crm in crms:
        work = OUT / f"baseline-{crm}"
        with SandboxProcess(work, args.accounts, only=crm) as sb:
            config_doc = tomllib.loads(sb.config.read_text(encoding="utf-8"))
            provision(sb.config, crm)
            snapshot = sb.call("snapshot", dir=str(work / "snapshot"))["snapshot"]

            sb.call("clear")
            sb.call("faults", crm=crm, faults=LATENCY)
            started = time.monotonic()
            updated = (salesforce_script if crm == "salesforce" else hubspot_script)(config_doc)
            base_seconds = time.monotonic() - started
            base = sb.call("summary", crm=crm)
            check = sb.call("check", crm=crm)
            print(
                f"{crm} baseline: {updated:,} updated, {base['requests']:,} calls "
                f"{base['kinds']}, {base_seconds:.1f} s, state check {check}",
                flush=True,
            )

            sb.call("restore", dir=snapshot)
            sb.call("faults", crm=crm, faults=LATENCY)
            rows = []
            full = sync(sb.config, crm, full=True)
            full_summary = sb.call("summary", crm=crm)
            rows.append(("first run (all records need values)", full, full_summary))
            sb.call("faults", crm=crm, faults={})
            edited = sb.call("mutate", crm=crm, share=args.changed, seed=4)
            sb.call("faults", crm=crm, faults=LATENCY)
            sb.call("clear")
            incremental = sync(sb.config, crm)
            rows.append(
                (
                    f"next run ({args.changed:.0%} edited)",
                    incremental,
                    sb.call("summary", crm=crm),
                )
            )
            report.setdefault("checks", {})[crm] = sb.call("check", crm=crm)
            for label, result, summary in rows:
                row = {
                    "crm": crm,
                    "scenario": label,
                    "baseline_calls": base["requests"],
                    "baseline_seconds": round(base_seconds, 1),
                    "segsync": result_row(result),
                    "segsync_calls_by_kind": summary["kinds"],
                    "calls_ratio": round(base["requests"] / max(1, result.api_calls), 1),
                    "time_ratio": round(base_seconds / result.seconds, 1),
                    "edited": edited["edited"] if "edited" in label else None,
                }
                report["rows"].append(row)
                print(
                    f"{crm} {label}: segsync {result.api_calls:,} calls {result.seconds:.1f} s "
                    f"vs baseline {base['requests']:,} calls {base_seconds:.1f} s → "
                    f"{row['calls_ratio']}× calls, {row['time_ratio']}× time",
                    flush=True,
                )
    path = save(f"baseline-{args.accounts}", report)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
