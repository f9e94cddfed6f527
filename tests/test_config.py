from __future__ import annotations

import inspect
import math
import re
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import BaseModel, ValidationError
from simple_salesforce.bulk2 import _Bulk2Client

from connector import templates
from connector.cli import cli
from connector.config import (
    BULK_QUERY_POLL_SECONDS,
    HUBSPOT_PACING_SECONDS,
    HubSpotConnection,
    JobSettings,
    NativeSettings,
    SalesforceConnection,
    Settings,
    load_settings,
)
from connector.crm.limits import RollingWindowLimiter
from connector.crm.salesforce import SalesforceAdapter
from connector.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = templates.CONFIG_EXAMPLE


def _keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for name, field in model.model_fields.items():
        keys.add(name)
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys |= _keys(annotation)
    return keys


def test_example_loads_and_matches_defaults() -> None:
    settings = load_settings(EXAMPLE)
    assert set(settings.connections) == {"salesforce", "hubspot"}
    sf = settings.connections["salesforce"]
    hs = settings.connections["hubspot"]
    assert isinstance(sf, SalesforceConnection) and sf.auth == "jwt"
    assert isinstance(hs, HubSpotConnection) and hs.requests_per_10s == 100
    assert [(j.connection, j.object) for j in settings.service.jobs] == [
        ("salesforce", "account"),
        ("salesforce", "contact"),
        ("hubspot", "account"),
        ("hubspot", "contact"),
    ]
    # The example documents the defaults: what it sets equals the model's default
    # (its mappings, relative to it, are the built-in ones where it ships).
    assert settings.sync.model_dump() == type(settings.sync)().model_dump()
    assert settings.sync.mappings == list(templates.MAPPINGS)
    assert settings.store.url == f"sqlite:///{EXAMPLE.parent / 'segsync.db'}"


def test_example_documents_every_setting() -> None:
    text = EXAMPLE.read_text()
    documented = set(re.findall(r"^#?\s*([a-z0-9_]+)\s*=", text, flags=re.M))
    models: list[type[BaseModel]] = [
        Settings,
        SalesforceConnection,
        HubSpotConnection,
        JobSettings,
        NativeSettings,
    ]
    missing = set()
    for model in models:
        for key in _keys(model):
            if key not in documented and key not in {
                "connections",
                "store",
                "sync",
                "service",
                "jobs",
                "parity",
                "native",
            }:
                missing.add(f"{model.__name__}.{key}")
    assert not missing, f"config.example.toml does not document: {sorted(missing)}"


def test_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[store]\nurl = "sqlite:///a.db"\n[connections.hs]\ncrm = "hubspot"\n')
    monkeypatch.setenv("SEGSYNC_STORE__URL", "postgresql+psycopg://segsync@db/segsync")
    monkeypatch.setenv("SEGSYNC_CONNECTIONS__HS__ACCESS_TOKEN", "pat-secret-123")
    settings = load_settings(cfg)
    assert settings.store.url == "postgresql+psycopg://segsync@db/segsync"
    hs = settings.connections["hs"]
    assert hs.secret("access_token") == "pat-secret-123"
    assert "pat-secret-123" not in repr(settings)
    assert "pat-secret-123" not in str(settings.model_dump())


def test_config_path_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "elsewhere.toml"
    cfg.write_text('[store]\nurl = "sqlite:///x.db"\n')
    monkeypatch.setenv("SEGSYNC_CONFIG", str(cfg))
    # The relative SQLite path is a file next to the config it came from.
    assert load_settings().store.url == f"sqlite:///{tmp_path / 'x.db'}"


def test_secret_from_file_is_read_when_needed(tmp_path: Path) -> None:
    secret_file = tmp_path / "token"
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[connections.hs]\ncrm = "hubspot"\naccess_token_file = "{secret_file}"\n')
    settings = load_settings(cfg)  # the file does not exist yet: loading still works
    secret_file.write_text("pat-from-file\n")
    assert settings.connections["hs"].secret("access_token") == "pat-from-file"
    secret_file.unlink()
    with pytest.raises(ConfigError, match="cannot read the access_token file"):
        settings.connections["hs"].secret("access_token")


def test_every_problem_is_reported_with_its_location(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(
        "[sync]\n"
        'override_policy = "ignore"\n'
        "max_change_share = 2\n"
        "[connections.sf]\n"
        'crm = "salesforce"\n'
        'clientid = "x"\n'
    )
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    locations = {p.location for p in info.value.problems}
    assert "sync.override_policy" in locations
    assert "sync.max_change_share" in locations
    assert any(loc.endswith("clientid") for loc in locations)
    assert all(p.file == str(cfg) for p in info.value.problems)


def test_job_must_name_a_known_connection(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[connections.sf]\ncrm = "salesforce"\n'
        '[[service.jobs]]\nconnection = "sfdc"\nobject = "account"\ninterval_minutes = 5\n'
    )
    with pytest.raises(ConfigError, match="connection 'sfdc' is not defined"):
        load_settings(cfg)


def test_missing_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_example_is_valid_toml() -> None:
    assert "connections" in tomllib.loads(EXAMPLE.read_text())


# --------------------------------------------------------------------------- stall limit

#: Store bounds off (SQLite ignores them), so only the CRM's silences bound the stall limit.
NO_STORE_BOUNDS = {"statement_timeout_seconds": 0, "lock_timeout_seconds": 0}


def _stall_settings(connection: dict[str, object], stall: float, **sync: float) -> Settings:
    return Settings.model_validate(
        {
            "connections": {"c": connection},
            "store": NO_STORE_BOUNDS,
            "sync": {"stall_seconds": stall, **sync},
        }
    )


@pytest.mark.parametrize(
    ("connection", "sync", "silence", "named"),
    [
        # Defaults: a 60 s call after a 60 s back-off (or a 60 s pause between ingest polls).
        (
            {"crm": "salesforce"},
            {},
            120.0,
            ["connections.c.timeout_seconds (60)", "sync.retry_max_wait_seconds (60)"],
        ),
        # The ingest poll pause is the longest.
        (
            {"crm": "salesforce", "timeout_seconds": 10, "bulk_poll_max_seconds": 300},
            {"retry_max_wait_seconds": 5},
            310.0,
            ["connections.c.timeout_seconds (10)", "connections.c.bulk_poll_max_seconds (300)"],
        ),
        # A Bulk query job's poll pause (simple-salesforce's, about 2 s).
        (
            {"crm": "salesforce", "timeout_seconds": 1, "bulk_poll_max_seconds": 0.5},
            {"retry_initial_wait_seconds": 0.1, "retry_max_wait_seconds": 1},
            3.1,
            ["connections.c.timeout_seconds (1)", "a Bulk query job's poll pause (2.1)"],
        ),
        # HubSpot: the retry back-off…
        (
            {"crm": "hubspot", "timeout_seconds": 30},
            {"retry_max_wait_seconds": 200},
            230.0,
            ["connections.c.timeout_seconds (30)", "sync.retry_max_wait_seconds (200)"],
        ),
        # …or a wait for a place in the rate window, whichever is longer.
        (
            {"crm": "hubspot", "timeout_seconds": 2},
            {"retry_initial_wait_seconds": 0.1, "retry_max_wait_seconds": 1},
            13.0,
            ["connections.c.timeout_seconds (2)", "HubSpot's rate window pause (11)"],
        ),
    ],
)
def test_the_stall_limit_must_exceed_the_longest_silence_of_the_crm(
    connection: dict[str, object], sync: dict[str, float], silence: float, named: list[str]
) -> None:
    with pytest.raises(ValidationError) as info:
        _stall_settings(connection, silence, **sync)
    message = str(info.value)
    assert f"sync.stall_seconds ({silence:g}) must be above" in message, message
    assert f"({silence:g} s: " in message, message
    for text in named:
        assert text in message, message
    # Just above it: a healthy run's longest wait is no stall.
    assert _stall_settings(connection, silence + 0.5, **sync).sync.stall_seconds == silence + 0.5


def test_the_longest_silence_is_that_of_the_slowest_connection() -> None:
    settings = {
        "connections": {
            "fast": {"crm": "hubspot", "timeout_seconds": 5},
            "slow": {"crm": "salesforce", "timeout_seconds": 600},
        },
        "store": NO_STORE_BOUNDS,
        "sync": {"stall_seconds": 650},
    }
    with pytest.raises(ValidationError, match=r"connections\.slow\.timeout_seconds \(600\)"):
        Settings.model_validate(settings)
    # No connection: no CRM to wait for.
    assert Settings.model_validate({"store": NO_STORE_BOUNDS, "sync": {"stall_seconds": 2}})


@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_stall_limit_below_the_crm_silence_is_a_config_error(
    tmp_path: Path, command: str
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[connections.sf]\ncrm = "salesforce"\ntimeout_seconds = 30\n'
        "[sync]\nstall_seconds = 60\nretry_max_wait_seconds = 45\n"
        "[store]\nstatement_timeout_seconds = 0\nlock_timeout_seconds = 0\n"
    )
    args = [command, "--config", str(cfg)]
    result = CliRunner().invoke(
        cli, [*args, str(templates.ACCOUNTS)] if command == "validate" else args
    )
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    (error,) = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert str(cfg) in error
    for text in (
        "sync.stall_seconds (60) must be above",
        "(90 s: connections.sf.timeout_seconds (30)",
        "sync.retry_max_wait_seconds (45)",
        "connections.sf.bulk_poll_max_seconds (60)",
    ):
        assert text in error, error


def test_the_fixed_pauses_cover_what_the_clients_wait() -> None:
    """The constants crm_silence counts on are at least the pauses the code takes."""
    # simple-salesforce's wait_for_job, at the adapter's bulk_wait: it sleeps
    # `wait`, then wait + e^n/1000 at the n-th poll, growing while under its maximum.
    wait = inspect.signature(SalesforceAdapter).parameters["bulk_wait"].default
    pauses, delay, n = [wait], 0.0, 0
    while delay < _Bulk2Client.MAX_CHECK_INTERVAL_SECONDS:
        delay = wait + math.exp(n) / 1000
        n += 1
        pauses.append(delay)
    assert max(pauses) <= BULK_QUERY_POLL_SECONDS
    # HubSpot's limiter holds a place one window after its answer, plus its
    # margin and at most a twentieth of the window after refusals.
    limiter = RollingWindowLimiter(limit=1)
    for _ in range(1_000):
        limiter.refused()
    assert limiter.window + limiter.margin + limiter.extra <= HUBSPOT_PACING_SECONDS
