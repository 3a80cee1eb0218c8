"""Retries, rate limits, the daily limit and auth, against recorded HubSpot answers."""

from __future__ import annotations

import pytest

from connectors.base import Cursor
from connectors.errors import AuthError, FatalSourceError, RetriableSourceError
from connectors.hubspot import DailyLimitError
from connectors.hubspot.errors import DAILY_MESSAGE
from tests.connectors.hubspot.support import T0, TOKEN, contacts, sent
from tests.fakes_hubspot import Scripted, error, rate_limited

SINCE = Cursor(T0, "")
DAY = 86_400_000


def ids(source, since=SINCE):
    return [r.id for p in source.read_changes(since) for r in p.records]


def test_search_429_without_retry_after_waits_then_succeeds(hubspot):
    contacts(hubspot.fake, 3, spread_ms=DAY)
    hubspot.fake.scripted.append(Scripted("POST", "/search", 429, rate_limited()))
    source = hubspot.source()
    assert sorted(ids(source)) == ["1001", "1002", "1003"]
    assert source.client.requests == {"search": 2}
    # The secondly limit: no Retry-After, so at least a second, plus jitter.
    assert len(hubspot.time.sleeps) == 1
    assert 1.0 <= hubspot.time.sleeps[0] < 1.5


def test_ten_secondly_429_waits_ten_seconds(hubspot):
    contacts(hubspot.fake, 2, spread_ms=DAY)
    hubspot.fake.scripted.append(
        Scripted("GET", "/contacts", 429, rate_limited("TEN_SECONDLY_ROLLING"))
    )
    source = hubspot.source()
    assert [r.id for p in source.read_changes(None) for r in p.records] == [
        "1001",
        "1002",
    ]
    assert source.client.requests == {"list": 2}
    assert len(hubspot.time.sleeps) == 1
    assert 10.0 <= hubspot.time.sleeps[0] < 10.5


def test_retry_after_header_is_obeyed(hubspot):
    contacts(hubspot.fake, 1, spread_ms=DAY)
    hubspot.fake.scripted.append(
        Scripted("POST", "/search", 429, rate_limited(), {"Retry-After": "7"})
    )
    source = hubspot.source()
    assert ids(source) == ["1001"]
    assert 7.0 <= hubspot.time.sleeps[0] < 7.5


def test_502_then_success(hubspot):
    contacts(hubspot.fake, 2, spread_ms=DAY)
    hubspot.fake.scripted.append(
        Scripted("POST", "/search", 502, error("INTERNAL_ERROR", "Bad gateway"))
    )
    source = hubspot.source()
    assert sorted(ids(source)) == ["1001", "1002"]
    assert source.client.requests == {"search": 2}
    assert len(hubspot.time.sleeps) == 1
    assert 0.25 <= hubspot.time.sleeps[0] <= 0.5  # first backoff step, jittered


def test_retries_are_bounded(hubspot):
    for _ in range(3):
        hubspot.fake.scripted.append(
            Scripted(
                "POST", "/search", 503, error("UNAVAILABLE", "Service unavailable")
            )
        )
    source = hubspot.source(max_attempts=3)
    with pytest.raises(RetriableSourceError) as info:
        ids(source)
    assert str(info.value).startswith(
        "search contacts: HubSpot answered 503 UNAVAILABLE"
    )
    assert source.client.requests == {"search": 3}
    assert len(hubspot.time.sleeps) == 2


def test_daily_limit_stops_at_once(hubspot):
    hubspot.fake.scripted.append(
        Scripted("POST", "/search", 429, rate_limited("DAILY"))
    )
    source = hubspot.source()
    with pytest.raises(DailyLimitError) as info:
        ids(source)
    assert isinstance(info.value, FatalSourceError)
    assert str(info.value) == DAILY_MESSAGE
    assert source.client.requests == {"search": 1}
    assert hubspot.time.sleeps == []
    # Every connector of the account stops asking for a while.
    other = hubspot.source(name="other")
    with pytest.raises(DailyLimitError):
        list(other.read_deletions(None))
    assert other.client.requests == {}


def test_daily_remaining_zero_keeps_the_page_then_stops(hubspot):
    contacts(hubspot.fake, 150, spread_ms=DAY)
    hubspot.fake.daily_remaining = 1  # this request is the last one of the day
    source = hubspot.source(batch_size=100)
    pages = source.read_changes(None)
    assert source.quota_remaining is None  # nothing heard from HubSpot yet
    first = next(pages)
    assert len(first.records) == 100
    assert (
        source.quota_remaining == 0
    )  # X-HubSpot-RateLimit-Daily-Remaining, for metrics
    with pytest.raises(DailyLimitError):
        next(pages)
    assert source.client.requests == {"list": 1}


def test_401_with_a_private_app_token_names_the_credential(hubspot):
    hubspot.fake.tokens = {"another-token"}
    source = hubspot.source()
    with pytest.raises(AuthError) as info:
        ids(source)
    message = str(info.value)
    assert message.startswith(
        "search contacts: HubSpot rejected the credentials (401 INVALID_AUTHENTICATION"
    )
    assert message.endswith("check auth.access_token (the private app's access token)")
    assert TOKEN not in message
    assert source.client.requests == {"search": 1}
    assert "authorization" not in {k.lower() for k in sent(hubspot)[0].headers}


def test_403_names_the_missing_scope(hubspot):
    hubspot.fake.scripted.append(
        Scripted("GET", "/contacts", 403, error("MISSING_SCOPES", "missing scopes"))
    )
    source = hubspot.source()
    with pytest.raises(
        AuthError, match=r"needs the crm\.objects\.contacts\.read scope"
    ):
        source.check()


def test_other_4xx_is_fatal_without_the_body(hubspot):
    hubspot.fake.scripted.append(
        Scripted(
            "POST",
            "/search",
            400,
            error("VALIDATION_ERROR", "c1@example.com is not a valid filter"),
        )
    )
    source = hubspot.source()
    with pytest.raises(FatalSourceError) as info:
        ids(source)
    assert str(info.value).startswith(
        "search contacts: HubSpot refused the request (400 VALIDATION_ERROR"
    )
    assert "example.com" not in str(info.value)


OAUTH = {
    "refresh_token": "test-refresh-token",
    "client_id": "test-client",
    "client_secret": "test-secret",
}


def test_oauth_gets_a_token_then_refreshes_before_it_expires(hubspot):
    contacts(hubspot.fake, 2, spread_ms=DAY)
    hubspot.fake.oauth_clients["test-client"] = ("test-secret", "test-refresh-token")
    source = hubspot.source(auth=OAUTH)
    assert sorted(ids(source)) == ["1001", "1002"]
    assert source.client.requests == {"token": 1, "search": 1}
    hubspot.time.now += 1700  # inside the refresh margin of a 1800 s token
    assert sorted(ids(source)) == ["1001", "1002"]
    assert source.client.requests == {"token": 2, "search": 2}
    token_request = sent(hubspot)[0]
    assert token_request.path == "/oauth/v1/token"
    form = token_request.body.decode()
    assert "grant_type=refresh_token" in form
    assert "test-secret" not in form and "test-refresh-token" not in form


def test_oauth_401_refreshes_once_then_fails_clearly(hubspot):
    hubspot.fake.oauth_clients["test-client"] = ("test-secret", "test-refresh-token")
    hubspot.fake.scripted.append(
        Scripted("POST", "/search", 401, error("INVALID_AUTHENTICATION", "expired"))
    )
    hubspot.fake.scripted.append(
        Scripted("POST", "/search", 401, error("INVALID_AUTHENTICATION", "expired"))
    )
    source = hubspot.source(auth=OAUTH)
    with pytest.raises(AuthError) as info:
        ids(source)
    assert str(info.value).endswith(
        "check auth.refresh_token, auth.client_id and auth.client_secret (OAuth app)"
    )
    assert source.client.requests == {"token": 2, "search": 2}


def test_oauth_bad_refresh_token_is_an_auth_error(hubspot):
    source = hubspot.source(auth=OAUTH)  # the fake knows no such client
    with pytest.raises(AuthError) as info:
        ids(source)
    assert "BAD_REFRESH_TOKEN" in str(info.value)
    assert "test-secret" not in str(info.value)
