"""Authentication, scopes and per-key rate limits, as one dependency per scope set.

A key comes in ``X-API-Key`` or ``Authorization: Bearer``. Missing or wrong: 401; over
the limit: 429 with ``Retry-After``; lacking the scope: 403. The check reads the store
(the key, or at least SQLite's ``PRAGMA data_version``) and the rate limit backend, so
it runs in the thread pool: ``require`` makes a plain dependency, which FastAPI runs
there, and ``service.api.fastroute`` runs it in the same call as the read handler. A
key verified since the store last changed (``data_version``, so a revocation
committed by any process is seen at once) is answered from ``KeyCache``.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from service.api.deps import ClockDep
from service.api.errors import ApiError
from service.api.ratelimit import RateLimitBackend, RateLimitResult
from service.api.totals import RequestTotals, TotalCache
from service.settings import Settings
from state.apikeys import TOUCH_EVERY, ApiKeyInfo, touch_api_key, verify_api_key

__all__ = [
    "Credentials",
    "DeleteKey",
    "ExternalKey",
    "KeyCache",
    "KeyRequirement",
    "ReadKey",
    "SyncKey",
    "WriteKey",
    "charge_sync_leads",
    "key_requirement",
    "read_credentials",
    "require",
]

_api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="An API key (lsk_...)."
)
_bearer = HTTPBearer(auto_error=False, description="The same key as a bearer token.")
_HeaderKey = Annotated[str | None, Security(_api_key_header)]
_BearerKey = Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]
#: What a request presents: the ``X-API-Key`` header, the bearer credentials.
Credentials = tuple[str | None, HTTPAuthorizationCredentials | None]


def _limited(result: RateLimitResult, what: str) -> ApiError:
    return ApiError(
        429,
        f"rate limit exceeded: {result.limit} {what} per minute for this key",
        headers={"Retry-After": str(result.retry_after)},
    )


class KeyCache:
    """Keys verified at a store version: valid until anything commits to the store.

    Entries are keyed by the SHA-256 of the presented key, so the cache never holds
    a key itself. The version comes from ``TotalCache.version`` (SQLite
    ``PRAGMA data_version`` on a connection that never writes): revoking a key,
    from this process or the CLI, commits and so empties the cache for the next
    request. On PostgreSQL or in-memory SQLite there is no version: nothing is cached.
    """

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._version: int | None = None
        self._entries: dict[str, ApiKeyInfo] = {}

    def get(self, digest: str, version: int | None) -> ApiKeyInfo | None:
        """The key verified for ``digest`` at ``version``, if still current."""
        if version is None:
            return None
        with self._lock:
            if version != self._version:
                self._entries.clear()
                self._version = version
                return None
            return self._entries.get(digest)

    def put(self, digest: str, info: ApiKeyInfo, version: int | None) -> None:
        """Remember a key verified at ``version`` (read before verifying)."""
        if version is None:
            return
        with self._lock:
            if version != self._version:
                self._entries.clear()
                self._version = version
            if len(self._entries) >= self._size:
                self._entries.clear()
            self._entries[digest] = info


def _presented_key(
    header: str | None, bearer: HTTPAuthorizationCredentials | None
) -> str:
    presented = (header or "").strip() or (
        bearer.credentials.strip() if bearer is not None else ""
    )
    if not presented:
        raise ApiError(
            401,
            "missing API key: send X-API-Key or Authorization: Bearer <key>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return presented


def _verify(
    engine: Any,
    totals: TotalCache,
    cache: KeyCache,
    presented: str,
    digest: str,
    now: datetime,
) -> ApiKeyInfo:
    # The version is read before the lookup, so an entry is never filed under a
    # version newer than the data it was verified against.
    version = totals.version()
    with Session(engine) as session:
        info = verify_api_key(session, presented)
        touched = info is not None and touch_api_key(session, key=info, now=now)
        if touched:
            session.commit()
    if info is None:
        raise ApiError(
            401, "invalid or revoked API key", headers={"WWW-Authenticate": "Bearer"}
        )
    if not touched:
        # After a touch the version has moved on: the next request re-verifies.
        cache.put(digest, info, version)
    return info


def _authenticate(
    request: Request, clock: Callable[[], datetime], presented: str
) -> ApiKeyInfo:
    state = request.app.state
    digest = hashlib.sha256(presented.encode()).hexdigest()
    now = clock()
    totals: TotalCache = state.totals
    cache: KeyCache = state.key_cache
    info = cache.get(digest, RequestTotals(totals, request.state).version())
    if info is not None and (
        info.last_used_at is not None and now - info.last_used_at < TOUCH_EVERY
    ):
        return info
    return _verify(state.engine, totals, cache, presented, digest, now)


@dataclass(frozen=True, slots=True)
class KeyRequirement:
    """What a route asks of a key: any of ``scopes``, within its rate limit."""

    scopes: tuple[str, ...]
    sync: bool = False

    def check(
        self,
        request: Request,
        clock: Callable[[], datetime],
        credentials: Credentials,
    ) -> ApiKeyInfo:
        """The presented key, checked in the contract's order: 401, 429, 403.

        It reads the store and the limits: call it in a worker thread.
        """
        info = _authenticate(request, clock, _presented_key(*credentials))
        settings: Settings = request.app.state.settings
        limits = settings.api.rate_limits
        if self.sync:
            limit, bucket = limits.sync_requests_per_minute, "sync"
        else:
            limit, bucket = limits.requests_per_minute, "requests"
        limiter: RateLimitBackend = request.app.state.limiter
        result = limiter.hit(f"{info.id}:{bucket}", limit=limit)
        request.state.rate_limit = result
        if not result.allowed:
            raise _limited(result, "requests")
        if not any(info.allows(scope) for scope in self.scopes):
            wanted = " or ".join(self.scopes)
            raise ApiError(403, f"this API key lacks the scope {wanted}")
        request.state.api_key = info
        return info


async def read_credentials(request: Request) -> Credentials:
    """The key as presented, read as the ``Security`` dependencies of ``require`` do."""
    header = await _api_key_header(request)
    bearer = None if (header or "").strip() else await _bearer(request)
    return header, bearer


_REQUIREMENTS: dict[Callable[..., Any], KeyRequirement] = {}


def key_requirement(dependency: Callable[..., Any]) -> KeyRequirement | None:
    """The requirement behind a dependency made by ``require``, else None."""
    return _REQUIREMENTS.get(dependency)


def require(*scopes: str, sync: bool = False) -> Callable[..., Any]:
    """A dependency: a valid key within its rate limit holding any of ``scopes``."""
    requirement = KeyRequirement(scopes, sync)

    # A plain function: FastAPI runs it in the thread pool.
    def dependency(
        request: Request,
        clock: ClockDep,
        header: _HeaderKey,
        bearer: _BearerKey,
    ) -> ApiKeyInfo:
        return requirement.check(request, clock, (header, bearer))

    dependency.__name__ = f"require_{'_or_'.join(s.replace(':', '_') for s in scopes)}"
    _REQUIREMENTS[dependency] = requirement
    return dependency


def charge_sync_leads(
    request: Request,
    *,
    limiter: RateLimitBackend,
    settings: Settings,
    key: ApiKeyInfo,
    count: int,
) -> None:
    """Spend ``count`` leads of the key's per-minute lead budget, or raise 429."""
    result = limiter.hit(
        f"{key.id}:sync_leads",
        limit=settings.api.rate_limits.sync_leads_per_minute,
        cost=count,
    )
    request.state.rate_limit_leads = result
    if not result.allowed:
        raise _limited(result, "leads")


ReadKey = Annotated[ApiKeyInfo, Depends(require("leads:read"))]
WriteKey = Annotated[ApiKeyInfo, Depends(require("leads:write"))]
DeleteKey = Annotated[ApiKeyInfo, Depends(require("leads:delete"))]
SyncKey = Annotated[ApiKeyInfo, Depends(require("leads:sync_create", sync=True))]
ExternalKey = Annotated[
    ApiKeyInfo, Depends(require("leads:sync_create", "leads:write"))
]
