"""Start the Salesforce and HubSpot sandboxes together, on one synthetic dataset.

:func:`start_sandboxes` is what ``segsync sandbox``, the shared pytest fixtures
and the benchmarks call. It loads the same logical dataset
(:mod:`segsync_sandbox.data`) into a fresh org and a fresh portal, so the
companies match by domain across the two CRMs, and returns a
:class:`Sandboxes` handle that prints the credentials (:meth:`Sandboxes.info`)
and writes a complete connector config pointing at both
(:meth:`Sandboxes.write_config`).

With a data directory the state survives a restart: the first start writes the
generated data there, later starts load it instead of generating, and the
state is saved again periodically and on stop. Layout::

    DIR/sandbox.json     the dataset parameters and the credentials (reused)
    DIR/salesforce/      the org (Org.save)
    DIR/hubspot/         the portal (Portal.save)
    DIR/tls/             the CA and certificate of the current run
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segsync_sandbox import data, deals
from segsync_sandbox.common import Faults
from segsync_sandbox.hubspot import HubSpotSandbox, Portal, start_hubspot
from segsync_sandbox.salesforce import Org, SalesforceSandbox, start_salesforce
from segsync_sandbox.salesforce.server import DEFAULT_CLIENT_ID

_log = logging.getLogger(__name__)

STATE_FILE = "sandbox.json"
"""The file in a data directory that marks a complete saved state."""

HUBSPOT_LIMITS = frozenset(
    {"requests_per_10s", "daily_limit", "search_per_second", "send_retry_after"}
)
"""``start_sandboxes`` keyword arguments that go to the HubSpot portal."""

SALESFORCE_LIMITS = frozenset({"daily_api_limit", "token_lifetime_seconds", "cursor_ttl_seconds"})
"""``start_sandboxes`` keyword arguments that go to the Salesforce sandbox."""


@dataclass(frozen=True)
class DatasetInfo:
    """What was loaded: the dataset parameters and whether it came from a saved state."""

    seed: int
    accounts: int
    contacts_per_account: int
    reference: dt.datetime
    restored: bool
    salesforce_accounts: int
    salesforce_contacts: int
    hubspot_companies: int
    hubspot_contacts: int
    salesforce_leads: int = 0
    salesforce_opportunities: int = 0
    hubspot_deals: int = 0


@dataclass
class Sandboxes:
    """Both sandboxes, running on one dataset.

    Attributes:
        salesforce: the running Salesforce sandbox (``.client()``, ``.org``, ``.app``).
        hubspot: the running HubSpot sandbox (``.client()``, ``.portal``, ``.app``).
        dataset: what was loaded, and from where.
        data_dir: where the state is saved (None: nothing is saved).

    """

    salesforce: SalesforceSandbox
    hubspot: HubSpotSandbox
    dataset: DatasetInfo
    data_dir: Path | None = None
    save_interval: float | None = None
    _stop_event: threading.Event = field(default_factory=threading.Event, repr=False)
    _saver: threading.Thread | None = field(default=None, repr=False)
    _save_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _stopped: bool = field(default=False, repr=False)

    def info(self) -> dict[str, dict[str, str]]:
        """URLs and credentials, as ``segsync sandbox --format json`` prints them."""
        sf, hs = self.salesforce, self.hubspot
        return {
            "salesforce": {
                "instance_url": sf.instance_url,
                "access_token": sf.access_token,
                "ca_file": str(sf.ca_file),
                "token_url": sf.token_url,
                "client_id": sf.client_id,
                "client_secret": sf.client_secret,
            },
            "hubspot": {"base_url": hs.base_url, "access_token": hs.access_token},
        }

    def config_text(self, *, store_url: str | None = None, deals: bool = False) -> str:
        """A complete connector config (``connector.config`` format) pointing at both sandboxes.

        The config names no mapping, so segsync uses its built-in definitions,
        and every path in it is absolute or (the default store) relative to the
        config file: it works from any directory.

        Args:
            store_url: the state store; default a SQLite file in the data
                directory, or ``segsync.db`` next to the config without one.
            deals: let ``segsync sync`` read the deals too (``[sync] deals``);
                ``segsync sandbox`` and the demo turn it on.

        """
        sf, limits = self.salesforce, self.hubspot.portal.limits
        if store_url is None:
            store_url = (
                f"sqlite:///{(self.data_dir / 'segsync.db').resolve()}"
                if self.data_dir is not None
                else "sqlite:///segsync.db"
            )
        lines = [
            "# Written by `segsync sandbox`: a config for the local Salesforce and HubSpot",
            "# sandboxes. The credentials are the sandboxes' own, valid while they run.",
            "",
            "[connections.salesforce]",
            'crm = "salesforce"',
            'auth = "client_credentials"',
            "# The token endpoint is {login_url}/services/oauth2/token.",
            f"login_url = {_toml(sf.login_url)}",
            f"instance_url = {_toml(sf.instance_url)}",
            f"api_version = {_toml(sf.api_version)}",
            f"client_id = {_toml(sf.client_id)}",
            f"client_secret = {_toml(sf.client_secret)}",
            "# The sandbox's own certificate authority (it serves HTTPS, as Salesforce does).",
            f"ca_file = {_toml(str(Path(sf.ca_file).resolve()))}",
            "",
            "[connections.hubspot]",
            'crm = "hubspot"',
            f"base_url = {_toml(self.hubspot.base_url)}",
            f"access_token = {_toml(self.hubspot.access_token)}",
            "# The sandbox portal's limits (segsync paces each with a small margin).",
            f"requests_per_10s = {int(limits.requests_per_10s)}",
            f"daily_limit = {int(limits.daily_limit)}",
            f"search_per_second = {int(limits.search_per_second)}",
            "",
            "[store]",
            f"url = {_toml(store_url)}",
            "",
            "[sync]",
            "# No mappings listed: segsync uses the definitions built into it. To try",
            "# your own, name them here, relative to this file:",
            '# mappings = ["mappings/accounts.toml", "mappings/contacts.toml"]',
            "# Read the sandboxes' deals too (read-only), for `segsync outcomes`.",
            f"deals = {'true' if deals else 'false'}",
            "",
        ]
        return "\n".join(lines)

    def write_config(
        self, path: str | Path, *, store_url: str | None = None, deals: bool = False
    ) -> Path:
        """Write :meth:`config_text` to ``path`` (created private: it holds secrets)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        text = self.config_text(store_url=store_url, deals=deals)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        return target

    def save(self) -> None:
        """Persist both sandboxes to the data directory (no-op without one)."""
        if self.data_dir is None:
            return
        with self._save_lock:
            self.salesforce.org.save(self.data_dir / "salesforce")
            self.hubspot.portal.save(self.data_dir / "hubspot")
            _write_state(self.data_dir, self.dataset, self.salesforce, self.hubspot)

    def snapshot(self, directory: str | Path) -> Path:
        """Save both CRMs' data and schema to ``directory`` (for :meth:`restore`)."""
        path = Path(directory)
        self.salesforce.org.save(path / "salesforce")
        self.hubspot.portal.save(path / "hubspot")
        return path

    def restore(self, directory: str | Path) -> None:
        """Put back the data and schema of a :meth:`snapshot`, and :meth:`reset_faults`.

        The servers keep running and issued tokens stay valid, so a test-wide
        pair of sandboxes can start every test from the same state.
        """
        path = Path(directory)
        # SalesforceSandbox.reset swaps the org in (clearing cursors); the portal
        # reloads in place.
        self.salesforce.reset(Org.load(path / "salesforce"))
        self.hubspot.portal.load(path / "hubspot")
        # Lists are not part of a snapshot: a restored portal has none.
        self.hubspot.app.lists.reset()
        self.reset_faults()

    def reset_faults(self) -> None:
        """Clear injected faults, request logs, test hooks, rate-limit windows and API usage."""
        for app in (self.salesforce.app, self.hubspot.app):
            app.faults.set(Faults())
            app.log.clear()
            app.before_serving.clear()
        self.hubspot.app.limiter.reset()
        self.salesforce.org.set_usage(0)

    def _save_periodically(self, interval: float) -> None:
        while not self._stop_event.wait(interval):
            try:
                self.save()
            except Exception:
                # A failed save (disk full, say) must not end the saving: the
                # next round, or the save on stop, may well succeed.
                _log.exception("saving the sandbox state to %s failed", self.data_dir)

    def start_saver(self) -> None:
        """Save every ``save_interval`` seconds on a daemon thread (with a data directory)."""
        if self.data_dir is None or not self.save_interval or self._saver is not None:
            return
        self._saver = threading.Thread(
            target=self._save_periodically,
            args=(self.save_interval,),
            name="sandbox-saver",
            daemon=True,
        )
        self._saver.start()

    def stop(self) -> None:
        """Stop both servers, then save the final state (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        self._stop_event.set()
        if self._saver is not None:
            self._saver.join(timeout=30)
        try:
            self.salesforce.stop()
            self.hubspot.stop()
        finally:
            # After the servers stopped, so no write is in flight.
            self.save()

    def __enter__(self) -> Sandboxes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _toml(value: str) -> str:
    # A JSON string is a valid TOML basic string (same escapes).
    return json.dumps(value, ensure_ascii=False)


def _read_state(data_dir: Path) -> dict[str, Any] | None:
    state = data_dir / STATE_FILE
    complete = (
        state.is_file()
        and Org.exists(data_dir / "salesforce")
        and (data_dir / "hubspot" / "portal.json").is_file()
    )
    if not complete:
        return None
    loaded: dict[str, Any] = json.loads(state.read_text(encoding="utf-8"))
    return loaded


def _write_state(
    data_dir: Path, dataset: DatasetInfo, sf: SalesforceSandbox, hs: HubSpotSandbox
) -> None:
    state = {
        "format": 1,
        "seed": dataset.seed,
        "accounts": dataset.accounts,
        "contacts_per_account": dataset.contacts_per_account,
        "reference": dataset.reference.isoformat(),
        "credentials": {
            "salesforce": {
                "client_id": sf.client_id,
                "client_secret": sf.client_secret,
                "access_token": sf.access_token,
            },
            "hubspot": {"access_token": hs.access_token},
        },
    }
    tmp = data_dir / f"{STATE_FILE}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(state, out, indent=1)
    tmp.replace(data_dir / STATE_FILE)


def _split_limits(limits: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    unknown = set(limits) - HUBSPOT_LIMITS - SALESFORCE_LIMITS
    if unknown:
        known = sorted(HUBSPOT_LIMITS | SALESFORCE_LIMITS)
        raise TypeError(f"unknown sandbox limits {sorted(unknown)}; known: {known}")
    sf = {k: v for k, v in limits.items() if k in SALESFORCE_LIMITS}
    hs = {k: v for k, v in limits.items() if k in HUBSPOT_LIMITS}
    return sf, hs


def lead_count(accounts: int) -> int:
    """How many Salesforce leads a dataset of ``accounts`` companies has (one per four)."""
    return accounts // 4


def load_dataset(
    org: Org,
    portal: Portal,
    *,
    accounts: int,
    contacts_per_account: int,
    seed: int,
    reference: dt.datetime = data.REFERENCE,
) -> None:
    """Load one dataset into an empty org and an empty portal, streamed.

    Raises:
        RuntimeError: the portal numbered the companies differently from
            :func:`segsync_sandbox.data.hubspot_company_id` (it was not empty).

    """
    org.load_accounts(
        data.salesforce_account_row(c) for c in data.companies(seed, accounts, reference=reference)
    )
    org.load_contacts(
        data.salesforce_contact_row(c)
        for c in data.contacts(seed, accounts, contacts_per_account, reference=reference)
    )
    org.load_records(
        "Lead",
        (
            data.salesforce_lead_row(lead)
            for lead in data.leads(seed, accounts, lead_count(accounts), reference=reference)
        ),
    )
    ids = portal.load_companies(
        data.hubspot_company_props(c) for c in data.companies(seed, accounts, reference=reference)
    )
    # Contacts link their company by the id the generator predicts: check it.
    if ids and (
        ids[0] != data.hubspot_company_id(0) or ids[-1] != data.hubspot_company_id(accounts - 1)
    ):
        raise RuntimeError(
            f"the portal numbered companies {ids[0]}…{ids[-1]}, expected "
            f"{data.hubspot_company_id(0)}…{data.hubspot_company_id(accounts - 1)}"
        )
    portal.load_contacts(
        data.hubspot_contact_props(c)
        for c in data.contacts(seed, accounts, contacts_per_account, reference=reference)
    )
    # Deals: the same logical deals in both CRMs (segsync_sandbox.deals).
    org.load_records(
        "Opportunity",
        (
            deals.salesforce_opportunity_row(d)
            for d in deals.deals(seed, accounts, reference=reference)
        ),
    )
    seeded = list(deals.deals(seed, accounts, reference=reference))
    deal_ids = portal.load_deals(
        (deals.hubspot_deal_props(d), deals.hubspot_deal_company(d)) for d in seeded
    )
    # Stage histories: each deal's moves through its pipeline, as property history shows them.
    for deal_id, d in zip(deal_ids, seeded, strict=True):
        portal.import_history(
            "deals",
            deal_id,
            "dealstage",
            [(stage, int(at.timestamp() * 1000)) for stage, at in deals.hubspot_stage_history(d)],
        )


def start_sandboxes(
    *,
    accounts: int = 2000,
    contacts_per_account: int = 3,
    seed: int = 42,
    data_dir: str | Path | None = None,
    salesforce_port: int = 0,
    hubspot_port: int = 0,
    reference: dt.datetime = data.REFERENCE,
    save_interval: float | None = 60.0,
    **limits: Any,
) -> Sandboxes:
    """Start both sandboxes on one dataset and return their handle.

    Args:
        accounts: companies in the dataset (Salesforce Accounts = HubSpot companies).
        contacts_per_account: the average number of contacts per company.
        seed: the dataset's seed.
        data_dir: load the saved state from here when it holds one (the dataset
            arguments are then ignored), and save to it periodically and on stop.
        salesforce_port: the Salesforce port (0 picks a free one).
        hubspot_port: the HubSpot port (0 picks a free one).
        reference: the time the dataset's dates are spread back from.
        save_interval: seconds between periodic saves (None: only on stop).
        **limits: HubSpot portal limits (``requests_per_10s``, ``daily_limit``,
            ``search_per_second``, ``send_retry_after``) and Salesforce settings
            (``daily_api_limit``, ``token_lifetime_seconds``, ``cursor_ttl_seconds``).

    Raises:
        TypeError: an unknown keyword in ``limits``.
        ValueError: a negative size.

    """
    if accounts < 0 or contacts_per_account < 0:
        raise ValueError("accounts and contacts_per_account must be >= 0")
    sf_limits, hs_limits = _split_limits(limits)
    path = Path(data_dir) if data_dir is not None else None
    state = _read_state(path) if path is not None else None
    credentials: dict[str, Any] = state["credentials"] if state else {}

    if state is not None and path is not None:
        org = Org.load(path / "salesforce")
        portal = Portal.from_dir(path / "hubspot", **hs_limits)
        if "daily_api_limit" in sf_limits:
            org.daily_api_limit = int(sf_limits["daily_api_limit"])
        seed = int(state["seed"])
        accounts = int(state["accounts"])
        contacts_per_account = int(state["contacts_per_account"])
        reference = dt.datetime.fromisoformat(state["reference"])
    else:
        org = Org(daily_api_limit=int(sf_limits.get("daily_api_limit", 100_000)))
        portal = Portal(**hs_limits)
        load_dataset(
            org,
            portal,
            accounts=accounts,
            contacts_per_account=contacts_per_account,
            seed=seed,
            reference=reference,
        )

    sf_credentials = credentials.get("salesforce", {})
    sf_options = {k: v for k, v in sf_limits.items() if k != "daily_api_limit"}
    salesforce = start_salesforce(
        port=salesforce_port,
        org=org,
        # Persistence is ours (both CRMs and the state file, saved together).
        data_dir=None,
        workdir=path / "tls" if path is not None else None,
        client_id=sf_credentials.get("client_id", DEFAULT_CLIENT_ID),
        client_secret=sf_credentials.get("client_secret") or secrets.token_hex(32).upper(),
        session_id=sf_credentials.get("access_token"),
        **sf_options,
    )
    try:
        hubspot = start_hubspot(
            port=hubspot_port,
            portal=portal,
            access_token=credentials.get("hubspot", {}).get("access_token")
            or f"pat-na1-{secrets.token_hex(16)}",
        )
    except BaseException:
        salesforce.stop()
        raise
    dataset = DatasetInfo(
        seed=seed,
        accounts=accounts,
        contacts_per_account=contacts_per_account,
        reference=reference,
        restored=state is not None,
        salesforce_accounts=org.count("Account"),
        salesforce_contacts=org.count("Contact"),
        hubspot_companies=portal.count("companies"),
        hubspot_contacts=portal.count("contacts"),
        salesforce_leads=org.count("Lead"),
        salesforce_opportunities=org.count("Opportunity"),
        hubspot_deals=portal.count("deals"),
    )
    sandboxes = Sandboxes(
        salesforce=salesforce,
        hubspot=hubspot,
        dataset=dataset,
        data_dir=path,
        save_interval=save_interval,
    )
    if path is not None:
        if state is None:
            # Save the generated data at once, so a crash before the first
            # periodic save still restarts on the same dataset.
            sandboxes.save()
        else:
            _write_state(path, dataset, salesforce, hubspot)
        sandboxes.start_saver()
    return sandboxes
