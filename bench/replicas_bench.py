"""Two `segsync run` replicas on PostgreSQL for minutes: claims, leases, ordering (issue 16).

Both CRM sandboxes run in this process (``--accounts`` accounts, 3 contacts
each); two real ``segsync run`` replicas share one PostgreSQL schema, with
the account and contact jobs of both CRMs every 2 s and ``lease_seconds``
``--lease``. People edit 3 accounts per CRM every 1.5 s. Halfway, the
replica holding the HubSpot account job is stopped (SIGSTOP) for
``--lease + 10`` s, then resumed. Then the edits stop, every job runs twice
more, both replicas get SIGTERM, and the figures are computed:

* **overlaps**: pairs of runs of one job whose time intervals overlap (must be 0);
* **not succeeded**: runs that did not succeed, besides those the SIGTERM
  stopped and the stopped replica's own run (ends ``aborted``, lease lost);
* **guard stops**: runs stopped by the mass-change guard (must be 0);
* **takeover**: seconds from SIGSTOP to the other replica taking the job;
* **steals / lost leases**: takeovers logged, and runs that found their
  lease gone (the stopped replica's, once resumed; tests/test_service_lease.py
  shows it then writes nothing);
* **wrong contacts**: contacts whose segment and tier differ from their
  account's at the end (must be 0).

    .venv/bin/python bench/replicas_bench.py [--minutes 5] [--accounts 200] [--lease 10]

Needs PostgreSQL on 127.0.0.1:5432 (database ``test``), as the tests do.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from click.testing import CliRunner

from connector import templates
from connector.cli import cli
from connector.engine import compile_mapping
from connector.mapping import load_mapping
from connector.store import Store
from connector.store.schema import job_leases
from segsync_sandbox.launcher import Sandboxes, start_sandboxes

ROOT = Path(__file__).resolve().parent.parent
CRMS = ("salesforce", "hubspot")
EDITS = {
    "salesforce": [
        {"Industry": "Computer Software", "NumberOfEmployees": 5000, "Intent_Score__c": 95},
        {"Industry": "Retail", "NumberOfEmployees": 40, "Intent_Score__c": 5},
    ],
    "hubspot": [
        {"industry": "COMPUTER_SOFTWARE", "numberofemployees": "5000", "intent_score": "95"},
        {"industry": "RETAIL", "numberofemployees": "40", "intent_score": "5"},
    ],
}


def _schema_url(conninfo: str) -> tuple[str, str]:
    schema = f"segsync_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        info = conn.info
    url = sa.URL.create(
        "postgresql+psycopg",
        username=info.user,
        host=info.host,
        port=info.port,
        database=info.dbname,
        query={"options": f"-csearch_path={schema}"},
    )
    return schema, url.render_as_string(hide_password=False)


def _edit(crms: Sandboxes, crm: str, record_id: str, values: dict[str, Any]) -> None:
    if crm == "salesforce":
        crms.salesforce.org.update("Account", record_id, values)
    else:
        crms.hubspot.portal.update("companies", record_id, values)


def _accounts(crms: Sandboxes, crm: str) -> dict[str, dict[str, Any]]:
    if crm == "salesforce":
        return {r["Id"]: r for r in crms.salesforce.org.records("Account")}
    return {r.id: dict(r.props) for r in crms.hubspot.portal.snapshot("companies")}


def _contacts(crms: Sandboxes, crm: str) -> dict[str, tuple[str | None, dict[str, Any]]]:
    if crm == "salesforce":
        return {r["Id"]: (r.get("AccountId"), r) for r in crms.salesforce.org.records("Contact")}
    portal = crms.hubspot.portal
    out: dict[str, tuple[str | None, dict[str, Any]]] = {}
    for record in portal.snapshot("contacts"):
        companies = portal.associated("contacts", record.id, "companies") or []
        out[record.id] = (companies[0] if companies else None, dict(record.props))
    return out


def _lease(store: Store, job: str) -> Any:
    with store.engine.connect() as conn:
        return conn.execute(sa.select(job_leases).where(job_leases.c.job == job)).first()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--accounts", type=int, default=200)
    parser.add_argument("--lease", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--postgres", default="host=127.0.0.1 port=5432 dbname=test user=postgres")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = Path(f"/tmp/segsync-replicas-{uuid.uuid4().hex[:6]}")
    work.mkdir(parents=True)
    schema, url = _schema_url(args.postgres)
    crms = start_sandboxes(accounts=args.accounts, contacts_per_account=3, seed=args.seed)
    replicas: list[subprocess.Popen[bytes]] = []
    figures: dict[str, Any] = {"minutes": args.minutes, "accounts": args.accounts}
    try:
        config = crms.write_config(work / "config.toml", store_url=url)
        text = config.read_text().replace("[sync]", f"[sync]\nlease_seconds = {args.lease}")
        text += "\n[service]\nport = 0\nshutdown_timeout_seconds = 10\n"
        for crm, obj in itertools.product(CRMS, ("account", "contact")):
            text += (
                f'[[service.jobs]]\nconnection = "{crm}"\nobject = "{obj}"\n'
                f"interval_minutes = {2 / 60}\n"
            )
        config.write_text(text)
        assert CliRunner().invoke(cli, ["provision", "--config", str(config)]).exit_code == 0
        store = Store.open(url)
        for i in (1, 2):
            with (work / f"replica-{i}.log").open("wb") as err:
                replicas.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "connector", "run", "--config", str(config)],
                        cwd=ROOT,
                        stdout=subprocess.DEVNULL,
                        stderr=err,
                    )
                )
        ids = {crm: sorted(_accounts(crms, crm)) for crm in CRMS}
        started = time.monotonic()
        end = started + args.minutes * 60
        stopped_phase_done = False
        by_pid = {p.pid: p for p in replicas}
        while time.monotonic() < end:
            for crm in CRMS:
                for record_id in rng.sample(ids[crm], 3):
                    _edit(crms, crm, record_id, rng.choice(EDITS[crm]))
            time.sleep(1.5)
            if not stopped_phase_done and time.monotonic() > started + args.minutes * 30:
                stopped_phase_done = True
                lease = _lease(store, "hubspot.account")
                pid = int(lease.holder.split()[2].split("@")[0])
                victim = by_pid.get(pid) or replicas[0]
                token = lease.token
                victim.send_signal(signal.SIGSTOP)
                at = time.monotonic()
                while True:
                    now = _lease(store, "hubspot.account")
                    if now.token > token and str(victim.pid) not in now.holder:
                        figures["takeover_seconds"] = round(time.monotonic() - at, 1)
                        break
                    if time.monotonic() - at > args.lease * 4 + 30:
                        figures["takeover_seconds"] = None
                        break
                    time.sleep(0.1)
                time.sleep(max(0.0, args.lease + 10 - (time.monotonic() - at)))
                victim.send_signal(signal.SIGCONT)
                figures["stopped_pid"] = victim.pid
        last = max(r.id for r in store.runs(1))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            after = [r for r in store.runs(500) if r.id > last and r.status == "succeeded"]
            if len({(r.connection, r.object) for r in after}) == 4 and len(after) >= 8:
                break
            time.sleep(1)
        for process in replicas:
            process.send_signal(signal.SIGTERM)
        for process in replicas:
            process.wait(timeout=60)
        runs = store.runs(100_000)
        store.close()
    finally:
        for process in replicas:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.kill()
                process.wait()
    by_job: dict[tuple[str, str], list[Any]] = {}
    for run in sorted(runs, key=lambda r: r.started_at):
        by_job.setdefault((run.connection, run.object), []).append(run)
    overlaps = sum(
        1
        for job_runs in by_job.values()
        for a, b in itertools.pairwise(job_runs)
        if a.finished_at is None or a.finished_at > b.started_at
    )
    not_ok = [
        (r.connection, r.object, r.status, (r.message or "")[:100])
        for r in runs
        if r.status != "succeeded" and "the service is stopping" not in (r.message or "")
    ]
    accounts_engine = compile_mapping(load_mapping(templates.ACCOUNTS))
    contacts_engine = compile_mapping(load_mapping(templates.CONTACTS))
    wrong = 0
    for crm in CRMS:
        a_out, c_out = accounts_engine.output_fields(crm), contacts_engine.output_fields(crm)
        accounts = _accounts(crms, crm)
        for _cid, (aid, fields) in _contacts(crms, crm).items():
            if aid is None:
                continue
            mine = (fields.get(c_out["segment"]), fields.get(c_out["tier"]))
            theirs = (accounts[aid].get(a_out["segment"]), accounts[aid].get(a_out["tier"]))
            wrong += mine != theirs
    crms.stop()
    logs = "".join((work / f"replica-{i}.log").read_text() for i in (1, 2))
    figures.update(
        runs={f"{c}.{o}": len(v) for (c, o), v in sorted(by_job.items())},
        overlaps=overlaps,
        not_succeeded=not_ok,
        guard_stops=sum("mass-change" in (r.message or "") for r in runs),
        steals=logs.count("taken over from"),
        lost_leases=logs.count("lost its lease") + logs.count("took the job over"),
        wrong_contacts=wrong,
    )
    with psycopg.connect(args.postgres, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
