"""``leadsync run``: the scheduler and the lead API in one process, stopped cleanly.

Start-up: the store is migrated, the API (uvicorn, in a thread) starts listening, the
connector jobs are scheduled, and systemd hears ``READY=1``. The main thread then only
waits for signals: ``SIGHUP`` reloads the config (an invalid one is logged and the old
one kept; the API keeps the settings it started with), ``SIGTERM``/``SIGINT`` stop:
``STOPPING=1``, no new runs, runs in flight stop at their next page boundary (each page
is one transaction) within ``daemon.shutdown_grace``, the API stops, leases are
released, exit status 0. A second ``SIGTERM``/``SIGINT`` exits at once; the store stays
consistent because nothing is ever half-committed.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import uuid
from pathlib import Path
from types import FrameType
from typing import cast

import structlog
import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError

from connectors.errors import ConfigError, LeadSyncError
from service.api.metrics import ApiMetrics
from service.api.server import api_server
from service.context import AppContext
from service.daemon_jobs import ConnectorJobs
from service.sdnotify import Notifier
from service.settings import load_settings

__all__ = ["Daemon"]

log = structlog.get_logger("leadsync.daemon")
_API_START_TIMEOUT = 30.0


class Daemon:
    """One ``leadsync run`` process."""

    def __init__(
        self,
        ctx: AppContext,
        *,
        config_path: Path | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.ctx = ctx
        self._config_path = config_path or ctx.settings.config_file
        self._notifier = notifier or Notifier()
        self.owner = ctx.settings.daemon.owner or (
            f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        )
        self._wake = threading.Event()
        self._stop = False
        self._reload = False
        self._server: uvicorn.Server | None = None
        self._api_thread: threading.Thread | None = None
        self._metrics: ApiMetrics | None = None
        self.jobs = ConnectorJobs(ctx, owner=self.owner, observe=self._observe_run)

    def _observe_run(
        self, connector: str, outcome: str, seconds: float, quota: float | None
    ) -> None:
        if self._metrics is not None:
            self._metrics.observe_run(connector, outcome, seconds, quota=quota)

    # -- signals ----------------------------------------------------------------------

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self._reload = True
        elif self._stop:
            # a second stop signal: leave now; every page is its own transaction
            os.write(2, b"leadsync: second signal, exiting at once\n")
            os._exit(128 + signum)
        else:
            self._stop = True
        self._wake.set()

    def _install_signals(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)

    # -- life cycle -------------------------------------------------------------------

    def run(self) -> int:
        """Run until SIGTERM/SIGINT; the exit status (0 after a clean stop)."""
        self._install_signals()
        self.ctx.db  # noqa: B018 (migrates the store before anything else starts)
        self._start_api()
        self.jobs.start()
        api = self.ctx.settings.api
        log.info(
            "daemon_started",
            owner=self.owner,
            connectors=[c.name for c in self.ctx.connectors()],
            api=f"http://{api.host}:{api.port}" if api.enabled else None,
        )
        self._notifier.ready(f"scheduling {len(self.ctx.connectors())} connectors")
        interval = self._notifier.watchdog_interval
        if interval is not None:
            self._notifier.watchdog()
        while not self._stop:
            self._wake.wait(interval if interval is not None else 5.0)
            self._wake.clear()
            if self._api_thread is not None and not self._api_thread.is_alive():
                log.error("api_stopped_unexpectedly")
                self._stop = True
            if self._reload and not self._stop:
                self._reload = False
                self.reload()
            if interval is not None and not self._stop:
                self._notifier.watchdog()
        return self.shutdown()

    def _start_api(self) -> None:
        if not self.ctx.settings.api.enabled:
            return
        server = api_server(self.ctx.settings, self.ctx.db)
        app = cast(FastAPI, server.config.app)
        self._metrics = app.state.metrics
        self._server = server
        self._api_thread = threading.Thread(target=server.run, name="api", daemon=True)
        self._api_thread.start()
        ready = threading.Event()
        while not server.started and self._api_thread.is_alive():
            ready.wait(0.05)
            if self._stop:
                break
        if not server.started and not self._stop:
            raise LeadSyncError(
                f"the lead API could not start on {self.ctx.settings.api.host}:"
                f"{self.ctx.settings.api.port} (port in use?)"
            )

    def reload(self) -> bool:
        """Re-read the config file; keep the old config if the new one is invalid."""
        try:
            settings = load_settings(self._config_path)
            ctx = AppContext(settings)
            if settings.store_url() != self.ctx.settings.store_url():
                log.warning("config_reload_store_unchanged", reason="restart to move")
            ctx.__dict__["db"] = self.ctx.db  # one engine, one pool
            self.jobs.apply(ctx)
        except (ConfigError, ValidationError, LeadSyncError, OSError) as exc:
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            log.error("config_reload_failed", error=message, kept="previous config")  # noqa: TRY400 (one line, no traceback)
            return False
        self.ctx = ctx
        log.info("config_reloaded", connectors=[c.name for c in ctx.connectors()])
        return True

    def shutdown(self) -> int:
        """Stop scheduling, let runs stop between pages, stop the API; exit status."""
        log.info("daemon_stopping")
        self._notifier.stopping()
        grace = self.ctx.settings.daemon.shutdown_grace.total_seconds()
        finished = self.jobs.stop(grace)
        if self._server is not None and self._api_thread is not None:
            self._server.should_exit = True
            self._api_thread.join(15)
        if not finished:
            # A run is still inside one page's transaction: leaving now rolls it back,
            # which loses nothing (its cursor did not move).
            log.warning("shutdown_grace_exceeded", grace_s=grace)
            sys.stderr.flush()
            os._exit(0)
        self.ctx.db.dispose()
        log.info("daemon_stopped")
        return 0
