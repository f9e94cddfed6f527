"""Helpers shared by the HubSpot sandbox tests (imported by the test modules)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from segsync_sandbox.hubspot import HubSpotSandbox, Portal, start_hubspot

INDUSTRIES = ("COMPUTER_SOFTWARE", "BANKING", "RETAIL", "MACHINERY", "HIGHER_EDUCATION")


class FakeClock:
    """A settable monotonic clock for the rate limiter."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def company_rows(n: int, start: int = 0) -> list[dict[str, Any]]:
    """Deterministic company rows with a spread of typed values."""
    rows = []
    for i in range(start, start + n):
        row: dict[str, Any] = {
            "name": f"Company {i}",
            "domain": f"company{i}.example.com",
            "industry": INDUSTRIES[i % len(INDUSTRIES)],
            "numberofemployees": str(i * 7),
            "country": "Germany" if i % 2 else "United States",
        }
        if i % 3 == 0:
            row["tech_stack"] = "Salesforce;Snowflake"
        if i % 4 == 0:
            row["annualrevenue"] = str(i * 1000.5)
        rows.append(row)
    return rows


def seeded_portal(companies: int = 12, **limits: Any) -> tuple[Portal, list[str], list[str]]:
    """A portal with companies and one contact per company (linked)."""
    portal = Portal(**limits)
    company_ids = portal.load_companies(company_rows(companies))
    contact_ids = portal.load_contacts(
        {
            "firstname": f"First{i}",
            "lastname": f"Last{i}",
            "email": f"person{i}@company{i}.example.com",
            "seniority": "VP" if i % 2 else "Manager",
            "associatedcompanyid": company_ids[i],
        }
        for i in range(companies)
    )
    return portal, company_ids, contact_ids


@contextmanager
def running(portal: Portal | None = None, **kwargs: Any) -> Iterator[HubSpotSandbox]:
    """A sandbox on an ephemeral port, stopped afterwards."""
    sandbox = start_hubspot(portal=portal, **kwargs)
    try:
        yield sandbox
    finally:
        sandbox.stop()


def api_error(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """The ApiException a client call raises (each hubspot package has its own class)."""
    try:
        call(*args, **kwargs)
    except Exception as exc:
        if getattr(exc, "status", None) is not None and hasattr(exc, "body"):
            return exc
        raise
    raise AssertionError("expected the call to fail with an API error")


def body_of(exc: Any) -> dict[str, Any]:
    """The JSON body of an ApiException."""
    parsed: dict[str, Any] = json.loads(exc.body)
    return parsed
