"""Logs and alerts: structured, carrying the run's context, and never holding a secret."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from connector.cli import cli
from connector.config import Settings, load_settings
from connector.service.alerts import Alerter
from connector.service.app import Service
from connector.service.logs import (
    JsonFormatter,
    SecretFilter,
    TextFormatter,
    collect_secrets,
    configure_logging,
)
from segsync_sandbox.common import Faults
from segsync_sandbox.launcher import Sandboxes

ROOT = Path(__file__).resolve().parent.parent


def _record(message: str, *args: Any, **extra: Any) -> logging.LogRecord:
    record = logging.LogRecord("segsync.sync", logging.INFO, __file__, 1, message, args, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_secret_filter_redacts_message_args_and_traceback() -> None:
    token = "pat-na1-0123456789abcdef"
    flt = SecretFilter([token, "ab"])  # too short to be a secret: left alone
    record = _record("calling %s with %s", "https://api.example.com", token)
    try:
        raise RuntimeError(f"refused token {token}")
    except RuntimeError:
        import sys

        record.exc_info = sys.exc_info()
    assert flt.filter(record)
    line = JsonFormatter().format(record)
    assert token not in line
    document = json.loads(line)
    assert document["message"] == "calling https://api.example.com with [redacted]"
    assert "refused token [redacted]" in document["exception"]


def test_collect_secrets_from_fields_files_and_store_password(tmp_path: Path) -> None:
    key_file = tmp_path / "key.pem"
    key_file.write_text("-----BEGIN PRIVATE KEY-----secretkeybody\n")
    settings = Settings.model_validate(
        {
            "connections": {
                "sf": {
                    "crm": "salesforce",
                    "client_secret": "sf-client-secret-1",
                    "private_key_file": str(key_file),
                },
                "hs": {"crm": "hubspot", "access_token": "pat-na1-hs-token"},
            },
            "store": {"url": "postgresql://segsync:db-password-9@db.internal/segsync"},
            "service": {"alert_webhook_url": "https://hooks.slack.example/T0/B0/xyz123"},
        }
    )
    secrets = collect_secrets(settings)
    for value in (
        "sf-client-secret-1",
        "-----BEGIN PRIVATE KEY-----secretkeybody",
        "pat-na1-hs-token",
        "db-password-9",
        "https://hooks.slack.example/T0/B0/xyz123",
    ):
        assert value in secrets


def test_json_lines_carry_the_context_and_text_is_readable() -> None:
    record = _record(
        "sync %s", "succeeded", connection="hs", crm="hubspot", object="account", run_id="7"
    )
    document = json.loads(JsonFormatter().format(record))
    assert document["level"] == "info" and document["message"] == "sync succeeded"
    assert {k: document[k] for k in ("connection", "crm", "object", "run_id")} == {
        "connection": "hs",
        "crm": "hubspot",
        "object": "account",
        "run_id": "7",
    }
    text = TextFormatter().format(record)
    assert "[hs hubspot account run=7]: sync succeeded" in text


def test_configure_logging_picks_json_off_a_terminal() -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()
    try:
        handler = configure_logging(["s3cr3t-value"], stream=stream)
        logging.getLogger("segsync.test").info("token is %s", "s3cr3t-value")
        assert isinstance(handler.formatter, JsonFormatter)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    assert json.loads(stream.getvalue())["message"] == "token is [redacted]"


class Webhook:
    """A local Slack-compatible webhook that keeps what it is sent."""

    def __init__(self) -> None:
        received: list[dict[str, Any]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.received = received
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T0/B0/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


def test_alerter_posts_slack_text_and_survives_a_dead_webhook(webhook: Webhook) -> None:
    assert Alerter(webhook.url, ["tok-123456"]).send("run failed: tok-123456 refused")
    assert webhook.received == [{"text": "run failed: [redacted] refused"}]
    assert Alerter("http://127.0.0.1:9/none", timeout=2).send("lost") is False
    assert Alerter(None).send("nowhere") is False


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Everything logged, through the service's own filter and JSON formatter."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    stream.handler = handler  # type: ignore[attr-defined]
    try:
        yield stream
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def _write_config(sandboxes: Sandboxes, tmp_path: Path, *, base_url: str, webhook_url: str) -> Path:
    path = sandboxes.write_config(
        tmp_path / "config.toml", store_url=f"sqlite:///{tmp_path / 'state.db'}"
    )
    text = path.read_text().replace(
        f'base_url = "{sandboxes.hubspot.base_url}"', f'base_url = "{base_url}"'
    )
    text += (
        "\n[service]\nport = 0\n"
        f'alert_webhook_url = "{webhook_url}"\n'
        '[[service.jobs]]\nconnection = "hubspot"\nobject = "account"\ninterval_minutes = 60\n'
    )
    path.write_text(text)
    return path


def test_secrets_never_reach_logs_or_alerts_even_in_errors(
    fresh_sandboxes: Sandboxes,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    webhook: Webhook,
    captured: io.StringIO,
) -> None:
    monkeypatch.chdir(ROOT)
    token = fresh_sandboxes.hubspot.access_token
    # A base URL with the token in its path: the CRM's 404 echoes it into the
    # run's error message, which the service logs and alerts.
    config = _write_config(
        fresh_sandboxes,
        tmp_path,
        base_url=f"{fresh_sandboxes.hubspot.base_url}/{token}",
        webhook_url=webhook.url,
    )
    settings = load_settings(config)
    service = Service(settings)
    captured.handler.addFilter(SecretFilter(service.secrets))  # type: ignore[attr-defined]
    service.open()
    try:
        assert service.run_once() == ["failed"]
    finally:
        service.close()
    logged = captured.getvalue()
    assert "[redacted]" in logged  # the token was there to leak, and was caught
    assert token not in logged
    lines = [json.loads(line) for line in logged.splitlines()]
    failure = next(d for d in lines if d["message"].startswith("job hubspot.account failed"))
    assert failure["connection"] == "hubspot" and failure["object"] == "account"
    assert len(webhook.received) == 1
    alert = webhook.received[0]["text"]
    assert "hubspot.account" in alert and "failed" in alert and token not in alert


def test_a_real_run_logs_ids_and_counts_not_record_values(
    fresh_sandboxes: Sandboxes,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    webhook: Webhook,
    captured: io.StringIO,
) -> None:
    monkeypatch.chdir(ROOT)
    config = _write_config(
        fresh_sandboxes,
        tmp_path,
        base_url=fresh_sandboxes.hubspot.base_url,
        webhook_url=webhook.url,
    )
    provision = CliRunner().invoke(cli, ["provision", "--config", str(config), "--crm", "hubspot"])
    assert provision.exit_code == 0, provision.output
    service = Service(load_settings(config))
    captured.handler.addFilter(SecretFilter(service.secrets))  # type: ignore[attr-defined]
    service.open()
    try:
        assert service.run_once() == ["succeeded"]
    finally:
        service.close()
    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    done = next(d for d in lines if d["message"].startswith("sync succeeded"))
    assert done["crm"] == "hubspot" and done["object"] == "account" and int(done["run_id"]) >= 1
    logged = captured.getvalue()
    companies = fresh_sandboxes.hubspot.portal.snapshot("companies")[:20]
    for company in companies:
        name = company.props.get("name")
        assert not name or (f'"{name}' not in logged and f" {name} " not in logged)
    assert fresh_sandboxes.hubspot.access_token not in logged
    assert webhook.received == []


def test_stop_cuts_a_back_off_short_and_the_run_is_recorded(
    fresh_sandboxes: Sandboxes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    config = _write_config(
        fresh_sandboxes,
        tmp_path,
        base_url=fresh_sandboxes.hubspot.base_url,
        webhook_url="http://127.0.0.1:9/unused",
    )
    # Long back-offs: six attempts would wait well over a minute in all.
    config.write_text(
        config.read_text().replace(
            "[sync]", "[sync]\nretry_attempts = 6\nretry_max_wait_seconds = 60"
        )
    )
    app = fresh_sandboxes.hubspot.app
    app.faults.set(Faults(error_rate=1.0))  # every call a 500: retried, backing off
    service = Service(load_settings(config))
    context = service.open()
    outcomes: list[Any] = []
    worker = threading.Thread(target=lambda: outcomes.extend(service.run_once()))
    try:
        worker.start()
        # Two attempts made: the runner is now sleeping before the third.
        deadline = time.monotonic() + 30
        while app.log.counters["requests"] < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert app.log.counters["requests"] >= 2
        service.request_stop()
        worker.join(timeout=20)  # the back-offs left wait well over a minute
        assert not worker.is_alive(), "the back-off was not cut short"
        runs = context.store.runs(5)
    finally:
        worker.join(timeout=60)
        service.close()
    # Stopped on request, not broken: recorded as aborted, with the reason.
    assert outcomes == ["aborted"]
    assert runs[0].status == "aborted"
    assert len(runs) == 1 and runs[0].finished_at is not None
    assert "stopping" in (runs[0].message or "")
