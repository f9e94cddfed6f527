"""/healthz, /readyz and /metrics of a running service, against the HubSpot sandbox."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from connector.cli import cli
from connector.config import load_settings
from connector.service.app import Service
from connector.store import Store
from segsync_sandbox.launcher import Sandboxes

ROOT = Path(__file__).resolve().parent.parent


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples[(name, frozenset(labels.items()))]


@pytest.fixture
def service(
    fresh_sandboxes: Sandboxes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Service]:
    monkeypatch.chdir(ROOT)
    config = fresh_sandboxes.write_config(
        tmp_path / "config.toml", store_url=f"sqlite:///{tmp_path / 'state.db'}"
    )
    with config.open("a") as out:
        out.write(
            "\n[service]\nport = 9\n"  # overridden below, as `segsync run --port 0` does
            "[[service.jobs]]\n"
            'connection = "hubspot"\nobject = "account"\ninterval_minutes = 60\n'
            "[[service.jobs]]\n"
            'connection = "hubspot"\nobject = "contact"\ninterval_minutes = 60\n'
        )
    provision = CliRunner().invoke(cli, ["provision", "--config", str(config), "--crm", "hubspot"])
    assert provision.exit_code == 0, provision.output
    running = Service(load_settings(config), port=0)
    running.start()
    try:
        yield running
    finally:
        running.stop()


def _wait_for_runs(store: Store, count: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        finished = [r for r in store.runs(10) if r.finished_at is not None]
        if len(finished) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} runs finished")


def test_health_readiness_and_metrics(service: Service, fresh_sandboxes: Sandboxes) -> None:
    assert service.http is not None and service.context is not None
    base = f"http://127.0.0.1:{service.http.port}"
    store = service.context.store
    _wait_for_runs(store, 2)  # interval jobs fire once at start

    assert _get(f"{base}/healthz") == (200, "ok\n")
    assert _get(f"{base}/nowhere")[0] == 404

    status, body = _get(f"{base}/readyz")
    ready = json.loads(body)
    assert status == 200 and ready["ready"] is True, body
    assert set(ready["checks"]) == {
        "store",
        "crm:hubspot",
        "job:hubspot.account",
        "job:hubspot.contact",
    }
    assert ready["checks"]["job:hubspot.account"]["last_success"] is not None

    status, text = _get(f"{base}/metrics")
    assert status == 200
    samples = _samples(text)
    portal = fresh_sandboxes.hubspot.portal
    for obj, count in (
        ("account", portal.count("companies")),
        ("contact", portal.count("contacts")),
    ):
        labels = {"connection": "hubspot", "crm": "hubspot", "object": obj}
        assert _value(samples, "segsync_runs_total", **labels, status="succeeded") == 1
        assert _value(samples, "segsync_records_total", **labels, outcome="read") == count
        assert _value(samples, "segsync_records_total", **labels, outcome="written") == count
        assert _value(samples, "segsync_records_total", **labels, outcome="failed") == 0
        assert _value(samples, "segsync_run_duration_seconds_count", **labels) == 1
        last = store.last_success("hubspot", obj)
        assert last is not None
        assert _value(
            samples, "segsync_last_success_timestamp_seconds", connection="hubspot", object=obj
        ) == pytest.approx(last.timestamp())
    calls = sum(r.api_calls for r in store.runs(10))
    assert _value(samples, "segsync_api_calls_total", connection="hubspot", crm="hubspot") == calls
    # The sandbox reports the portal's daily usage, as HubSpot does.
    remaining = _value(samples, "segsync_api_budget_remaining", connection="hubspot", crm="hubspot")
    limit = portal.limits.daily_limit
    assert 0 < remaining < limit


def test_readiness_fails_when_the_last_success_is_too_old(service: Service) -> None:
    assert service.http is not None and service.context is not None
    _wait_for_runs(service.context.store, 2)
    base = f"http://127.0.0.1:{service.http.port}"
    service.settings.service.ready_max_age_minutes = 0.5 / 60_000  # half a millisecond
    time.sleep(0.01)
    status, body = _get(f"{base}/readyz")
    ready = json.loads(body)
    assert status == 503 and ready["ready"] is False
    assert ready["checks"]["store"]["ok"] and ready["checks"]["crm:hubspot"]["ok"]
    assert not ready["checks"]["job:hubspot.account"]["ok"]
    assert ready["checks"]["job:hubspot.account"]["age_seconds"] >= 0
