"""Command-line conventions: --version, NO_COLOR, completion, validate and sync options."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from connector import __version__, templates
from connector.cli import cli
from connector.errors import EXIT_USER
from segsync_sandbox.launcher import Sandboxes

ROOT = Path(__file__).resolve().parent.parent
ACCOUNTS = templates.ACCOUNTS
CONTACTS = templates.CONTACTS
SAMPLE = ROOT / "connector" / "samples" / "salesforce_accounts.csv"

# SGR parameters that set a colour: 30–38 / 40–48 (foreground / background,
# 38 and 48 the 256-colour and true-colour forms) and their bright variants.
_COLOUR_PARAMS = {*map(str, range(30, 39)), *map(str, range(40, 49))}
_COLOUR_PARAMS |= {*map(str, range(90, 98)), *map(str, range(100, 108))}
_SGR = re.compile(r"\x1b\[([0-9;]*)m")


def _invoke(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], env=env, prog_name="segsync")


def _colours(text: str) -> set[str]:
    return {p for params in _SGR.findall(text) for p in params.split(";") if p in _COLOUR_PARAMS}


def _in_terminal(args: list[str], *, no_color: bool) -> str:
    """Run ``segsync ARGS`` with a pseudo-terminal as stdout and stderr; the combined output."""
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120"}
    env.pop("NO_COLOR", None)
    env.pop("FORCE_COLOR", None)
    if no_color:
        env["NO_COLOR"] = "1"
    master, slave = pty.openpty()
    command = [sys.executable, "-m", "connector", *args]
    with subprocess.Popen(command, stdout=slave, stderr=slave, env=env, cwd=ROOT) as proc:
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # the terminal closed with the process
                break
            if not data:
                break
            chunks.append(data)
        proc.wait(timeout=120)
    os.close(master)
    return b"".join(chunks).decode("utf-8", "replace")


def test_version() -> None:
    result = _invoke("--version")
    assert result.exit_code == 0
    assert result.output.strip() == f"segsync, version {__version__}"
    assert __version__ == version("segsync")  # one version: the package's metadata agrees


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_no_color_turns_colour_off_in_click_and_rich_output() -> None:
    preview = [
        "preview",
        "--mapping",
        str(ACCOUNTS),
        "--crm",
        "salesforce",
        "--input",
        str(SAMPLE),
        "--now",
        "2026-11-01",
    ]
    error = ["validate", "/no/such/mapping.toml"]  # click.secho's red error line
    for args in (preview, error):
        coloured = _in_terminal(args, no_color=False)
        assert _colours(coloured), f"expected colour on a terminal: {args[0]}"
        plain = _in_terminal(args, no_color=True)
        assert not _colours(plain), (args[0], sorted(set(_SGR.findall(plain))))
    assert "error: /no/such/mapping.toml" in plain


def test_bash_completion() -> None:
    script = _invoke(env={"_SEGSYNC_COMPLETE": "bash_source"})
    assert script.exit_code == 0
    assert "_segsync_completion" in script.output and "complete -o nosort" in script.output
    words = _invoke(
        env={"_SEGSYNC_COMPLETE": "bash_complete", "COMP_WORDS": "segsync sy", "COMP_CWORD": "1"}
    )
    assert words.output.split() == ["plain,sync"]
    options = _invoke(
        env={
            "_SEGSYNC_COMPLETE": "bash_complete",
            "COMP_WORDS": "segsync sync --conn",
            "COMP_CWORD": "2",
        }
    )
    assert options.output.split() == ["plain,--connection"]


def test_validate_json(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[connections.hubspot]\ncrm = "hubspot"\n', encoding="utf-8")
    ok = _invoke("validate", "--config", config, ACCOUNTS, CONTACTS, "--format", "json")
    assert ok.exit_code == 0, ok.output
    document = json.loads(ok.stdout)
    assert document["ok"] is True and document["problems"] == []
    assert [(f["kind"], f["path"]) for f in document["files"]] == [
        ("config", str(config)),
        ("mapping", str(ACCOUNTS)),
        ("mapping", str(CONTACTS)),
    ]
    accounts = document["files"][1]
    assert accounts["object"] == "account" and accounts["segments"] >= 1
    assert document["files"][2]["personas"] >= 1

    broken = tmp_path / "broken.toml"
    broken.write_text('object = "acount"\n', encoding="utf-8")
    bad = _invoke("validate", broken, ACCOUNTS, "--format", "json")
    assert bad.exit_code == EXIT_USER
    assert bad.stderr == ""  # a script reads the document, not stderr
    document = json.loads(bad.stdout)
    assert document["ok"] is False
    assert [f["path"] for f in document["files"]] == [str(ACCOUNTS)]
    assert document["problems"] and all(p["file"] == str(broken) for p in document["problems"])
    assert set(document["problems"][0]) == {"file", "location", "message", "suggestion"}
    # The text form reports the same problems.
    text = _invoke("validate", broken, ACCOUNTS)
    assert text.exit_code == EXIT_USER
    assert len([line for line in text.stderr.splitlines() if line.startswith("error:")]) == len(
        document["problems"]
    )


def _two_portals(sandboxes: Sandboxes, tmp_path: Path) -> Path:
    """Two HubSpot connections (here: the one sandbox portal twice), as two orgs would be."""
    hubspot = sandboxes.hubspot
    tables = "".join(
        f'[connections.{name}]\ncrm = "hubspot"\nbase_url = "{hubspot.base_url}"\n'
        f'access_token = "{hubspot.access_token}"\n\n'
        for name in ("eu", "us")
    )
    config = tmp_path / "config.toml"
    config.write_text(
        f'{tables}[store]\nurl = "sqlite:///{tmp_path / "state.db"}"\n\n'
        f'[sync]\nmappings = ["{ACCOUNTS}", "{CONTACTS}"]\n',
        encoding="utf-8",
    )
    return config


def test_sync_one_connection(fresh_sandboxes: Sandboxes, tmp_path: Path) -> None:
    config = _two_portals(fresh_sandboxes, tmp_path)
    provision = _invoke("provision", "--config", config, "--connection", "us", "--format", "json")
    assert provision.exit_code == 0, provision.output
    assert {a["connection"] for a in json.loads(provision.stdout)["actions"]} == {"us"}

    result = _invoke(
        "sync", "--config", config, "--connection", "eu", "--object", "account", "--format", "json"
    )
    assert result.exit_code == 0, result.output
    runs = json.loads(result.stdout)["runs"]
    assert [(r["connection"], r["object"], r["status"]) for r in runs] == [
        ("eu", "account", "succeeded")
    ]
    status = json.loads(_invoke("status", "--config", config, "--format", "json").stdout)
    assert {(r["connection"], r["object"]) for r in status["runs"]} == {("eu", "account")}

    unknown = _invoke("sync", "--config", config, "--connection", "apac")
    assert unknown.exit_code == EXIT_USER
    assert unknown.stderr.strip().splitlines() == [
        f"error: {config}: connections: no connection named 'apac' (known: eu, us)"
    ]
    other_crm = _invoke("sync", "--config", config, "--connection", "eu", "--crm", "salesforce")
    assert other_crm.exit_code == EXIT_USER
    assert "no salesforce connection named 'eu' is configured" in other_crm.stderr


def test_a_connection_from_the_environment_alone(
    fresh_sandboxes: Sandboxes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.toml"
    config.write_text("", encoding="utf-8")  # the file must exist; it may be empty
    hubspot = fresh_sandboxes.hubspot
    for key, value in {
        "CONNECTIONS__MARKETING__CRM": "hubspot",
        "CONNECTIONS__MARKETING__BASE_URL": hubspot.base_url,
        "CONNECTIONS__MARKETING__ACCESS_TOKEN": hubspot.access_token,
        "STORE__URL": f"sqlite:///{tmp_path / 'state.db'}",
        "SYNC__MAPPINGS": json.dumps([str(ACCOUNTS), str(CONTACTS)]),
    }.items():
        monkeypatch.setenv(f"SEGSYNC_{key}", value)
    checked = _invoke("validate", "--config", config, "--format", "json")
    assert checked.exit_code == 0, checked.output
    assert json.loads(checked.stdout)["files"][0]["connections"] == 1
    plan = _invoke("provision", "--config", config, "--dry-run", "--format", "json")
    assert plan.exit_code == 0, plan.output
    actions = json.loads(plan.stdout)["actions"]
    assert {a["connection"] for a in actions} == {"marketing"}
    assert any(a["action"] == "create" for a in actions)
    assert hubspot.access_token not in plan.output
