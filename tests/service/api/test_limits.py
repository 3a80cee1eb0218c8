"""Rate limits and their headers, request ids, and the generic 500."""

import pytest
from structlog.testing import capture_logs

from service.api import InMemoryRateLimiter, create_app
from service.api.deps import get_totals

from .conftest import T0, Api, Clock, TestClient, make_settings


class Ticks:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture(name="limited")
def limited_fixture(db):
    ticks = Ticks()
    settings = make_settings(
        rate_limits={
            "requests_per_minute": 3,
            "sync_requests_per_minute": 2,
            "sync_leads_per_minute": 5,
        }
    )
    app = create_app(settings, db=db, rate_limiter=InMemoryRateLimiter(clock=ticks))
    with TestClient(app) as client:
        yield Api(app=app, client=client, db=db, clock=Clock(T0)), ticks


def test_headers_and_429_with_retry_after(limited):
    api, ticks = limited
    seen = []
    for _ in range(3):
        response = api.request("GET", "/v1/leads", scopes=("leads:read",))
        assert response.status_code == 200
        seen.append(
            (
                response.headers["X-RateLimit-Limit"],
                response.headers["X-RateLimit-Remaining"],
                response.headers["X-RateLimit-Reset"],
            )
        )
    assert seen == [("3", "2", "60"), ("3", "1", "60"), ("3", "0", "60")]
    ticks.now += 20
    refused = api.request("GET", "/v1/leads", scopes=("leads:read",))
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert refused.headers["Retry-After"] == "40"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    other_key = api.request("GET", "/v1/leads", scopes=("admin",))
    assert other_key.status_code == 200  # limits are per key
    ticks.now += 40
    assert api.request("GET", "/v1/leads", scopes=("leads:read",)).status_code == 200


def test_sync_limits_requests_and_leads(limited):
    api, _ = limited
    leads = [{"lead_id": str(i)} for i in range(3)]
    first = api.request(
        "POST",
        "/v1/leads/sync",
        json={"origin": "o", "leads": leads},
        scopes=("leads:sync_create",),
    )
    assert first.status_code == 200
    assert first.headers["X-RateLimit-Limit"] == "2"
    assert first.headers["X-RateLimit-Leads-Limit"] == "5"
    assert first.headers["X-RateLimit-Leads-Remaining"] == "2"
    over = api.request(
        "POST",
        "/v1/leads/sync",
        json={"origin": "o", "leads": leads},
        scopes=("leads:sync_create",),
    )
    assert over.status_code == 429
    assert (
        over.json()["error"]["message"]
        == "rate limit exceeded: 5 leads per minute for this key"
    )
    assert over.headers["Retry-After"] == "60"
    third = api.request(
        "POST",
        "/v1/leads/sync/delete",
        json={"origin": "o", "lead_ids": ["1"]},
        scopes=("leads:sync_create",),
    )
    assert third.status_code == 429
    assert (
        third.json()["error"]["message"]
        == "rate limit exceeded: 2 requests per minute for this key"
    )
    # The sync budget is separate from the general one.
    assert (
        api.request(
            "GET", "/v1/leads", scopes=("leads:sync_create", "leads:read")
        ).status_code
        == 200
    )


def test_unauthenticated_responses_carry_no_limit_headers(limited):
    api, _ = limited
    response = api.client.get("/v1/leads")
    assert response.status_code == 401
    assert "X-RateLimit-Limit" not in response.headers


def test_request_id_is_echoed_or_made(api):
    response = api.client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"
    made = api.client.get("/healthz", headers={"X-Request-ID": "bad id!"})
    assert len(made.headers["X-Request-ID"]) == 32


class Broken:
    def version(self):
        raise RuntimeError("secret internals: password=hunter2")


def test_unexpected_error_is_a_generic_500_logged_with_the_request_id(api):
    api.app.dependency_overrides[get_totals] = lambda: Broken()
    with capture_logs() as logs:
        response = api.request("GET", "/v1/leads", headers={"X-Request-ID": "req-500"})
    assert response.status_code == 500
    assert response.json() == {
        "error": {
            "code": "internal_error",
            "message": "internal error; quote the request id when reporting it",
            "details": [],
            "request_id": "req-500",
        }
    }
    assert "hunter2" not in response.text
    failed = [e for e in logs if e["event"] == "request_failed"]
    assert failed[0]["request_id"] == "req-500"
    assert failed[0]["path"] == "/v1/leads"
    assert failed[0]["log_level"] == "error"
