"""OAuth 2.0 for the Salesforce sandbox: the token endpoint and the sessions it issues.

``POST /services/oauth2/token`` answers the three grants an integration uses —
JWT bearer (RS256 assertion signed with the connected app's certificate key),
client credentials and refresh token — with Salesforce's body and error
shapes. Issued access tokens expire after a configurable lifetime, or after
``faults.session_expiry_after`` authenticated calls; a fixed session id given
at start works like a token handed out by some other flow.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from segsync_sandbox.common import FaultState, Request, Response
from segsync_sandbox.salesforce.org import ORG_ID, USER_ID, USERNAME

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEFAULT_LOGIN_URLS = ("https://login.salesforce.com", "https://test.salesforce.com")


def generate_key_pair(directory: Path) -> tuple[Path, bytes]:
    """Make an RSA key pair; write the private key (PKCS#8 PEM) to ``directory``.

    Returns the private key's path and the public key's PEM (what a connected app's
    certificate holds).
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "jwt-private-key.pem"
    path.write_bytes(private_pem)
    path.chmod(0o600)
    return path, public_pem


def new_token() -> str:
    """A session id shaped like Salesforce's (``00D...!AQ...``)."""
    return f"{ORG_ID[:15]}!AQ" + secrets.token_urlsafe(72)


@dataclass
class Session:
    """One issued access token."""

    token: str
    issued_at: float
    expires_at: float | None
    grant: str
    calls: int = 0
    revoked: bool = False


@dataclass
class OAuthSettings:
    """The connected app and user the sandbox recognizes."""

    client_id: str
    client_secret: str
    username: str = USERNAME
    public_keys: list[bytes] = field(default_factory=list)
    refresh_tokens: set[str] = field(default_factory=set)
    login_urls: list[str] = field(default_factory=lambda: list(DEFAULT_LOGIN_URLS))


class TokenStore:
    """Issued sessions: lifetime, per-token call budgets (session expiry fault), revocation."""

    def __init__(
        self,
        faults: FaultState,
        *,
        lifetime_seconds: float | None = 7200.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}
        self.faults = faults
        self.lifetime_seconds = lifetime_seconds
        self.clock = clock
        self._faults_seen: object = faults.faults

    def issue(self, grant: str, token: str | None = None, *, expires: bool = True) -> Session:
        """Create a session (``token`` given: register that fixed session id)."""
        now = self.clock()
        expires_at = (
            now + self.lifetime_seconds if expires and self.lifetime_seconds is not None else None
        )
        session = Session(token or new_token(), now, expires_at, grant)
        with self._lock:
            self._sessions[session.token] = session
        return session

    def use(self, token: str | None) -> bool:
        """Check a token for one authenticated call and count the call against it.

        False when the token is unknown, revoked, past its lifetime or past the
        ``session_expiry_after`` call budget (counted from when the faults were set).
        """
        if not token:
            return False
        faults = self.faults.faults
        expiry_after = faults.session_expiry_after
        with self._lock:
            if faults is not self._faults_seen:
                # New fault settings: call budgets count from the moment they are set.
                self._faults_seen = faults
                for other in self._sessions.values():
                    other.calls = 0
            session = self._sessions.get(token)
            if session is None or session.revoked:
                return False
            if session.expires_at is not None and self.clock() >= session.expires_at:
                session.revoked = True
                return False
            if expiry_after is not None and session.calls >= expiry_after:
                session.revoked = True
                return False
            session.calls += 1
            return True

    def revoke(self, token: str) -> bool:
        """Invalidate a token; False when it was unknown."""
        with self._lock:
            session = self._sessions.get(token)
            if session is None:
                return False
            session.revoked = True
            return True

    def expire_all(self) -> None:
        """Invalidate every issued token (tests: force a 401)."""
        with self._lock:
            for session in self._sessions.values():
                session.revoked = True

    def sessions(self) -> list[Session]:
        """Every session issued so far."""
        with self._lock:
            return list(self._sessions.values())


def _oauth_error(error: str, description: str, status: int = 400) -> Response:
    return Response.json(status, {"error": error, "error_description": description})


class OAuthEndpoint:
    """``POST /services/oauth2/token`` for the JWT bearer, client credentials and refresh grants."""

    def __init__(
        self,
        settings: OAuthSettings,
        tokens: TokenStore,
        instance_url: Callable[[], str],
    ) -> None:
        self.settings = settings
        self.tokens = tokens
        self.instance_url = instance_url

    def accepted_audiences(self) -> list[str]:
        """The ``aud`` values a JWT may carry: the sandbox's own URL and the real login hosts."""
        urls = [self.instance_url(), *self.settings.login_urls]
        return [u.rstrip("/") for u in urls] + [u.rstrip("/") + "/" for u in urls]

    def handle(self, request: Request) -> Response:
        """Serve one token request."""
        request.kind = "token"
        content_type = request.headers.get("content-type", "")
        if "application/x-www-form-urlencoded" not in content_type and request.body:
            return _oauth_error("invalid_request", "Content-Type must be form-encoded")
        form = {k: v[0] for k, v in parse_qs(request.body.decode(), keep_blank_values=True).items()}
        for key, values in request.query.items():
            form.setdefault(key, values[0])
        grant = form.get("grant_type", "")
        if grant == JWT_GRANT:
            return self._jwt(form)
        if grant == "client_credentials":
            return self._client_credentials(form, request.headers.get("authorization", ""))
        if grant == "refresh_token":
            return self._refresh(form)
        if not grant:
            return _oauth_error("invalid_request", "grant type not supported")
        return _oauth_error("unsupported_grant_type", "grant type not supported")

    def revoke(self, request: Request) -> Response:
        """``POST /services/oauth2/revoke``: invalidate an access token."""
        request.kind = "token.revoke"
        form = {k: v[0] for k, v in parse_qs(request.body.decode(), keep_blank_values=True).items()}
        token = form.get("token") or request.arg("token")
        if not token or not self.tokens.revoke(token):
            return _oauth_error("unsupported_token_type", "this token type is not supported")
        return Response(200)

    def _success(self, grant: str, *, scope: str = "api") -> Response:
        session = self.tokens.issue(grant)
        issued_at = str(int(session.issued_at * 1000))
        instance_url = self.instance_url()
        identity = f"{instance_url}/id/{ORG_ID}/{USER_ID}"
        signature = base64.b64encode(
            hmac.new(
                self.settings.client_secret.encode(),
                (identity + issued_at).encode(),
                hashlib.sha256,
            ).digest()
        ).decode()
        return Response.json(
            200,
            {
                "access_token": session.token,
                "scope": scope,
                "instance_url": instance_url,
                "id": identity,
                "token_type": "Bearer",
                "issued_at": issued_at,
                "signature": signature,
            },
        )

    def _jwt(self, form: dict[str, str]) -> Response:
        assertion = form.get("assertion")
        if not assertion:
            return _oauth_error("invalid_grant", "invalid assertion")
        try:
            claims: dict[str, Any] = jwt.decode(assertion, options={"verify_signature": False})
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            return _oauth_error("invalid_grant", "invalid assertion")
        if header.get("alg") != "RS256":
            return _oauth_error("invalid_grant", "invalid assertion")
        if claims.get("iss") != self.settings.client_id:
            return _oauth_error("invalid_client_id", "client identifier invalid")
        if claims.get("aud") not in self.accepted_audiences():
            return _oauth_error("invalid_grant", "audience is invalid")
        if "exp" not in claims:
            return _oauth_error("invalid_grant", "invalid assertion")
        verified = False
        for key in self.settings.public_keys:
            try:
                jwt.decode(
                    assertion,
                    key,
                    algorithms=["RS256"],
                    audience=claims.get("aud"),
                    options={"require": ["exp"]},
                    leeway=0,
                )
            except jwt.ExpiredSignatureError:
                return _oauth_error("invalid_grant", "expired authorization code")
            except jwt.PyJWTError:
                continue
            verified = True
            break
        if not verified:
            return _oauth_error("invalid_grant", "invalid assertion")
        if claims.get("sub") != self.settings.username:
            return _oauth_error("invalid_grant", "user hasn't approved this consumer")
        return self._success("jwt-bearer")

    def _client_credentials(self, form: dict[str, str], authorization: str) -> Response:
        client_id = form.get("client_id")
        client_secret = form.get("client_secret")
        if authorization.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(authorization[6:].strip()).decode()
            except (binascii.Error, UnicodeDecodeError):
                return _oauth_error("invalid_client", "invalid client credentials")
            client_id, _, client_secret = decoded.partition(":")
        if client_id != self.settings.client_id:
            return _oauth_error("invalid_client_id", "client identifier invalid")
        if not client_secret or not hmac.compare_digest(client_secret, self.settings.client_secret):
            return _oauth_error("invalid_client", "invalid client credentials")
        return self._success("client_credentials")

    def _refresh(self, form: dict[str, str]) -> Response:
        if form.get("client_id") != self.settings.client_id:
            return _oauth_error("invalid_client_id", "client identifier invalid")
        secret = form.get("client_secret")
        if secret is not None and not hmac.compare_digest(secret, self.settings.client_secret):
            return _oauth_error("invalid_client", "invalid client credentials")
        if form.get("refresh_token") not in self.settings.refresh_tokens:
            return _oauth_error("invalid_grant", "expired access/refresh token")
        return self._success("refresh_token", scope="api refresh_token")


def public_keys_from(paths: Iterable[Path]) -> list[bytes]:
    """Public key PEMs from private key files (to register extra signing keys)."""
    out = []
    for path in paths:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        out.append(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    return out
