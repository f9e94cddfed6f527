"""Connector settings: one TOML file, overridden by ``SEGSYNC_…`` environment variables.

Precedence, highest first: values passed in code, environment variables
(``SEGSYNC_STORE__URL``, ``SEGSYNC_CONNECTIONS__SF__CLIENT_SECRET`` …, nested keys
joined by ``__``), then the TOML file. Secrets are :class:`pydantic.SecretStr`,
so they never appear in ``repr``, logs or error messages; each secret can also
come from a file (``*_file`` keys), which is how container secrets are mounted.

Relative paths (the mappings, a SQLite store, ``ca_file``, every ``*_file``
key) resolve against the config file's directory, wherever they were given,
so a project behaves the same whatever the current directory.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, cast
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from connector import templates
from connector.errors import ConfigError, Problem, redact_url

DEFAULT_CONFIG = "config.toml"
CONFIG_ENV = "SEGSYNC_CONFIG"

log = logging.getLogger("segsync.config")

#: The databases the state store runs on (SQLAlchemy backend names).
STORE_BACKENDS = ("sqlite", "postgresql")

# SQLAlchemy's URL form: backend[+driver]://…
_SCHEME = re.compile(r"(?P<backend>[A-Za-z][\w.-]*)(?:\+[\w.-]+)?://")

#: Longest per-call timeout accepted: an hour is already more than any CRM call
#: should take, and far larger values overflow the socket layer.
MAX_TIMEOUT_SECONDS = 3600.0


def check_store_url(url: str) -> None:
    """Refuse a store URL that is empty, not a URL, or names a database the store does not run on.

    A syntax check that needs no database library (the pure core imports this
    module); :func:`connector.store.store.parse_url` parses fully when the
    store opens.

    Raises:
        ValueError: what is wrong, and the URL forms that work. The message
            never quotes a password.

    """
    if not url.strip():
        raise ValueError(
            "the state store URL is empty; use sqlite:///segsync.db or "
            "postgresql+psycopg://USER@HOST/DATABASE"
        )
    scheme = _SCHEME.match(url)
    try:
        port_ok = scheme is not None and (urlsplit(url).port or 0) >= 0
    except ValueError:
        port_ok = False
    if scheme is None or not port_ok:
        raise ValueError(
            f"{_shown_url(url)!r} is not a database URL; use sqlite:///PATH "
            "or postgresql+psycopg://USER:PASSWORD@HOST:PORT/DATABASE"
        )
    backend = scheme["backend"].lower()
    backend = "postgresql" if backend == "postgres" else backend
    if backend not in STORE_BACKENDS:
        raise ValueError(
            f"the state store runs on SQLite or PostgreSQL, not {backend!r}; "
            "use sqlite:///PATH or postgresql+psycopg://USER@HOST/DATABASE"
        )


def _shown_url(url: str) -> str:
    """``url`` fit to quote in a message: its password hidden, even when it is malformed."""
    shown = redact_url(url)
    if shown == url and "@" in url:
        # No recognizable user:password part: everything before the @ may be secret.
        shown = "***@" + url.rsplit("@", 1)[1]
    return shown


#: A DNS name is at most 253 characters in dotted form, each label at most 63.
MAX_HOST = 253
MAX_LABEL = 63


def _host_problem(host: str) -> str | None:
    """Why ``host`` is not a usable host name or address, or ``None`` when it is.

    Checked here, once, so that a 300-character host is one line at load time
    rather than an encoding error deep in an HTTP client or a socket bind.
    """
    if not host:
        return "has no host"
    try:
        ipaddress.ip_address(host.strip("[]"))
        return None
    except ValueError:
        pass
    if len(host) > MAX_HOST:
        return f"host is {len(host):,} characters long, more than the {MAX_HOST} a name may have"
    labels = host.rstrip(".").split(".")
    if any(not label or len(label) > MAX_LABEL for label in labels):
        return f"host {host[:80]!r} has an empty label or one longer than {MAX_LABEL} characters"
    try:
        host.encode("idna")
    except UnicodeError:
        return f"host {host[:80]!r} is not a valid host name"
    return None


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    name = host.strip("[]").rstrip(".").casefold()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _check_host(value: str) -> str:
    problem = _host_problem(value.strip())
    if problem is not None:
        raise ValueError(problem)
    return value.strip()


def _check_url(value: str) -> str:
    """A CRM URL: ``https://`` or ``http://``, with a valid host (http is checked later)."""
    text = value.strip()
    if len(text) > 2048:
        raise ValueError(f"the URL is {len(text):,} characters long (at most 2,048)")
    try:
        parts = urlsplit(text)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError on a port out of range
    except ValueError as exc:
        raise ValueError(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("https", "http"):
        raise ValueError(f"expected an https:// URL, not {text[:80]!r}")
    problem = _host_problem(host)
    if problem is not None:
        raise ValueError(problem)
    return text.rstrip("/")


HostName = Annotated[str, AfterValidator(_check_host)]
CrmUrl = Annotated[str, AfterValidator(_check_url)]
Timeout = Annotated[float, Field(gt=0, le=MAX_TIMEOUT_SECONDS)]


class _Model(BaseModel):
    # nan and inf are refused everywhere: a nan share or timeout compares
    # false with every bound and would slip through each check.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class _Secrets(_Model):
    """A model whose secrets may be given inline (better: in the environment) or as files."""

    def secret(self, name: str) -> str | None:
        """The secret ``name``: the inline value, else the content of ``<name>_file``.

        Files are read when the secret is needed, not when the config loads, so
        a rotated secret is picked up and a config can be validated anywhere.
        """
        value: SecretStr | None = getattr(self, name)
        if value is not None:
            return value.get_secret_value()
        path: Path | None = getattr(self, f"{name}_file", None)
        if path is None:
            return None
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                [Problem(str(path), "", f"cannot read the {name} file: {exc.strerror}")]
            ) from None


#: The objects a mapping and a job can name; ``lead`` is Salesforce's only.
ObjectKey = Literal["account", "contact", "lead"]
#: What a service job syncs: an object, or ``deal`` (the deals, read-only).
JobObject = Literal["account", "contact", "lead", "deal"]
#: Why a HubSpot connection has no ``lead`` (said wherever the config names one).
HUBSPOT_NO_LEADS = (
    "'lead' is a Salesforce object: HubSpot has no leads, and its contacts at every "
    "lifecycle stage are synced as object 'contact'"
)

#: Output fields an operator hands to segsync per object: ``{account = [...], contact = [...]}``.
AdoptedFields = dict[ObjectKey, list[Annotated[str, Field(min_length=1, max_length=255)]]]


class _Transport(_Secrets):
    """What every connection shares: plain-http refusal and adopted output fields."""

    allow_insecure_http: bool = False
    adopt_fields: AdoptedFields = Field(default_factory=dict)

    def urls(self) -> dict[str, str]:
        """The connection's CRM URLs by setting key (those that are set)."""
        return {}

    @model_validator(mode="after")
    def _no_plain_http(self) -> _Transport:
        if self.allow_insecure_http:
            return self
        for key, url in self.urls().items():
            parts = urlsplit(url)
            if parts.scheme == "http" and not is_loopback(parts.hostname or ""):
                raise ValueError(
                    f"{key} {url!r} is plain http: credentials and tokens would cross the "
                    "network in cleartext; use https://, or set allow_insecure_http = true "
                    "to accept the risk (warned at every start)"
                )
        return self

    def insecure_urls(self) -> list[str]:
        """The setting keys whose URL is plain http to a host other than this machine."""
        return [
            key
            for key, url in self.urls().items()
            if urlsplit(url).scheme == "http" and not is_loopback(urlsplit(url).hostname or "")
        ]

    def adopted(self, obj: str) -> frozenset[str]:
        """The fields the operator adopted on ``obj`` (segsync may write them)."""
        return frozenset(
            n.strip() for key, names in self.adopt_fields.items() if key == obj for n in names
        )


class SalesforceConnection(_Transport):
    """A Salesforce org.

    Authentication, in order of preference: OAuth 2.0 JWT bearer
    (``client_id`` + ``username`` + ``private_key``), client credentials
    (``client_id`` + ``client_secret``), refresh token (``client_id`` +
    ``client_secret`` + ``refresh_token``), or a ready session
    (``instance_url`` + ``session_id``).
    """

    crm: Literal["salesforce"] = "salesforce"
    auth: Literal["jwt", "client_credentials", "refresh_token", "session"] = "jwt"
    login_url: CrmUrl = "https://login.salesforce.com"
    instance_url: CrmUrl | None = None
    api_version: str = Field("59.0", pattern=r"^[1-9][0-9]{1,2}\.0$")
    client_id: str | None = None
    username: str | None = None
    client_secret: SecretStr | None = None
    client_secret_file: Path | None = None
    private_key: SecretStr | None = None
    private_key_file: Path | None = None
    refresh_token: SecretStr | None = None
    refresh_token_file: Path | None = None
    session_id: SecretStr | None = None
    ca_file: Path | None = None
    timeout_seconds: Timeout = 60.0
    bulk_read_threshold: int = Field(50_000, ge=1, le=1_000_000_000)
    bulk_write_threshold: int = Field(10_000, ge=1, le=1_000_000_000)
    # Longest pause between two status polls of a Bulk 2.0 ingest job
    # (connector/crm/salesforce/bulk.py); the stall limit must exceed it.
    bulk_poll_max_seconds: float = Field(60.0, gt=0, le=3_600)
    daily_api_share: float = Field(0.5, gt=0, le=1)
    max_concurrency: int = Field(4, ge=1, le=25)

    def verify(self, connection: str) -> str | bool:
        """What TLS verification trusts: ``ca_file`` (checked readable), else the system's CAs.

        Checked when the adapter is built, so a missing file is one line naming
        ``connections.NAME.ca_file`` rather than an error inside the HTTP client.
        """
        if self.ca_file is None:
            return True
        try:
            with self.ca_file.open("rb"):
                pass
        except OSError as exc:
            raise ConfigError(
                [
                    Problem(
                        f"connections.{connection}",
                        "ca_file",
                        f"cannot read {self.ca_file}: {exc.strerror or exc}; give the PEM "
                        "file of the certificate authority to trust, or remove ca_file",
                    )
                ]
            ) from None
        return str(self.ca_file)

    def urls(self) -> dict[str, str]:
        """The login (token) URL and, for a ready session, the instance URL."""
        found = {"login_url": self.login_url}
        if self.instance_url:
            found["instance_url"] = self.instance_url
        return found


class HubSpotConnection(_Transport):
    """A HubSpot portal reached with a private-app token."""

    crm: Literal["hubspot"] = "hubspot"
    base_url: CrmUrl = "https://api.hubapi.com"
    access_token: SecretStr | None = None
    access_token_file: Path | None = None
    timeout_seconds: Timeout = 60.0
    requests_per_10s: int = Field(100, ge=1, le=1_000_000)
    daily_limit: int = Field(250_000, ge=1, le=1_000_000_000)
    search_per_second: int = Field(5, ge=1, le=1_000_000)
    max_concurrency: int = Field(4, ge=1, le=25)

    def urls(self) -> dict[str, str]:
        """The API base URL (every call carries the bearer token)."""
        return {"base_url": self.base_url}

    @field_validator("adopt_fields")
    @classmethod
    def _no_leads(cls, value: AdoptedFields) -> AdoptedFields:
        if "lead" in value:
            raise ValueError(HUBSPOT_NO_LEADS)
        return value


Connection = Annotated[SalesforceConnection | HubSpotConnection, Field(discriminator="crm")]


_DAY = 86_400  # seconds


class StoreSettings(_Model):
    """Where segsync keeps runs, watermarks, last-written values and the ledger."""

    url: str = "sqlite:///segsync.db"
    # Bounds on every store call, so a statement that hangs (a lock another
    # session holds, a server gone quiet) fails and is retried instead of
    # holding its job forever. 0 turns a server-side bound off. PostgreSQL
    # only, except lock_timeout_seconds: SQLite's busy timeout too (how long a
    # statement waits for another connection's lock on the file; when 0, the
    # statement timeout; connector/store/session.py).
    connect_timeout_seconds: int = Field(10, ge=2, le=3_600)
    statement_timeout_seconds: float = Field(300.0, ge=0, le=_DAY)
    lock_timeout_seconds: float = Field(60.0, ge=0, le=_DAY)
    idle_in_transaction_timeout_seconds: float = Field(300.0, ge=0, le=_DAY)
    # TCP keepalives: a connection silent this long is probed, and given up
    # after about twice this without an answer (data sent unacknowledged too).
    keepalive_seconds: int = Field(30, ge=1, le=_DAY)

    @field_validator("url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        # Refused here to name store.url (and in `validate`); Store.open parses fully.
        check_store_url(value)
        return value


class SyncSettings(_Model):
    """How one cycle behaves."""

    # Default: the definitions built into the package (``segsync init`` copies them).
    mappings: list[Path] = Field(default_factory=lambda: list(templates.MAPPINGS))
    override_policy: Literal["respect", "overwrite"] = "respect"
    max_change_share: float = Field(0.5, gt=0, le=1)
    min_records_for_guard: int = Field(50, ge=0, le=1_000_000_000)
    lookback_seconds: int = Field(300, ge=0, le=_DAY * 30)
    hysteresis_runs: int = Field(1, ge=1, le=1_000)
    hysteresis_dwell_seconds: int = Field(0, ge=0, le=_DAY * 366)
    retry_attempts: int = Field(6, ge=1, le=100)
    retry_initial_wait_seconds: float = Field(0.5, gt=0, le=3_600)
    retry_max_wait_seconds: float = Field(60.0, gt=0, le=_DAY)
    #: Re-read each write chunk's records right before writing it and skip those
    #: a person (or anything but segsync) changed since the plan.
    recheck_before_write: bool = True
    # How long a job's holder keeps it without renewing (connector/store/leases.py).
    lease_seconds: float = Field(90.0, ge=5, le=3_600)
    # A run that makes no progress (no page planned, chunk written or batch
    # recorded, no answer of the CRM: a Bulk job's polls count) for this long
    # is stalled: its lease is no longer renewed, so another process takes the
    # job over, and /healthz fails.
    stall_seconds: float = Field(900.0, ge=1, le=_DAY * 7)
    # Read the connections' deals too (read-only), before the accounts (always when
    # the account mapping has rollup attributes: they are computed from the deals).
    deals: bool = False

    @model_validator(mode="after")
    def _waits_in_order(self) -> SyncSettings:
        if self.retry_initial_wait_seconds > self.retry_max_wait_seconds:
            raise ValueError(
                "retry_initial_wait_seconds is above retry_max_wait_seconds "
                f"({self.retry_initial_wait_seconds} > {self.retry_max_wait_seconds})"
            )
        return self


class ParityMatch(_Model):
    """A field on each side that names the same company or person (the last identity key)."""

    salesforce: str = Field(min_length=1, max_length=200)
    hubspot: str = Field(min_length=1, max_length=200)


CrmName = Literal["salesforce", "hubspot"]


class ParitySettings(_Model):
    """``segsync parity`` and the agreement policy: one definition across both CRMs.

    ``source`` (opt-in) makes the sync write the same values to both records
    of a matched pair: computed from the preferred CRM's record, or
    (``merge``) from inputs merged attribute by attribute, the first
    non-blank value in ``merge_order`` (``attribute_order`` overrides it per
    attribute).
    """

    match_on: dict[Literal["account", "contact"], ParityMatch] = Field(default_factory=dict)
    source: Literal["salesforce", "hubspot", "merge"] | None = None
    merge_order: list[CrmName] = Field(
        default_factory=lambda: cast(list[CrmName], ["salesforce", "hubspot"]),
        min_length=2,
        max_length=2,
    )
    attribute_order: dict[str, list[CrmName]] = Field(default_factory=dict)

    @field_validator("merge_order")
    @classmethod
    def _both_crms(cls, value: list[str]) -> list[str]:
        if set(value) != {"salesforce", "hubspot"}:
            raise ValueError('expected both CRMs once each, e.g. ["salesforce", "hubspot"]')
        return value

    @field_validator("attribute_order")
    @classmethod
    def _orders(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, order in value.items():
            if not order or len(set(order)) != len(order):
                raise ValueError(f"{name}: expected one or both CRMs, each once")
        return value


class NativeSettings(_Model):
    """Native lists ``segsync provision`` keeps in each CRM (one per segment and per tier)."""

    hubspot_lists: bool = True
    salesforce_list_views: bool = True
    # "AllInternalUsers", "None" (only the integration user sees them), or one
    # group or role by developer name: "Group:Sales_Reps", "Role:AE",
    # "RoleAndSubordinates:VP_Sales".
    list_view_shared_to: str = Field(
        "AllInternalUsers",
        pattern=r"^(AllInternalUsers|None|(Group|Role|RoleAndSubordinates):[A-Za-z][A-Za-z0-9_]{0,79})$",
    )


class JobSettings(_Model):
    """One scheduled job: a connection and an object, on an interval or a cron line."""

    connection: str
    object: JobObject
    interval_minutes: float | None = Field(None, gt=0, le=_DAY * 366 / 60)
    cron: str | None = Field(None, max_length=200)
    full_every_hours: float | None = Field(None, gt=0, le=24 * 366 * 10)

    @model_validator(mode="after")
    def _one_trigger(self) -> JobSettings:
        if (self.interval_minutes is None) == (self.cron is None):
            raise ValueError("give exactly one of interval_minutes or cron")
        return self


class ServiceSettings(_Model):
    """The long-running service (``segsync run``)."""

    port: int = Field(9464, ge=0, le=65535)
    host: HostName = "127.0.0.1"
    timezone: str = Field("UTC", max_length=100)
    misfire_grace_seconds: int = Field(300, ge=1, le=_DAY * 7)
    shutdown_timeout_seconds: float = Field(30.0, gt=0, le=3_600)
    ready_max_age_minutes: float = Field(120.0, gt=0, le=_DAY * 366 / 60)
    alert_webhook_url: SecretStr | None = None
    alert_failure_share: float = Field(0.05, ge=0, le=1)
    jobs: list[JobSettings] = Field(default_factory=list)


class Settings(BaseSettings):
    """The whole configuration, as read from ``config.toml`` and the environment."""

    model_config = SettingsConfigDict(
        env_prefix="SEGSYNC_",
        env_nested_delimiter="__",
        extra="forbid",
        toml_file=None,
        allow_inf_nan=False,
    )
    _toml_path: ClassVar[Path | None] = None

    connections: dict[str, Connection] = Field(default_factory=dict)
    store: StoreSettings = Field(default_factory=StoreSettings)
    sync: SyncSettings = Field(default_factory=lambda: SyncSettings())
    service: ServiceSettings = Field(default_factory=lambda: ServiceSettings())
    parity: ParitySettings = Field(default_factory=lambda: ParitySettings())

    native: NativeSettings = Field(default_factory=lambda: NativeSettings())

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Init values, then the environment, then the TOML file."""
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if cls._toml_path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=cls._toml_path))
        return tuple(sources)

    @model_validator(mode="after")
    def _policy_pairs_two_connections(self) -> Settings:
        if self.parity.source is not None:
            for crm in ("salesforce", "hubspot"):
                names = [n for n, c in self.connections.items() if c.crm == crm]
                if len(names) != 1:
                    raise ValueError(
                        f"parity.source: the agreement policy pairs one salesforce and one "
                        f"hubspot connection; found {len(names)} of {crm}"
                        + (f" ({', '.join(names)})" if names else "")
                    )
        return self

    def policy_connections(self) -> list[str]:
        """Under ``[parity] source``, the two connections it pairs (else none)."""
        if self.parity.source is None:
            return []
        return [
            n
            for crm in ("salesforce", "hubspot")
            for n, c in self.connections.items()
            if c.crm == crm
        ]

    @model_validator(mode="after")
    def _stall_above_store_bounds(self) -> Settings:
        # A statement that runs into its timeout is retried: that is not a stall.
        store = self.store
        bound = max(store.statement_timeout_seconds, store.lock_timeout_seconds)
        if bound and self.sync.stall_seconds <= bound:
            raise ValueError(
                f"sync.stall_seconds ({self.sync.stall_seconds:g}) must be above "
                f"store.statement_timeout_seconds and store.lock_timeout_seconds ({bound:g}): "
                "a statement that times out is retried, not a stalled run"
            )
        return self

    @model_validator(mode="after")
    def _stall_above_crm_silence(self) -> Settings:
        # Waiting for the CRM's next answer is no stall: see crm_silence
        # (docs/crm-apis.md#stall-limit).
        if not self.connections:
            return self
        silence = max(
            (crm_silence(name, c, self.sync) for name, c in self.connections.items()),
            key=lambda s: s.seconds,
        )
        if self.sync.stall_seconds <= silence.seconds:
            raise ValueError(
                f"sync.stall_seconds ({self.sync.stall_seconds:g}) must be above the "
                f"longest a healthy run waits for the CRM ({silence.seconds:g} s: "
                f"{silence.formula}): a retried call, a Bulk job between two polls or a "
                "paced call is not a stalled run"
            )
        return self

    @model_validator(mode="after")
    def _jobs_name_connections(self) -> Settings:
        for job in self.service.jobs:
            if job.connection not in self.connections:
                known = ", ".join(sorted(self.connections)) or "none defined"
                raise ValueError(
                    f"service.jobs: connection {job.connection!r} is not defined (known: {known})"
                )
            if job.object == "lead" and self.connections[job.connection].crm == "hubspot":
                raise ValueError(
                    f"service.jobs: connection {job.connection!r} is HubSpot: {HUBSPOT_NO_LEADS}"
                )
        return self


#: Longest pause between two status polls of a Salesforce Bulk 2.0 query job:
#: simple-salesforce's ``wait_for_job`` sleeps the adapter's ``bulk_wait`` (2 s)
#: plus e^n/1000 s at the n-th poll and stops growing the pause once it passes
#: 2 s, so 2.001 s (docs/crm-apis.md, "A long Bulk job is progress").
BULK_QUERY_POLL_SECONDS = 2.1
#: Longest a paced HubSpot call waits for a place in the rate window after the
#: last call of the window was answered: the ten-second window, plus the
#: limiter's margin of at most a twentieth of it and 50 ms
#: (connector/crm/limits.py, ``RollingWindowLimiter``).
HUBSPOT_PACING_SECONDS = 11.0


@dataclass(frozen=True)
class Silence:
    """The longest a healthy run can go without an answer of one connection.

    Attributes:
        seconds: how long.
        formula: how it is made up, naming each setting and its value.

    """

    seconds: float
    formula: str


def crm_silence(
    name: str, connection: SalesforceConnection | HubSpotConnection, sync: SyncSettings
) -> Silence:
    """The longest silence between two answers of ``connection`` while a run is healthy.

    The stall watchdog (connector/store/leases.py) counts every answer of the
    CRM as progress. Between two answers a run waits for one of: a retry's
    back-off (at most ``sync.retry_max_wait_seconds``, a Retry-After
    included), a Bulk 2.0 job's next status poll (Salesforce: at most the
    connection's ``bulk_poll_max_seconds`` for an ingest job,
    :data:`BULK_QUERY_POLL_SECONDS` for a query job), or a place in
    HubSpot's rate window (:data:`HUBSPOT_PACING_SECONDS`); then the call
    itself, which may take the connection's ``timeout_seconds``. So the
    silence is ``timeout_seconds`` plus the longest of those pauses.
    """
    key = f"connections.{name}"
    pauses: list[tuple[float, str]] = [
        (
            sync.retry_max_wait_seconds,
            f"sync.retry_max_wait_seconds ({sync.retry_max_wait_seconds:g})",
        )
    ]
    if isinstance(connection, SalesforceConnection):
        pauses += [
            (
                connection.bulk_poll_max_seconds,
                f"{key}.bulk_poll_max_seconds ({connection.bulk_poll_max_seconds:g})",
            ),
            (
                BULK_QUERY_POLL_SECONDS,
                f"a Bulk query job's poll pause ({BULK_QUERY_POLL_SECONDS:g})",
            ),
        ]
    else:
        pauses.append(
            (HUBSPOT_PACING_SECONDS, f"HubSpot's rate window pause ({HUBSPOT_PACING_SECONDS:g})")
        )
    timeout = connection.timeout_seconds
    return Silence(
        timeout + max(p for p, _ in pauses),
        f"{key}.timeout_seconds ({timeout:g}) + the longest of "
        + ", ".join(text for _, text in pauses),
    )


def config_path(explicit: str | Path | None = None) -> Path:
    """The config file to read: the explicit one, ``$SEGSYNC_CONFIG``, or ``config.toml``."""
    if explicit is not None:
        return Path(explicit)
    return Path(os.environ.get(CONFIG_ENV, DEFAULT_CONFIG))


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Load and validate the settings, reporting every problem at once as a ConfigError."""
    file = config_path(path)
    if not file.is_file():
        raise ConfigError([Problem(str(file), "", "the config file does not exist")])

    class _FileSettings(Settings):
        _toml_path: ClassVar[Path | None] = file

    try:
        loaded = _FileSettings(**overrides)
    except ValidationError as exc:
        problems = [
            Problem(
                str(file),
                ".".join(str(p) for p in err["loc"]),
                err["msg"].removeprefix("Value error, "),
            )
            for err in exc.errors(include_input=False, include_url=False)
        ]
        raise ConfigError(problems) from None
    except RecursionError:
        raise ConfigError(
            [Problem(str(file), "", "tables or arrays are nested too deeply to read")]
        ) from None
    except (OSError, ValueError) as exc:
        message = str(exc)
        if "integer string conversion" in message:
            message = "a number has more than 4,300 digits"
        raise ConfigError([Problem(str(file), "", _one_line(message))]) from None
    resolve_paths(loaded, file.parent)
    return loaded


def _one_line(text: str, limit: int = 300) -> str:
    """A parser message as one readable line (no echoed 4,000-digit numbers)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def insecure_connections(settings: Settings) -> Iterator[tuple[str, str]]:
    """(connection, setting key) of every plain-http URL the operator allowed explicitly."""
    for name, connection in settings.connections.items():
        for key in connection.insecure_urls():
            yield name, key


def warn_insecure(settings: Settings, logger: logging.Logger | None = None) -> None:
    """Log a warning for every allowed plain-http CRM URL (at every start, by design)."""
    for name, key in insecure_connections(settings):
        (logger or log).warning(
            "connection %r: %s is plain http (allow_insecure_http = true): credentials and "
            "tokens cross the network in cleartext",
            name,
            key,
        )


# sqlite[+driver]:///<database>[?query]; an absolute path starts with a 4th slash.
_SQLITE_URL = re.compile(r"^(sqlite(?:\+\w+)?):///([^?]*)(\?.*)?$")


def resolve_paths(settings: Settings, base: Path) -> None:
    """Make every relative path in ``settings`` relative to ``base`` (in place).

    ``base`` is the config file's directory: a config names its mappings,
    store, CA and secret files the way a project lays them out, and the same
    config then works from any current directory (a service manager's, a
    container's, a cron job's). ``~`` is expanded too.
    """
    _resolve_model(settings, base)
    settings.store.url = _resolve_sqlite_url(settings.store.url, base)


def _resolve_path(path: Path, base: Path) -> Path:
    path = path.expanduser()
    return path if path.is_absolute() else base / path


def _resolve_model(model: BaseModel, base: Path) -> None:
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, Path):
            setattr(model, name, _resolve_path(value, base))
        elif isinstance(value, BaseModel):
            _resolve_model(value, base)
        elif isinstance(value, list | dict):
            items = value.values() if isinstance(value, dict) else value
            if isinstance(value, list) and all(isinstance(v, Path) for v in value):
                setattr(model, name, [_resolve_path(v, base) for v in value])
                continue
            for item in items:
                if isinstance(item, BaseModel):
                    _resolve_model(item, base)


def _resolve_sqlite_url(url: str, base: Path) -> str:
    """``sqlite:///segsync.db`` → the file next to the config; other URLs unchanged.

    Parsed by hand, not with SQLAlchemy: settings are imported by the pure
    core, which must not pull the database layer in.
    """
    match = _SQLITE_URL.match(url)
    if match is None:
        return url  # not SQLite, or malformed: the store reports what it cannot open
    scheme, database, query = match.group(1), match.group(2), match.group(3) or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        return url  # in memory, or an SQLite URI filename: left as written
    resolved = _resolve_path(Path(database), base)
    if resolved == Path(database):
        return url
    return f"{scheme}:///{resolved}{query}"
