"""``leadsync serve --workers N``: N API processes on one socket, limits shared.

One Python process serves requests on one core at most (the GIL). With ``--workers N``
the command binds the socket and lets uvicorn's supervisor run N worker processes that
accept on it (and replace one that dies). Each worker loads the same config file (the
parent passes its path in ``$LEADSYNC_CONFIG``, environment overrides are inherited)
and opens its own store engine. Shared between the workers:

- rate limits, counted in one memory-mapped file (``shared_limits_path``), so each key's
  limits hold across them;
- request metrics, in prometheus_client's multi-process mode (files in a temporary
  folder), so ``/metrics`` sums every worker's requests whichever worker answers.

The parent migrates the store and opens the limits file first, so a worker has nothing
left to fail on at start-up.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import tempfile

import uvicorn
from fastapi import FastAPI

from engine import gcpolicy
from engine.parentwatch import watch_parent
from service.api.app import create_app
from service.api.metrics import MULTIPROCESS_ENV
from service.api.ratelimit import SharedFileRateLimiter, shared_limits_path
from service.logconfig import configure_logging
from service.settings import Settings, load_settings
from state import sqlitetune

__all__ = ["serve_workers", "worker_app"]

_FACTORY = "service.api.workers:worker_app"


def worker_app() -> FastAPI:
    """The app of one worker process: a uvicorn factory, configured by the env."""
    sqlitetune.tune()  # before the app opens the store
    settings = load_settings()
    fmt = settings.logging.format
    configure_logging(
        json=None if fmt == "auto" else fmt == "json", level=settings.logging.level
    )
    # uvicorn turned its access log off before this reset it: off again, as with one
    # process (where uvicorn's config comes after ours).
    logging.getLogger("uvicorn.access").propagate = False
    limiter = SharedFileRateLimiter(shared_limits_path(settings.store_url()))
    app = create_app(settings, rate_limiter=limiter)
    # a supervisor killed outright (kill -9) cannot stop its workers: stop with it
    watch_parent(lambda: os.kill(os.getpid(), signal.SIGTERM))
    gcpolicy.tune()
    return app


def serve_workers(settings: Settings, workers: int) -> None:
    """Serve the API with ``workers`` processes until SIGTERM or Ctrl-C.

    The store must be migrated already (the workers do not race to upgrade it).
    """
    SharedFileRateLimiter(shared_limits_path(settings.store_url())).close()
    if settings.config_file is not None:
        os.environ["LEADSYNC_CONFIG"] = str(settings.config_file)
    # The workers' request metrics: files in a fresh folder, summed at each scrape.
    metrics = tempfile.mkdtemp(prefix="leadsync-metrics-")
    os.environ[MULTIPROCESS_ENV] = metrics
    try:
        uvicorn.run(
            _FACTORY,
            factory=True,
            host=settings.api.host,
            port=settings.api.port,
            workers=workers,
            log_config=None,  # our structlog configuration stays in charge
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=10,
        )
    finally:
        del os.environ[MULTIPROCESS_ENV]
        shutil.rmtree(metrics, ignore_errors=True)
