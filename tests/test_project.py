"""`segsync init`, and paths in a config resolving against the config file's directory."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from connector import templates
from connector.cli import cli
from connector.config import HubSpotConnection, SalesforceConnection, load_settings
from connector.store.store import Store

PROJECT_FILES = {
    "config.toml",
    "mappings/accounts.toml",
    "mappings/contacts.toml",
    "mappings/leads.toml",
    ".gitignore",
}


def _invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


# init ------------------------------------------------------------------------------


def test_init_writes_a_project_that_validates_from_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "segments"
    result = _invoke("init", project)
    assert result.exit_code == 0, result.output
    assert _files(project) == PROJECT_FILES
    assert (project / "mappings" / "accounts.toml").read_bytes() == templates.ACCOUNTS.read_bytes()
    assert (project / "mappings" / "contacts.toml").read_bytes() == templates.CONTACTS.read_bytes()
    assert (project / "mappings" / "leads.toml").read_bytes() == templates.LEADS.read_bytes()
    config = project / "config.toml"
    assert config.read_bytes() == templates.CONFIG_EXAMPLE.read_bytes()
    # Private from the start: inline secrets would go here.
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert "segsync.db" in (project / ".gitignore").read_text().splitlines()
    assert f"segsync validate --config {config}" in result.output

    # From an unrelated directory, the config finds its own mappings and store.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    checked = _invoke("validate", "--config", config)
    assert checked.exit_code == 0, checked.output
    assert f"ok  {project / 'mappings' / 'accounts.toml'}: account" in checked.stdout
    assert f"ok  {project / 'mappings' / 'contacts.toml'}: contact" in checked.stdout
    settings = load_settings(config)
    assert settings.sync.mappings == [
        project / "mappings" / "accounts.toml",
        project / "mappings" / "contacts.toml",
    ]
    assert settings.store.url == f"sqlite:///{project / 'segsync.db'}"


def test_init_defaults_to_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = _invoke("init")
    assert result.exit_code == 0, result.output
    assert _files(tmp_path) == PROJECT_FILES
    checked = _invoke("validate")  # ./mappings, as init laid it out
    assert checked.exit_code == 0, checked.output
    assert checked.stdout.count("ok  ") == 3  # accounts, contacts, leads


def test_init_refuses_to_overwrite_unless_forced(tmp_path: Path) -> None:
    assert _invoke("init", tmp_path).exit_code == 0
    edited = "# my own definitions\n"
    (tmp_path / "mappings" / "accounts.toml").write_text(edited)
    (tmp_path / ".gitignore").write_text("node_modules/\n")

    refused = _invoke("init", tmp_path)
    assert refused.exit_code == 2
    for name in PROJECT_FILES:
        assert f"{tmp_path / name}: already exists; pass --force to overwrite it" in refused.stderr
    assert "Traceback" not in refused.output
    # Nothing was written: not even the files that did not exist are half-done.
    assert (tmp_path / "mappings" / "accounts.toml").read_text() == edited
    assert (tmp_path / ".gitignore").read_text() == "node_modules/\n"

    forced = _invoke("init", tmp_path, "--force")
    assert forced.exit_code == 0, forced.output
    assert (tmp_path / "mappings" / "accounts.toml").read_bytes() == templates.ACCOUNTS.read_bytes()


def test_init_refuses_when_only_one_file_is_in_the_way(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("[store]\n")
    refused = _invoke("init", tmp_path)
    assert refused.exit_code == 2
    assert "config.toml: already exists" in refused.stderr
    assert len(refused.stderr.splitlines()) == 1
    assert _files(tmp_path) == {"config.toml"}


def test_init_with_samples_lets_preview_run_offline(tmp_path: Path) -> None:
    result = _invoke("init", tmp_path, "--samples")
    assert result.exit_code == 0, result.output
    assert _files(tmp_path) == PROJECT_FILES | {
        "samples/hubspot_companies.jsonl",
        "samples/salesforce_accounts.csv",
        "samples/salesforce_contacts.jsonl",
        "samples/salesforce_leads.csv",
    }
    preview = _invoke(
        "preview",
        "--mapping",
        tmp_path / "mappings" / "accounts.toml",
        "--crm",
        "salesforce",
        "--input",
        tmp_path / "samples" / "salesforce_accounts.csv",
        "--now",
        "2026-11-01",
    )
    assert preview.exit_code == 0, preview.output
    assert "1,000 evaluated" in preview.stdout


def test_init_reports_an_unwritable_directory_in_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = _invoke("init", blocker / "project")
    assert result.exit_code == 2
    assert "cannot write" in result.stderr
    assert "Traceback" not in result.output


# Config-relative paths ----------------------------------------------------------------


def _config(directory: Path, body: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.toml"
    path.write_text(body, encoding="utf-8")
    return path


CONNECTIONS = """
[connections.sf]
crm = "salesforce"
auth = "client_credentials"
client_id = "app"
client_secret_file = "secrets/sf_secret"
private_key_file = "secrets/sf.key"
refresh_token_file = "../shared/refresh_token"
ca_file = "tls/ca.pem"

[connections.hs]
crm = "hubspot"
access_token_file = "secrets/hs_token"

[store]
url = "sqlite:///state/segsync.db"

[sync]
mappings = ["defs/accounts.toml", "/opt/abs/contacts.toml"]
"""


def test_relative_paths_resolve_against_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    config = _config(project, CONNECTIONS)
    monkeypatch.chdir(tmp_path)  # anywhere but the project
    settings = load_settings(Path("project") / "config.toml")
    base = Path("project")
    sf = settings.connections["sf"]
    hs = settings.connections["hs"]
    assert isinstance(sf, SalesforceConnection) and isinstance(hs, HubSpotConnection)
    assert sf.client_secret_file == base / "secrets" / "sf_secret"
    assert sf.private_key_file == base / "secrets" / "sf.key"
    assert sf.refresh_token_file == base / ".." / "shared" / "refresh_token"
    assert sf.ca_file == base / "tls" / "ca.pem"
    assert hs.access_token_file == base / "secrets" / "hs_token"
    assert settings.sync.mappings == [
        base / "defs" / "accounts.toml",
        Path("/opt/abs/contacts.toml"),
    ]
    assert settings.store.url == f"sqlite:///{base / 'state' / 'segsync.db'}"

    # The same config read from another directory names the same files.
    monkeypatch.chdir(project / "..")
    again = load_settings(config)
    assert again.sync.mappings[0].resolve() == (project / "defs" / "accounts.toml").resolve()


def test_a_secret_file_is_read_relative_to_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    config = _config(project, CONNECTIONS)
    (project / "secrets").mkdir()
    (project / "secrets" / "hs_token").write_text("pat-from-file\n")
    monkeypatch.chdir(tmp_path)
    hs = load_settings(config).connections["hs"]
    assert hs.secret("access_token") == "pat-from-file"


def test_paths_from_the_environment_resolve_against_the_config_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    config = _config(project, '[connections.hs]\ncrm = "hubspot"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SEGSYNC_CONNECTIONS__HS__ACCESS_TOKEN_FILE", "token")
    monkeypatch.setenv("SEGSYNC_STORE__URL", "sqlite:///env.db")
    settings = load_settings(config)
    hs = settings.connections["hs"]
    assert isinstance(hs, HubSpotConnection)
    assert hs.access_token_file == project / "token"
    assert settings.store.url == f"sqlite:///{project / 'env.db'}"


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://",
        "sqlite:///:memory:",
        "postgresql+psycopg://segsync@db.internal/segsync",
        "sqlite:///file:state.db?mode=ro&uri=true",
    ],
)
def test_urls_without_a_relative_file_are_left_alone(tmp_path: Path, url: str) -> None:
    config = _config(tmp_path, f'[store]\nurl = "{url}"\n')
    assert load_settings(config).store.url == url


def test_home_and_absolute_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    config = _config(
        tmp_path / "project",
        f'[connections.hs]\ncrm = "hubspot"\naccess_token_file = "~/token"\n'
        f'[store]\nurl = "sqlite:///{tmp_path / "abs.db"}"\n',
    )
    settings = load_settings(config)
    hs = settings.connections["hs"]
    assert isinstance(hs, HubSpotConnection)
    assert hs.access_token_file == tmp_path / "home" / "token"
    assert settings.store.url == f"sqlite:///{tmp_path / 'abs.db'}"


def test_without_mappings_a_config_uses_the_built_in_definitions(tmp_path: Path) -> None:
    config = _config(tmp_path, '[connections.hs]\ncrm = "hubspot"\n')
    settings = load_settings(config)
    assert settings.sync.mappings == list(templates.MAPPINGS)
    assert all(path.is_file() for path in settings.sync.mappings)


def test_the_sqlite_store_lands_next_to_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    config = _config(project, '[store]\nurl = "sqlite:///segsync.db"\n')
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    store = Store.open(load_settings(config).store.url)
    store.close()
    assert (project / "segsync.db").is_file()
    assert not (cwd / "segsync.db").exists()
