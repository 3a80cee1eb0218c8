"""HubSpot calls through hubspot-api-client, with our retries, limits and token refresh.

The SDK supplies the configuration, the urllib3 connection pool, the headers and the
exception classes; ``transport.py`` sends on that pool without the SDK's generated layer
(the requests are byte for byte the SDK's) and parses bodies with orjson. The list
endpoint's query (the property list) is encoded once per pass, not per page. The SDK's
own urllib3 retry is switched off: it skips POST (search) and ends in
``MaxRetryError`` (crm-notes L1); ``retry_call`` retries every call instead.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus, urlencode

from hubspot import HubSpot

from connectors.errors import AuthError, FatalSourceError, RetriableSourceError
from connectors.http import Backoff, Clock, Sleep, TokenBucket, retry_call
from connectors.hubspot.config import HubSpotConfig
from connectors.hubspot.errors import (
    DailyLimitError,
    TokenRejectedError,
    translate_errors,
)
from connectors.hubspot.ratelimit import AccountLimits, account_key, account_limits
from connectors.hubspot.transport import Transport, decode_json

__all__ = ["LIST_LIMIT", "SEARCH_LIMIT", "HubSpotClient", "reset_tokens"]

SEARCH_LIMIT = 200  # the search endpoint's page maximum
LIST_LIMIT = 100  # the list endpoint's page maximum
BATCH_READ_LIMIT = 100
# Refresh an OAuth token this long before HubSpot says it expires.
_REFRESH_MARGIN = 120.0


@dataclass(slots=True)
class _Token:
    value: str
    expires_at: float  # on the monotonic clock


# OAuth access tokens, per refresh token (hashed): runs reuse them until they expire.
_TOKENS: dict[str, _Token] = {}
_TOKENS_LOCK = threading.Lock()


def reset_tokens() -> None:
    """Forget the cached OAuth access tokens (for tests and credential changes)."""
    with _TOKENS_LOCK:
        _TOKENS.clear()


class HubSpotClient:
    """One object type's search, list and batch-read calls for one connector.

    ``requests`` counts the calls made, by kind (``search``, ``list``, ``archived``,
    ``batch_read``, ``token``), retries included.
    """

    @property
    def daily_remaining(self) -> float | None:
        """What HubSpot last said is left of the account's daily API calls."""
        return self._limits.daily_remaining

    def __init__(
        self,
        cfg: HubSpotConfig,
        *,
        sleep: Sleep = time.sleep,
        clock: Clock = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        auth = cfg.auth
        self._cfg = cfg
        self._clock = clock
        self._sleep = sleep
        self._oauth = auth.oauth
        secret = auth.refresh_token if auth.oauth else auth.access_token
        assert secret is not None  # noqa: S101 (HubSpotAuth's validator ensures it)
        self._key = account_key(secret.get_secret_value())
        self._limits: AccountLimits = account_limits(
            self._key, search_rate=cfg.search_rate, clock=clock, sleep=sleep
        )
        self._backoff = Backoff(
            max_attempts=cfg.max_attempts,
            budget=cfg.retry_budget.total_seconds(),
            rng=rng or random.Random(),  # noqa: S311 (jitter, not cryptography)
        )
        self._timeout = cfg.timeout.total_seconds()
        self._scope = cfg.spec.scope
        self._credential = (
            "auth.refresh_token, auth.client_id and auth.client_secret (OAuth app)"
            if auth.oauth
            else "auth.access_token (the private app's access token)"
        )
        token = auth.access_token.get_secret_value() if auth.access_token else None
        # retry=False: no urllib3 retries or redirects; retry_call does it for all.
        sdk = HubSpot(access_token=token, host=cfg.base_url, retry=False)
        # The SDK builds a new client (and connection pool) on every attribute access:
        # build the one we send on once and keep it.
        self._transport = Transport(
            getattr(sdk.crm, cfg.object).basic_api.api_client,
            object_name=cfg.object,
            timeout=self._timeout,
        )
        self._path = self._transport.path
        # The list endpoint's query after ``after``, per (properties, archived, limit).
        self._queries: dict[tuple[tuple[str, ...], bool, int], str] = {}
        self._tokens_api: Any = sdk.oauth.tokens_api if auth.oauth else None
        self._active: str | None = None
        if token is not None:
            self._use(token)
        self.requests: Counter[str] = Counter()

    # -- the calls -------------------------------------------------------------------

    def search(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /crm/v3/objects/{object}/search`` with ``body``."""
        return self._call(
            "search", self._limits.search, "POST", f"{self._path}/search", body
        )

    def list_page(
        self,
        *,
        after: str | None,
        archived: bool,
        properties: Sequence[str],
        limit: int = LIST_LIMIT,
    ) -> dict[str, Any]:
        """``GET /crm/v3/objects/{object}`` (100 per page), live or archived."""
        key = (tuple(properties), archived, limit)
        query = self._queries.get(key)
        if query is None:
            # The SDK's order: limit, after, properties (repeated), archived ("False").
            props = urlencode([("properties", p) for p in properties])
            query = f"{props}&archived={archived}" if props else f"archived={archived}"
            self._queries[key] = query
        after_part = "" if after is None else f"&after={quote_plus(after)}"
        return self._call(
            "archived" if archived else "list",
            self._limits.general,
            "GET",
            f"{self._path}?limit={limit}{after_part}&{query}",
            None,
        )

    def batch_read(
        self, ids: Sequence[str], properties: Sequence[str]
    ) -> dict[str, Any]:
        """``POST /crm/v3/objects/{object}/batch/read`` for up to 100 ids."""
        body = {
            "inputs": [{"id": i} for i in ids],
            "properties": list(properties),
            "propertiesWithHistory": [],
        }
        return self._call(
            "batch_read",
            self._limits.general,
            "POST",
            f"{self._path}/batch/read?archived=False",
            body,
        )

    def close(self) -> None:
        """Close the connection pools."""
        self._transport.close()
        if self._tokens_api is not None:
            self._tokens_api.api_client.rest_client.pool_manager.clear()

    # -- plumbing --------------------------------------------------------------------

    def _call(
        self,
        kind: str,
        bucket: TokenBucket,
        method: str,
        url: str,
        body: dict[str, Any] | None,
    ) -> dict[str, Any]:
        what = f"{kind} {self._cfg.object}"

        def attempt() -> Any:
            if self._limits.daily_blocked:
                raise DailyLimitError()
            self._ensure_token()
            try:
                return self._send(kind, what, bucket, method, url, body)
            except TokenRejectedError:
                if not self._oauth:
                    raise
            # A 401 with OAuth: the token may have been revoked early; refresh once.
            self._refresh()
            return self._send(kind, what, bucket, method, url, body)

        result = retry_call(
            attempt,
            backoff=self._backoff,
            sleep=self._sleep,
            clock=self._clock,
            what=what,
        )
        if not isinstance(result, dict):
            raise FatalSourceError(f"{what}: HubSpot's answer is not a JSON object")
        return result

    def _send(
        self,
        kind: str,
        what: str,
        bucket: TokenBucket,
        method: str,
        url: str,
        body: dict[str, Any] | None,
    ) -> Any:
        bucket.acquire()
        self.requests[kind] += 1
        try:
            with translate_errors(what, credential=self._credential, scope=self._scope):
                raw, headers = self._transport.request(method, url, body)
        except DailyLimitError:
            self._limits.block_daily()
            raise
        except RetriableSourceError:
            bucket.drain()  # a 429 or 5xx: let the bucket refill before the next call
            raise
        if self._limits.observe(headers) == 0:
            # This answer is good; the next request would be refused until midnight.
            self._limits.block_daily()
        try:
            return decode_json(raw)
        except ValueError as exc:
            raise RetriableSourceError(
                f"{what}: HubSpot sent a body that is not JSON"
            ) from exc

    def _ensure_token(self) -> None:
        if not self._oauth:
            return
        with _TOKENS_LOCK:
            cached = _TOKENS.get(self._key)
        if cached is not None and self._clock() < cached.expires_at - _REFRESH_MARGIN:
            if cached.value != self._active:
                self._use(cached.value)
            return
        self._refresh()

    def _refresh(self) -> None:
        """Get a new access token with the refresh token (crm-notes §1.1, P15)."""
        auth = self._cfg.auth
        assert auth.refresh_token is not None  # noqa: S101 (only called with OAuth)
        assert auth.client_secret is not None  # noqa: S101
        self.requests["token"] += 1
        what = "refresh the OAuth token"
        try:
            with translate_errors(what, credential=self._credential, scope=self._scope):
                response = self._tokens_api.create(
                    grant_type="refresh_token",
                    client_id=auth.client_id,
                    client_secret=auth.client_secret.get_secret_value(),
                    refresh_token=auth.refresh_token.get_secret_value(),
                    _preload_content=False,
                    _request_timeout=self._timeout,
                )
                raw = response.data
                response.release_conn()
        except FatalSourceError as exc:
            # HubSpot answers 400 BAD_REFRESH_TOKEN for a revoked refresh token.
            raise AuthError(f"{exc}; check {self._credential}") from exc
        try:
            data = decode_json(raw)
            token, ttl = str(data["access_token"]), float(data["expires_in"])
        except (ValueError, KeyError, TypeError) as exc:
            raise AuthError(f"{what}: HubSpot's answer has no access token") from exc
        with _TOKENS_LOCK:
            _TOKENS[self._key] = _Token(token, self._clock() + ttl)
        self._use(token)

    def _use(self, token: str) -> None:
        self._active = token
        self._transport.authorize(token)
