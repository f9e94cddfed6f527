"""The launcher, ``segsync sandbox`` as a real process, and the shared fixtures."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import pytest
import requests
from click.testing import CliRunner
from hubspot import HubSpot
from hubspot.crm.companies import SimplePublicObjectInput
from simple_salesforce.api import Salesforce
from simple_salesforce.format import format_soql
from urllib3.util.retry import Retry

from connector import templates
from connector.config import HubSpotConnection, SalesforceConnection, load_settings
from segsync_sandbox import data
from segsync_sandbox.cli import sandbox as sandbox_command
from segsync_sandbox.common import Faults
from segsync_sandbox.launcher import Sandboxes, start_sandboxes

INFO_KEYS = {
    "salesforce": {
        "instance_url",
        "access_token",
        "ca_file",
        "token_url",
        "client_id",
        "client_secret",
    },
    "hubspot": {"base_url", "access_token"},
}


# Helpers -----------------------------------------------------------------------


def _sf_session(ca_file: str) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE is set on these machines
    session.verify = ca_file
    return session


def _sf_client(info: dict[str, Any]) -> Salesforce:
    sf = info["salesforce"]
    return Salesforce(
        instance_url=sf["instance_url"],
        session_id=sf["access_token"],
        session=_sf_session(sf["ca_file"]),
        version="59.0",
    )


def _hs_client(info: dict[str, Any]) -> HubSpot:
    hs = info["hubspot"]
    return HubSpot(access_token=hs["access_token"], host=hs["base_url"], retry=Retry(0))


def _host(website: str) -> str:
    url = website if "://" in website else f"http://{website}"
    return (urlsplit(url).hostname or "").removeprefix("www.")


class Process:
    """``segsync sandbox`` as a child process, with its stdout read line by line."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "segsync_sandbox.cli", *args],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # Buffered stdout, as in a pipe: the command must flush its JSON line.
            env={k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"},
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._stderr: list[str | None] = []
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._pumps = [
            self._pump(self.proc.stdout, self._lines.put),
            self._pump(self.proc.stderr, self._stderr.append),
        ]

    @staticmethod
    def _pump(stream: IO[str], sink: Any) -> threading.Thread:
        def run() -> None:
            for line in stream:
                sink(line)
            sink(None)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    def first_line(self, timeout: float = 60) -> str:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"no output within {timeout}s; stderr: {self.stderr()}")
        if line is None:
            pytest.fail(f"exited with {self.proc.wait()} and no output; stderr: {self.stderr()}")
        return line

    def stderr(self) -> str:
        return "".join(s for s in self._stderr if s)

    def interrupt(self, sig: int = signal.SIGINT, timeout: float = 30) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for pump in self._pumps:
            pump.join(timeout=10)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.proc.stdout.close()
        self.proc.stderr.close()


@pytest.fixture
def run_cli(tmp_path: Path) -> Iterator[Any]:
    started: list[Process] = []

    def run(*args: str) -> Process:
        process = Process(list(args), tmp_path)
        started.append(process)
        return process

    yield run
    for process in started:
        process.close()


# The command as a real process --------------------------------------------------


def test_cli_json_line_real_clients_and_clean_exit(run_cli: Any, tmp_path: Path) -> None:
    config = tmp_path / "segsync.toml"
    process = run_cli("--accounts", "30", "--format", "json", "--config-out", str(config))
    info = json.loads(process.first_line())
    assert {k: set(v) for k, v in info.items()} == INFO_KEYS

    sf = _sf_client(info)
    assert sf.query("SELECT COUNT() FROM Account")["totalSize"] == 30
    expected = data.company(42, 7)
    record = sf.Account.get(data.salesforce_account_id(7))
    assert record["Name"] == expected.name

    # The client credentials printed are accepted by the token endpoint.
    token = _sf_session(info["salesforce"]["ca_file"]).post(
        info["salesforce"]["token_url"],
        data={
            "grant_type": "client_credentials",
            "client_id": info["salesforce"]["client_id"],
            "client_secret": info["salesforce"]["client_secret"],
        },
        timeout=30,
    )
    assert token.status_code == 200, token.text
    assert token.json()["instance_url"] == info["salesforce"]["instance_url"]

    hs = _hs_client(info)
    page = hs.crm.companies.basic_api.get_page(limit=100, properties=["domain"])
    assert len(page.results) == 30
    assert {c.properties["domain"] for c in page.results} == {
        c.domain for c in data.companies(42, 30)
    }

    settings = load_settings(config)
    sf_conn = settings.connections["salesforce"]
    hs_conn = settings.connections["hubspot"]
    assert isinstance(sf_conn, SalesforceConnection) and isinstance(hs_conn, HubSpotConnection)
    assert sf_conn.instance_url == info["salesforce"]["instance_url"]
    assert sf_conn.secret("client_secret") == info["salesforce"]["client_secret"]
    assert hs_conn.base_url == info["hubspot"]["base_url"]
    assert hs_conn.secret("access_token") == info["hubspot"]["access_token"]
    assert oct(config.stat().st_mode & 0o777) == "0o600"

    assert process.interrupt(signal.SIGINT) == 0
    assert "Traceback" not in process.stderr()


def test_cli_data_dir_survives_a_restart(run_cli: Any, tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = run_cli("--accounts", "20", "--format", "json", "--data", str(state))
    info = json.loads(first.first_line())
    account_id = data.salesforce_account_id(3)
    _sf_client(info).Account.update(account_id, {"Name": "Renamed Before Restart"})
    hs = _hs_client(info)
    company_id = data.hubspot_company_id(4)
    hs.crm.companies.basic_api.update(
        company_id, SimplePublicObjectInput(properties={"intent_score": "99"})
    )
    assert first.interrupt(signal.SIGTERM) == 0
    assert "Traceback" not in first.stderr()

    # Other dataset options only apply to a new directory: the saved state wins.
    second = run_cli("--accounts", "5", "--seed", "7", "--format", "json", "--data", str(state))
    info = json.loads(second.first_line())
    sf = _sf_client(info)
    assert sf.Account.get(account_id)["Name"] == "Renamed Before Restart"
    assert sf.query("SELECT COUNT() FROM Account")["totalSize"] == 20
    company = _hs_client(info).crm.companies.basic_api.get_by_id(
        company_id, properties=["intent_score"]
    )
    assert company.properties["intent_score"] == "99"
    assert second.interrupt(signal.SIGINT) == 0
    assert "restored the saved state" in second.stderr()


def test_cli_text_format_prints_credentials(run_cli: Any) -> None:
    process = run_cli("--accounts", "3")
    lines = [process.first_line() for _ in range(4)]
    assert lines[0].strip() == "Salesforce"
    assert lines[1].split()[:2] == ["instance", "URL"]
    assert lines[1].split()[2].startswith("https://127.0.0.1:")
    assert process.interrupt() == 0


def test_cli_reports_a_busy_port(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(
            sandbox_command, ["--accounts", "2", "--hubspot-port", str(port)]
        )
    assert result.exit_code == 1
    assert "cannot start the sandboxes" in result.output
    # The command puts the signal handlers back.
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_cli_reports_an_unwritable_config(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    result = CliRunner().invoke(
        sandbox_command, ["--accounts", "2", "--config-out", str(blocker / "segsync.toml")]
    )
    assert result.exit_code == 1
    assert "cannot write" in result.output


# The launcher in-process ----------------------------------------------------------


def test_launcher_loads_one_dataset_into_both(tmp_path: Path) -> None:
    with start_sandboxes(accounts=25, contacts_per_account=2, seed=5) as both:
        assert both.dataset.salesforce_accounts == both.dataset.hubspot_companies == 25
        assert both.dataset.salesforce_contacts == both.dataset.hubspot_contacts
        assert both.dataset.salesforce_contacts == len(list(data.contacts(5, 25, 2)))
        assert not both.dataset.restored
        path = both.write_config(tmp_path / "cfg" / "segsync.toml", store_url="sqlite://")
        settings = load_settings(path)
        sf = settings.connections["salesforce"]
        assert isinstance(sf, SalesforceConnection)
        assert sf.auth == "client_credentials"
        assert sf.login_url == both.salesforce.instance_url
        assert sf.ca_file is not None and sf.ca_file.is_file()
        assert settings.store.url == "sqlite://"
        assert settings.sync.mappings == list(templates.MAPPINGS)  # the built-in ones
    assert not sf.ca_file.exists()  # the temporary TLS material is removed on stop


def test_launcher_rejects_unknown_limits() -> None:
    with pytest.raises(TypeError, match="requests_per_second"):
        start_sandboxes(accounts=1, requests_per_second=5)


def test_launcher_passes_limits_and_saves_periodically(tmp_path: Path) -> None:
    account_id = data.salesforce_account_id(0)

    def saved_name() -> str:
        lines = (tmp_path / "salesforce" / "Account.jsonl").read_text().splitlines()
        return str({r["Id"]: r["Name"] for r in map(json.loads, lines)}[account_id])

    with start_sandboxes(
        accounts=4,
        data_dir=tmp_path,
        save_interval=0.1,
        requests_per_10s=100,
        daily_api_limit=500,
    ) as both:
        assert both.hubspot.portal.limits.requests_per_10s == 100
        assert both.salesforce.org.usage()[1] == 500
        assert "requests_per_10s = 100" in both.config_text()
        assert str(tmp_path.resolve() / "segsync.db") in both.config_text()
        assert saved_name() == data.company(42, 0).name  # saved at once on first start
        both.salesforce.org.update("Account", account_id, {"Name": "Saved"})
        deadline = time.monotonic() + 30
        while saved_name() != "Saved" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert saved_name() == "Saved"


# The shared fixtures ----------------------------------------------------------------


def test_fixtures_serve_one_dataset_matched_by_domain(sandboxes: Sandboxes) -> None:
    info = sandboxes.info()
    sf_rows = _sf_client(info).query_all("SELECT Id, Website FROM Account WHERE Website != null")
    sf_domains = {_host(r["Website"]) for r in sf_rows["records"]}
    hs = _hs_client(info)
    hs_domains: set[str] = set()
    after = None
    while True:
        page = hs.crm.companies.basic_api.get_page(limit=100, after=after, properties=["domain"])
        hs_domains |= {c.properties["domain"] for c in page.results}
        if page.paging is None:
            break
        after = page.paging.next.after
    assert len(hs_domains) == sandboxes.dataset.accounts
    assert sf_domains <= hs_domains
    assert len(sf_domains) > 0.85 * len(hs_domains)


def test_reset_sandboxes_clears_faults_and_log(reset_sandboxes: Sandboxes) -> None:
    sf, hs = reset_sandboxes.salesforce, reset_sandboxes.hubspot
    client = sf.client()
    sf.app.faults.set(Faults(rate_limit_next=1))
    hs.app.faults.set(Faults(error_rate=1.0))
    with pytest.raises(Exception, match="REQUEST_LIMIT_EXCEEDED"):
        client.query("SELECT Id FROM Account LIMIT 1")
    assert sf.app.log.entries()
    reset_sandboxes.reset_faults()
    assert sf.app.faults.faults == Faults() and hs.app.faults.faults == Faults()
    assert not sf.app.log.entries()
    client.query("SELECT Id FROM Account LIMIT 1")
    assert [e.status for e in sf.app.log.entries()] == [200]
    assert sf.org.usage()[0] == 1


def test_snapshot_and_restore(tmp_path: Path) -> None:
    # On private sandboxes: the session ones are shared with other tests.
    with start_sandboxes(accounts=6) as both:
        snapshot = both.snapshot(tmp_path / "snap")
        account_id = data.salesforce_account_id(1)
        original = both.salesforce.org.get("Account", account_id)
        assert original is not None
        both.salesforce.client().Account.update(account_id, {"Name": "Scratch"})
        info = both.info()
        _hs_client(info).crm.companies.basic_api.update(
            data.hubspot_company_id(1), SimplePublicObjectInput(properties={"name": "Scratch"})
        )
        both.restore(snapshot)
        # The same token still works after the restore.
        assert both.salesforce.client().Account.get(account_id)["Name"] == original["Name"]
        company = _hs_client(info).crm.companies.basic_api.get_by_id(
            data.hubspot_company_id(1), properties=["name"]
        )
        assert company.properties["name"] == data.company(42, 1).name


def _account_name(sandboxes: Sandboxes, index: int) -> str:
    record = sandboxes.salesforce.org.get("Account", data.salesforce_account_id(index))
    assert record is not None
    return str(record["Name"])


@pytest.mark.parametrize("round_", [1, 2])
def test_fresh_sandboxes_start_from_the_dataset(fresh_sandboxes: Sandboxes, round_: int) -> None:
    # Each round renames records; the other round must still see the dataset.
    hs = fresh_sandboxes.hubspot
    for index in (0, 1, 2):
        expected = data.company(fresh_sandboxes.dataset.seed, index).name
        assert _account_name(fresh_sandboxes, index) == expected
        company = hs.portal.get("companies", data.hubspot_company_id(index))
        assert company["properties"]["name"] == expected
    account_id = data.salesforce_account_id(round_)
    fresh_sandboxes.salesforce.client().Account.update(account_id, {"Name": f"Round {round_}"})
    hs.client().crm.companies.basic_api.update(
        data.hubspot_company_id(round_), SimplePublicObjectInput(properties={"name": "x"})
    )
    assert _account_name(fresh_sandboxes, round_) == f"Round {round_}"


def test_fixtures_link_contacts_to_the_same_company_in_both(sandboxes: Sandboxes) -> None:
    info = sandboxes.info()
    sf, hs = _sf_client(info), _hs_client(info)
    dataset = sandboxes.dataset
    people = [p for p in data.contacts(dataset.seed, 12) if p.email][:5]
    assert people
    for person in people:
        domain = data.company(dataset.seed, person.company_index).domain
        soql = format_soql(
            "SELECT Email, AccountId, Account.Website FROM Contact WHERE Id = {}",
            data.salesforce_contact_id(person.number),
        )
        rows = sf.query_all(soql)["records"]
        assert rows[0]["Email"] == person.email
        assert rows[0]["AccountId"] == data.salesforce_account_id(person.company_index)
        if rows[0]["Account"]["Website"]:
            assert _host(rows[0]["Account"]["Website"]) == domain
        contact = hs.crm.contacts.basic_api.get_by_id(person.email, id_property="email")
        links = hs.crm.associations.v4.basic_api.get_page(
            object_type="contacts", object_id=contact.id, to_object_type="companies"
        )
        (company_id,) = {str(link.to_object_id) for link in links.results}
        assert company_id == data.hubspot_company_id(person.company_index)
        company = hs.crm.companies.basic_api.get_by_id(company_id, properties=["domain"])
        assert company.properties["domain"] == domain
