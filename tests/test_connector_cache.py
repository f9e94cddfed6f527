"""Fixed costs once: the Salesforce token and describes kept in the state store, /readyz from it.

Every `segsync sync` below opens its own context (new adapters, nothing in
memory from the run before), as a scheduled process would; calls are counted
in the sandbox's request log.
"""

from __future__ import annotations

import json
import sqlite3
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from connector.cli import cli
from connector.config import SalesforceConnection, load_settings
from connector.crm.cache import SecretBox, cache_key
from connector.crm.salesforce import SalesforceAdapter
from connector.crm.salesforce.cache import DescribeCache, Fields
from connector.crm.salesforce.describe import Describer
from connector.errors import CrmAccessError
from connector.service.app import Service
from connector.store import Store
from segsync_sandbox.launcher import Sandboxes
from segsync_sandbox.salesforce import CustomFieldSpec, SalesforceSandbox

ROOT = Path(__file__).resolve().parent.parent

#: Every output field of the shipped account definition in Salesforce.
OUTPUTS = (
    "Segsync_Segment__c",
    "Segsync_Tier__c",
    "Segsync_Fit_Score__c",
    "Segsync_Intent_Score__c",
    "Segsync_Reason__c",
    "Segsync_Value_Tier__c",
    "Segsync_Value_Reason__c",
    "Segsync_Version__c",
    "Segsync_Updated_At__c",
)


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _mark(sf: SalesforceSandbox) -> int:
    entries = sf.app.log.entries()
    return entries[-1].seq if entries else 0


def _kinds(sf: SalesforceSandbox, since: int) -> Counter[str]:
    return Counter(e.kind for e in sf.app.log.entries(since))


def _sync(config: Path, *extra: str) -> dict[str, Any]:
    result = _invoke(
        "sync", "--config", str(config), "--crm", "salesforce", "--object", "account",
        "--format", "json", *extra,
    )  # fmt: skip
    document: dict[str, Any] = json.loads(result.output)
    # A job that failed before its run could be recorded is listed under "jobs" only.
    (job,) = document["runs"] or document["jobs"]
    return dict(job)


@pytest.fixture
def config(fresh_sandboxes: Sandboxes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config for both sandboxes, the Salesforce outputs provisioned, one full sync done."""
    monkeypatch.chdir(ROOT)
    path = fresh_sandboxes.write_config(
        tmp_path / "config.toml", store_url=f"sqlite:///{tmp_path / 'state.db'}"
    )
    provision = _invoke("provision", "--config", str(path), "--crm", "salesforce")
    assert provision.exit_code == 0, provision.output
    first = _sync(path)
    assert first["status"] == "succeeded" and first["written"] > 0, first
    return path


def _edit_inputs(sf: SalesforceSandbox, count: int) -> list[str]:
    """Give ``count`` accounts an employee count that moves their fit score."""
    ids = sorted(r["Id"] for r in sf.org.records("Account"))[:count]
    for n, record_id in enumerate(ids):
        row = sf.org.get("Account", record_id)
        employees = row.get("NumberOfEmployees") or 0
        sf.org.update(
            "Account", record_id, {"NumberOfEmployees": 5 if employees > 500 else 9000 + n}
        )
    return ids


def test_a_second_process_spends_no_token_and_no_describe_call(
    fresh_sandboxes: Sandboxes, config: Path
) -> None:
    sf = fresh_sandboxes.salesforce
    _edit_inputs(sf, 5)
    mark = _mark(sf)
    second = _sync(config)
    kinds = _kinds(sf, mark)
    assert second["status"] == "succeeded" and second["written"] == 5, second
    assert kinds["token"] == 0 and kinds["describe"] == 0, kinds
    assert kinds["collections.update"] == 1
    # The adapter's own count agrees with the org's log.
    assert second["api_calls"] == sum(kinds.values())

    mark = _mark(sf)
    quiet = _sync(config)
    assert quiet["status"] == "succeeded" and quiet["written"] == 0
    # One call: the pull, its long text reason fields split over the queries of one
    # Composite call by the describe the store kept (no describe call for it).
    assert _kinds(sf, mark) == Counter({"composite": 1})


def test_an_expired_token_is_replaced_once_and_the_run_succeeds(
    fresh_sandboxes: Sandboxes, config: Path, tmp_path: Path
) -> None:
    sf = fresh_sandboxes.salesforce
    sf.app.tokens.expire_all()  # the org's session timeout passed, or an admin revoked it
    _edit_inputs(sf, 3)
    mark = _mark(sf)
    run = _sync(config)
    entries = sf.app.log.entries(mark)
    assert run["status"] == "succeeded" and run["written"] == 3, run
    assert [e.status for e in entries if e.status == 401] == [401]  # the cached token, refused
    assert Counter(e.kind for e in entries)["token"] == 1  # one new token, no more
    # The new token is the cached one now: the next process asks for none.
    mark = _mark(sf)
    assert _sync(config)["status"] == "succeeded"
    assert _kinds(sf, mark)["token"] == 0


def test_the_cache_never_holds_the_token_or_the_secret_in_the_clear(
    fresh_sandboxes: Sandboxes, config: Path, tmp_path: Path
) -> None:
    sf = fresh_sandboxes.salesforce
    issued = [s.token for s in sf.app.tokens.sessions() if s.grant == "client_credentials"]
    assert issued
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        store.engine.dispose()  # everything on disk
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("state.db*") if p.is_file())
    assert b"salesforce.token:" in raw  # the token is cached…
    for token in issued:
        assert token.encode() not in raw  # …but never readable
        assert token.split("!", 1)[1][:24].encode() not in raw
    assert sf.client_secret.encode() not in raw
    with sqlite3.connect(tmp_path / "state.db") as db:
        (sealed,) = db.execute(
            "SELECT value FROM connector_cache WHERE key LIKE 'salesforce.token:%'"
        ).fetchone()
    # Only the connection's own credentials open it.
    settings = load_settings(config).connections["salesforce"]
    key = cache_key(
        "salesforce.token", "salesforce", settings.auth, settings.login_url,
        settings.instance_url, settings.client_id, getattr(settings, "username", None),
    )  # fmt: skip
    opened = SecretBox([sf.client_secret], key).open(sealed)
    assert opened is not None and json.loads(opened)["a"] in issued
    assert SecretBox(["another-secret"], key).open(sealed) is None


def test_a_field_made_read_only_is_found_before_a_write_lands_and_reported(
    fresh_sandboxes: Sandboxes, config: Path
) -> None:
    sf = fresh_sandboxes.salesforce
    for name in OUTPUTS:  # an admin takes edit access away (not a metadata change)
        sf.org.set_field_access(f"Account.{name}", readable=True, editable=False)
    ids = _edit_inputs(sf, 4)
    before = {i: sf.org.get("Account", i) for i in ids}

    mark = _mark(sf)
    run = _sync(config)
    kinds = _kinds(sf, mark)
    # The cached describe still said "updateable": the org refused the batch, the
    # adapter described again (one call) and reported, re-sending nothing.
    assert kinds["collections.update"] == 1 and kinds["describe"] == 1, kinds
    assert run["status"] == "partial" and run["failed"] == 4 and run["written"] == 0, run
    assert {i: sf.org.get("Account", i) for i in ids} == before
    messages = {f["message"] for f in run["sample_failures"]}
    assert len(messages) == 1 and "schema changed" in messages.pop()

    # The fresh describe is the cached one now: the next process refuses up front.
    mark = _mark(sf)
    again = _sync(config)
    assert again["status"] == "failed" and "not updateable" in again["message"], again
    assert _kinds(sf, mark)["collections.update"] == 0


def test_a_deleted_output_field_stops_the_run_before_any_write(
    fresh_sandboxes: Sandboxes, config: Path
) -> None:
    sf = fresh_sandboxes.salesforce
    sf.org.delete_custom_field("Account.Segsync_Reason__c")
    _edit_inputs(sf, 2)
    mark = _mark(sf)
    run = _sync(config)
    assert run["status"] == "failed" and "Segsync_Reason__c" in run["message"], run
    assert _kinds(sf, mark)["collections.update"] == 0


def test_an_old_describe_is_rechecked_with_if_modified_since(
    fresh_sandboxes: Sandboxes, config: Path, tmp_path: Path
) -> None:
    sf = fresh_sandboxes.salesforce
    settings = load_settings(config).connections["salesforce"]
    assert isinstance(settings, SalesforceConnection)
    # The cache's clock runs three days ahead; the describe was kept "tomorrow",
    # after the provisioning that changed Account: due for a re-check, unchanged since.
    later = datetime.now(UTC) + timedelta(days=3)
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        describes = DescribeCache(store, "salesforce", settings, clock=lambda: later)
        kept = describes.load("Account")
        assert kept is not None
        checked = later - timedelta(days=2)
        describes.save("Account", kept[0], checked)

        def fields() -> Fields:
            adapter = SalesforceAdapter("salesforce", settings, cache=store)
            try:
                return Describer(adapter._session, describes).fields("Account")
            finally:
                adapter.close()

        mark = _mark(sf)
        assert fields() == kept[0]
        (check,) = [e for e in sf.app.log.entries(mark) if e.kind == "describe"]
        assert check.status == 304  # unchanged since: no body
        rechecked = describes.load("Account")
        assert rechecked is not None and rechecked[1] == later  # checked "now"

        # A metadata change after the last check: the org answers with the new describe.
        describes.save("Account", kept[0], checked)
        real_clock = sf.org.clock
        sf.org.clock = lambda: later.timestamp() - 3600
        try:
            sf.org.add_custom_field(
                "Account", CustomFieldSpec("Account.Region__c", "Text", "Region", length=40)
            )
        finally:
            sf.org.clock = real_clock
        mark = _mark(sf)
        assert "Region__c" not in kept[0] and "Region__c" in fields()
        assert [e.status for e in sf.app.log.entries(mark) if e.kind == "describe"] == [200]


@pytest.fixture
def service(fresh_sandboxes: Sandboxes, config: Path) -> Iterator[Service]:
    with config.open("a") as out:
        out.write(
            "\n[service]\nport = 9\n"
            "[[service.jobs]]\n"
            'connection = "salesforce"\nobject = "account"\ninterval_minutes = 60\n'
            "[[service.jobs]]\n"
            'connection = "hubspot"\nobject = "account"\ninterval_minutes = 60\n'
        )
    provision = _invoke("provision", "--config", str(config), "--crm", "hubspot")
    assert provision.exit_code == 0, provision.output
    running = Service(load_settings(config), port=0)
    running.start()
    try:
        yield running
    finally:
        running.stop()


def _readyz(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_readyz_probes_make_no_crm_call(fresh_sandboxes: Sandboxes, service: Service) -> None:
    assert service.http is not None and service.context is not None
    context = service.context
    deadline = datetime.now(UTC) + timedelta(seconds=60)
    # Both account jobs (and the deal pulls they start with) done, nothing in flight.
    while (
        context.inflight
        or context.store.last_success("salesforce", "account") is None
        or context.store.last_success("hubspot", "account") is None
    ):
        assert datetime.now(UTC) < deadline, "the jobs did not run"
        time.sleep(0.1)
    sf, hs = fresh_sandboxes.salesforce, fresh_sandboxes.hubspot
    sf_mark, hs_mark = _mark(sf), len(hs.app.log.entries())

    answers = [_readyz(service.http.port) for _ in range(25)]

    assert all(status == 200 and body["ready"] for status, body in answers), answers[-1]
    checks = answers[-1][1]["checks"]
    assert checks["crm:salesforce"]["ok"] and checks["crm:salesforce"]["last_call_ok"]
    assert checks["crm:hubspot"]["ok"] and checks["crm:hubspot"]["last_call_ok"]
    assert sf.app.log.entries(sf_mark) == []
    assert len(hs.app.log.entries()) == hs_mark


def test_readyz_fails_at_once_when_the_org_refuses_the_credentials(
    fresh_sandboxes: Sandboxes, service: Service
) -> None:
    assert service.http is not None and service.context is not None
    adapter = service.context.adapters["salesforce"]
    oauth = fresh_sandboxes.salesforce.app.oauth
    secret = oauth.client_secret
    fresh_sandboxes.salesforce.app.tokens.expire_all()
    oauth.client_secret = "rotated-elsewhere"  # the secret was rotated in the org
    try:
        with pytest.raises(CrmAccessError, match="refused"):
            adapter.describe("account", [])
        status, body = _readyz(service.http.port)
    finally:
        oauth.client_secret = secret
    assert status == 503 and not body["checks"]["crm:salesforce"]["ok"]
    assert "rotated-elsewhere" not in json.dumps(body)


def test_a_login_refused_outside_a_call_is_recorded_for_readyz(
    fresh_sandboxes: Sandboxes,
) -> None:
    """``authenticate()`` called directly (an incremental pull, the history read) logs in.

    A refusal there must reach the health record /readyz reads, as one
    inside a call does: else a bad credential shows ready.
    """
    sf = fresh_sandboxes.salesforce

    def adapter() -> SalesforceAdapter:
        settings = SalesforceConnection(
            auth="client_credentials",
            login_url=sf.login_url,
            instance_url=sf.instance_url,
            ca_file=sf.ca_file,
            client_id=sf.client_id,
            client_secret="wrong-secret",
        )
        return SalesforceAdapter("sf", settings)

    since = datetime.now(UTC) - timedelta(hours=1)
    pulling = adapter()
    mark = _mark(sf)
    with pytest.raises(CrmAccessError, match="refused"):
        list(pulling.pull("account", ["Name"], since))
    # Only the token request went out: the refusal came from authenticate(), not a call.
    assert _kinds(sf, mark) == Counter({"token": 1})
    state = pulling.health.state()
    assert state.error is not None and "refused" in state.error
    assert "wrong-secret" not in state.error
    pulling.close()

    reading = adapter()
    # The overrides' history read (connector/crm/salesforce/history.py) logs in first too.
    with pytest.raises(CrmAccessError, match="refused"):
        reading.set_by_person("account", {"001000000000001AAA": {"Segsync_Tier__c": "Tier 1"}})
    state = reading.health.state()
    assert state.error is not None and "refused" in state.error
    reading.close()
