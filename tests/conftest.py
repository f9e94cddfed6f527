"""Shared fixtures: both CRM sandboxes, in-process on ephemeral ports, on one small dataset.

``sandboxes`` starts once per test session (per xdist worker) with
``SANDBOX_ACCOUNTS`` accounts of the seed ``SANDBOX_SEED`` loaded into both the
Salesforce org and the HubSpot portal; ``salesforce_sandbox`` and
``hubspot_sandbox`` are its two halves. Tests that inject faults or count
calls take ``reset_sandboxes`` (faults, request logs, rate-limit windows and
API usage cleared before and after); tests that write data or create fields
take ``fresh_sandboxes`` (that, plus the data and schema restored to the
session's starting point). ``tier_org`` is a Salesforce sandbox of the test
module's own, an empty org with a tier picklist for Bulk 2.0 writes; the
plain setup helpers are in ``sandbox_fixtures``.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from sandbox_fixtures import clear_org, running_salesforce, with_tier_picklist

from segsync_sandbox.hubspot import HubSpotSandbox
from segsync_sandbox.launcher import Sandboxes, start_sandboxes
from segsync_sandbox.salesforce import SalesforceSandbox

SANDBOX_ACCOUNTS = 200
SANDBOX_CONTACTS_PER_ACCOUNT = 3
SANDBOX_SEED = 42


@pytest.fixture(scope="session")
def _sandboxes_and_snapshot(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Sandboxes, Path]]:
    running = start_sandboxes(
        accounts=SANDBOX_ACCOUNTS,
        contacts_per_account=SANDBOX_CONTACTS_PER_ACCOUNT,
        seed=SANDBOX_SEED,
        save_interval=None,
    )
    try:
        snapshot = running.snapshot(tmp_path_factory.mktemp("sandbox-snapshot"))
        yield running, snapshot
    finally:
        running.stop()


@pytest.fixture(scope="session")
def sandboxes(_sandboxes_and_snapshot: tuple[Sandboxes, Path]) -> Sandboxes:
    """Both sandboxes on one dataset (``.salesforce``, ``.hubspot``, ``.info()``, ``.dataset``)."""
    return _sandboxes_and_snapshot[0]


@pytest.fixture(scope="session")
def salesforce_sandbox(sandboxes: Sandboxes) -> SalesforceSandbox:
    """The Salesforce half of ``sandboxes`` (``.client()``, ``.org``, ``.app``)."""
    return sandboxes.salesforce


@pytest.fixture(scope="session")
def hubspot_sandbox(sandboxes: Sandboxes) -> HubSpotSandbox:
    """The HubSpot half of ``sandboxes`` (``.client()``, ``.portal``, ``.app``)."""
    return sandboxes.hubspot


@pytest.fixture
def reset_sandboxes(sandboxes: Sandboxes) -> Iterator[Sandboxes]:
    """``sandboxes`` with faults, request logs, rate-limit windows and API usage cleared."""
    sandboxes.reset_faults()
    yield sandboxes
    sandboxes.reset_faults()


@pytest.fixture
def fresh_sandboxes(_sandboxes_and_snapshot: tuple[Sandboxes, Path]) -> Iterator[Sandboxes]:
    """``reset_sandboxes``, plus the data and schema restored to the session's starting point."""
    running, snapshot = _sandboxes_and_snapshot
    running.restore(snapshot)
    yield running
    running.restore(snapshot)


# -- A Salesforce org for Bulk 2.0 writes ----------------------------------------


@pytest.fixture(scope="module")
def _tier_org_server(request: pytest.FixtureRequest) -> Iterator[SalesforceSandbox]:
    with running_salesforce(client_id=f"{request.module.__name__}-test") as sandbox:
        yield sandbox


@pytest.fixture
def tier_org(_tier_org_server: SalesforceSandbox) -> Iterator[SalesforceSandbox]:
    """A Salesforce sandbox of the test module's own, serving an empty org with a tier picklist.

    No records, jobs or faults: each test starts afresh (``sandbox_fixtures.with_tier_picklist``).
    """
    yield with_tier_picklist(_tier_org_server)
    clear_org(_tier_org_server)


# -- PostgreSQL --------------------------------------------------------------

#: A libpq conninfo for an admin of a scratch database, instead of the local server.
PG_ENV = "SEGSYNC_TEST_POSTGRES"


@functools.cache
def _pg_conninfo() -> str | None:
    candidates = [os.environ[PG_ENV]] if PG_ENV in os.environ else []
    candidates += [f"host=127.0.0.1 port=5432 dbname=test user={u}" for u in ("postgres", "root")]
    for conninfo in candidates:
        try:
            with psycopg.connect(conninfo, connect_timeout=3):
                return conninfo
        except psycopg.Error:
            continue
    return None


@pytest.fixture
def pg_conninfo() -> str:
    """A conninfo that reaches the machine's PostgreSQL (the test skips without one)."""
    conninfo = _pg_conninfo()
    if conninfo is None:
        pytest.skip(f"no PostgreSQL server on 127.0.0.1:5432 (or set {PG_ENV})")
    return conninfo


@pytest.fixture
def pg_schema_url(pg_conninfo: str) -> Iterator[str]:
    """A SQLAlchemy URL to a fresh, uniquely named schema, dropped afterwards."""
    schema = f"segsync_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        info = conn.info
        url = sa.URL.create(
            "postgresql+psycopg",
            username=info.user,
            host=info.host,
            port=info.port,
            database=info.dbname,
            query={"options": f"-csearch_path={schema}"},
        )
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(pg_conninfo, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
