"""Both CRM sandboxes in their own process, driven by JSON commands on stdin.

The benchmarks measure the connector alone, so the sandboxes (which hold the
whole org in memory and burn CPU serving it) run here, in a separate process.
On start it loads the dataset (only into the CRMs asked for, so a 1M-account
Salesforce run does not also build a 1M-company portal), writes a connector
config, and prints one JSON line: ``{"ready": true, "config": ..., ...}``.
Then it answers one JSON line per command line read on stdin:

    {"op": "faults", "crm": "hubspot", "faults": {...}}   set injected faults
    {"op": "limits", "requests_per_10s": 190}             HubSpot portal limits
    {"op": "clear"}                                       request logs, windows, usage
    {"op": "bulk", "ingest_rows_per_second": 2000}        Salesforce Bulk 2.0 job settings
    {"op": "summary", "crm": "hubspot", "object": "account"}
                                                          calls by kind, 429s, writes per record,
                                                          undeclared fields written
    {"op": "mutate", "crm": "hubspot", "share": 0.2, "seed": 1}
                                                          edit inputs so outputs must change
    {"op": "check", "crm": "hubspot"}                     CRM state vs the engine on final inputs
    {"op": "ids", "crm": "hubspot", "share": 0.05}        a sample of record ids
    {"op": "counters", "crm": "hubspot"}                  the request log's counters
    {"op": "timeline", "crm": "hubspot"}                  [seconds, class, status] per request
    {"op": "snapshot", "dir": ...} / {"op": "restore", "dir": ...}
    {"op": "stop"}

Admin HTTP (``/__admin/counters``, ``/__admin/faults``) works too; this
channel exists for what needs the data itself (edits and state checks).

    .venv/bin/python bench/sandbox_proc.py --accounts 100000 --only hubspot --config-out F
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connector import templates  # noqa: E402
from connector.engine import Engine, compile_mapping  # noqa: E402
from connector.mapping import load_mapping  # noqa: E402
from segsync_sandbox import data  # noqa: E402
from segsync_sandbox.common import Faults  # noqa: E402
from segsync_sandbox.hubspot import Portal, start_hubspot  # noqa: E402
from segsync_sandbox.launcher import DatasetInfo, Sandboxes  # noqa: E402
from segsync_sandbox.salesforce import Org, start_salesforce  # noqa: E402
from segsync_sandbox.salesforce.org import format_datetime  # noqa: E402

KEYS = ("segment", "tier", "score.fit", "score.intent", "version")
WRITE_KINDS = {"batch.update", "update", "collections.update", "sobject.update", "composite"}


def _groups(rows: Iterable[Any], size: int) -> Iterator[list[Any]]:
    group: list[Any] = []
    for row in rows:
        group.append(row)
        if len(group) >= size:
            yield group
            group = []
    if group:
        yield group


def load(
    org: Org,
    portal: Portal,
    accounts: int,
    cpa: int,
    seed: int,
    only: str,
    group: int = 0,
    age: float = 0.0,
) -> None:
    """The launcher's dataset, streamed into the CRMs asked for only.

    The sandboxes stamp every record of one load call with one modstamp. With
    ``group`` > 0 accounts are loaded ``group`` at a time, so they carry
    modstamps the way records saved in transactions of that size do. With
    ``age`` > 0 Salesforce accounts were last changed ``age`` seconds ago.
    """
    ref = data.REFERENCE
    if only in ("all", "salesforce"):
        aged: dict[str, str] = {}
        if age > 0:
            # Whole seconds, as Salesforce keeps SystemModstamp (docs/crm-apis.md: the
            # milliseconds always read .000); a stamp with milliseconds is one no org sends.
            then = format_datetime(datetime.fromtimestamp(int(time.time() - age), UTC))
            aged = {"CreatedDate": then, "LastModifiedDate": then, "SystemModstamp": then}
        rows = (
            {**data.salesforce_account_row(c), **aged}
            for c in data.companies(seed, accounts, reference=ref)
        )
        for chunk in _groups(rows, group or max(1, accounts)):
            org.load_accounts(chunk)
        if cpa:
            org.load_contacts(
                data.salesforce_contact_row(c)
                for c in data.contacts(seed, accounts, cpa, reference=ref)
            )
    if only in ("all", "hubspot"):
        props = (
            data.hubspot_company_props(c) for c in data.companies(seed, accounts, reference=ref)
        )
        for chunk in _groups(props, group or max(1, accounts)):
            portal.load_companies(chunk)
        if cpa:
            portal.load_contacts(
                data.hubspot_contact_props(c)
                for c in data.contacts(seed, accounts, cpa, reference=ref)
            )


class Control:
    """The command handlers."""

    def __init__(self, sandboxes: Sandboxes, engines: dict[str, Engine]) -> None:
        self.sb = sandboxes
        self.engines = engines

    def app(self, crm: str) -> Any:
        return self.sb.salesforce.app if crm == "salesforce" else self.sb.hubspot.app

    def records(self, crm: str, obj: str = "account") -> list[tuple[str, dict[str, Any]]]:
        if crm == "salesforce":
            name = "Account" if obj == "account" else "Contact"
            return [(r["Id"], r) for r in self.sb.salesforce.org.records(name)]
        kind = "companies" if obj == "account" else "contacts"
        return [(r.id, r.props) for r in self.sb.hubspot.portal.snapshot(kind)]

    def compare(self, crm: str, fields: dict[str, Any], now: datetime) -> tuple[Any, ...]:
        engine = self.engines["account"]
        outs = engine.output_fields(crm)
        a = engine.evaluate(fields, crm, now)
        values = a.outputs(crm, now)
        return tuple(_norm(values.get(outs[k])) for k in KEYS if k in outs)

    def held(self, crm: str, fields: dict[str, Any]) -> tuple[Any, ...]:
        outs = self.engines["account"].output_fields(crm)
        return tuple(_norm(fields.get(outs[k])) for k in KEYS if k in outs)

    def op_faults(self, crm: str, faults: dict[str, Any]) -> Any:
        self.app(crm).faults.set(Faults.from_json(faults))
        return self.app(crm).faults.faults.to_json()

    def op_limits(self, **limits: Any) -> Any:
        for key, value in limits.items():
            setattr(self.sb.hubspot.portal.limits, key, value)
        self.sb.hubspot.app.limiter.reset()
        return {k: getattr(self.sb.hubspot.portal.limits, k) for k in limits}

    def op_bulk(self, **settings: Any) -> Any:
        from segsync_sandbox.salesforce.bulk import bulk_service

        current = bulk_service(self.sb.salesforce.app).settings
        for key, value in settings.items():
            setattr(current, key, value)
        return {k: getattr(current, k) for k in settings}

    def op_clear(self) -> Any:
        for app in (self.sb.salesforce.app, self.sb.hubspot.app):
            app.log.clear()
        self.sb.hubspot.app.limiter.reset()
        self.sb.salesforce.org.set_usage(0)
        return {"cleared": True}

    def op_counters(self, crm: str) -> Any:
        return dict(self.app(crm).log.counters)

    def op_timeline(self, crm: str) -> Any:
        """Each logged request as ``[seconds from the first, class, status]``, in log order.

        The class is the request's kind, or ``search`` / ``other`` for one refused
        before its handler ran (a 429 carries no kind); the time is when the answer
        was ready.
        """
        entries = self.app(crm).log.entries()
        first = entries[0].time if entries else 0.0
        rows = []
        for e in entries:
            cls = e.kind or ("search" if e.path.endswith("/search") else "other")
            rows.append([round(e.time - first, 4), cls, e.status])
        return rows

    def op_summary(
        self, crm: str, declared: list[str] | None = None, exclude: list[str] | None = None
    ) -> Any:
        app = self.app(crm)
        entries = app.log.entries()
        kinds: Counter[str] = Counter()
        statuses: Counter[int] = Counter()
        writes: Counter[str] = Counter()
        undeclared: Counter[str] = Counter()
        allowed = set(declared or [])
        skip = set(exclude or [])
        spans: dict[str, list[float]] = {}
        for e in entries:
            kinds[e.kind or "other"] += 1
            span = spans.setdefault(e.kind or "other", [e.time, e.time])
            span[1] = e.time
            statuses[e.status] += 1
            if e.kind in WRITE_KINDS and 200 <= e.status < 300:
                writes.update(e.records)
                if declared is not None:
                    undeclared.update(f for f in e.fields if f not in allowed)
        first = entries[0].time if entries else 0.0
        last = entries[-1].time if entries else 0.0
        return {
            "requests": len(entries),
            "kinds": dict(kinds.most_common()),
            "statuses": {str(k): v for k, v in statuses.items()},
            "records_written": len(writes),
            "record_writes": sum(writes.values()),
            "duplicate_writes": sum(n - 1 for n in writes.values() if n > 1),
            "duplicate_writes_excluding": sum(
                n - 1 for r, n in writes.items() if n > 1 and r not in skip
            ),
            "undeclared_fields": dict(undeclared),
            "span_seconds": last - first,
            "kind_spans": {
                k: [round(a - first, 2), round(b - first, 2)] for k, (a, b) in spans.items()
            },
        }

    def op_mutate(self, crm: str, share: float, seed: int = 1) -> Any:
        """Edit the intent input of ``share`` of the accounts so their outputs must change."""
        rnd = random.Random(seed)
        now = datetime.now(UTC)
        field = "Intent_Score__c" if crm == "salesforce" else "intent_score"
        rows = self.records(crm)
        picked = rnd.sample(rows, int(len(rows) * share))
        changed = 0
        for record_id, fields in picked:
            before = self.compare(crm, dict(fields), now)
            old = _num(fields.get(field))
            new_value: float | None = None
            for candidate in ((old + 50) % 100, 97.0, 3.0, 55.0, 25.0, 80.0):
                trial = dict(fields)
                trial[field] = candidate if crm == "salesforce" else str(int(candidate))
                if self.compare(crm, trial, now) != before:
                    new_value = candidate
                    break
            if new_value is None:
                new_value = (old + 50) % 100
            else:
                changed += 1
            if crm == "salesforce":
                self.sb.salesforce.org.update("Account", record_id, {field: new_value})
            else:
                self.sb.hubspot.portal.update("companies", record_id, {field: str(int(new_value))})
        return {"edited": len(picked), "outputs_change": changed}

    def op_pin(self, crm: str, share: float, seed: int = 2) -> Any:
        """A person sets the tier of ``share`` of the accounts by hand (as in the UI)."""
        rnd = random.Random(seed)
        field = "Segsync_Tier__c" if crm == "salesforce" else "segsync_tier"
        picked = rnd.sample(self.records(crm), int(len(self.records(crm)) * share))
        for record_id, fields in picked:
            value = "Tier 1" if fields.get(field) != "Tier 1" else "Tier 3"
            if crm == "salesforce":
                self.sb.salesforce.org.update("Account", record_id, {field: value})
            else:
                self.sb.hubspot.portal.update("companies", record_id, {field: value})
        return {"pinned": len(picked)}

    def op_check(self, crm: str) -> Any:
        """Records whose outputs differ from the engine's on their final inputs."""
        now = datetime.now(UTC)
        wrong: list[str] = []
        rows = self.records(crm)
        for record_id, fields in rows:
            if self.compare(crm, dict(fields), now) != self.held(crm, dict(fields)):
                wrong.append(record_id)
        return {"records": len(rows), "wrong": len(wrong), "sample": wrong[:5]}

    def op_ids(self, crm: str, share: float, seed: int = 5) -> Any:
        rows = self.records(crm)
        rnd = random.Random(seed)
        return {"ids": [r for r, _ in rnd.sample(rows, int(len(rows) * share))]}

    def op_snapshot(self, dir: str) -> Any:
        self.sb.snapshot(dir)
        return {"snapshot": dir}

    def op_restore(self, dir: str) -> Any:
        self.sb.restore(dir)
        return {"restored": dir}


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _norm(value: Any) -> Any:
    """Outputs as comparable values: numbers as floats, blanks as None."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return float(value)
    text = str(value)
    try:
        return float(text)
    except ValueError:
        return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--contacts-per-account", type=int, default=0)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--only", choices=["all", "salesforce", "hubspot"], default="all")
    parser.add_argument("--requests-per-10s", type=int, default=190)
    parser.add_argument("--search-per-second", type=int, default=5)
    parser.add_argument("--daily-limit", type=int, default=10_000_000)
    parser.add_argument("--sf-daily-limit", type=int, default=10_000_000)
    parser.add_argument(
        "--stamp-group",
        type=int,
        default=0,
        help="load accounts this many per modstamp (0: one stamp for all, the launcher's way)",
    )
    parser.add_argument(
        "--age-seconds",
        type=float,
        default=0.0,
        help="Salesforce accounts last changed this long ago (0: at load)",
    )
    parser.add_argument("--config-out", type=Path, required=True)
    parser.add_argument("--store-url", required=True)
    args = parser.parse_args()

    started = time.monotonic()
    org = Org(daily_api_limit=args.sf_daily_limit)
    portal = Portal(
        requests_per_10s=args.requests_per_10s,
        daily_limit=args.daily_limit,
        search_per_second=args.search_per_second,
    )
    load(
        org,
        portal,
        args.accounts,
        args.contacts_per_account,
        args.seed,
        args.only,
        args.stamp_group,
        args.age_seconds,
    )
    salesforce = start_salesforce(org=org)
    hubspot = start_hubspot(portal=portal)
    dataset = DatasetInfo(
        args.seed,
        args.accounts,
        args.contacts_per_account,
        data.REFERENCE,
        False,
        org.count("Account"),
        org.count("Contact"),
        portal.count("companies"),
        portal.count("contacts"),
    )
    sandboxes = Sandboxes(salesforce, hubspot, dataset, None, None)
    sandboxes.write_config(args.config_out, store_url=args.store_url)
    engines = {"account": compile_mapping(load_mapping(templates.ACCOUNTS))}
    control = Control(sandboxes, engines)
    ready = {
        "ready": True,
        "load_seconds": round(time.monotonic() - started, 2),
        "config": str(args.config_out),
        "salesforce": salesforce.instance_url,
        "hubspot": hubspot.base_url,
        "dataset": {
            "salesforce_accounts": dataset.salesforce_accounts,
            "salesforce_contacts": dataset.salesforce_contacts,
            "hubspot_companies": dataset.hubspot_companies,
            "hubspot_contacts": dataset.hubspot_contacts,
        },
    }
    print(json.dumps(ready), flush=True)
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            command = json.loads(line)
            op = command.pop("op")
            if op == "stop":
                print(json.dumps({"ok": True}), flush=True)
                break
            try:
                result = getattr(control, f"op_{op}")(**command)
                reply: dict[str, Any] = {"ok": True, "result": result}
            except Exception as exc:  # report, keep serving
                reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            print(json.dumps(reply, default=str), flush=True)
    finally:
        salesforce.stop()
        hubspot.stop()


if __name__ == "__main__":
    main()
