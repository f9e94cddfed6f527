"""Kill -9 a real `segsync sync` mid-chunk: every landed write gets one ledger row (issue 16).

A chunk's outcome is recorded after the whole chunk is written, so a process
killed mid-chunk leaves records written in the CRM that the store does not
know were written. The next run finds the CRM already holding the planned
values and adopts them; before, it recorded no transition for them. Now the
write intent recorded before the chunk is sent tells it which run wrote
them: each such record gets its transitions under the killed run, and every
record has exactly one transition row per changed field.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from connector import templates
from connector.cli import cli
from connector.engine import compile_mapping
from connector.mapping import load_mapping
from connector.store.store import Store
from segsync_sandbox.launcher import Sandboxes, start_sandboxes

ROOT = Path(__file__).resolve().parent.parent
ACCOUNTS = 600
WRITE_KIND = {"hubspot": "batch.update", "salesforce": "collections.update"}


@pytest.fixture(scope="module")
def crm() -> Iterator[Sandboxes]:
    with start_sandboxes(accounts=ACCOUNTS, contacts_per_account=0, seed=13) as running:
        yield running


def _sync(config: Path, crm_name: str) -> subprocess.Popen[bytes]:
    # --force: moving every account's inputs is a mass change the guard would stop.
    command = ["sync", "--config", str(config), "--crm", crm_name, "--object", "account", "--force"]
    return subprocess.Popen(
        [sys.executable, "-m", "connector", *command],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait_for(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.002)
    raise AssertionError("the sync never reached the point to kill it at")


def _cli(*args: str) -> None:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("crm_name", "kill_after_writes", "incremental"),
    [
        ("hubspot", 1, False),
        ("hubspot", 3, False),
        ("salesforce", 1, False),
        ("salesforce", 2, False),
        ("hubspot", 1, True),
        ("salesforce", 1, True),
    ],
)
def test_every_write_of_a_killed_run_has_exactly_one_ledger_row(
    crm: Sandboxes,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    crm_name: str,
    kill_after_writes: int,
    incremental: bool,
) -> None:
    monkeypatch.chdir(ROOT)
    write_kind = WRITE_KIND[crm_name]
    snapshot = crm.snapshot(tmp_path / "snapshot")
    store_path = tmp_path / "s.db"
    config = crm.write_config(tmp_path / "config.toml", store_url=f"sqlite:///{store_path}")
    app = crm.hubspot.app if crm_name == "hubspot" else crm.salesforce.app
    try:
        _cli("provision", "--config", str(config), "--crm", crm_name)
        if incremental:
            # A first run writes everyone; then a person moves every account's
            # inputs, so the killed run is incremental and rewrites them all.
            _cli("sync", "--config", str(config), "--crm", crm_name, "--object", "account")
            _move_everyone(crm, crm_name)
        before = _outputs(crm, crm_name)
        app.log.clear()
        app.faults.update(latency_ms=40)
        process = _sync(config, crm_name)
        try:
            _wait_for(
                lambda: (
                    sum(1 for e in app.log.entries() if e.kind == write_kind) >= kill_after_writes
                )
            )
        finally:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        app.faults.update(latency_ms=0)
        _quiet(app)
        killed_writes = {
            record_id
            for e in app.log.entries()
            if e.kind == write_kind and e.status == 200
            for record_id in e.records
        }
        _cli("sync", "--config", str(config), "--crm", crm_name, "--object", "account", "--force")
        after = _outputs(crm, crm_name)

        with Store.open(f"sqlite:///{store_path}") as store:
            killed = max(r.id for r in store.runs(limit=10) if r.status == "interrupted")
            ledger = store.history(None, limit=100_000, connection=crm_name, object="account")
            assert store.intent_ids(crm_name, "account") == []
        ledger = [t for t in ledger if t.run_id >= killed]
        per_field = Counter((t.record_id, t.field) for t in ledger)
        # Exactly one row for each value that moved, none for any other.
        moved = {key for key, value in after.items() if before.get(key) != value}
        assert moved and set(per_field) == moved
        assert max(per_field.values()) == 1
        # The writes the killed run landed are in the ledger under the killed run.
        by_killed = {t.record_id for t in ledger if t.run_id == killed}
        assert by_killed and by_killed <= killed_writes
        assert by_killed == {r for r, _ in moved if r in killed_writes}
        for t in ledger:
            assert (t.from_value, t.to_value) == (
                before.get((t.record_id, t.field)),
                after[(t.record_id, t.field)],
            )
    finally:
        crm.restore(snapshot)


def _ids(crm: Sandboxes, crm_name: str) -> list[str]:
    if crm_name == "salesforce":
        return [r["Id"] for r in crm.salesforce.org.records("Account")]
    return [r.id for r in crm.hubspot.portal.snapshot("companies")]


def _quiet(app: Any) -> None:
    """Wait until the sandbox has served every request the killed process left in flight.

    Its server threads finish them after the client is gone (and log them);
    on a loaded machine that can take a while: quiet means two seconds without one.
    """
    seen = -1
    while seen != (seen := len(app.log.entries())):
        time.sleep(2.0)


def _outputs(crm: Sandboxes, crm_name: str) -> dict[tuple[str, str], str | None]:
    """(account id, field) → the segment and tier the CRM holds now (blank as None)."""
    engine = compile_mapping(load_mapping(templates.ACCOUNTS))
    names = [engine.output_fields(crm_name)[k] for k in ("segment", "tier")]
    if crm_name == "salesforce":
        rows = {r["Id"]: r for r in crm.salesforce.org.records("Account")}
    else:
        rows = {r.id: r.props for r in crm.hubspot.portal.snapshot("companies")}
    return {
        (i, n): (str(row.get(n)) if row.get(n) not in (None, "") else None)
        for i, row in rows.items()
        for n in names
    }


def _move_everyone(crm: Sandboxes, crm_name: str) -> None:
    """A person edits every account's headcount and revenue (inputs that move tiers)."""
    for i, record_id in enumerate(_ids(crm, crm_name)):
        employees = 20 if i % 2 else 20_000
        if crm_name == "salesforce":
            crm.salesforce.org.update(
                "Account", record_id, {"NumberOfEmployees": employees, "AnnualRevenue": employees}
            )
        else:
            crm.hubspot.portal.update(
                "companies",
                record_id,
                {"numberofemployees": str(employees), "annualrevenue": str(employees)},
            )
