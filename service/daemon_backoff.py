"""Failure backoff of a connector, kept on its cursor row (``state["daemon"]``).

The first failed run is retried on the next tick; from the second failure in a row the
connector's ticks are skipped for ``failure_backoff``, doubled with each further
failure up to ``max_failure_backoff``. Stored in the database, so ``status``, metrics
and every daemon sharing the store see the same state.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.engine import Engine

from service.sections import DaemonSettings
from state.db import session_scope
from state.syncstate import get_cursor, save_cursor_state

__all__ = ["backing_off", "record_outcome"]

log = structlog.get_logger("leadsync.daemon")


def _state(db: Engine, name: str) -> dict[str, Any]:
    with session_scope(db) as session:
        row = get_cursor(session, name)
        return dict(row.state.get("daemon") or {}) if row else {}


def backing_off(db: Engine, name: str, *, now: datetime) -> bool:
    """Whether ``name`` skips this tick because it keeps failing (and log it)."""
    state = _state(db, name)
    until = state.get("backoff_until")
    if until and datetime.fromisoformat(until) > now:
        log.info(
            "run_skipped",
            connector=name,
            reason="backoff",
            consecutive_failures=state.get("consecutive_failures"),
            until=until,
        )
        return True
    return False


def record_outcome(
    db: Engine, name: str, settings: DaemonSettings, *, ok: bool, now: datetime
) -> None:
    """Count a failed run (and set the backoff), or clear the count after a success."""
    with session_scope(db) as session:
        row = get_cursor(session, name)
        state = dict(row.state.get("daemon") or {}) if row else {}
        if ok and not state.get("consecutive_failures"):
            return
        failures = 0 if ok else int(state.get("consecutive_failures", 0)) + 1
        until = None
        if failures > 1:
            delay = min(
                settings.failure_backoff * 2 ** (failures - 2),
                settings.max_failure_backoff,
            )
            until = (now + delay).isoformat()
        save_cursor_state(
            session,
            connector=name,
            state={
                "daemon": {"consecutive_failures": failures, "backoff_until": until}
            },
            now=now,
        )
    if failures > 1:
        log.warning(
            "connector_backing_off",
            connector=name,
            consecutive_failures=failures,
            until=until,
        )
    elif ok:
        log.info("connector_recovered", connector=name)
