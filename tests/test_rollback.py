"""Rollback of a real run, and history by mapping version, through `segsync` and the sandboxes.

Two syncs run two definitions (2026-11-b, then 2026-12-b, which moves
companies of 100–499 people to SMB); a person edits one moved record; the
rollback of the second run restores the first definition's values, read back
through each CRM's API with the real clients, leaves the edited record alone
(a conflict) until --force, and a rollback of the rollback returns to the
run's values. Salesforce is exercised on both write paths (sObject
Collections and Bulk 2.0), HubSpot on batch update.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from connector import templates
from connector.cli import cli
from segsync_sandbox.launcher import Sandboxes

VERSION_A = "2026-11-b"
VERSION_B = "2026-12-b"


def _invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _json(result: Result, code: int = 0) -> Any:
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)


class Crm:
    """One CRM of the sandboxes, read and edited through its real API client."""

    def __init__(self, sandboxes: Sandboxes, crm: str) -> None:
        self.sandboxes, self.crm = sandboxes, crm
        self.segment = "Segsync_Segment__c" if crm == "salesforce" else "segsync_segment"
        self.tier = "Segsync_Tier__c" if crm == "salesforce" else "segsync_tier"

    def values(self) -> dict[str, tuple[str | None, str | None]]:
        """Every account's (segment, tier), read back through the API; blank is None."""
        if self.crm == "salesforce":
            client = self.sandboxes.salesforce.client()
            rows = client.query_all(f"SELECT Id, {self.segment}, {self.tier} FROM Account")
            return {
                r["Id"]: (r[self.segment] or None, r[self.tier] or None) for r in rows["records"]
            }
        client = self.sandboxes.hubspot.client()
        found = client.crm.companies.get_all(properties=[self.segment, self.tier])
        return {
            c.id: (c.properties.get(self.segment) or None, c.properties.get(self.tier) or None)
            for c in found
        }

    def edit_segment(self, record_id: str, value: str) -> None:
        """A person sets a record's segment through the API."""
        if self.crm == "salesforce":
            self.sandboxes.salesforce.client().Account.update(record_id, {self.segment: value})
            return
        from hubspot.crm.companies import SimplePublicObjectInput

        self.sandboxes.hubspot.client().crm.companies.basic_api.update(
            record_id, SimplePublicObjectInput(properties={self.segment: value})
        )


def _configs(sandboxes: Sandboxes, tmp: Path, extra: str) -> tuple[Path, Path, Path]:
    """Configs A and B (the two definitions, one store), and A with a tight guard."""
    shipped = templates.ACCOUNTS.read_text()
    a = tmp / "accounts-a.toml"
    a.write_text(shipped)
    b = tmp / "accounts-b.toml"
    moved = shipped.replace(f'version = "{VERSION_A}"', f'version = "{VERSION_B}"').replace(
        'when = { attr = "employees", lt = 100 }', 'when = { attr = "employees", lt = 500 }'
    )
    assert moved.count(VERSION_B) == 1 and "lt = 500" in moved
    b.write_text(moved)
    base = sandboxes.config_text(store_url=f"sqlite:///{tmp / 'state.db'}")
    # `extra`: settings of the Salesforce connection (the write path).
    base = base.replace('crm = "salesforce"\n', 'crm = "salesforce"\n' + extra, 1)
    out = []
    for name, mapping, share in (("a", a, 1.0), ("b", b, 1.0), ("tight", a, 0.01)):
        path = tmp / f"config-{name}.toml"
        path.write_text(
            base + f'mappings = ["{mapping}"]\nmax_change_share = {share}\n'
            "min_records_for_guard = 1\n"
        )
        out.append(path)
    return out[0], out[1], out[2]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("crm", "extra"),
    [
        ("salesforce", ""),
        ("salesforce", "bulk_write_threshold = 1\n"),
        ("hubspot", ""),
    ],
    ids=["salesforce-rest", "salesforce-bulk", "hubspot"],
)
def test_rollback_restores_respects_edits_and_rolls_back_itself(
    fresh_sandboxes: Sandboxes, tmp_path: Path, crm: str, extra: str
) -> None:
    config_a, config_b, tight = _configs(fresh_sandboxes, tmp_path, extra)
    api = Crm(fresh_sandboxes, crm)
    _json(_invoke("provision", "--config", config_a, "--crm", crm, "--format", "json"))

    def sync(config: Path, *options: str) -> int:
        doc = _json(_invoke("sync", "--config", config, "--crm", crm, *options, "--format", "json"))
        (run,) = doc["runs"]
        assert run["status"] == "succeeded", run
        return int(run["run_id"])

    run_a = sync(config_a)
    after_a = api.values()
    run_b = sync(config_b)
    after_b = api.values()
    moved = {i for i in after_b if after_b[i] != after_a[i]}
    assert len(moved) >= 5, "definition B should move some companies"
    assert all(after_b[i][0] == "SMB" for i in moved)

    # History by mapping version: everything 2026-12-b changed.
    by_version = _json(
        _invoke(
            "history",
            "--config",
            config_b,
            "--mapping-version",
            VERSION_B,
            "--records",
            "--limit",
            "1000",
            "--format",
            "json",
        )
    )
    assert [r["id"] for r in by_version["runs"]] == [run_b]
    segment_moves = sum(c["records"] for c in by_version["changes"] if c["field"] == api.segment)
    assert segment_moves == len({i for i in moved if after_a[i][0] != after_b[i][0]})
    assert {t["record"] for t in by_version["records"]} == moved
    assert all(
        t["run_id"] == run_b and t["to"] == "SMB"
        for t in by_version["records"]
        if t["field"] == api.segment
    )
    text = _invoke("history", "--config", config_b, "--mapping-version", VERSION_B, "--records")
    assert text.exit_code == 0 and f"→ SMB  {segment_moves:,}" in text.stdout
    assert f"{sorted(moved)[0]} {api.segment}:" in text.stdout

    # A person edits one moved record after the run.
    edited = sorted(moved)[0]
    manual = (
        "Financial Services" if after_a[edited][0] != "Financial Services" else "Mid-Market Tech"
    )
    api.edit_segment(edited, manual)

    # Dry run: the plan, with the conflict; nothing changes.
    dry = _json(
        _invoke("rollback", str(run_b), "--config", config_b, "--dry-run", "--format", "json")
    )
    assert dry["dry_run"] is True and dry["run_id"] is None
    assert {r["record"] for r in dry["restores"]} == moved - {edited}
    assert [(c["record"], c["field"]) for c in dry["conflicts"]] == [(edited, api.segment)]
    assert "changed in the CRM since" in dry["conflicts"][0]["conflict"]
    for r in dry["restores"]:
        want = after_a[r["record"]][0 if r["field"] == api.segment else 1]
        assert (r["from"], r["to"]) == (
            after_b[r["record"]][0 if r["field"] == api.segment else 1],
            want,
        )
    text = _invoke("rollback", str(run_b), "--config", config_b, "--dry-run")
    assert text.exit_code == 0, text.output
    assert f"Would restore {len(moved) - 1:,} records" in text.stdout
    assert f"{edited} {api.segment}: changed in the CRM since (now {manual})" in text.stdout
    assert api.values()[edited][0] == manual
    assert {i: v for i, v in api.values().items() if i != edited} == {
        i: v for i, v in after_b.items() if i != edited
    }

    # The guard stops a rollback that rewrites too large a share.
    stopped = _invoke("rollback", str(run_b), "--config", tight)
    assert stopped.exit_code == 1 and "max_change_share" in stopped.output

    # The rollback: run A's values come back, the edited record is left alone.
    if crm == "salesforce":
        fresh_sandboxes.salesforce.app.log.clear()
    done = _json(_invoke("rollback", str(run_b), "--config", config_b, "--format", "json"))
    if crm == "salesforce":
        ingest = [
            e
            for e in fresh_sandboxes.salesforce.app.log.entries()
            if e.method == "POST" and e.path.rstrip("/").endswith("/jobs/ingest")
        ]
        assert len(ingest) == (1 if extra else 0)
    rollback_1 = done["run_id"]
    assert done["status"] == "succeeded" and done["written"] == len(moved) - 1
    now = api.values()
    for i in moved - {edited}:
        assert now[i] == after_a[i], i
    assert now[edited][0] == manual
    assert {i: v for i, v in now.items() if i not in moved} == {
        i: v for i, v in after_a.items() if i not in moved
    }
    ledger = _json(_invoke("history", "--config", config_b, "--limit", "1000", "--format", "json"))
    mine = [e for e in ledger if e["run_id"] == rollback_1]
    assert {e["record"] for e in mine} == moved - {edited}
    assert all(e["reason"] == f"rollback of run {run_b}" for e in mine)
    status = _json(_invoke("status", "--config", config_b, "--format", "json"))
    assert status["runs"][0]["id"] == rollback_1 and status["runs"][0]["status"] == "succeeded"

    # A second rollback finds nothing left to do but the conflict.
    again = _json(
        _invoke("rollback", str(run_b), "--config", config_b, "--dry-run", "--format", "json")
    )
    assert again["restores"] == [] and again["already_restored"] == len(moved) - 1
    assert {c["record"] for c in again["conflicts"]} == {edited}

    # Rolling back the rollback returns to run B's values.
    back = _json(_invoke("rollback", str(rollback_1), "--config", config_b, "--format", "json"))
    assert back["status"] == "succeeded" and back["written"] == len(moved) - 1
    now = api.values()
    for i in moved - {edited}:
        assert now[i] == after_b[i], i
    assert now[edited][0] == manual

    # --force restores the edited record too (and the records the later runs moved).
    forced = _json(
        _invoke("rollback", str(run_b), "--config", config_b, "--force", "--format", "json")
    )
    assert forced["status"] == "succeeded" and forced["forced"] is True
    now = api.values()
    assert now[edited] == after_a[edited]
    for i in moved:
        assert now[i] == after_a[i], i

    # Rolling back the first run clears what it filled: blank restores blank.
    cleared = _json(
        _invoke("rollback", str(run_a), "--config", config_a, "--force", "--format", "json")
    )
    assert cleared["status"] == "succeeded" and cleared["failed"] == 0
    assert set(api.values().values()) == {(None, None)}
    # Rollback writes are segsync's own: a full sync computes the definition again.
    sync(config_a, "--full")
    assert api.values() == after_a


def test_rollback_of_an_unknown_run_is_a_user_error(
    fresh_sandboxes: Sandboxes, tmp_path: Path
) -> None:
    config = fresh_sandboxes.write_config(
        tmp_path / "config.toml", store_url=f"sqlite:///{tmp_path / 'state.db'}"
    )
    result = _invoke("rollback", "999", "--config", config)
    assert result.exit_code == 2
    assert "no run 999 in the state store" in result.output
    assert "Traceback" not in result.output


def _run() -> Any:
    from datetime import UTC, datetime

    from connector.store.records import RunCounts, RunRow

    moment = datetime(2026, 11, 29, tzinfo=UTC)
    return RunRow(
        7,
        "hs",
        "hubspot",
        "account",
        VERSION_B,
        False,
        moment,
        moment,
        "succeeded",
        RunCounts(),
        0,
        0,
    )


def test_plan_rollback_decides_each_record() -> None:
    from connector.sync.rollback import plan_rollback

    entries = [
        ("1", "seg", "A", "B"),  # plain: restore A
        ("1", "tier", None, "T1"),  # blank before: restore blank
        ("2", "seg", "A", "B"),  # edited since in the CRM: conflict
        ("3", "seg", "A", "B"),  # moved by a later run: conflict
        ("4", "seg", "A", "B"),  # already back at A
        ("5", "seg", "A", "B"),  # gone
        ("6", "seg", "A", "X"),  # two entries in one run: the first old, the last new
        ("6", "seg", "X", "B"),
    ]
    current = {
        "1": {"seg": "B", "tier": "T1"},
        "2": {"seg": "C"},
        "3": {"seg": "B"},
        "4": {"seg": "A"},
        "6": {"seg": "B"},
    }
    later = {("3", "seg"): 9}
    plan = plan_rollback(_run(), entries, current, later, force=False)
    assert {i: [(r.field, r.restore) for r in rs] for i, rs in plan.writes.items()} == {
        "1": [("seg", "A"), ("tier", None)],
        "6": [("seg", "A")],
    }
    assert {i: [r.conflict for r in rs] for i, rs in plan.conflicts.items()} == {
        "2": ["changed in the CRM since (now C)"],
        "3": ["changed by run 9"],
    }
    assert plan.gone == ["5"] and plan.already == 1 and plan.records == 6
    counts = plan.summary.counts
    assert (counts.read, counts.changed, counts.rewritten) == (3, 2, 2)
    forced = plan_rollback(_run(), entries, current, later, force=True)
    assert set(forced.writes) == {"1", "2", "3", "6"} and forced.conflicts.keys() == {"2", "3"}


def test_rollback_claims_its_job_like_a_sync(sandboxes: Sandboxes, tmp_path: Path) -> None:
    from connector.store.leases import JobClaims, Lease, claim_order
    from connector.store.locks import locks_for
    from connector.store.records import RunCounts
    from connector.store.store import Store

    url = f"sqlite:///{tmp_path / 'state.db'}"
    config = sandboxes.write_config(tmp_path / "config.toml", store_url=url)
    store = Store.open(url)
    try:
        run_id = store.start_run("hubspot", "hubspot", "account", VERSION_A, full=True)
        store.finish_run(run_id, "succeeded", RunCounts(), 0, 0)
        other = JobClaims(
            store.engine, locks_for(store.engine), lease_seconds=60, purpose="segsync run"
        )
        try:
            with other.claim(claim_order("hubspot", "account")[0]) as lease:
                assert isinstance(lease, Lease)
                busy = _invoke("rollback", str(run_id), "--config", config)
                assert busy.exit_code == 5, busy.output
                assert "is running in another process (held by segsync run" in busy.output
                # A dry run writes nothing: it needs no claim.
                dry = _invoke("rollback", str(run_id), "--config", config, "--dry-run")
                assert dry.exit_code == 0, dry.output
                assert "Would restore 0 records" in dry.stdout
        finally:
            other.close()
    finally:
        store.close()
