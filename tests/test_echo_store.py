"""The store's echo stamps: kept per written record, and added to a store from before them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from connector.store.records import WrittenRecord
from connector.store.store import Store, alembic_config, normalize_url

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
STAMP = datetime(2026, 11, 22, 12, 0, 3, 125000, tzinfo=UTC)
PREVIOUS = "0004"
"""The revision before echo stamps (0005): a store left there by the previous version."""


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/segsync.db"
        return
    yield request.getfixturevalue("pg_schema_url")


def test_written_stamps_are_kept_and_adoption_clears_them(url: str) -> None:
    with Store.open(url, clock=lambda: T0) as store:
        run = store.start_run("hs", "hubspot", "account", "v1", full=True)
        store.record_batch(
            run,
            "hs",
            "account",
            [WrittenRecord("1", {"tier": "Tier 1"}, STAMP), WrittenRecord("2", {"tier": "T2"})],
        )
        assert store.echo_stamps("hs", "account", ["1", "2", "3"]) == {"1": STAMP}
        # Values adopted without a write carry no stamp: nothing of ours to skip.
        store.record_batch(run, "hs", "account", [WrittenRecord("1", {"tier": "Tier 1"})])
        assert store.echo_stamps("hs", "account", ["1"]) == {}


def test_a_store_at_the_previous_revision_is_upgraded_with_its_rows(url: str) -> None:
    engine = sa.create_engine(normalize_url(url))
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, PREVIOUS)
        conn.execute(
            sa.text(
                "INSERT INTO record_state (connection, object, record_id, last_written) "
                "VALUES ('hs', 'account', '7', '{\"tier\": \"Tier 2\"}')"
            )
        )
    engine.dispose()
    with Store.open(url) as store:
        assert store.revision() == Store.head()
        assert store.last_written("hs", "account", ["7"]) == {"7": {"tier": "Tier 2"}}
        assert store.echo_stamps("hs", "account", ["7"]) == {}
