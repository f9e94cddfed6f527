"""Opening the store through a transient failure: the command waits it out, or says what held it.

A command opens the store first: it connects and runs the pending migrations
in one transaction. Another connection holding the SQLite file's write lock
past the busy timeout (a second segsync process migrating the same store, a
``sqlite3`` shell inside a write transaction) failed that for now, and the
command failed at start with a plain error. Now opening is tried again under
the ``[sync]`` retry policy (``connector/sync/steps.py``, ``open_store``): the
command goes on once the lock is released, and a lock held past every try
ends it with one line naming the store, the bound and the tries.

The real ``segsync status`` command (click's runner, in-process), a real
second ``sqlite3`` connection holding ``BEGIN IMMEDIATE`` on the empty store
it is to migrate. The lock is released on a condition (the command's first
failed try, logged), never after a delay. On PostgreSQL, a relay
(``store_faults.CommitCut``) drops the connection right after the migration's
COMMIT landed: the next try finds the schema at head and migrates nothing twice.
"""

from __future__ import annotations

import socket
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from service_helpers import PATIENCE, until
from store_faults import CommitCut, Lines, log_lines

from connector import templates
from connector.cli import cli
from connector.errors import EXIT_STORE
from connector.store.store import Store

MAPPINGS = f'mappings = ["{templates.ACCOUNTS}", "{templates.CONTACTS}"]'


@pytest.fixture
def lines() -> Iterator[Lines]:
    with log_lines("segsync.sync") as handler:
        yield handler


def _config(directory: Path, url: str, attempts: int) -> Path:
    """A config whose store waits 0.1 s for a lock, under ``attempts`` quick tries."""
    path = directory / "config.toml"
    path.write_text(
        f'[store]\nurl = "{url}"\nlock_timeout_seconds = 0.1\n\n'
        f"[sync]\n{MAPPINGS}\nretry_attempts = {attempts}\n"
        "retry_initial_wait_seconds = 0.05\nretry_max_wait_seconds = 0.2\n",
        encoding="utf-8",
    )
    return path


def _status(config: Path) -> Result:
    return CliRunner().invoke(cli, ["status", "--config", str(config)])


def test_a_store_locked_while_it_opens_is_opened_once_the_lock_is_released(
    tmp_path: Path, lines: Lines
) -> None:
    path = tmp_path / "state.db"
    url = f"sqlite:///{path}"
    config = _config(tmp_path, url, attempts=100)
    # Another process's connection holds the new file's write lock.
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    outcome: dict[str, Result] = {}
    thread = threading.Thread(target=lambda: outcome.update(result=_status(config)))
    thread.start()
    try:
        until(
            lambda: lines.having("database is locked") or not thread.is_alive(),
            PATIENCE,
            "opening the store to find the file locked and be tried again",
        )
        failed = lines.having("database is locked")
        assert failed, outcome.get("result") and outcome["result"].output
        assert failed[0].startswith("store step open the store failed: "), failed[0]
        assert f"cannot open the state store at {url} for now" in failed[0]
        assert "(store.lock_timeout_seconds = 0.1)" in failed[0]
    finally:
        holder.execute("ROLLBACK")  # released: the next try opens it
        thread.join(PATIENCE)
        holder.close()
    assert not thread.is_alive()
    result = outcome["result"]
    assert result.exception is None, repr(result.exception)
    assert result.exit_code == 0, result.output
    with Store.open(url, migrate=False) as store:
        assert store.revision() == Store.head()  # migrated once, by the try that went through


def test_a_store_locked_past_every_try_fails_naming_the_store_and_the_settings(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.db"
    url = f"sqlite:///{path}"
    config = _config(tmp_path, url, attempts=2)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # held for every try
    try:
        result = _status(config)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output + result.stderr
    assert result.exit_code == EXIT_STORE, result.output + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, errors
    line = errors[0]
    assert line.startswith(f"error: cannot open the state store at {url} for now: "), line
    assert "database is locked (store.lock_timeout_seconds = 0.1)" in line
    assert "still so after 2 tries (sync.retry_attempts = 2)" in line
    assert "the step is retried" not in line
    with Store.open(url, migrate=False) as store:
        assert store.revision() is None  # nothing migrated


def test_a_postgresql_store_whose_migration_commit_answer_is_lost_opens_on_the_next_try(
    tmp_path: Path, pg_schema_url: str, lines: Lines
) -> None:
    url = sa.make_url(pg_schema_url)
    relay = CommitCut(url.host or "127.0.0.1", url.port or 5432)
    try:
        config = _config(tmp_path, relay.url(pg_schema_url), attempts=5)
        # The migration's transaction writes the version table, then commits:
        # the commit lands, and the connection drops before its answer.
        relay.arm(b"alembic_version")
        result = _status(config)
    finally:
        relay.close()
    assert result.exit_code == 0, result.output + result.stderr
    assert result.exception is None, repr(result.exception)
    # Set by the relay's thread once it closed both sockets (the client may hear first).
    until(relay.cut.is_set, PATIENCE, "the relay to cut the migration's commit answer")
    failed = lines.having("store step open the store failed: ")
    assert len(failed) == 1, failed
    assert "cannot open the state store at postgresql+psycopg://" in failed[0]
    with Store.open(pg_schema_url, migrate=False) as store:
        assert store.revision() == Store.head()


def test_a_postgresql_server_not_yet_listening_is_waited_for(
    tmp_path: Path, pg_schema_url: str, lines: Lines
) -> None:
    """A service started before its database: connection refused is retried, not fatal.

    The store's port answers nothing until the command's first failed try is
    logged; then a relay to the real server listens on it.
    """
    url = sa.make_url(pg_schema_url)
    with socket.create_server(("127.0.0.1", 0)) as spare:
        port = spare.getsockname()[1]  # free again once closed: refused until the relay
    relays: list[CommitCut] = []

    def start_listening() -> None:
        until(lambda: lines.having("store step open the store failed: "), PATIENCE, "a try")
        relays.append(CommitCut(url.host or "127.0.0.1", url.port or 5432, listen=port))

    waiter = threading.Thread(target=start_listening)
    waiter.start()
    try:
        query = {**url.query, "sslmode": "disable", "gssencmode": "disable"}  # as the relay reads
        store_url = url.set(host="127.0.0.1", port=port, query=query)
        config = _config(tmp_path, store_url.render_as_string(hide_password=False), attempts=50)
        result = _status(config)
        waiter.join(timeout=PATIENCE)
    finally:
        for relay in relays:
            relay.close()
    assert result.exit_code == 0, result.output + result.stderr
    failed = lines.having("store step open the store failed: ")
    assert failed and "Connection refused" in failed[0]
    with Store.open(pg_schema_url, migrate=False) as store:
        assert store.revision() == Store.head()


def test_a_postgresql_server_that_never_answers_fails_after_the_tries(
    tmp_path: Path, pg_schema_url: str
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as spare:
        port = spare.getsockname()[1]
    url = sa.make_url(pg_schema_url).set(host="127.0.0.1", port=port)
    result = _status(_config(tmp_path, url.render_as_string(hide_password=False), attempts=2))
    assert result.exit_code == EXIT_STORE, result.output
    assert "Connection refused" in result.output + result.stderr
    assert "still so after 2 tries (sync.retry_attempts = 2)" in result.output + result.stderr
