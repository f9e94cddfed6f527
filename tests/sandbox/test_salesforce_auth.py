"""The Salesforce sandbox's OAuth 2.0 token endpoint: JWT bearer, client credentials, refresh."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from simple_salesforce.exceptions import SalesforceExpiredSession

from segsync_sandbox.salesforce import SalesforceSandbox

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_KEYS = {"access_token", "instance_url", "id", "token_type", "issued_at", "signature", "scope"}


def _assertion(sandbox: SalesforceSandbox, key: bytes | None = None, **claims: Any) -> str:
    payload: dict[str, Any] = {
        "iss": sandbox.client_id,
        "sub": sandbox.username,
        "aud": "https://login.salesforce.com",
        # simple-salesforce sends exp as a string of epoch seconds; accept both.
        "exp": f"{time.time() + 180:.0f}",
    }
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None}
    signing_key = key if key is not None else Path(sandbox.private_key_file).read_bytes()
    return jwt.encode(payload, signing_key, algorithm="RS256")


def _jwt_token(
    http: requests.Session, sandbox: SalesforceSandbox, assertion: str
) -> requests.Response:
    return http.post(sandbox.token_url, data={"grant_type": JWT_GRANT, "assertion": assertion})


def _other_key() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.mark.parametrize("audience", ["https://login.salesforce.com", "SANDBOX"])
def test_jwt_bearer_grant_issues_a_working_token(
    sf_sandbox: SalesforceSandbox, sf_http: requests.Session, audience: str
) -> None:
    aud = sf_sandbox.login_url if audience == "SANDBOX" else audience
    response = _jwt_token(sf_http, sf_sandbox, _assertion(sf_sandbox, aud=aud))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == TOKEN_KEYS
    assert body["token_type"] == "Bearer"
    assert body["instance_url"] == sf_sandbox.instance_url
    assert body["issued_at"].isdigit()
    expected = base64.b64encode(
        hmac.new(
            sf_sandbox.client_secret.encode(),
            (body["id"] + body["issued_at"]).encode(),
            hashlib.sha256,
        ).digest()
    ).decode()
    assert body["signature"] == expected
    sf = sf_sandbox.client(body["access_token"])
    assert sf.query("SELECT Id FROM Account")["totalSize"] == 0
    assert sf_sandbox.app.log.entries()[0].kind == "token"


@pytest.mark.parametrize(
    ("claims", "error", "description"),
    [
        ({"aud": "https://evil.example.com"}, "invalid_grant", "audience is invalid"),
        ({"iss": "someone-else"}, "invalid_client_id", "client identifier invalid"),
        ({"sub": "nobody@example.com"}, "invalid_grant", "user hasn't approved this consumer"),
        ({"exp": int(time.time()) - 60}, "invalid_grant", "expired authorization code"),
        ({"exp": None}, "invalid_grant", "invalid assertion"),
    ],
)
def test_jwt_bearer_rejections(
    sf_sandbox: SalesforceSandbox,
    sf_http: requests.Session,
    claims: dict[str, Any],
    error: str,
    description: str,
) -> None:
    response = _jwt_token(sf_http, sf_sandbox, _assertion(sf_sandbox, **claims))
    assert response.status_code == 400
    assert response.json() == {"error": error, "error_description": description}


def test_jwt_signed_with_another_key_is_refused(
    sf_sandbox: SalesforceSandbox, sf_http: requests.Session
) -> None:
    response = _jwt_token(sf_http, sf_sandbox, _assertion(sf_sandbox, key=_other_key()))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    garbage = _jwt_token(sf_http, sf_sandbox, "not.a.jwt")
    assert garbage.json() == {"error": "invalid_grant", "error_description": "invalid assertion"}


def test_client_credentials_form_and_basic(
    sf_sandbox: SalesforceSandbox, sf_http: requests.Session
) -> None:
    form = sf_http.post(
        sf_sandbox.token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": sf_sandbox.client_id,
            "client_secret": sf_sandbox.client_secret,
        },
    )
    assert form.status_code == 200
    assert set(form.json()) == TOKEN_KEYS
    basic = sf_http.post(
        sf_sandbox.token_url,
        data={"grant_type": "client_credentials"},
        auth=(sf_sandbox.client_id, sf_sandbox.client_secret),
    )
    assert basic.status_code == 200
    assert basic.json()["access_token"] != form.json()["access_token"]
    wrong = sf_http.post(
        sf_sandbox.token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": sf_sandbox.client_id,
            "client_secret": "wrong",
        },
    )
    assert wrong.status_code == 400
    assert wrong.json() == {
        "error": "invalid_client",
        "error_description": "invalid client credentials",
    }


def test_refresh_token_grant(sf_sandbox: SalesforceSandbox, sf_http: requests.Session) -> None:
    ok = sf_http.post(
        sf_sandbox.token_url,
        data={
            "grant_type": "refresh_token",
            "client_id": sf_sandbox.client_id,
            "client_secret": sf_sandbox.client_secret,
            "refresh_token": sf_sandbox.refresh_token,
        },
    )
    assert ok.status_code == 200
    assert "refresh_token" not in ok.json()
    assert sf_sandbox.client(ok.json()["access_token"]).limits()["DailyApiRequests"]["Max"] > 0
    bad = sf_http.post(
        sf_sandbox.token_url,
        data={
            "grant_type": "refresh_token",
            "client_id": sf_sandbox.client_id,
            "refresh_token": "5Aepnope",
        },
    )
    assert bad.status_code == 400
    assert bad.json() == {
        "error": "invalid_grant",
        "error_description": "expired access/refresh token",
    }


def test_unsupported_grant(sf_sandbox: SalesforceSandbox, sf_http: requests.Session) -> None:
    response = sf_http.post(sf_sandbox.token_url, data={"grant_type": "password"})
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


def test_token_lifetime_expires_sessions(
    sf_sandbox: SalesforceSandbox, sf_http: requests.Session
) -> None:
    clock = [1000.0]
    tokens = sf_sandbox.app.tokens
    original_clock = tokens.clock
    tokens.clock = lambda: clock[0]
    tokens.lifetime_seconds = 60.0
    try:
        response = sf_http.post(
            sf_sandbox.token_url,
            data={"grant_type": "client_credentials"},
            auth=(sf_sandbox.client_id, sf_sandbox.client_secret),
        )
        sf = sf_sandbox.client(response.json()["access_token"])
        sf.query("SELECT Id FROM Account")
        clock[0] += 61
        with pytest.raises(SalesforceExpiredSession) as info:
            sf.query("SELECT Id FROM Account")
        assert info.value.content[0]["errorCode"] == "INVALID_SESSION_ID"
        # The fixed session id given at start does not time out.
        assert sf_sandbox.client().query("SELECT Id FROM Account")["done"] is True
    finally:
        tokens.clock = original_clock


def test_session_expiry_fault_applies_to_fixed_session(sf_sandbox: SalesforceSandbox) -> None:
    sf_sandbox.app.faults.update(session_expiry_after=0)
    with pytest.raises(SalesforceExpiredSession):
        sf_sandbox.client().query("SELECT Id FROM Account")


def test_session_budget_counts_from_when_the_fault_is_set(sf_sandbox: SalesforceSandbox) -> None:
    sf = sf_sandbox.client()
    for _ in range(3):
        sf.query("SELECT Id FROM Account")
    sf_sandbox.app.faults.update(session_expiry_after=2)
    sf.query("SELECT Id FROM Account")
    sf.query("SELECT Id FROM Account")
    with pytest.raises(SalesforceExpiredSession):
        sf.query("SELECT Id FROM Account")


def test_admin_endpoint_expires_sessions(
    sf_sandbox: SalesforceSandbox, sf_http: requests.Session
) -> None:
    token = sf_sandbox.new_access_token()
    sf = sf_sandbox.client(token)
    sf.query("SELECT Id FROM Account")
    response = sf_http.post(f"{sf_sandbox.instance_url}/__admin/salesforce/expire-sessions")
    assert response.json() == {"expired": True}
    with pytest.raises(SalesforceExpiredSession):
        sf.query("SELECT Id FROM Account")


def test_revoke_invalidates_a_token(
    sf_sandbox: SalesforceSandbox, sf_http: requests.Session
) -> None:
    token = sf_sandbox.new_access_token()
    sf = sf_sandbox.client(token)
    sf.query("SELECT Id FROM Account")
    revoked = sf_http.post(
        f"{sf_sandbox.instance_url}/services/oauth2/revoke", data={"token": token}
    )
    assert revoked.status_code == 200
    with pytest.raises(SalesforceExpiredSession):
        sf.query("SELECT Id FROM Account")
    again = sf_http.post(f"{sf_sandbox.instance_url}/services/oauth2/revoke", data={"token": token})
    assert again.status_code == 200  # a known token stays revocable (idempotent)
    unknown = sf_http.post(f"{sf_sandbox.instance_url}/services/oauth2/revoke", data={"token": "x"})
    assert unknown.status_code == 400
