"""Environment failures: one ``error:`` line, the documented exit status, no traceback.

Each case is a real failure, not a simulated one: a closed port, a corrupt
file, a directory this user cannot write, a URL no parser takes, a driver
that cannot be imported, a CRM that refuses the credentials. The commands run
through the ``segsync`` group (in-process with click's runner, or as a
subprocess where the process itself matters); an in-process run "has a
traceback" when the runner caught an exception other than SystemExit.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from connector import templates
from connector.cli import cli
from connector.errors import EXIT_CODES, EXIT_CRM, EXIT_STORE, EXIT_USER
from segsync_sandbox.launcher import Sandboxes

ROOT = Path(__file__).resolve().parent.parent
MAPPINGS = f'mappings = ["{templates.ACCOUNTS}", "{templates.CONTACTS}"]'
PASSWORD = "s3cret-Pa55word"
TOKEN = "pat-na1-00000000-dead-beef-0000-000000000000"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _config(
    directory: Path,
    store_url: str,
    connection: str | None = None,
    *,
    jobs: bool = False,
) -> Path:
    """A config with one HubSpot connection (or ``connection``), the store, absolute mappings."""
    conn = connection or (
        "[connections.hubspot]\n"
        'crm = "hubspot"\n'
        f'base_url = "https://127.0.0.1:{_closed_port()}"\n'
        f'access_token = "{TOKEN}"\n'
    )
    text = f'{conn}\n[store]\nurl = "{store_url}"\n\n[sync]\n{MAPPINGS}\nretry_attempts = 1\n'
    if jobs:
        name = conn.split("[connections.", 1)[1].split("]", 1)[0]
        text += (
            f'\n[[service.jobs]]\nconnection = "{name}"\nobject = "account"\n'
            "interval_minutes = 60\n"
        )
    path = directory / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_one_error_line(
    result: Result, code: int, *, mentions: Sequence[str] = (), secrets: Sequence[str] = ()
) -> str:
    """One ``error:`` line on stderr, the exit status ``code``, no traceback, no secret."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    everything = result.output + result.stderr
    assert "Traceback" not in everything
    assert result.exit_code == code, everything
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: "), lines[0]
    for text in mentions:
        assert text in lines[0], lines[0]
    for secret in (PASSWORD, TOKEN, *secrets):
        assert secret not in everything
    return lines[0]


# --------------------------------------------------------------------------- the state store


@pytest.mark.parametrize("command", ["status", "history", "errors", "sync", "provision"])
def test_postgresql_down(tmp_path: Path, command: str) -> None:
    url = f"postgresql+psycopg://segsync:{PASSWORD}@127.0.0.1:{_closed_port()}/segsync"
    config = _config(tmp_path, url)
    line = assert_one_error_line(
        _invoke(command, "--config", config), EXIT_STORE, mentions=["PostgreSQL is running"]
    )
    assert "segsync:***@127.0.0.1" in line


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("", "the state store URL is empty"),
        ("   ", "the state store URL is empty"),
        (f"postgresql://segsync:{PASSWORD}@db:notaport/x", "is not a database URL"),
        ("segsync.db", "is not a database URL"),
        (f"mysql://segsync:{PASSWORD}@db/segsync", "runs on SQLite or PostgreSQL, not 'mysql'"),
        ("oracle://db/x", "not 'oracle'"),
    ],
)
@pytest.mark.parametrize("command", ["status", "sync", "validate"])
def test_bad_store_urls(tmp_path: Path, url: str, says: str, command: str) -> None:
    config = _config(tmp_path, url)
    line = assert_one_error_line(_invoke(command, "--config", config), EXIT_USER, mentions=[says])
    assert "store.url" in line


def test_a_bad_store_url_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tmp_path, f"sqlite:///{tmp_path / 'ok.db'}")
    monkeypatch.setenv("SEGSYNC_STORE__URL", f"postgres//segsync:{PASSWORD}@db")
    assert_one_error_line(_invoke("status", "--config", config), EXIT_USER, mentions=["store.url"])


def test_corrupt_sqlite_file(tmp_path: Path) -> None:
    state = tmp_path / "segsync.db"
    state.write_bytes(b"this is not a database, it is a text file\n" * 200)
    config = _config(tmp_path, f"sqlite:///{state}")
    for command in ("status", "sync"):
        assert_one_error_line(
            _invoke(command, "--config", config),
            EXIT_STORE,
            mentions=["is not a segsync state store or is damaged", str(state)],
        )
    assert state.read_bytes().startswith(b"this is not")  # left as it was


def test_store_directory_is_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    config = _config(tmp_path, f"sqlite:///{blocker / 'segsync.db'}")
    assert_one_error_line(
        _invoke("status", "--config", config), EXIT_STORE, mentions=["is a file, not a directory"]
    )


def test_store_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "segsync.db").mkdir()
    config = _config(tmp_path, f"sqlite:///{tmp_path / 'segsync.db'}")
    assert_one_error_line(
        _invoke("errors", "--config", config), EXIT_STORE, mentions=["is a directory"]
    )


def _unprivileged() -> list[str]:
    """A command prefix that takes away root's licence to write anywhere (none when not root)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: every directory is writable")
    caps = "-dac_override,-dac_read_search"
    return [setpriv, f"--bounding-set={caps}", f"--inh-caps={caps}", "--"]


def test_permission_denied(tmp_path: Path) -> None:
    locked = tmp_path / "state"
    locked.mkdir()
    config = _config(tmp_path, f"sqlite:///{locked / 'segsync.db'}")
    locked.chmod(0o555)
    try:
        done = subprocess.run(
            [
                *_unprivileged(),
                sys.executable,
                "-m",
                "connector",
                "status",
                "--config",
                str(config),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=tmp_path,
        )
    finally:
        locked.chmod(0o755)
    assert "Traceback" not in done.stdout + done.stderr
    assert done.returncode == EXIT_STORE, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: permission denied"), lines
    assert str(locked) in lines[0]
    assert not (locked / "segsync.db").exists()


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_a_directory_nobody_may_write(tmp_path: Path) -> None:
    # /proc refuses new files even to root.
    config = _config(tmp_path, "sqlite:////proc/segsync-test.db")
    assert_one_error_line(_invoke("history", "--config", config), EXIT_STORE, mentions=["/proc"])


def test_postgresql_driver_missing(tmp_path: Path) -> None:
    # None in sys.modules makes `import psycopg` fail exactly as on a machine
    # without the driver (ModuleNotFoundError).
    code = "import sys; sys.modules['psycopg'] = None; from connector.cli import main; main()"
    config = _config(tmp_path, f"postgresql://segsync:{PASSWORD}@127.0.0.1/segsync")
    done = subprocess.run(
        [sys.executable, "-c", code, "status", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "Traceback" not in done.stdout + done.stderr
    assert done.returncode == EXIT_STORE, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines == [
        "error: the state store is PostgreSQL but its driver (psycopg) is not installed: "
        "pip install 'segsync[postgres]'"
    ]


@pytest.mark.parametrize("once", [False, True])
def test_run_with_the_store_down(tmp_path: Path, once: bool) -> None:
    url = f"postgresql+psycopg://segsync:{PASSWORD}@127.0.0.1:{_closed_port()}/segsync"
    config = _config(tmp_path, url, jobs=True)
    args = ["-m", "connector", "run", "--config", str(config), "--log-format", "text"]
    done = subprocess.run(
        [sys.executable, *args, *(["--once"] if once else []), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "Traceback" not in done.stdout + done.stderr
    assert done.returncode == EXIT_STORE, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "PostgreSQL is running" in lines[0], lines
    assert PASSWORD not in done.stderr


# --------------------------------------------------------------------------- connection settings


def _salesforce(auth: str, *extra: str, url: str = "https://login.salesforce.com") -> str:
    return "\n".join(
        [
            "[connections.eu]",
            'crm = "salesforce"',
            f'auth = "{auth}"',
            f'login_url = "{url}"',
            *extra,
        ]
    )


@pytest.mark.parametrize(
    ("connection", "says"),
    [
        (_salesforce("jwt", 'username = "u@example.com"'), "needs client_id, private_key_file"),
        (
            _salesforce("jwt", 'client_id = "3MVG9"', 'username = "u@example.com"'),
            "private_key_file (or SEGSYNC_CONNECTIONS__EU__PRIVATE_KEY)",
        ),
        (
            _salesforce("client_credentials", 'client_id = "3MVG9"'),
            "client_secret (or SEGSYNC_CONNECTIONS__EU__CLIENT_SECRET",
        ),
        (_salesforce("client_credentials", f'client_secret = "{PASSWORD}"'), "needs client_id"),
        (
            _salesforce("refresh_token", 'client_id = "3MVG9"', f'client_secret = "{PASSWORD}"'),
            "refresh_token (or SEGSYNC_CONNECTIONS__EU__REFRESH_TOKEN",
        ),
        (
            _salesforce("session", 'instance_url = "https://eu.my.salesforce.com"'),
            "session_id (or SEGSYNC_CONNECTIONS__EU__SESSION_ID)",
        ),
        (
            _salesforce(
                "client_credentials", 'client_id = "3MVG9"', 'client_secret_file = "/nope"'
            ),
            "/nope",
        ),
        (
            _salesforce(
                "jwt",
                'client_id = "3MVG9"',
                'username = "u@example.com"',
                f'private_key = "{PASSWORD}"',
            ),
            "private_key: the JWT private key could not be used",
        ),
    ],
)
@pytest.mark.parametrize("command", ["sync", "provision"])
def test_missing_credentials(tmp_path: Path, connection: str, says: str, command: str) -> None:
    config = _config(tmp_path, f"sqlite:///{tmp_path / 's.db'}", connection)
    # One job (sync goes on to the next job after a failure, and says so for each).
    one = ["--object", "account"] if command == "sync" else []
    line = assert_one_error_line(
        _invoke(command, "--config", config, *one), EXIT_USER, mentions=[says]
    )
    assert "connections.eu" in line or "/nope" in line


def test_missing_credentials_in_the_service(tmp_path: Path) -> None:
    connection = _salesforce("client_credentials", 'client_id = "3MVG9"')
    config = _config(tmp_path, f"sqlite:///{tmp_path / 's.db'}", connection, jobs=True)
    assert_one_error_line(
        _invoke("run", "--once", "--config", config),
        EXIT_USER,
        mentions=["connections.eu", "client_secret"],
    )


@pytest.mark.parametrize(
    ("setting", "says"),
    [
        ("timeout_seconds = 0", "greater than 0"),
        ("timeout_seconds = -5", "greater than 0"),
        ("timeout_seconds = 1e300", "less than or equal to 3600"),
        ("timeout_seconds = inf", "finite number"),
        (f'base_url = "https://{"a" * 300}.example.com"', "more than the 253 a name may have"),
        (f'base_url = "https://{"b" * 70}.example.com"', "longer than 63 characters"),
        ('base_url = "api.hubapi.com"', "expected an https:// URL"),
        ('base_url = "https://[::1"', "not a valid URL"),
    ],
)
@pytest.mark.parametrize("command", ["sync", "validate"])
def test_connection_settings_out_of_bounds(
    tmp_path: Path, setting: str, says: str, command: str
) -> None:
    connection = f'[connections.hubspot]\ncrm = "hubspot"\naccess_token = "{TOKEN}"\n{setting}\n'
    config = _config(tmp_path, f"sqlite:///{tmp_path / 's.db'}", connection)
    line = assert_one_error_line(_invoke(command, "--config", config), EXIT_USER, mentions=[says])
    assert "connections.hubspot" in line


def test_missing_ca_file(tmp_path: Path) -> None:
    connection = _salesforce(
        "client_credentials",
        'client_id = "3MVG9"',
        f'client_secret = "{PASSWORD}"',
        f'ca_file = "{tmp_path / "no-such-ca.pem"}"',
    )
    config = _config(tmp_path, f"sqlite:///{tmp_path / 's.db'}", connection)
    for command in ("sync", "provision"):
        one = ["--object", "account"] if command == "sync" else []
        assert_one_error_line(
            _invoke(command, "--config", config, *one),
            EXIT_USER,
            mentions=["connections.eu", "ca_file", "no-such-ca.pem"],
        )


# --------------------------------------------------------------------------- the CRMs


def test_unreachable_crm(tmp_path: Path) -> None:
    config = _config(tmp_path, f"sqlite:///{tmp_path / 's.db'}")
    for command in ("sync", "provision"):
        assert_one_error_line(
            _invoke(command, "--config", config, "--object", "account")
            if command == "sync"
            else _invoke(command, "--config", config),
            EXIT_CRM,
            mentions=["HubSpot", "cannot reach", "127.0.0.1"],
        )


def test_unreachable_salesforce_login(tmp_path: Path) -> None:
    connection = _salesforce(
        "client_credentials",
        'client_id = "3MVG9"',
        f'client_secret = "{PASSWORD}"',
        url=f"https://127.0.0.1:{_closed_port()}",
    )
    config = _config(tmp_path, f"sqlite:///{tmp_path / 's.db'}", connection)
    assert_one_error_line(
        _invoke("sync", "--config", config, "--object", "account"),
        EXIT_CRM,
        mentions=["Salesforce", "cannot reach", "127.0.0.1"],
    )


def test_bad_salesforce_credentials(sandboxes: Sandboxes, tmp_path: Path) -> None:
    sf = sandboxes.salesforce
    connection = _salesforce(
        "client_credentials",
        f'client_id = "{sf.client_id}"',
        f'client_secret = "{PASSWORD}"',
        f'ca_file = "{sf.ca_file}"',
        url=sf.login_url,
    )
    config = _config(tmp_path, f"sqlite:///{tmp_path / 's.db'}", connection)
    assert_one_error_line(
        _invoke("sync", "--config", config, "--object", "account"),
        EXIT_CRM,
        mentions=["refused", "client_secret"],
        secrets=[sf.client_secret],
    )


def test_bad_hubspot_token(sandboxes: Sandboxes, tmp_path: Path) -> None:
    connection = (
        "[connections.hubspot]\n"
        'crm = "hubspot"\n'
        f'base_url = "{sandboxes.hubspot.base_url}"\n'
        f'access_token = "{TOKEN}"\n'
    )
    config = _config(tmp_path, f"sqlite:///{tmp_path / 's.db'}", connection)
    assert_one_error_line(
        _invoke("sync", "--config", config, "--object", "account"),
        EXIT_CRM,
        mentions=["HubSpot", "access_token"],
        secrets=[sandboxes.hubspot.access_token],
    )


# --------------------------------------------------------------------------- documentation


def test_the_readme_documents_every_exit_status() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("<!-- exit-codes")
    table = readme[start : readme.index("\n\n", readme.index("| status", start))]
    documented = {int(code) for code in re.findall(r"^\| (\d+) \|", table, re.M)}
    assert documented == set(EXIT_CODES)
