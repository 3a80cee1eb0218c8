"""The daemon's schedule: one APScheduler job per enabled connector, under a lease.

A job runs its connector only while this daemon holds the connector's lease (see
``state.leases``). Leases are sticky: once taken, a daemon keeps renewing a lease
(heartbeat thread) until it stops, so each connector runs once per tick in exactly one
daemon, and another daemon takes it over once a dead holder's lease expires. A
connector whose runs keep failing backs off: ticks are skipped for a delay that doubles
with each failure (``daemon.failure_backoff`` up to ``daemon.max_failure_backoff``);
the state is kept on the cursor row under ``daemon`` so ``status`` and metrics show it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import structlog
from apscheduler.schedulers.background import (  # type: ignore[import-untyped] # no stubs
    BackgroundScheduler,
)
from apscheduler.triggers.base import BaseTrigger  # type: ignore[import-untyped]
from sqlalchemy.exc import SQLAlchemyError

from connectors.base import ConnectorConfig, Schedule
from connectors.errors import LeadSyncError
from engine import runner
from service.context import AppContext
from service.daemon_backoff import backing_off, record_outcome
from service.daemon_triggers import describe, make_trigger
from state.db import session_scope
from state.leases import acquire_lease, release_lease, renew_lease

__all__ = ["ConnectorJobs", "RunObserver"]

log = structlog.get_logger("leadsync.daemon")
#: called after each run with (connector, outcome, seconds, API quota remaining)
RunObserver = Callable[[str, str, float, float | None], None]


def _now() -> datetime:
    return datetime.now(UTC)


class ConnectorJobs:
    """Schedules and runs the connectors of one daemon."""

    def __init__(
        self, ctx: AppContext, *, owner: str, observe: RunObserver | None = None
    ) -> None:
        self.ctx = ctx
        self.owner = owner
        self._observe = observe
        self._scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": {"type": "threadpool", "max_workers": 32}},
        )
        self._lock = threading.Lock()
        self._held: dict[str, int] = {}
        self._running: dict[str, threading.Event] = {}
        self._idle = threading.Condition(self._lock)
        self._schedules: dict[str, Schedule] = {}
        self._stopping = threading.Event()
        self._beat_stop = threading.Event()
        self._beat = threading.Thread(
            target=self._beat_loop, name="lease-heartbeat", daemon=True
        )

    # -- schedule -------------------------------------------------------------------

    def start(self) -> None:
        """Build the jobs from the config, start the scheduler and the heartbeat."""
        self.apply(self.ctx)
        self._scheduler.start()
        self._beat.start()

    def _beat_loop(self) -> None:
        # A thread of its own, not a scheduler job: busy sync workers must never delay
        # the renewals, or a healthy daemon would lose its leases.
        interval = max(self.ctx.settings.daemon.lease_ttl.total_seconds() / 3, 0.5)
        while not self._beat_stop.wait(interval):
            self.heartbeat()

    def apply(self, ctx: AppContext) -> None:
        """(Re)build one job per enabled connector of ``ctx``; drop the others."""
        wanted: dict[str, tuple[ConnectorConfig, BaseTrigger]] = {
            cfg.name: (cfg, make_trigger(cfg.schedule)) for cfg in ctx.connectors()
        }
        self.ctx = ctx
        grace = int(ctx.settings.daemon.misfire_grace.total_seconds())
        for name in list(self._schedules):
            if name not in wanted:
                self._scheduler.remove_job(f"sync:{name}")
                del self._schedules[name]
                self._release(name)
                log.info("connector_unscheduled", connector=name)
        for name, (cfg, trigger) in wanted.items():
            if self._schedules.get(name) == cfg.schedule:
                continue
            self._scheduler.add_job(
                self.run_connector,
                trigger,
                args=[name],
                id=f"sync:{name}",
                name=f"sync {name}",
                replace_existing=True,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=grace,
                next_run_time=_now(),  # a (re)scheduled connector runs at once
            )
            self._schedules[name] = cfg.schedule
            log.info("connector_scheduled", connector=name, schedule=describe(cfg))

    def job_ids(self) -> list[str]:
        """The ids of the scheduled jobs (for tests and logs)."""
        return sorted(job.id for job in self._scheduler.get_jobs())

    # -- leases ---------------------------------------------------------------------

    def _acquire(self, name: str) -> int | None:
        ttl = self.ctx.settings.daemon.lease_ttl
        with session_scope(self.ctx.db) as session:
            token = acquire_lease(
                session, connector=name, owner=self.owner, ttl=ttl, now=_now()
            )
        with self._lock:
            if token is None:
                self._held.pop(name, None)
            else:
                if name not in self._held:
                    log.info("lease_acquired", connector=name, generation=token)
                self._held[name] = token
        return token

    def heartbeat(self) -> None:
        """Renew every held lease; a lost one stops that connector's run."""
        ttl = self.ctx.settings.daemon.lease_ttl
        with self._lock:
            held = dict(self._held)
        for name, token in held.items():
            try:
                with session_scope(self.ctx.db) as session:
                    kept = renew_lease(
                        session,
                        connector=name,
                        owner=self.owner,
                        token=token,
                        ttl=ttl,
                        now=_now(),
                    )
            except SQLAlchemyError as exc:
                log.warning("lease_renew_failed", connector=name, error=str(exc))
                continue
            if not kept:
                with self._lock:
                    self._held.pop(name, None)
                    stop = self._running.get(name)
                if stop is not None:
                    stop.set()
                log.warning("lease_lost", connector=name, generation=token)

    def _release(self, name: str) -> None:
        with self._lock:
            token = self._held.pop(name, None)
        if token is None:
            return
        try:
            with session_scope(self.ctx.db) as session:
                release_lease(
                    session, connector=name, owner=self.owner, token=token, now=_now()
                )
        except SQLAlchemyError as exc:
            log.warning("lease_release_failed", connector=name, error=str(exc))

    def held(self) -> dict[str, int]:
        """The leases this daemon holds: connector -> token."""
        with self._lock:
            return dict(self._held)

    # -- one run --------------------------------------------------------------------

    def run_connector(self, name: str) -> None:
        """The job: one sync of ``name`` if this daemon holds its lease."""
        if self._stopping.is_set():
            return
        ctx = self.ctx
        try:
            if backing_off(ctx.db, name, now=_now()):
                return
            token = self._acquire(name)
        except SQLAlchemyError as exc:
            log.warning("lease_unavailable", connector=name, error=str(exc))
            return
        if token is None:
            log.debug("lease_held_elsewhere", connector=name)
            return
        stop = threading.Event()
        with self._lock:
            self._running[name] = stop
        started = time.monotonic()
        outcome, quota = "failed", None
        try:
            outcome, quota = self._sync(ctx, name, token, stop)
        finally:
            with self._lock:
                del self._running[name]
                self._idle.notify_all()
            if self._observe is not None:
                self._observe(name, outcome, time.monotonic() - started, quota)
        if outcome in ("succeeded", "failed") and self.held().get(name) == token:
            record_outcome(
                ctx.db, name, ctx.settings.daemon, ok=outcome == "succeeded", now=_now()
            )

    def _sync(
        self, ctx: AppContext, name: str, token: int, stop: threading.Event
    ) -> tuple[str, float | None]:
        """Run one sync; its outcome and the source's API quota left, if it says."""
        try:
            syncer = ctx.syncer(ctx.connector(name))
        except (LeadSyncError, OSError) as exc:
            log.error("run_not_started", connector=name, error=str(exc))  # noqa: TRY400 (one line, no traceback)
            return "failed", None
        syncer.fence = token
        syncer.stop = stop
        with syncer.source:
            report = runner.sync(syncer)
            # optional on a source: what its vendor's rate-limit headers said remains
            quota = getattr(syncer.source, "quota_remaining", None)
        if isinstance(quota, bool) or not isinstance(quota, int | float):
            return report.outcome, None
        return report.outcome, float(quota)

    # -- stop -----------------------------------------------------------------------

    def stop(self, grace: float) -> bool:
        """Stop scheduling, ask runs to stop between pages, wait up to ``grace`` s.

        Returns whether every run finished in time; held leases are released then.
        """
        self._stopping.set()
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        deadline = time.monotonic() + grace
        with self._lock:
            for event in self._running.values():
                event.set()
            while self._running and time.monotonic() < deadline:
                self._idle.wait(max(deadline - time.monotonic(), 0.01))
            done = not self._running
        # renewals go on while runs finish: their last pages still need the lease
        self._beat_stop.set()
        if done:
            for name in list(self.held()):
                self._release(name)
        return done
