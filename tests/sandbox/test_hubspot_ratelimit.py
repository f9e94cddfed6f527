"""Rate limits: rolling ten-second window per token, search per second, daily count."""

from __future__ import annotations

import json
from typing import Any

import pytest
import urllib3
from hubspot.crm.companies import PublicObjectSearchRequest
from hubspot_fixtures import FakeClock, api_error, body_of, running, seeded_portal

from segsync_sandbox.hubspot import RateLimiter, RateLimits


def _raw(sb: Any, token: str | None = None) -> urllib3.BaseHTTPResponse:
    http = urllib3.PoolManager(retries=urllib3.Retry(0))
    return http.request(
        "GET",
        f"{sb.base_url}/crm/v3/objects/companies?limit=1",
        headers={"Authorization": f"Bearer {token or sb.access_token}"},
    )


def test_ten_second_window_429_body_headers_and_recovery() -> None:
    clock = FakeClock()
    portal, _, _ = seeded_portal(3)
    with running(portal, clock=clock, requests_per_10s=5) as sb:
        api = sb.client().crm.companies.basic_api
        remaining = []
        for _ in range(5):
            _, status, headers = api.get_page_with_http_info(limit=1)
            assert status == 200
            assert headers["X-HubSpot-RateLimit-Max"] == "5"
            assert headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
            remaining.append(int(headers["X-HubSpot-RateLimit-Remaining"]))
            clock.advance(1.0)
        assert remaining == [4, 3, 2, 1, 0]
        exc = api_error(api.get_page, limit=1)
        assert exc.status == 429
        body = body_of(exc)
        assert body == {
            "status": "error",
            "message": "You have reached your ten_secondly_rolling limit.",
            "errorType": "RATE_LIMIT",
            "correlationId": body["correlationId"],
            "policyName": "TEN_SECONDLY_ROLLING",
        }
        assert exc.headers["X-HubSpot-RateLimit-Remaining"] == "0"
        assert "Retry-After" not in exc.headers
        # The window rolls: the first request (t=0) leaves it at t=10.
        clock.advance(5.0)
        _, status, headers = api.get_page_with_http_info(limit=1)
        assert status == 200
        assert headers["X-HubSpot-RateLimit-Remaining"] == "0"
        assert api_error(api.get_page, limit=1).status == 429
        clock.advance(10.0)
        assert api.get_page(limit=1) is not None


def test_retry_after_is_sent_when_enabled() -> None:
    clock = FakeClock()
    portal, _, _ = seeded_portal(2)
    with running(portal, clock=clock, requests_per_10s=2, send_retry_after=True) as sb:
        assert _raw(sb).status == 200
        clock.advance(3.0)
        assert _raw(sb).status == 200
        refused = _raw(sb)
        assert refused.status == 429
        assert refused.headers["Retry-After"] == "7"


def test_windows_are_per_token() -> None:
    clock = FakeClock()
    portal, _, _ = seeded_portal(2)
    with running(portal, clock=clock, requests_per_10s=1) as sb:
        sb.app.tokens.add("pat-na1-second-app")
        assert _raw(sb).status == 200
        assert _raw(sb).status == 429
        assert _raw(sb, "pat-na1-second-app").status == 200


def test_daily_limit() -> None:
    clock = FakeClock()
    portal, _, _ = seeded_portal(2)
    with running(portal, clock=clock, daily_limit=3) as sb:
        api = sb.client().crm.companies.basic_api
        statuses = []
        for _ in range(3):
            _, status, headers = api.get_page_with_http_info(limit=1)
            statuses.append(status)
        assert statuses == [200, 200, 200]
        assert headers["X-HubSpot-RateLimit-Daily"] == "3"
        assert headers["X-HubSpot-RateLimit-Daily-Remaining"] == "0"
        clock.advance(60)
        exc = api_error(api.get_page, limit=1)
        assert exc.status == 429
        body = body_of(exc)
        assert body["policyName"] == "DAILY"
        assert body["errorType"] == "RATE_LIMIT"
        assert body["message"] == "You have reached your daily limit."


def test_search_has_its_own_per_second_limit_and_no_headers() -> None:
    clock = FakeClock()
    portal, _, _ = seeded_portal(3)
    with running(portal, clock=clock, requests_per_10s=3, search_per_second=5) as sb:
        search = sb.client().crm.companies.search_api
        for _ in range(5):
            search.do_search(PublicObjectSearchRequest(limit=1))
        exc = api_error(search.do_search, PublicObjectSearchRequest(limit=1))
        assert exc.status == 429
        assert body_of(exc)["policyName"] == "SECONDLY"
        assert not [h for h in exc.headers if h.lower().startswith("x-hubspot-ratelimit")]
        # Searches did not use up the ten-second window of 3.
        response = _raw(sb)
        assert response.status == 200
        assert response.headers["X-HubSpot-RateLimit-Remaining"] == "2"
        clock.advance(1.0)
        assert search.do_search(PublicObjectSearchRequest(limit=1)).total == 3


def test_limits_settable_over_admin_endpoint() -> None:
    clock = FakeClock()
    portal, _, _ = seeded_portal(1)
    with running(portal, clock=clock) as sb:
        http = urllib3.PoolManager()
        answer = http.request(
            "PUT",
            f"{sb.base_url}/__admin/hubspot/limits",
            body=json.dumps({"requests_per_10s": 1}).encode(),
        )
        assert answer.status == 200
        assert json.loads(answer.data)["requests_per_10s"] == 1
        assert json.loads(answer.data)["search_lag_ms"] == 0
        assert _raw(sb).status == 200
        assert _raw(sb).status == 429
        bad = http.request(
            "PUT", f"{sb.base_url}/__admin/hubspot/limits", body=json.dumps({"x": 1}).encode()
        )
        assert bad.status == 400
        assert http.request("POST", f"{sb.base_url}/__admin/reset").status == 200
        assert _raw(sb).status == 200


# The limiter on its own ----------------------------------------------------


def test_limiter_refusals_do_not_consume_slots() -> None:
    clock = FakeClock(0.0)
    limiter = RateLimiter(RateLimits(requests_per_10s=2), clock, wall_clock=lambda: 0.0)
    assert limiter.check("t").allowed
    clock.advance(9.0)
    assert limiter.check("t").allowed
    refused = limiter.check("t")
    assert (refused.allowed, refused.policy) == (False, "TEN_SECONDLY_ROLLING")
    assert refused.retry_after == pytest.approx(1.0)
    clock.advance(1.0)
    assert limiter.check("t").allowed
    assert not limiter.check("t").allowed


def test_limiter_daily_count_resets_at_utc_midnight() -> None:
    wall = FakeClock(86_400 * 100 + 86_399.0)
    limiter = RateLimiter(RateLimits(daily_limit=1), FakeClock(0.0), wall_clock=wall)
    assert limiter.check("t").allowed
    refused = limiter.check("t")
    assert refused.policy == "DAILY"
    assert refused.retry_after == pytest.approx(1.0)
    wall.advance(1.0)
    assert limiter.check("t").allowed


def test_start_hubspot_overrides_a_given_portals_settings() -> None:
    portal, _, _ = seeded_portal(1)
    with running(portal, requests_per_10s=100, search_lag_ms=5) as sb:
        assert sb.portal is portal
        assert portal.limits.requests_per_10s == 100
        assert portal.search_lag_ms == 5
        assert _raw(sb).headers["X-HubSpot-RateLimit-Max"] == "100"
    with pytest.raises(TypeError), running(portal, requests_per_hour=5):
        pass
