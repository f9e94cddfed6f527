"""Setup the sandbox tests share: the shipped definitions, a seeded HubSpot portal of a test's
own, adapters on the sandboxes over real HTTP, provisioning, a store and a config file.

Plain functions and context managers, imported by the test modules (as
``service_helpers`` is); the pytest fixtures built on them are in ``conftest.py``
(``tier_org``). Nothing here patches a client or an adapter: each helper only
wires the real ones to a sandbox.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from pydantic import SecretStr

from connector import templates
from connector.config import HubSpotConnection, SalesforceConnection
from connector.crm.base import CrmAdapter
from connector.crm.hubspot import HubSpotAdapter
from connector.crm.retry import RetryPolicy
from connector.crm.salesforce import SalesforceAdapter
from connector.engine import Engine, compile_mapping
from connector.mapping import load_mapping
from connector.store.store import Store
from connector.sync.provision import output_specs
from segsync_sandbox import data
from segsync_sandbox.hubspot import HubSpotSandbox, Portal, start_hubspot
from segsync_sandbox.launcher import Sandboxes
from segsync_sandbox.salesforce import CustomFieldSpec, SalesforceSandbox, start_salesforce
from segsync_sandbox.salesforce.bulk import bulk_service

#: The tier picklist a Bulk write test writes (``Account.Segsync_Tier__c``).
TIERS = ("Tier 1", "Tier 2", "Tier 3")
#: HubSpot limits no test reaches: a test about calls counts them, it does not wait for a window.
REQUESTS_PER_10S, SEARCH_PER_SECOND = 10_000, 1_000


def shipped_engines() -> dict[str, Engine]:
    """The shipped account and contact definitions, compiled."""
    return {
        "account": compile_mapping(load_mapping(templates.ACCOUNTS)),
        "contact": compile_mapping(load_mapping(templates.CONTACTS)),
    }


def sqlite_store(tmp_path: Path) -> Store:
    """A fresh state store in ``tmp_path/state.db``."""
    return Store.open(f"sqlite:///{tmp_path / 'state.db'}")


def provision(
    adapter: CrmAdapter,
    engines: Mapping[str, Engine],
    crm: Literal["salesforce", "hubspot"],
    objects: Iterable[str] = ("account", "contact"),
) -> None:
    """Create the outputs of ``objects`` (contacts with their parents'), failing on any problem."""
    for obj in objects:
        parent = engines["account"] if obj == "contact" else None
        report = adapter.provision(
            obj,  # type: ignore[arg-type]
            output_specs(engines[obj], crm, parent),
            engines[obj].input_fields(crm),
            dry_run=False,
        )
        assert not report.problems, report.problems


# -- HubSpot ---------------------------------------------------------------------


@contextmanager
def seeded_hubspot(
    seed: int, companies: int, contacts_per_company: int = 2
) -> Iterator[HubSpotSandbox]:
    """A HubSpot sandbox of the test's own: the seed's companies and contacts, no limits reached."""
    portal = Portal(requests_per_10s=REQUESTS_PER_10S, search_per_second=SEARCH_PER_SECOND)
    portal.load_companies(data.hubspot_company_props(c) for c in data.companies(seed, companies))
    portal.load_contacts(
        data.hubspot_contact_props(c) for c in data.contacts(seed, companies, contacts_per_company)
    )
    with start_hubspot(portal=portal) as running:
        yield running


def hubspot_adapter(sandbox: HubSpotSandbox, **settings: Any) -> HubSpotAdapter:
    """hubspot-api-client on ``sandbox``, retrying without sleeping; ``settings`` override."""
    connection = HubSpotConnection(
        base_url=sandbox.base_url,
        access_token=SecretStr(sandbox.access_token),
        **{
            "requests_per_10s": REQUESTS_PER_10S,
            "search_per_second": SEARCH_PER_SECOND,
            **settings,
        },
    )
    return HubSpotAdapter("hs", connection, retry=RetryPolicy(sleep=lambda s: None))


# -- Salesforce ------------------------------------------------------------------


class OrgClock:
    """A Salesforce sandbox org's clock, held still and moved by the test (epoch seconds).

    The org's stamps and the ``Date`` of its answers follow it: a test decides
    which writes share a second and when a second has closed, without sleeping.
    """

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock on by ``seconds``."""
        self.now += seconds


def hold_clock(sandbox: SalesforceSandbox) -> OrgClock:
    """Hold ``sandbox``'s org clock half-way into the wall clock's next second.

    No stamp handed out before falls in that second (stamps keep whole
    seconds). A restore (``fresh_sandboxes``) puts the wall clock back.
    """
    clock = OrgClock(math.floor(time.time()) + 1.5)
    sandbox.org.clock = clock
    return clock


@contextmanager
def running_salesforce(client_id: str) -> Iterator[SalesforceSandbox]:
    """A Salesforce sandbox server of its own, stopped afterwards."""
    sandbox = start_salesforce(client_id=client_id)
    try:
        yield sandbox
    finally:
        sandbox.stop()


def clear_org(sandbox: SalesforceSandbox) -> None:
    """An empty org again: no records, no custom fields, no Bulk jobs, no faults."""
    sandbox.reset()
    bulk_service(sandbox.app).reset()


def with_tier_picklist(sandbox: SalesforceSandbox) -> SalesforceSandbox:
    """``sandbox`` serving an empty org whose accounts have the restricted tier picklist."""
    clear_org(sandbox)
    sandbox.org.add_custom_field(
        "Account",
        CustomFieldSpec(
            "Account.Segsync_Tier__c", "Picklist", "Tier", picklist_values=TIERS, restricted=True
        ),
    )
    return sandbox


def salesforce_adapter(
    sandbox: SalesforceSandbox,
    *,
    attempts: int,
    sleep: Callable[[float], None] = lambda _s: None,
    bulk_wait: float = 0.0,
    **settings: Any,
) -> SalesforceAdapter:
    """simple-salesforce on ``sandbox`` (JWT), Bulk 2.0 from 10 records; ``settings`` override."""
    connection = SalesforceConnection(
        **{
            "auth": "jwt",
            "login_url": sandbox.login_url,
            "ca_file": sandbox.ca_file,
            "client_id": sandbox.client_id,
            "username": sandbox.username,
            "private_key_file": sandbox.private_key_file,
            "bulk_write_threshold": 10,
            **settings,
        }
    )
    policy = RetryPolicy(attempts=attempts, initial_wait=0.0, max_wait=0.0, sleep=sleep)
    return SalesforceAdapter("sf", connection, retry=policy, bulk_wait=bulk_wait)


# -- A config file for the CLI ---------------------------------------------------


def sandbox_config(
    sandboxes: Sandboxes, tmp_path: Path, *, salesforce: Mapping[str, object] | None = None
) -> Path:
    """``tmp_path/config.toml`` for ``sandboxes``, its store ``tmp_path/state.db``.

    ``salesforce`` adds settings to ``[connections.salesforce]`` (numbers only).
    """
    config = sandboxes.write_config(
        tmp_path / "config.toml", store_url=f"sqlite:///{tmp_path / 'state.db'}"
    )
    if salesforce:
        header = "[connections.salesforce]\n"
        text = config.read_text(encoding="utf-8")
        assert header in text
        lines = "".join(f"{key} = {value}\n" for key, value in salesforce.items())
        config.write_text(text.replace(header, header + lines, 1), encoding="utf-8")
    return config
