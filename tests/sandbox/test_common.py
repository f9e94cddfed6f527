from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from segsync_sandbox.common import (
    Faults,
    Request,
    Response,
    SandboxApp,
    SandboxServer,
)


class _EchoApp(SandboxApp):
    name = "echo"

    def __init__(self) -> None:
        super().__init__()
        self.route("POST", r"/things/(?P<id>\w+)", self._write)

    def _write(self, request: Request, match: Any) -> Response:
        request.kind = "write"
        request.records.append(match["id"])
        request.fields.update(request.json())
        return Response.json(200, {"id": match["id"]})

    def authenticate(self, request: Request) -> Response | None:
        if request.headers.get("authorization") != "Bearer ok":
            return Response.json(401, {"message": "no"})
        return None


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    with SandboxServer(_EchoApp()) as srv:
        yield srv


def _call(url: str, method: str = "GET", body: Any = None, token: str = "ok") -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def test_routes_auth_and_request_log(server: SandboxServer) -> None:
    assert _call(f"{server.url}/things/a1", "POST", {"Tier": 1}) == (200, {"id": "a1"})
    assert _call(f"{server.url}/things/a1", "POST", {}, token="bad")[0] == 401
    assert _call(f"{server.url}/things/a1", "GET")[0] == 405
    assert _call(f"{server.url}/nothing")[0] == 404
    status, log = _call(f"{server.url}/__admin/log")
    assert status == 200
    assert [(e["method"], e["status"]) for e in log] == [
        ("POST", 200),
        ("POST", 401),
        ("GET", 405),
        ("GET", 404),
    ]
    assert log[0]["records"] == ["a1"] and log[0]["fields"] == ["Tier"]
    assert _call(f"{server.url}/__admin/counters")[1]["kind:write"] == 1


def test_faults_set_over_admin_endpoint(server: SandboxServer) -> None:
    status, faults = _call(f"{server.url}/__admin/faults", "PUT", {"rate_limit_next": 2})
    assert status == 200 and faults["rate_limit_next"] == 2
    statuses = [_call(f"{server.url}/things/x", "POST", {})[0] for _ in range(3)]
    assert statuses == [503, 503, 200]
    assert _call(f"{server.url}/__admin/faults", "PUT", {"nope": 1})[0] == 400


def test_record_faults_and_error_share_are_seeded() -> None:
    app = _EchoApp()
    app.faults.set(Faults(lock_ids={"r1"}, lock_failures=2, validation_failures={"r2": "bad"}))
    assert [app.faults.record_fault("r1") is not None for _ in range(3)] == [True, True, False]
    assert app.faults.record_fault("r2") == ("validation", "bad")
    assert app.faults.record_fault("r3") is None

    def draws(seed: int) -> list[str | None]:
        app.faults.set(Faults(error_rate=0.3, seed=seed))
        return [app.faults.draw() for _ in range(200)]

    first = draws(7)
    assert first == draws(7)
    assert 30 < first.count("error") < 90


def test_faults_json_round_trip() -> None:
    faults = Faults(latency_ms=80, jitter_ms=70, lock_ids={"b", "a"}, retry_after=2.0)
    assert Faults.from_json(json.loads(json.dumps(faults.to_json()))) == faults


def test_a_client_hanging_up_is_not_reported_as_a_server_error(
    server: SandboxServer, capfd: pytest.CaptureFixture[str]
) -> None:
    httpd = server._httpd
    for hang_up in (ConnectionResetError(104, "reset"), BrokenPipeError(32, "pipe")):
        try:
            raise hang_up
        except OSError:
            httpd.handle_error(None, ("127.0.0.1", 1))
    assert capfd.readouterr().err == ""
    try:
        raise ValueError("a bug in the sandbox")
    except ValueError:
        httpd.handle_error(None, ("127.0.0.1", 1))
    assert "a bug in the sandbox" in capfd.readouterr().err
