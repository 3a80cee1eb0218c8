"""The app factory: ``create_app(settings, db=...)`` wires routers, errors, limits."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

import anyio.to_thread
from fastapi import FastAPI
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from service.api.auth import KeyCache
from service.api.errors import install_error_handlers
from service.api.fastlane import ReadLane
from service.api.metrics import ApiMetrics
from service.api.middleware import ApiMiddleware
from service.api.ratelimit import InMemoryRateLimiter, RateLimitBackend
from service.api.routes_ops import build_ops_router
from service.api.routes_read import build_read_router
from service.api.routes_sync import build_sync_router
from service.api.routes_write import build_write_router
from service.api.schemas import build_models
from service.api.totals import TotalCache
from service.settings import Settings
from state import bulkindex
from state.db import make_engine
from state.migrate import current_revision, head_revision, upgrade

__all__ = ["create_app"]

_MIN_THREADS = 2
# Threads for the read routes (service.api.fastroute): one per core of a small
# machine. A read spends most of its time in SQLite with the GIL released; more
# threads only queue for the GIL and switch more (on 2 cores, 5 threads cost a
# third more CPU per GET /v1/leads than 2).
_READ_THREADS = 2

_DESCRIPTION = """\
The leads in the leadsync store, over JSON. Authenticate with `X-API-Key: <key>` or
`Authorization: Bearer <key>` (create keys with `leadsync apikey create`). Errors are
`{"error": {"code", "message", "details"}}`. Request examples show this
organization's custom fields (`lead_fields`).
"""


def _version() -> str:
    try:
        return version("leadsync")
    except PackageNotFoundError:
        return "0.0.0"


def _ensure_schema(engine: Engine) -> None:
    if current_revision(engine) != head_revision():
        upgrade(engine)


def _size_thread_pool(engine: Engine) -> None:
    # A handler holds one pooled connection while it runs in a worker thread. With
    # more threads than pooled connections, SQLAlchemy opens and closes overflow
    # connections (and SQLite reruns its PRAGMAs) on every request; more threads
    # also fight over the GIL. So the thread pool gets as many threads as the pool
    # keeps connections.
    size = getattr(engine.pool, "size", None)
    if callable(size):
        limiter = anyio.to_thread.current_default_thread_limiter()
        limiter.total_tokens = max(_MIN_THREADS, int(size()))


def create_app(
    settings: Settings,
    *,
    db: Engine | None = None,
    rate_limiter: RateLimitBackend | None = None,
) -> FastAPI:
    """Build the lead API.

    Args:
        settings: the loaded settings (``api`` and ``lead_fields`` shape the app).
        db: a store engine whose schema is up to date; without it the app makes its
            own from ``settings.store_url()``, upgrades it on startup and disposes of
            it on shutdown.
        rate_limiter: a shared backend for several processes; in-process by default.
    """
    owns_engine = db is None
    engine = db if db is not None else make_engine(settings.store_url())
    models = build_models(settings.lead_fields)
    metrics = ApiMetrics(engine)
    totals = TotalCache(engine)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        _size_thread_pool(engine)
        readers = ThreadPoolExecutor(_READ_THREADS, thread_name_prefix="leadsync-read")
        # service.api.fastroute hands reads to the loop's default executor.
        asyncio.get_running_loop().set_default_executor(readers)
        if owns_engine:
            await run_in_threadpool(_ensure_schema, engine)
        # the email and phone indexes a killed first load left missing
        await run_in_threadpool(bulkindex.restore, engine)
        try:
            yield
        finally:
            readers.shutdown()
            totals.close()
            if owns_engine:
                engine.dispose()

    app = FastAPI(
        title="leadsync lead API",
        version=_version(),
        description=_DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.limiter = rate_limiter or InMemoryRateLimiter()
    app.state.totals = totals
    app.state.key_cache = KeyCache()
    app.state.models = models
    app.state.metrics = metrics
    app.state.write_lock = threading.Lock()
    install_error_handlers(app)
    app.include_router(build_ops_router())
    read_router = build_read_router(models)
    app.include_router(read_router)
    app.include_router(build_write_router(models))
    app.include_router(build_sync_router(models))
    app.add_middleware(
        ApiMiddleware,
        metrics=metrics,
        max_body_bytes=settings.api.max_body_bytes,
        lane=ReadLane(app, read_router.routes),
    )
    return app
