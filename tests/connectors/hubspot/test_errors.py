"""Error translation at the SDK boundary, rate-limit bookkeeping, config (no HTTP)."""

from __future__ import annotations

import inspect
import json

import pytest
import urllib3.exceptions
from hubspot.crm.companies import exceptions as companies
from hubspot.crm.contacts import exceptions as contacts
from hubspot.crm.deals import exceptions as deals
from hubspot.oauth import exceptions as oauth
from pydantic import ValidationError

from connectors.errors import (
    AuthError,
    FatalSourceError,
    RetriableSourceError,
    SourceError,
)
from connectors.hubspot import DailyLimitError, HubSpotConfig, HubSpotSource
from connectors.hubspot.errors import (
    API_EXCEPTIONS,
    TokenRejectedError,
    translate_errors,
)
from connectors.hubspot.ratelimit import account_key, account_limits, reset_accounts
from tests.connectors.hubspot.support import HINTS


class Response:
    def __init__(self, status, body, headers=None):
        self.status = status
        self.reason = "reason"
        self.data = json.dumps(body).encode() if body is not None else b""
        self._headers = headers or {}

    def getheaders(self):
        return self._headers


def translate(exc):
    with (
        pytest.raises(SourceError) as info,
        translate_errors("search contacts", credential="auth.x", scope="s.read"),
    ):
        raise exc
    return info.value


def test_every_sdk_api_exception_is_mapped():
    classes = [
        cls
        for module in (contacts, companies, deals, oauth)
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, module.ApiException)
    ]
    assert len(classes) == 20
    for cls in classes:
        assert issubclass(cls, API_EXCEPTIONS)
        error = translate(cls(http_resp=Response(418, {"category": "X"})))
        assert isinstance(error, FatalSourceError)


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected", "retry_after"),
    [
        (429, {"category": "RATE_LIMITS"}, {}, RetriableSourceError, 1.0),
        (429, {"policyName": "TEN_SECONDLY_ROLLING"}, {}, RetriableSourceError, 10.0),
        (
            429,
            {"policyName": "SECONDLY"},
            {"Retry-After": "3"},
            RetriableSourceError,
            3.0,
        ),
        (
            429,
            {"policyName": "DAILY", "errorType": "RATE_LIMIT"},
            {},
            DailyLimitError,
            None,
        ),
        (429, {}, {"X-HubSpot-RateLimit-Daily-Remaining": "0"}, DailyLimitError, None),
        (500, {"category": "INTERNAL_ERROR"}, {}, RetriableSourceError, None),
        (502, None, {}, RetriableSourceError, None),
        (504, {}, {}, RetriableSourceError, None),
        (423, {}, {"Retry-After": "2"}, RetriableSourceError, 2.0),
        (477, {}, {"Retry-After": "30"}, RetriableSourceError, 30.0),
        (401, {"category": "INVALID_AUTHENTICATION"}, {}, TokenRejectedError, None),
        (403, {"category": "MISSING_SCOPES"}, {}, AuthError, None),
        (400, {"category": "VALIDATION_ERROR"}, {}, FatalSourceError, None),
        (404, {"category": "OBJECT_NOT_FOUND"}, {}, FatalSourceError, None),
        (414, {}, {}, FatalSourceError, None),
    ],
)
def test_status_table(status, body, headers, expected, retry_after):
    cls = {401: contacts.UnauthorizedException, 403: contacts.ForbiddenException}.get(
        status, contacts.ApiException
    )
    error = translate(cls(http_resp=Response(status, body, headers)))
    assert type(error) is expected
    if isinstance(error, RetriableSourceError):
        assert error.retry_after == retry_after
    assert isinstance(error.__cause__, contacts.ApiException)


def test_messages_carry_no_body_but_category_and_correlation_id():
    body = {
        "category": "VALIDATION_ERROR",
        "message": "jane@corp.example is invalid",
        "correlationId": "de61843f-b3ab-4bc1-8c54-358e37eb0621",
    }
    error = translate(contacts.ApiException(http_resp=Response(400, body)))
    assert str(error) == (
        "search contacts: HubSpot refused the request (400 VALIDATION_ERROR, "
        "correlation id de61843f-b3ab-4bc1-8c54-358e37eb0621)"
    )


def test_a_non_json_error_page_still_maps():
    response = Response(503, None)
    response.data = b"<html>Service Unavailable</html>"
    error = translate(contacts.ServiceException(http_resp=response))
    assert str(error) == "search contacts: HubSpot answered 503"


@pytest.mark.parametrize(
    "exc",
    [
        urllib3.exceptions.NewConnectionError(None, "refused"),
        urllib3.exceptions.ReadTimeoutError(None, "/", "timed out"),
        urllib3.exceptions.ProtocolError("connection aborted"),
    ],
)
def test_connection_errors_are_retriable(exc):
    error = translate(exc)
    assert type(error) is RetriableSourceError
    assert str(error) == f"search contacts: cannot reach HubSpot ({type(exc).__name__})"


def test_ssl_failure_is_fatal():
    error = translate(contacts.ApiException(status=0, reason="SSLError"))
    assert type(error) is FatalSourceError


def test_connection_refused_through_the_sdk(tmp_path):
    reset_accounts()
    cfg = HubSpotConfig(
        name="hs",
        auth={"access_token": "pat-unused"},
        base_url="http://127.0.0.1:9",
        max_attempts=2,
        retry_budget="1s",
    )
    slept = []
    with (
        HubSpotSource.from_config(cfg, HINTS, sleep=slept.append) as source,
        pytest.raises(RetriableSourceError, match="cannot reach HubSpot"),
    ):
        source.check()
    assert len(slept) == 1
    reset_accounts()


def test_accounts_share_limits_by_token_hash():
    reset_accounts()
    key = account_key("pat-1")
    assert key == account_key("pat-1") != account_key("pat-2")
    assert "pat-1" not in key
    first = account_limits(key, search_rate=4)
    assert account_limits(key, search_rate=10) is first
    assert first.search.rate == 4
    account_limits(key, search_rate=2)
    assert first.search.rate == 2  # the most careful setting wins
    first.observe(
        {
            "X-HubSpot-RateLimit-Max": "100",
            "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
            "X-HubSpot-RateLimit-Remaining": "5",
        }
    )
    assert (first.general.rate, first.general.capacity) == (10.0, 100.0)
    assert first.general.tokens <= 5
    reset_accounts()


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        ({}, "give access_token"),
        (
            {"refresh_token": "r"},
            "OAuth needs refresh_token, client_id and client_secret",
        ),
        (
            {
                "access_token": "a",
                "refresh_token": "r",
                "client_id": "c",
                "client_secret": "s",
            },
            "leave access_token out",
        ),
    ],
)
def test_auth_config_errors(auth, message):
    with pytest.raises(ValidationError, match=message):
        HubSpotConfig(name="hs", auth=auth)


def test_config_defaults():
    cfg = HubSpotConfig(name="hs", auth={"access_token": "pat-x"})
    assert cfg.base_url == "https://api.hubapi.com"
    assert cfg.object == "contacts"
    assert cfg.spec.modified == "lastmodifieddate"
    assert (
        HubSpotConfig(
            name="d", auth={"access_token": "p"}, object="deals"
        ).spec.modified
        == "hs_lastmodifieddate"
    )
    assert (cfg.lag.total_seconds(), cfg.lookback.total_seconds()) == (120, 120)
    assert cfg.sweep is not None and cfg.sweep.every.total_seconds() == 86400
    assert cfg.search_rate == 4.0
    assert "pat-x" not in repr(cfg)
    with pytest.raises(ValidationError, match="not an http"):
        HubSpotConfig(name="hs", auth={"access_token": "p"}, base_url="ftp://x")
