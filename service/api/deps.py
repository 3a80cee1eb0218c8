"""FastAPI dependencies shared by the routers: the store, settings, clock, limits.

Each reads what ``create_app`` put on ``app.state``; tests replace any of them with
``app.dependency_overrides``. They are ``async def`` on purpose: they do no I/O, and a
plain ``def`` would cost a thread-pool hop per request.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.engine import Engine

from service.api.ratelimit import RateLimitBackend
from service.api.schemas import LeadModels
from service.api.totals import RequestTotals
from service.settings import Settings

__all__ = [
    "ClockDep",
    "EngineDep",
    "LimiterDep",
    "ModelsDep",
    "SettingsDep",
    "TotalsDep",
    "WriteLockDep",
    "get_clock",
    "get_engine",
    "get_limiter",
    "get_models",
    "get_settings",
    "get_totals",
    "get_write_lock",
    "utc_now",
]


def utc_now() -> datetime:
    """The current time, tz-aware UTC."""
    return datetime.now(UTC)


async def get_engine(request: Request) -> Engine:
    """The store engine."""
    engine: Engine = request.app.state.engine
    return engine


async def get_settings(request: Request) -> Settings:
    """The app's settings."""
    settings: Settings = request.app.state.settings
    return settings


async def get_limiter(request: Request) -> RateLimitBackend:
    """The rate limit backend."""
    limiter: RateLimitBackend = request.app.state.limiter
    return limiter


async def get_totals(request: Request) -> RequestTotals:
    """The cache of list and search totals, as this request sees it."""
    return RequestTotals(request.app.state.totals, request.state)


async def get_models(request: Request) -> LeadModels:
    """The schemas built from ``lead_fields``."""
    models: LeadModels = request.app.state.models
    return models


async def get_write_lock(request: Request) -> threading.Lock:
    """Serialises email-unique writes within this process (see state.leadwrite)."""
    lock: threading.Lock = request.app.state.write_lock
    return lock


async def get_clock() -> Callable[[], datetime]:
    """The clock writes are stamped with."""
    return utc_now


EngineDep = Annotated[Engine, Depends(get_engine)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
LimiterDep = Annotated[RateLimitBackend, Depends(get_limiter)]
TotalsDep = Annotated[RequestTotals, Depends(get_totals)]
ModelsDep = Annotated[LeadModels, Depends(get_models)]
WriteLockDep = Annotated[threading.Lock, Depends(get_write_lock)]
ClockDep = Annotated[Callable[[], datetime], Depends(get_clock)]
