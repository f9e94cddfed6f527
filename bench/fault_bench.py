"""Faults at rates that hurt: records lost, undeclared writes, duplicate writes, final state.

One sandbox process holds both CRMs (``--accounts`` accounts each, 30 ms per
call so runs can be interrupted mid-way). Every case starts from the same
provisioned snapshot and an empty state store, injects one fault class, runs
a full accounts sync through the production path, clears the fault and, when
the run did not succeed, runs once more (the next scheduled run). Then:

* **lost**: records whose outputs differ from the engine's on their final
  inputs and that are not in the store's open errors (must be 0);
* **undeclared**: field writes in the request log that the mapping does not
  declare as an output (must be 0);
* **duplicates**: record writes beyond the first, over both runs (at most one
  batch; lock retries, which re-send a record the CRM refused, are excluded);
* **state**: records holding other values than the engine computes (must be 0).

Kill -9: a real ``segsync sync`` process is killed after a random number of
write batches (5 points per CRM), then the next run resumes.

    .venv/bin/python bench/fault_bench.py [--accounts 2000] [--kills 5] [--seed 7]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    OUT,
    PYTHON,
    ROOT,
    SandboxProcess,
    provision,
    save,
    stamp,
    sync,
    tune_config,
)

from connector import templates
from connector.commands.crm import open_context
from connector.engine import compile_mapping
from connector.mapping import load_mapping

BASE = {"latency_ms": 30, "jitter_ms": 0}
SYNC = [PYTHON, "-m", "connector", "sync"]
WRITE_KIND = {"salesforce": "collections.update", "hubspot": "batch.update"}
BATCH = {"salesforce": 200, "hubspot": 100}


def cases(crm: str, lock_ids: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """The fault classes, as sandbox fault settings."""
    out: list[tuple[str, dict[str, Any]]] = [
        ("20 % 5xx", {"error_rate": 0.2, "seed": 1}),
        ("429 storm (12 in a row)", {"rate_limit_next": 12}),
        ("429 on 15 % of calls", {"rate_limit_rate": 0.15, "seed": 3}),
        ("row locks on 5 % (each fails twice)", {"lock_ids": lock_ids, "lock_failures": 2}),
        ("timeouts 10 % (connection dropped after 3 s)", {"timeout_rate": 0.1, "seed": 2}),
    ]
    for _, faults in out:
        faults.setdefault("timeout_seconds", 3.0)
    if crm == "salesforce":
        out.append(("session expiry every 4 calls", {"session_expiry_after": 4}))
    return out


def open_errors(config: Path, crm: str) -> set[str]:
    """Record ids the store holds as failed (they are retried next run)."""
    with open_context(config, crm=crm) as ctx:
        return {e.record_id for e in ctx.store.open_errors(crm, "account")}


def fresh_config(sb: SandboxProcess, crm: str, name: str) -> Path:
    """The sandbox config with a new, empty state store."""
    work = sb.config.parent / "cases"
    work.mkdir(exist_ok=True)
    db = work / f"{name}.db"
    for stale in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        stale.unlink(missing_ok=True)
    config = tune_config(sb.config, work / f"{name}.toml")
    text = config.read_text().replace(str(sb.store), str(db))
    config.write_text(text)
    return config


def outcome(
    sb: SandboxProcess,
    crm: str,
    config: Path,
    declared: list[str],
    exclude: list[str],
    first: str,
    resumed: bool,
    label: str,
) -> dict[str, Any]:
    summary = sb.call("summary", crm=crm, declared=declared, exclude=exclude)
    check = sb.call("check", crm=crm)
    errors = open_errors(config, crm)
    wrong = check["wrong"]
    row = {
        "crm": crm,
        "fault": label,
        "first_run": first,
        "resumed": resumed,
        "calls": summary["requests"],
        "statuses": summary["statuses"],
        "open_errors": len(errors),
        "lost": max(0, wrong - len(errors)),
        "undeclared_writes": sum(summary["undeclared_fields"].values()),
        "duplicate_writes": summary["duplicate_writes_excluding"],
        "duplicate_writes_incl_lock_retries": summary["duplicate_writes"],
        "state_wrong": wrong,
        "records_written": summary["records_written"],
        "batch": BATCH[crm],
    }
    print(
        f"{crm:<10} {label:<44} first: {first:<40} lost {row['lost']} undeclared "
        f"{row['undeclared_writes']} dup {row['duplicate_writes']} "
        f"(incl. lock retries {row['duplicate_writes_incl_lock_retries']}) wrong {wrong} "
        f"open errors {row['open_errors']} calls {row['calls']} {summary['statuses']}",
        flush=True,
    )
    return row


def run_case(
    sb: SandboxProcess,
    crm: str,
    snapshot: str,
    label: str,
    faults: dict[str, Any],
    declared: list[str],
    index: int,
) -> dict[str, Any]:
    sb.call("restore", dir=snapshot)
    config = fresh_config(sb, crm, f"{crm}-{index}")
    sb.call("faults", crm=crm, faults={**BASE, **faults})
    try:
        result = sync(config, crm, full=True)
        first = f"{result.status} ({result.written} written, {result.failed} failed)"
        ok = result.status == "succeeded"
    except Exception as exc:  # the run stopped: the next run must pick up
        first = f"stopped: {type(exc).__name__}"
        ok = False
    sb.call("faults", crm=crm, faults=BASE)
    if not ok:
        sync(config, crm)
    exclude = [str(i) for i in faults.get("lock_ids", [])]
    return outcome(sb, crm, config, declared, exclude, first, not ok, label)


def kill_case(
    sb: SandboxProcess,
    crm: str,
    snapshot: str,
    after: int,
    declared: list[str],
    index: int,
) -> dict[str, Any]:
    sb.call("restore", dir=snapshot)
    config = fresh_config(sb, crm, f"{crm}-kill{index}")
    sb.call("faults", crm=crm, faults=BASE)
    process = subprocess.Popen(
        [*SYNC, "--config", str(config), "--crm", crm, "--object", "account"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    kind = f"kind:{WRITE_KIND[crm]}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        counters = sb.call("counters", crm=crm)
        reads = sum(v for k, v in counters.items() if k.startswith("kind:") and "token" not in k)
        if (after == 0 and reads > 0) or (after > 0 and counters.get(kind, 0) >= after):
            break
        time.sleep(0.005)
    finished_first = process.poll() is not None
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    writes_at_kill = sb.call("counters", crm=crm).get(kind, 0)
    sync(config, crm)
    label = f"kill -9 after {after} write batches (saw {writes_at_kill})"
    first = "finished before the kill" if finished_first else "killed"
    return outcome(sb, crm, config, declared, [], first, True, label)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--crm", choices=["salesforce", "hubspot", "all"], default="all")
    args = parser.parse_args()
    rnd = random.Random(args.seed)
    engine = compile_mapping(load_mapping(templates.ACCOUNTS))
    report: dict[str, Any] = {"when": stamp(), "args": vars(args), "rows": []}
    work = OUT / "faults"
    crms = ["salesforce", "hubspot"] if args.crm == "all" else [args.crm]
    with SandboxProcess(work, args.accounts) as sb:
        for crm in crms:
            provision(sb.config, crm)
        snapshot = sb.call("snapshot", dir=str(work / "snapshot"))["snapshot"]
        for crm in crms:
            declared = list(engine.output_fields(crm).values())
            lock_ids = sb.call("ids", crm=crm, share=0.05)["ids"]
            for index, (label, faults) in enumerate(cases(crm, lock_ids)):
                report["rows"].append(run_case(sb, crm, snapshot, label, faults, declared, index))
            batches = -(-args.accounts // BATCH[crm])
            points = sorted(rnd.sample(range(batches), min(args.kills, batches)))
            for index, after in enumerate(points):
                report["rows"].append(kill_case(sb, crm, snapshot, after, declared, index))
    path = save("faults", report)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
