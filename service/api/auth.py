"""Authentication, scopes and per-key rate limits, as one dependency per scope set.

A key comes in ``X-API-Key`` or ``Authorization: Bearer``. Missing or wrong: 401; over
the limit: 429 with ``Retry-After``; lacking the scope: 403. The whole check is one
plain function, so it costs a single thread-pool hop (the lookup is SQL).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from service.api.deps import ClockDep, EngineDep, LimiterDep, SettingsDep
from service.api.errors import ApiError
from service.api.ratelimit import RateLimitBackend, RateLimitResult
from service.settings import Settings
from state.apikeys import ApiKeyInfo, touch_api_key, verify_api_key

__all__ = [
    "DeleteKey",
    "ExternalKey",
    "ReadKey",
    "SyncKey",
    "WriteKey",
    "charge_sync_leads",
    "require",
]

_api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="An API key (lsk_...)."
)
_bearer = HTTPBearer(auto_error=False, description="The same key as a bearer token.")
_HeaderKey = Annotated[str | None, Security(_api_key_header)]
_BearerKey = Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]


def _limited(result: RateLimitResult, what: str) -> ApiError:
    return ApiError(
        429,
        f"rate limit exceeded: {result.limit} {what} per minute for this key",
        headers={"Retry-After": str(result.retry_after)},
    )


def _authenticate(
    engine: Any, clock: Callable[[], Any], header: str | None, bearer: Any
) -> ApiKeyInfo:
    presented = (header or "").strip() or (
        bearer.credentials.strip() if bearer is not None else ""
    )
    if not presented:
        raise ApiError(
            401,
            "missing API key: send X-API-Key or Authorization: Bearer <key>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    with Session(engine) as session:
        info = verify_api_key(session, presented)
        if info is not None and touch_api_key(session, key=info, now=clock()):
            session.commit()
    if info is None:
        raise ApiError(
            401, "invalid or revoked API key", headers={"WWW-Authenticate": "Bearer"}
        )
    return info


def require(*scopes: str, sync: bool = False) -> Callable[..., ApiKeyInfo]:
    """A dependency: a valid key within its rate limit holding any of ``scopes``."""

    def dependency(
        request: Request,
        engine: EngineDep,
        settings: SettingsDep,
        limiter: LimiterDep,
        clock: ClockDep,
        header: _HeaderKey,
        bearer: _BearerKey,
    ) -> ApiKeyInfo:
        info = _authenticate(engine, clock, header, bearer)
        limits = settings.api.rate_limits
        if sync:
            limit, bucket = limits.sync_requests_per_minute, "sync"
        else:
            limit, bucket = limits.requests_per_minute, "requests"
        result = limiter.hit(f"{info.id}:{bucket}", limit=limit)
        request.state.rate_limit = result
        if not result.allowed:
            raise _limited(result, "requests")
        if not any(info.allows(scope) for scope in scopes):
            raise ApiError(403, f"this API key lacks the scope {' or '.join(scopes)}")
        request.state.api_key = info
        return info

    dependency.__name__ = f"require_{'_or_'.join(s.replace(':', '_') for s in scopes)}"
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
