"""Plain http is refused for every CRM URL, unless the host is this machine or the operator opts in.

An ``http://`` login URL would post the client secret, JWT assertion or
refresh token in cleartext; an ``http://`` HubSpot base URL would send the
bearer token in cleartext. Loopback hosts (the local sandboxes) are fine; an
explicit ``allow_insecure_http = true`` is accepted and warned about at every
start, from the CLI and from the service.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from connector import templates
from connector.cli import cli
from connector.commands.crm import open_context
from connector.config import load_settings
from connector.errors import ConfigError
from connector.service.app import Service
from segsync_sandbox.launcher import Sandboxes

ROOT = Path(__file__).resolve().parent.parent
ACCOUNTS, CONTACTS = templates.ACCOUNTS, templates.CONTACTS
MAPPINGS = f'[sync]\nmappings = ["{ACCOUNTS}", "{CONTACTS}"]\n'


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "s.db"}"\n{MAPPINGS}{body}')
    return path


@pytest.mark.parametrize(
    ("body", "key"),
    [
        (
            '[connections.sf]\ncrm = "salesforce"\nlogin_url = "http://login.salesforce.com"\n',
            "login_url",
        ),
        (
            '[connections.sf]\ncrm = "salesforce"\nauth = "session"\n'
            'instance_url = "http://acme.my.salesforce.com"\n',
            "instance_url",
        ),
        ('[connections.hs]\ncrm = "hubspot"\nbase_url = "http://api.hubapi.com"\n', "base_url"),
        # Only an exact loopback host counts: a name that merely starts like one does not.
        (
            '[connections.hs]\ncrm = "hubspot"\nbase_url = "http://127.0.0.1.evil.example"\n',
            "base_url",
        ),
        (
            '[connections.hs]\ncrm = "hubspot"\nbase_url = "http://localhost.evil.example"\n',
            "base_url",
        ),
    ],
)
def test_plain_http_to_another_host_is_refused(tmp_path: Path, body: str, key: str) -> None:
    config = _write(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    (problem,) = info.value.problems
    assert problem.location.startswith("connections.")
    assert key in problem.message and "cleartext" in problem.message
    assert "allow_insecure_http" in problem.message

    result = CliRunner().invoke(cli, ["validate", "--config", str(config)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and key in errors[0]


def test_plain_http_from_the_environment_is_refused_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _write(tmp_path, '[connections.hs]\ncrm = "hubspot"\n')
    monkeypatch.setenv("SEGSYNC_CONNECTIONS__HS__BASE_URL", "http://api.hubapi.com")
    with pytest.raises(ConfigError, match=r"base_url .* is plain http"):
        load_settings(config)


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8080", "http://localhost:9000", "http://[::1]:8443", "http://127.5.6.7"],
)
def test_plain_http_to_this_machine_is_accepted(tmp_path: Path, url: str) -> None:
    config = _write(tmp_path, f'[connections.hs]\ncrm = "hubspot"\nbase_url = "{url}"\n')
    settings = load_settings(config)
    assert settings.connections["hs"].insecure_urls() == []


def test_https_is_always_accepted_and_other_schemes_are_not(tmp_path: Path) -> None:
    ok = _write(tmp_path, '[connections.sf]\ncrm = "salesforce"\nlogin_url = "https://x.example"\n')
    assert load_settings(ok).connections["sf"].insecure_urls() == []
    bad = _write(tmp_path, '[connections.sf]\ncrm = "salesforce"\nlogin_url = "ftp://x.example"\n')
    with pytest.raises(ConfigError, match="expected an https:// URL"):
        load_settings(bad)


def test_explicit_opt_in_is_accepted_and_warned_at_every_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = _write(
        tmp_path,
        '[connections.hs]\ncrm = "hubspot"\naccess_token = "pat-secret-xyz"\n'
        'base_url = "http://hubspot-proxy.internal:8080"\nallow_insecure_http = true\n'
        '[[service.jobs]]\nconnection = "hs"\nobject = "account"\ninterval_minutes = 60\n',
    )
    settings = load_settings(config)
    assert settings.connections["hs"].insecure_urls() == ["base_url"]

    caplog.set_level(logging.WARNING)
    for _start in range(2):
        with open_context(config):
            pass
    warnings = [r for r in caplog.records if "plain http" in r.getMessage()]
    assert len(warnings) == 2
    assert all("'hs'" in r.getMessage() and "base_url" in r.getMessage() for r in warnings)
    assert "pat-secret-xyz" not in caplog.text

    caplog.clear()
    service = Service(settings, port=0)
    service.open()
    try:
        assert any("plain http" in r.getMessage() for r in caplog.records)
    finally:
        service.close()


def test_loopback_sandbox_needs_no_opt_in_and_logs_no_warning(
    sandboxes: Sandboxes, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The local HubSpot sandbox speaks plain http on 127.0.0.1: accepted silently, and works."""
    base = sandboxes.hubspot.base_url
    assert base.startswith("http://127.0.0.1")
    config = _write(
        tmp_path,
        f'[connections.hs]\ncrm = "hubspot"\naccess_token = "{sandboxes.hubspot.access_token}"\n'
        f'base_url = "{base}"\n',
    )
    caplog.set_level(logging.WARNING)
    result = CliRunner().invoke(
        cli, ["provision", "--config", str(config), "--dry-run", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    assert not [r for r in caplog.records if "plain http" in r.getMessage()]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (
            '[connections.sf]\ncrm = "salesforce"\nlogin_url = "https://' + "a" * 300 + '.com"\n',
            "login_url",
        ),
        (
            '[connections.hs]\ncrm = "hubspot"\nbase_url = "https://' + "b" * 70 + '.example"\n',
            "base_url",
        ),
        ('[service]\nhost = "' + "c" * 300 + '"\n', "service.host"),
        ('[service]\nhost = "bad..name"\n', "service.host"),
    ],
)
def test_an_impossible_host_is_one_line_at_load(tmp_path: Path, body: str, where: str) -> None:
    config = _write(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    (problem,) = info.value.problems
    assert where in problem.location
    assert "\n" not in str(problem) and len(str(problem)) < 400
