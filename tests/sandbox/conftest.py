"""Fixtures for the Salesforce sandbox tests: one HTTPS server per worker, a fresh org per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from simple_salesforce.api import Salesforce

from segsync_sandbox.salesforce import Org, SalesforceSandbox, start_salesforce


class FakeClock:
    """A settable clock (seconds since the epoch) for org stamps and token lifetimes."""

    def __init__(self, start: float = 1_795_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="session")
def _sf_server() -> Iterator[SalesforceSandbox]:
    sandbox = start_salesforce(client_id="test-client", client_secret="test-secret")
    try:
        yield sandbox
    finally:
        sandbox.stop()


@pytest.fixture
def sf_sandbox(_sf_server: SalesforceSandbox) -> Iterator[SalesforceSandbox]:
    """The worker's Salesforce sandbox, serving a fresh empty org for this test."""
    _sf_server.reset()
    _sf_server.app.tokens.lifetime_seconds = 7200.0
    yield _sf_server
    _sf_server.reset()


@pytest.fixture
def sf(sf_sandbox: SalesforceSandbox) -> Salesforce:
    """A simple-salesforce client on the direct-session path."""
    return sf_sandbox.client()


@pytest.fixture
def sf_http(sf_sandbox: SalesforceSandbox) -> requests.Session:
    """A plain requests session trusting the sandbox CA (for raw protocol checks)."""
    return sf_sandbox.http_session()


def _account_rows(n: int, start: int = 0) -> list[dict[str, Any]]:
    industries = ("Technology", "Banking", "Retail", "Healthcare")
    return [
        {
            "Name": f"Account {i:05d}",
            "Industry": industries[i % len(industries)],
            "NumberOfEmployees": i * 10,
            "BillingCountry": "Germany" if i % 2 else "United States",
            "Tech_Stack__c": "Salesforce;Slack" if i % 3 == 0 else None,
        }
        for i in range(start, start + n)
    ]


@pytest.fixture
def add_accounts(sf_sandbox: SalesforceSandbox) -> Callable[..., list[str]]:
    """Insert ``n`` deterministic accounts straight into the org; returns their ids."""

    def add(n: int, start: int = 0) -> list[str]:
        return [sf_sandbox.org.insert("Account", row) for row in _account_rows(n, start)]

    return add


@pytest.fixture
def fake_clock() -> FakeClock:
    """A settable clock starting in November 2026."""
    return FakeClock()


@pytest.fixture
def clocked_org(sf_sandbox: SalesforceSandbox, fake_clock: FakeClock) -> Org:
    """A fresh org on ``fake_clock``, served by the sandbox."""
    return sf_sandbox.reset(Org(clock=fake_clock))
