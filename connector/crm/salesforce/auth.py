"""Salesforce tokens: OAuth 2.0 token requests against a configurable login URL.

simple-salesforce's own login flows always post to ``*.salesforce.com``, so
segsync asks the token endpoint itself (JWT bearer, client credentials or
refresh token) and :mod:`.session` builds the client from the instance URL
and access token it gets back. ``auth = "session"`` takes a
ready session id instead, and cannot renew it.

Secrets never leave this module in readable form: :class:`Token` hides the
access token from ``repr``, and every message built from a token endpoint
answer goes through :func:`scrub`, which blanks each secret the request
carried.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import jwt
import requests

from connector.config import SalesforceConnection
from connector.crm.base import transport_reason
from connector.errors import (
    ConfigError,
    CrmAccessError,
    CrmUnreachable,
    FatalSyncError,
    Problem,
    RetriableError,
    SegsyncError,
)

TOKEN_PATH = "/services/oauth2/token"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# Salesforce accepts assertions up to five minutes out; a short life limits replay.
JWT_LIFETIME_SECONDS = 180
REDACTED = "***"

_HINTS = {
    "invalid_client_id": "check client_id (the connected app's consumer key)",
    "invalid_client": "check client_id and client_secret",
    "invalid_grant": (
        "check the username, that the connected app holds the certificate of the private key, "
        "that the user is pre-authorized, and that the login_url is the right one"
    ),
    "unsupported_grant_type": "the connected app does not allow this OAuth flow",
    "inactive_user": "the integration user is inactive",
    "inactive_org": "the org is locked or inactive",
}


@dataclass(frozen=True)
class Token:
    """An access token and the instance it is valid for."""

    access_token: str = field(repr=False)
    instance_url: str
    #: The token response's ``id``: the identity URL naming the user (None for a given session).
    identity_url: str | None = None

    @property
    def user_id(self) -> str | None:
        """The integration user's id: the identity URL's last part (``…/id/<org>/<user>``)."""
        identity = (self.identity_url or "").rstrip("/")
        return identity.rsplit("/", 1)[-1] or None if "/id/" in identity else None


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every secret (and its longer lines, for PEM keys) replaced by ``***``."""
    for secret in secrets:
        if not secret:
            continue
        text = text.replace(secret, REDACTED)
        # A PEM key could come back one line at a time; blank each substantial line too.
        for line in secret.splitlines():
            if len(line) >= 16:
                text = text.replace(line, REDACTED)
    return text


class TokenSource:
    """Obtains access tokens for one connection with the configured OAuth flow."""

    def __init__(self, connection: str, settings: SalesforceConnection) -> None:
        self.connection = connection
        self._settings = settings
        self._check_settings()

    def __repr__(self) -> str:
        return f"TokenSource(connection={self.connection!r}, auth={self._settings.auth!r})"

    @property
    def renewable(self) -> bool:
        """False for a given session id: nothing can renew it."""
        return self._settings.auth != "session"

    @property
    def token_url(self) -> str:
        """The token endpoint under the login URL."""
        return self._settings.login_url.rstrip("/") + TOKEN_PATH

    def _fail(self, message: str) -> FatalSyncError:
        return FatalSyncError(f"Salesforce connection {self.connection!r}: {message}")

    def _check_settings(self) -> None:
        s = self._settings
        env = f"SEGSYNC_CONNECTIONS__{self.connection.upper()}__"
        missing: list[str] = []
        if s.auth == "session":
            if not s.instance_url:
                missing.append("instance_url")
            if s.session_id is None:
                missing.append(f"session_id (or {env}SESSION_ID)")
        else:
            if not s.client_id:
                missing.append("client_id")
            if s.auth == "jwt":
                if not s.username:
                    missing.append("username")
                if s.private_key is None and s.private_key_file is None:
                    missing.append(f"private_key_file (or {env}PRIVATE_KEY)")
            if s.auth in ("client_credentials", "refresh_token") and (
                s.client_secret is None and s.client_secret_file is None
            ):
                missing.append(f"client_secret (or {env}CLIENT_SECRET / client_secret_file)")
            if (
                s.auth == "refresh_token"
                and s.refresh_token is None
                and s.refresh_token_file is None
            ):
                missing.append(f"refresh_token (or {env}REFRESH_TOKEN / refresh_token_file)")
        if missing:
            raise self._fail(f"auth = {s.auth!r} needs " + ", ".join(missing))

    def _secrets(self) -> list[str | None]:
        s = self._settings
        return [
            s.secret(n) for n in ("client_secret", "private_key", "refresh_token", "session_id")
        ]

    def fetch(
        self, http: requests.Session, on_no_response: Callable[[], None] | None = None
    ) -> Token:
        """A new token (a network call, except for ``auth = "session"``).

        Raises CrmAccessError when the credentials are refused, CrmUnreachable when
        the endpoint does not answer, RetriableError when it fails for the moment,
        ConfigError when the JWT key is unusable. ``on_no_response`` is
        told of a request that got no answer (response hooks never see those).
        """
        s = self._settings
        if s.auth == "session":
            session_id = s.secret("session_id") or ""
            return Token(session_id, (s.instance_url or "").rstrip("/"))
        form = self._form()
        # What the request carried that must never be echoed: not the grant or client id.
        secrets = [*self._secrets(), form.get("assertion")]
        try:
            response = http.post(self.token_url, data=form, headers={"Accept": "application/json"})
        except requests.RequestException as exc:
            if on_no_response is not None and exc.response is None:
                on_no_response()
            raise self._transport_error(exc, secrets) from None
        return self._token(response, secrets)

    def _transport_error(
        self, exc: requests.RequestException, secrets: list[str | None]
    ) -> SegsyncError:
        s = self._settings
        name = f"Salesforce connection {self.connection!r}"
        if isinstance(exc, requests.exceptions.SSLError):
            return CrmAccessError(
                f"{name}: TLS verification of {s.login_url} failed; set ca_file if the login "
                "host uses a private certificate authority"
            )
        # No answer at all: retried like a 5xx, then exit status 4 with what to check.
        return CrmUnreachable(
            scrub(
                f"{name}: cannot reach {s.login_url} ({transport_reason(exc)}); check "
                "login_url, the network and any proxy",
                secrets,
            )
        )

    def _form(self) -> dict[str, str]:
        s = self._settings
        client_id = s.client_id or ""
        if s.auth == "jwt":
            return {"grant_type": JWT_GRANT, "assertion": self._assertion()}
        if s.auth == "client_credentials":
            return {
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": s.secret("client_secret") or "",
            }
        form = {
            "grant_type": "refresh_token",
            "client_id": client_id,
            "refresh_token": s.secret("refresh_token") or "",
        }
        secret = s.secret("client_secret")
        if secret:
            form["client_secret"] = secret
        return form

    def _assertion(self) -> str:
        s = self._settings
        key = s.secret("private_key") or ""
        claims = {
            "iss": s.client_id,
            "sub": s.username,
            "aud": s.login_url.rstrip("/"),
            "exp": int(time.time()) + JWT_LIFETIME_SECONDS,
        }
        try:
            return jwt.encode(claims, key, algorithm="RS256")
        except (ValueError, TypeError, jwt.PyJWTError):
            # The library's message may quote the key material: say only what is wrong.
            raise ConfigError(
                [
                    Problem(
                        f"connections.{self.connection}",
                        "private_key",
                        "the JWT private key could not be used (expected an unencrypted RSA "
                        "key in PEM)",
                    )
                ]
            ) from None

    def _token(self, response: requests.Response, secrets: list[str | None]) -> Token:
        try:
            body: Any = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        status = response.status_code
        if status == 200 and body.get("access_token"):
            instance = str(body.get("instance_url") or self._settings.instance_url or "")
            if not instance:
                raise self._fail("the token response named no instance_url")
            identity = body.get("id")
            return Token(
                str(body["access_token"]),
                instance.rstrip("/"),
                str(identity) if isinstance(identity, str) and identity else None,
            )
        error = str(body.get("error") or f"HTTP {status}")
        description = str(body.get("error_description") or "").strip()
        detail = f"{error}: {description}" if description else error
        message = scrub(
            f"Salesforce connection {self.connection!r}: the token endpoint refused the "
            f"{self._settings.auth} grant ({detail})",
            secrets,
        )
        if status == 429 or status >= 500:
            return_error: SegsyncError = RetriableError(message)
        else:
            # The org answered and said no: credentials, app or user settings to fix.
            hint = _HINTS.get(error)
            return_error = CrmAccessError(f"{message}; {hint}" if hint else message)
        raise return_error
