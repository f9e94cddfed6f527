"""Two overlapping `segsync sync` processes on one job: one runs, the other says who holds it."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from connector.cli import cli
from connector.errors import EXIT_BUSY
from connector.store.schema import job_leases, transitions
from connector.store.store import Store
from segsync_sandbox.launcher import Sandboxes, start_sandboxes

ROOT = Path(__file__).resolve().parent.parent
ACCOUNTS = 400

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def crm() -> Iterator[Sandboxes]:
    with start_sandboxes(accounts=ACCOUNTS, contacts_per_account=0, seed=17) as running:
        yield running


def _sync(config: Path, *extra: str) -> subprocess.Popen[str]:
    command = ["sync", "--config", str(config), "--crm", "hubspot", "--object", "account"]
    return subprocess.Popen(
        [sys.executable, "-m", "connector", *command, *extra],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_claim(db: Path, job: str, holder: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert holder.poll() is None, holder.communicate()
        if db.exists():
            engine = sa.create_engine(f"sqlite:///{db}")
            try:
                with engine.connect() as conn:
                    held = conn.execute(
                        sa.select(job_leases.c.holder).where(job_leases.c.job == job)
                    ).first()
            except sa.exc.OperationalError:  # the store is being created
                held = None
            finally:
                engine.dispose()
            if held is not None:
                return
        assert time.monotonic() < deadline, f"the first sync never claimed {job}"
        time.sleep(0.05)


def test_a_second_sync_of_a_running_job_exits_or_waits(crm: Sandboxes, tmp_path: Path) -> None:
    snapshot = crm.snapshot(tmp_path / "snapshot")
    config = crm.write_config(tmp_path / "config.toml", store_url=f"sqlite:///{tmp_path / 's.db'}")
    app = crm.hubspot.app
    first = second = third = None
    try:
        provisioned = CliRunner().invoke(
            cli, ["provision", "--config", str(config), "--crm", "hubspot"], catch_exceptions=False
        )
        assert provisioned.exit_code == 0, provisioned.output
        app.log.clear()
        # Hold the first run in its calls (every call takes 30 s) from the
        # start: waiting for its first write and slowing it then raced a run
        # that wrote its few batches within the test's polling interval.
        app.faults.update(latency_ms=30_000)
        first = _sync(config)
        _wait_for_claim(tmp_path / "s.db", "hubspot.account", first)

        # A second run of the same job starts while the first holds it:
        # refused before any CRM call.
        second = _sync(config)
        out, err = second.communicate(timeout=60)
        assert second.returncode == EXIT_BUSY, (out, err)
        lines = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(lines) == 1, err
        assert "job hubspot.account is running in another process" in lines[0]
        assert f"held by segsync sync {first.pid}@" in lines[0] and " since " in lines[0]
        assert first.poll() is None, "the refused run stopped the first one"

        # A third one waits for it, then finds nothing left to write.
        waits = tmp_path / "third.err"
        with waits.open("w") as stderr:
            third = subprocess.Popen(
                [
                    sys.executable,
                    *("-m", "connector", "sync", "--config", str(config)),
                    *("--crm", "hubspot", "--object", "account", "--wait", "180"),
                ],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        deadline = time.monotonic() + 60
        while "waiting: job hubspot.account is running in another process" not in waits.read_text():
            assert time.monotonic() < deadline and third.poll() is None, waits.read_text()
            time.sleep(0.05)
        assert first.poll() is None
        app.faults.update(latency_ms=0)
        first_out, first_err = first.communicate(timeout=120)
        assert first.returncode == 0, (first_out, first_err)
        assert third.wait(timeout=120) == 0, waits.read_text()
        entries = app.log.entries()
    finally:
        app.faults.update(latency_ms=0)
        for process in (p for p in (first, second, third) if p is not None):
            if process.poll() is None:
                process.kill()
            process.communicate()
        crm.restore(snapshot)

    # Every record was written once (request log), and the ledger has one row per change.
    writes = Counter(
        record_id
        for e in entries
        if e.kind == "batch.update" and e.status in (200, 207)
        for record_id in e.records
    )
    assert writes and max(writes.values()) == 1, writes.most_common(3)
    store = Store.open(f"sqlite:///{tmp_path / 's.db'}")
    try:
        with store.engine.connect() as conn:
            repeated = conn.execute(
                sa.select(transitions.c.record_id, transitions.c.field, sa.func.count())
                .group_by(transitions.c.record_id, transitions.c.field)
                .having(sa.func.count() > 1)
            ).all()
        assert repeated == []
        runs = store.runs(10, object="account")
        # Two runs recorded (the refused one never started); the first finished
        # as itself, never marked interrupted by the others.
        assert [r.status for r in runs] == ["succeeded", "succeeded"]
        assert runs[1].counts.written == len(writes) and runs[0].counts.written == 0
    finally:
        store.close()
