"""The one boundary where HubSpot SDK and urllib3 exceptions become our error tree.

Status codes follow crm-notes §1.6: 429 and 5xx (and 423, 477) are retriable, the daily
limit is not (it resets at midnight in the account's time zone), 401 and 403 are auth
errors, every other 4xx is fatal. Messages carry the status, HubSpot's error category
and correlation id, never the body, a token or lead data; the vendor exception stays on
``__cause__``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import urllib3.exceptions
from hubspot.crm.companies import exceptions as _companies
from hubspot.crm.contacts import exceptions as _contacts
from hubspot.crm.deals import exceptions as _deals
from hubspot.oauth import exceptions as _oauth

from connectors.errors import AuthError, FatalSourceError, RetriableSourceError
from connectors.http import parse_retry_after

__all__ = [
    "API_EXCEPTIONS",
    "DailyLimitError",
    "TokenRejectedError",
    "daily_exhausted",
    "translate_errors",
]

#: Every SDK exception class a call can raise (each product package has its own).
API_EXCEPTIONS: tuple[type[Exception], ...] = (
    _contacts.ApiException,
    _companies.ApiException,
    _deals.ApiException,
    _oauth.ApiException,
)
_RETRIABLE_STATUS = frozenset({423, 477, 429})
# What HubSpot's own SDKs wait when a 429 says no Retry-After (crm-notes §1.6).
_POLICY_WAIT = {"SECONDLY": 1.0, "TEN_SECONDLY_ROLLING": 10.0}

DAILY_MESSAGE = (
    "HubSpot daily API limit reached: the run stops, the cursor is kept; it resets at "
    "midnight in the account's time zone"
)


class DailyLimitError(FatalSourceError):
    """Raised when the account's daily API limit is used up; retrying cannot help."""

    def __init__(self) -> None:
        super().__init__(DAILY_MESSAGE)


class TokenRejectedError(AuthError):
    """Raised on a 401: the token is wrong, revoked or expired."""


def _body(raw: object) -> dict[str, Any]:
    if not isinstance(raw, bytes | str) or not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        return {}  # a proxy's HTML error page, say
    return data if isinstance(data, dict) else {}


def _header(headers: object, name: str) -> str | None:
    if not headers:
        return None
    table: Mapping[str, str] = (
        headers
        if isinstance(headers, Mapping)
        # Some response classes give (name, value) pairs instead of a mapping.
        else dict(headers)  # type: ignore[call-overload]
    )
    value = table.get(name)
    if value is None:  # plain dicts are case-sensitive
        lower = name.lower()
        value = next((v for k, v in table.items() if k.lower() == lower), None)
    return None if value is None else str(value)


def daily_exhausted(headers: object) -> bool:
    """Whether a response says the daily limit is used up."""
    return _header(headers, "X-HubSpot-RateLimit-Daily-Remaining") == "0"


def _describe(status: int, body: dict[str, Any]) -> str:
    parts = [str(status)]
    for key in ("category", "policyName", "errorType"):
        value = body.get(key)
        if isinstance(value, str) and value.isidentifier():
            parts.append(value)
    text = " ".join(parts)
    correlation = body.get("correlationId")
    if isinstance(correlation, str) and len(correlation) <= 64:
        text += f", correlation id {correlation}"
    return text


def _from_api(exc: Any, what: str, credential: str, scope: str) -> Exception:
    status = int(exc.status or 0)
    body = _body(exc.body)
    headers = exc.headers
    desc = _describe(status, body)
    if status == 0:
        return FatalSourceError(f"{what}: the request could not be sent ({exc.reason})")
    if status == 429 and (
        "DAILY" in (body.get("policyName"), body.get("errorType"))
        or daily_exhausted(headers)
    ):
        return DailyLimitError()
    if status == 401:
        return TokenRejectedError(
            f"{what}: HubSpot rejected the credentials ({desc}): check {credential}"
        )
    if status == 403:
        return AuthError(
            f"{what}: HubSpot refused access ({desc}): the token needs the {scope} "
            f"scope; check {credential}"
        )
    if status in _RETRIABLE_STATUS or status >= 500:
        wait = parse_retry_after(_header(headers, "Retry-After"))
        if wait is None and status == 429:
            # No Retry-After (search 429s never carry one): the limits are per second
            # or per ten seconds, so wait that long rather than a short backoff.
            wait = _POLICY_WAIT.get(str(body.get("policyName")), 1.0)
        return RetriableSourceError(
            f"{what}: HubSpot answered {desc}", retry_after=wait
        )
    return FatalSourceError(f"{what}: HubSpot refused the request ({desc})")


@contextmanager
def translate_errors(what: str, *, credential: str, scope: str) -> Iterator[None]:
    """Turn SDK and urllib3 exceptions raised inside into ``SourceError`` subclasses.

    ``what`` names the call (``search contacts``), ``credential`` the config key a 401
    should send the user to, ``scope`` the scope a 403 is most likely missing.
    """
    try:
        yield
    except API_EXCEPTIONS as exc:
        raise _from_api(exc, what, credential, scope) from exc
    except urllib3.exceptions.SSLError as exc:
        raise FatalSourceError(
            f"{what}: TLS error talking to HubSpot ({type(exc).__name__})"
        ) from exc
    except urllib3.exceptions.HTTPError as exc:
        # Timeouts, refused or dropped connections, truncated responses.
        raise RetriableSourceError(
            f"{what}: cannot reach HubSpot ({type(exc).__name__})"
        ) from exc
