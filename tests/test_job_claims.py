"""Job claims: the job lock plus a lease with a fencing token (connector/store/leases.py)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from service_helpers import until
from store_faults import expire_lease

from connector.store.leases import Busy, JobClaims, Lease, LeaseLost, claim_order
from connector.store.locks import locks_for
from connector.store.store import Store

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'claims.db'}"
    else:
        url = request.getfixturevalue("pg_schema_url")
    opened = Store.open(url)
    try:
        yield opened
    finally:
        opened.close()


def _claims(store: Store, purpose: str, seconds: float = 60) -> JobClaims:
    # A JobClaims per would-be process: its own locks (own flock files / sessions).
    return JobClaims(store.engine, locks_for(store.engine), lease_seconds=seconds, purpose=purpose)


def _job() -> str:
    # PostgreSQL advisory locks are database-wide: a job name per test run.
    return f"t{time.monotonic_ns()}.account"


def test_a_held_job_is_busy_and_names_its_holder(store: Store) -> None:
    first, second = _claims(store, "segsync sync"), _claims(store, "segsync run")
    job = _job()
    try:
        with first.claim(job) as lease:
            assert isinstance(lease, Lease) and lease.token == 1 and lease.mode == "lock"
            with second.claim(job) as busy:
                assert isinstance(busy, Busy)
                assert busy.holder is not None and busy.holder.name == first.name
                text = str(busy)
                assert text.startswith(f"job {job} is running in another process (held by ")
                assert "segsync sync " in text and " since " in text and "UTC" in text
            lease.fence()  # still ours
        # Released: the next claim takes it, with the next token.
        with second.claim(job) as lease2:
            assert isinstance(lease2, Lease) and lease2.token == 2
    finally:
        first.close()
        second.close()


def test_a_stopped_holder_loses_the_job_and_is_fenced(store: Store) -> None:
    stopped, taker = _claims(store, "segsync run"), _claims(store, "segsync run")
    job = _job()
    try:
        with stopped.claim(job) as old:
            assert isinstance(old, Lease)
            # While the lease is live, a holder that still has the lock is busy...
            with taker.claim(job) as busy:
                assert isinstance(busy, Busy)
            # ...once it expired (nobody renewed it: the holder was stopped),
            # the job is taken over without the lock, with a newer token.
            expire_lease(store, job)
            with taker.claim(job) as new:
                assert isinstance(new, Lease)
                assert new.mode == "steal" and new.token == old.token + 1
                # The old holder, resumed, may not write: its fence says why.
                with pytest.raises(LeaseLost, match="another process took the job over"):
                    old.fence()
                with pytest.raises(LeaseLost):
                    old.renew()
                new.fence()
                # A third process finds the stolen job busy, lock or no lock.
                third = _claims(store, "segsync sync")
                with third.claim(job) as busy:
                    assert isinstance(busy, Busy) and busy.holder is not None
                    assert busy.holder.mode == "steal"
                third.close()
    finally:
        stopped.close()
        taker.close()


def test_an_unrenewed_lease_fences_by_its_own_clock(store: Store) -> None:
    claims = _claims(store, "segsync run", seconds=5)
    job = _job()
    try:
        with claims.claim(job) as lease:
            assert isinstance(lease, Lease)
            lease._stop.set()  # no heartbeat: as if the process were stopped
            lease._thread.join()
            time.sleep(5.2)
            with pytest.raises(LeaseLost, match="lost its lease"):
                lease.fence()
    finally:
        claims.close()


def test_the_heartbeat_keeps_a_long_run_s_lease(store: Store) -> None:
    claims, other = _claims(store, "segsync run", seconds=5), _claims(store, "segsync run")
    job = _job()
    try:
        with claims.claim(job) as lease:
            assert isinstance(lease, Lease)
            time.sleep(7)  # longer than the lease: renewed meanwhile
            lease.fence()
            with other.claim(job) as busy:
                assert isinstance(busy, Busy)
    finally:
        claims.close()
        other.close()


def test_a_crm_answer_is_progress_and_a_silent_counter_is_not(store: Store) -> None:
    # No stall limit until the steps are marked: a slow machine is no stall.
    claims = _claims(store, "segsync run", seconds=3)
    job = _job()
    calls = [0]
    owner = threading.get_ident()
    try:
        with claims.claim(job) as lease:
            assert isinstance(lease, Lease)
            with lease.watch(lambda: calls[0]):
                lease.progress("read a page")
                calls[0] += 3  # three answers since: the CRM is being waited on
                assert claims._idle(owner)[1] == "waiting on the CRM (3 calls since: read a page)"
                calls[0] += 2
                assert claims._idle(owner)[1] == "waiting on the CRM (5 calls since: read a page)"
                # A step marked after the answers is told as itself, not relabelled.
                lease.progress("wrote a chunk")
                assert claims._idle(owner)[1] == "wrote a chunk"
                # A watched counter that does not move is no progress: the run stalls.
                claims.stall_seconds = 1
                stalls = until(claims.stalled, 60, "the stall")
            assert [(s.job, s.step) for s in stalls] == [(job, "wrote a chunk")]
            with pytest.raises(LeaseLost, match="stalled"):
                lease.fence()
        assert claims.stalled() == []  # the claim ended
        # Unwatched: the counter is not read any more.
        calls[0] += 1
        assert claims._idle(owner)[1] == "wrote a chunk"
    finally:
        claims.close()


def test_a_contact_job_holds_its_accounts(store: Store) -> None:
    key, after = claim_order("hs", "contact")
    assert (key, after) == ("hs.contact", ["hs.account"])
    assert claim_order("hs", "account") == ("hs.account", [])
    claims, other = _claims(store, "segsync run"), _claims(store, "segsync run")
    prefix = _job().split(".")[0]
    try:
        with claims.claim(f"{prefix}.contact", after=[f"{prefix}.account"]) as lease:
            assert isinstance(lease, Lease)
            with other.claim(f"{prefix}.account") as busy:
                assert isinstance(busy, Busy) and busy.job == f"{prefix}.account"
        with (
            other.claim(f"{prefix}.account") as busy,
            claims.claim(f"{prefix}.contact", after=[f"{prefix}.account"]) as waiting,
        ):
            # The contact job is busy while its accounts run elsewhere.
            assert isinstance(busy, Lease)
            assert isinstance(waiting, Busy) and waiting.job == f"{prefix}.account"
    finally:
        claims.close()
        other.close()


_HOLDER = textwrap.dedent(
    """
    import sys, time
    from connector.store.leases import JobClaims
    from connector.store.locks import locks_for
    from connector.store.store import Store

    store = Store.open(sys.argv[1])
    claims = JobClaims(store.engine, locks_for(store.engine), lease_seconds=60, purpose="holder")
    with claims.claim(sys.argv[2]) as lease:
        print("held", lease.token, flush=True)
        time.sleep(600)
    """
)


def test_a_dead_holder_s_job_is_taken_at_once(store: Store) -> None:
    job = _job()
    url = store.engine.url.render_as_string(hide_password=False)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, url, job], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    claims = _claims(store, "segsync run")
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().split() == ["held", "1"]
        with claims.claim(job) as busy:
            assert isinstance(busy, Busy)
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        # Its lease is still live (60 s), but it held the lock, which died with
        # it: the job is free as soon as the lock is (not when the lease ends).
        deadline = time.monotonic() + 30  # half the lease: a lapse cannot free it
        while True:
            with claims.claim(job) as lease:
                if isinstance(lease, Lease):
                    assert lease.mode == "lock" and lease.token == 2
                    break
            assert time.monotonic() < deadline, "the dead holder's job stayed busy"
            time.sleep(0.05)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
        claims.close()


def test_a_lock_held_without_any_lease_stays_busy(store: Store) -> None:
    # A holder that never wrote a lease (an older segsync) is never taken over.
    claims, foreign = _claims(store, "segsync run"), locks_for(store.engine)
    job = _job()
    try:
        with foreign.hold(job) as held:
            assert held
            for _ in range(3):
                with claims.claim(job) as busy:
                    assert isinstance(busy, Busy) and busy.holder is None
            assert claims.holder(job) is None
    finally:
        claims.close()
        foreign.close()
