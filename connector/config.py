"""Connector settings: one TOML file, overridden by ``SEGSYNC_…`` environment variables.

Precedence, highest first: values passed in code, environment variables
(``SEGSYNC_STORE__URL``, ``SEGSYNC_CONNECTIONS__SF__CLIENT_SECRET`` …, nested keys
joined by ``__``), then the TOML file. Secrets are :class:`pydantic.SecretStr`,
so they never appear in ``repr``, logs or error messages; each secret can also
come from a file (``*_file`` keys), which is how container secrets are mounted.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from connector.errors import ConfigError, Problem

DEFAULT_CONFIG = "config.toml"
CONFIG_ENV = "SEGSYNC_CONFIG"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


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


class SalesforceConnection(_Secrets):
    """A Salesforce org.

    Authentication, in order of preference: OAuth 2.0 JWT bearer
    (``client_id`` + ``username`` + ``private_key``), client credentials
    (``client_id`` + ``client_secret``), refresh token (``client_id`` +
    ``client_secret`` + ``refresh_token``), or a ready session
    (``instance_url`` + ``session_id``).
    """

    crm: Literal["salesforce"] = "salesforce"
    auth: Literal["jwt", "client_credentials", "refresh_token", "session"] = "jwt"
    login_url: str = "https://login.salesforce.com"
    instance_url: str | None = None
    api_version: str = "59.0"
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
    timeout_seconds: float = 60.0
    bulk_read_threshold: int = 50_000
    bulk_write_threshold: int = 10_000
    daily_api_share: float = Field(0.5, gt=0, le=1)
    max_concurrency: int = Field(4, ge=1, le=25)


class HubSpotConnection(_Secrets):
    """A HubSpot portal reached with a private-app token."""

    crm: Literal["hubspot"] = "hubspot"
    base_url: str = "https://api.hubapi.com"
    access_token: SecretStr | None = None
    access_token_file: Path | None = None
    timeout_seconds: float = 60.0
    requests_per_10s: int = Field(100, ge=1)
    daily_limit: int = Field(250_000, ge=1)
    search_per_second: int = Field(4, ge=1)
    max_concurrency: int = Field(4, ge=1, le=25)


Connection = Annotated[SalesforceConnection | HubSpotConnection, Field(discriminator="crm")]


class StoreSettings(_Model):
    """Where segsync keeps runs, watermarks, last-written values and the ledger."""

    url: str = "sqlite:///segsync.db"


class SyncSettings(_Model):
    """How one cycle behaves."""

    mappings: list[Path] = Field(
        default_factory=lambda: [Path("mappings/accounts.toml"), Path("mappings/contacts.toml")]
    )
    override_policy: Literal["respect", "overwrite"] = "respect"
    max_change_share: float = Field(0.5, gt=0, le=1)
    min_records_for_guard: int = Field(50, ge=0)
    lookback_seconds: int = Field(300, ge=0)
    hysteresis_runs: int = Field(1, ge=1)
    hysteresis_dwell_seconds: int = Field(0, ge=0)
    retry_attempts: int = Field(6, ge=1)
    retry_initial_wait_seconds: float = Field(0.5, gt=0)
    retry_max_wait_seconds: float = Field(60.0, gt=0)


class JobSettings(_Model):
    """One scheduled job: a connection and an object, on an interval or a cron line."""

    connection: str
    object: Literal["account", "contact"]
    interval_minutes: float | None = Field(None, gt=0)
    cron: str | None = None
    full_every_hours: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _one_trigger(self) -> JobSettings:
        if (self.interval_minutes is None) == (self.cron is None):
            raise ValueError("give exactly one of interval_minutes or cron")
        return self


class ServiceSettings(_Model):
    """The long-running service (``segsync run``)."""

    port: int = Field(9464, ge=0, le=65535)
    host: str = "127.0.0.1"
    timezone: str = "UTC"
    misfire_grace_seconds: int = Field(300, ge=1)
    shutdown_timeout_seconds: float = Field(30.0, gt=0)
    ready_max_age_minutes: float = Field(120.0, gt=0)
    alert_webhook_url: SecretStr | None = None
    alert_failure_share: float = Field(0.05, ge=0, le=1)
    jobs: list[JobSettings] = Field(default_factory=list)


class Settings(BaseSettings):
    """The whole configuration, as read from ``config.toml`` and the environment."""

    model_config = SettingsConfigDict(
        env_prefix="SEGSYNC_", env_nested_delimiter="__", extra="forbid", toml_file=None
    )
    _toml_path: ClassVar[Path | None] = None

    connections: dict[str, Connection] = Field(default_factory=dict)
    store: StoreSettings = Field(default_factory=StoreSettings)
    sync: SyncSettings = Field(default_factory=lambda: SyncSettings())
    service: ServiceSettings = Field(default_factory=lambda: ServiceSettings())

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
    def _jobs_name_connections(self) -> Settings:
        for job in self.service.jobs:
            if job.connection not in self.connections:
                known = ", ".join(sorted(self.connections)) or "none defined"
                raise ValueError(
                    f"service.jobs: connection {job.connection!r} is not defined (known: {known})"
                )
        return self


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
    except (OSError, ValueError) as exc:
        raise ConfigError([Problem(str(file), "", str(exc))]) from None
    return loaded
