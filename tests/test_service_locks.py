"""Job locks: in-process, flock files (SQLite), PostgreSQL advisory locks."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from connector.service.locks import (
    AdvisoryLocks,
    FileLocks,
    LocalLocks,
    locks_for,
)


def test_local_locks_exclude_and_release() -> None:
    locks = LocalLocks()
    with locks.hold("hs.account") as first:
        assert first
        with locks.hold("hs.account") as second, locks.hold("hs.contact") as other:
            assert not second
            assert other
    with locks.hold("hs.account") as again:
        assert again


def test_file_locks_exclude_across_instances(tmp_path: Path) -> None:
    # Two instances stand for two processes: flock conflicts between open files.
    a, b = FileLocks(tmp_path / "locks"), FileLocks(tmp_path / "locks")
    with a.hold("hs.account") as held:
        assert held
        with b.hold("hs.account") as taken:
            assert not taken
        with b.hold("hs.contact") as free:
            assert free
    with b.hold("hs.account") as after:
        assert after


def test_locks_fit_the_store(tmp_path: Path) -> None:
    file_engine = sa.create_engine(f"sqlite:///{tmp_path / 'state.db'}")
    memory_engine = sa.create_engine("sqlite://")
    try:
        assert isinstance(locks_for(file_engine), FileLocks)
        assert isinstance(locks_for(memory_engine), LocalLocks)
    finally:
        file_engine.dispose()
        memory_engine.dispose()


@pytest.fixture
def pg_engine(pg_conninfo: str) -> Iterator[sa.Engine]:
    with psycopg.connect(pg_conninfo) as conn:
        info = conn.info
        url = sa.URL.create(
            "postgresql+psycopg",
            username=info.user,
            host=info.host,
            port=info.port,
            database=info.dbname,
        )
    engine = sa.create_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def _eventually_held(locks: AdvisoryLocks, key: str) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with locks.hold(key) as held:
            if held:
                return True
        time.sleep(0.05)
    return False


@pytest.mark.postgres
def test_advisory_locks_exclude_sessions_and_die_with_them(pg_engine: sa.Engine) -> None:
    key = f"test-{uuid.uuid4().hex}"
    assert isinstance(locks_for(pg_engine), AdvisoryLocks)
    replica_a, replica_b = AdvisoryLocks(pg_engine), AdvisoryLocks(pg_engine)
    try:
        with replica_a.hold(key) as held:
            assert held
            with replica_b.hold(key) as taken:
                assert not taken
            # The holder is named, so an operator sees who runs what.
            with pg_engine.connect() as conn:
                holder = conn.execute(
                    sa.text(
                        "SELECT a.pid, a.application_name FROM pg_locks l "
                        "JOIN pg_stat_activity a ON a.pid = l.pid "
                        "WHERE l.locktype = 'advisory' AND l.granted "
                        "AND l.objid = hashtext(current_schema() || '/' || :key)::oid"
                    ),
                    {"key": key},
                ).one()
                assert key in holder.application_name
                # The holder's session dies (as when its process is killed) ...
                conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": holder.pid})
            # ... and the lock is free for the other replica (termination is
            # asynchronous: the backend exits a moment after the signal).
            assert _eventually_held(replica_b, key)
        # Leaving the dead holder's block neither raises nor leaves anything held.
        with replica_b.hold(key) as free:
            assert free
    finally:
        replica_a.close()
        replica_b.close()
