"""One failure stays one failure: other jobs run, a bad stored id is dropped, back-off as set.

Against the real sandboxes through ``segsync`` (and the in-process service).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from connector.cli import cli
from connector.config import load_settings
from connector.errors import EXIT_CRM
from connector.service.app import Service
from connector.store.records import FailedRecord
from connector.store.store import Store
from segsync_sandbox.common import Faults
from segsync_sandbox.launcher import Sandboxes

ROOT = Path(__file__).resolve().parent.parent


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def config(fresh_sandboxes: Sandboxes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(ROOT)  # the config names mappings/*.toml relative to the project
    return fresh_sandboxes.write_config(
        tmp_path / "config.toml", store_url=f"sqlite:///{tmp_path / 'state.db'}"
    )


def _provision(config: Path, crm: str = "all") -> None:
    result = _invoke("provision", "--config", str(config), "--crm", crm)
    assert result.exit_code == 0, result.output


def test_a_failed_job_does_not_stop_the_others(fresh_sandboxes: Sandboxes, config: Path) -> None:
    _provision(config)
    # The Salesforce secret is wrong: its login is refused, HubSpot still syncs.
    text = config.read_text()
    secret = fresh_sandboxes.salesforce.client_secret
    config.write_text(text.replace(secret, "not-the-secret"))

    result = _invoke("sync", "--config", str(config), "--format", "json")
    # A refused login is the CRM refusing segsync: exit status 4 (README "Exit status").
    assert result.exit_code == EXIT_CRM, result.output
    assert "Traceback" not in result.output
    document = json.loads(result.stdout)
    jobs = {(j["connection"], j["object"]): j for j in document["jobs"]}
    assert set(jobs) == {(c, o) for c in ("salesforce", "hubspot") for o in ("account", "contact")}
    assert jobs["salesforce", "account"]["status"] == "failed"
    assert jobs["salesforce", "contact"]["status"] == "failed"
    assert "not-the-secret" not in result.output
    assert jobs["hubspot", "account"]["status"] == "succeeded"
    assert jobs["hubspot", "contact"]["status"] == "succeeded"
    portal = fresh_sandboxes.hubspot.portal
    assert all(c.props.get("segsync_tier") for c in portal.snapshot("companies"))
    assert document["error"] and "salesforce accounts" in document["error"]

    # The text summary lists every job's outcome, one line each.
    text_run = _invoke("sync", "--config", str(config))
    assert text_run.exit_code == EXIT_CRM
    summary = text_run.stdout[text_run.stdout.index("Jobs:") :]
    assert re.search(r"failed\s+salesforce accounts: ", summary)
    assert re.search(r"succeeded\s+hubspot contacts", summary)


def test_sync_exits_zero_when_every_job_succeeds(config: Path) -> None:
    _provision(config, "hubspot")
    result = _invoke("sync", "--config", str(config), "--crm", "hubspot", "--format", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert [j["status"] for j in document["jobs"]] == ["succeeded", "succeeded"]
    assert document["error"] is None


@pytest.mark.parametrize("crm", ["salesforce", "hubspot"])
def test_a_malformed_stored_id_is_dropped_with_a_warning(
    fresh_sandboxes: Sandboxes, config: Path, crm: str, caplog: pytest.LogCaptureFixture
) -> None:
    _provision(config, crm)
    first = _invoke("sync", "--config", str(config), "--crm", crm, "--object", "account")
    assert first.exit_code == 0, first.output
    settings = load_settings(config)
    bad = "x'); DROP--" if crm == "salesforce" else "not-a-number"
    with Store.open(settings.store.url) as store:
        run_id = store.start_run(crm, crm, "account", "v", full=False)
        store.record_batch(run_id, crm, "account", [], [FailedRecord(bad, "X", "x")], [])
        store.finish_run(run_id, "partial", store.run(run_id).counts, 0, 0)  # type: ignore[union-attr]
        assert bad in {e.record_id for e in store.open_errors(crm, "account")}

    caplog.set_level(logging.WARNING)
    for _ in range(2):
        again = _invoke(
            "sync", "--config", str(config), "--crm", crm, "--object", "account", "--format", "json"
        )
        assert again.exit_code == 0, again.output
        (job,) = json.loads(again.stdout)["jobs"]
        assert job["status"] == "succeeded"
    warnings = [r for r in caplog.records if "malformed" in r.getMessage()]
    assert len(warnings) == 1, "the error is closed: the warning is not repeated every run"
    with Store.open(settings.store.url) as store:
        assert bad not in {e.record_id for e in store.open_errors(crm, "account")}


def test_the_service_backs_off_from_retry_initial_wait_seconds(
    fresh_sandboxes: Sandboxes, config: Path
) -> None:
    _provision(config, "hubspot")
    config.write_text(
        config.read_text().replace(
            "[sync]",
            "[sync]\nretry_attempts = 4\nretry_initial_wait_seconds = 2.0\n"
            "retry_max_wait_seconds = 60",
        )
        + '[[service.jobs]]\nconnection = "hubspot"\nobject = "account"\ninterval_minutes = 60\n'
    )
    waits: list[float] = []

    class Recording(Service):
        def _backoff_sleep(self, seconds: float) -> None:
            waits.append(seconds)  # no real sleep: the waits chosen are what is checked

    app = fresh_sandboxes.hubspot.app
    app.faults.set(Faults(error_rate=1.0))  # every call a 500: retried, backing off
    service: Any = Recording(load_settings(config))
    service.open()
    try:
        assert service.run_once() == ["failed"]
    finally:
        service.close()
    # Full jitter between half and all of initial × 2ⁿ: 1–2 s, then 2–4 s, then 4–8 s.
    assert len(waits) >= 3
    for n, wait in enumerate(waits[:3]):
        assert 2.0 * 2**n / 2 <= wait <= 2.0 * 2**n, waits
