"""Sync state: cursors that only move forward, runs and their counts, failures."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlmodel import SQLModel, col, select
from ulid import ULID

from state.leases import check_fence
from state.models import ConnectorCursor, Failure, Run
from state.store import chunked, execute_rows, insert_for

__all__ = [
    "FailureItem",
    "abandon_stale_runs",
    "backoff_delay",
    "due_failures",
    "failure_counts",
    "finish_run",
    "get_cursor",
    "open_failure_keys",
    "purge_failures",
    "record_failures",
    "resolve_failures",
    "save_cursor",
    "save_cursor_state",
    "schedule_retry_now",
    "start_run",
]

CURSOR: sa.Table = SQLModel.metadata.tables[ConnectorCursor.__tablename__]
FAILURE: sa.Table = SQLModel.metadata.tables[Failure.__tablename__]
OPEN_STATUSES = ("pending", "dead")


def get_cursor(session: Session, connector: str) -> ConnectorCursor | None:
    """The connector's cursor row, if it has synced before."""
    return session.get(ConnectorCursor, connector)


def save_cursor(
    session: Session,
    *,
    connector: str,
    ts: datetime,
    record_id: str,
    now: datetime,
    fence: int | None = None,
) -> bool:
    """Move the cursor to ``(ts, record_id)`` if that is ahead; never backwards.

    Returns whether it moved. The comparison is done by the database on the tuple, so a
    concurrent writer cannot move it back either. With ``fence`` (a lease token), the
    write is refused with ``LostLeaseError`` unless that lease is still current.
    """
    if fence is not None:
        check_fence(session, connector=connector, token=fence)
    stmt = insert_for(session, CURSOR).values(
        connector=connector,
        ts=ts,
        record_id=record_id,
        state={},
        fence=0,
        updated_at=now,
    )
    ahead = sa.or_(
        CURSOR.c.ts.is_(None),
        CURSOR.c.ts < stmt.excluded.ts,
        sa.and_(
            CURSOR.c.ts == stmt.excluded.ts,
            CURSOR.c.record_id < stmt.excluded.record_id,
        ),
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[CURSOR.c.connector],
        set_={
            "ts": stmt.excluded.ts,
            "record_id": stmt.excluded.record_id,
            "updated_at": stmt.excluded.updated_at,
        },
        where=ahead,
    ).returning(CURSOR.c.connector)
    # RETURNING, not rowcount: drivers disagree on rowcount for ON CONFLICT DO UPDATE
    return session.execute(stmt).first() is not None


def save_cursor_state(
    session: Session, *, connector: str, state: dict[str, Any], now: datetime
) -> None:
    """Merge ``state`` into the connector's free-form state (last sweep time...)."""
    row = session.get(ConnectorCursor, connector)
    if row is None:
        session.add(
            ConnectorCursor(connector=connector, state=dict(state), updated_at=now)
        )
    else:
        row.state = {**row.state, **state}
        row.updated_at = now
    session.flush()


def start_run(session: Session, *, connector: str, kind: str, now: datetime) -> Run:
    """Record the start of a run."""
    run = Run(id=f"run_{ULID()}", connector=connector, kind=kind, started_at=now)
    session.add(run)
    session.flush()
    return run


def finish_run(
    session: Session,
    *,
    run_id: str,
    outcome: str,
    counts: dict[str, int],
    error: str | None,
    now: datetime,
) -> None:
    """Record how a run ended and its counts."""
    values: dict[str, Any] = {"outcome": outcome, "error": error, "finished_at": now}
    values.update(counts)
    session.execute(sa.update(Run).where(col(Run.id) == run_id).values(**values))


def abandon_stale_runs(session: Session, *, connector: str, now: datetime) -> int:
    """Mark runs left ``running`` by a crash as ``abandoned``."""
    result: Any = session.execute(
        sa.update(Run)
        .where(col(Run.connector) == connector, col(Run.outcome) == "running")
        .values(
            outcome="abandoned", finished_at=now, error="the process stopped mid-run"
        )
    )
    return int(result.rowcount)


@dataclass(slots=True)
class FailureItem:
    """One record that failed, as the engine reports it."""

    item_key: str
    stage: str
    code: str
    message: str
    lead_id: str | None = None
    position: str | None = None
    raw: dict[str, Any] | None = None


def backoff_delay(
    attempts: int, *, base: timedelta, cap: timedelta, rng: random.Random | None = None
) -> timedelta:
    """Exponential backoff with jitter: ``base * 2**(attempts-1)`` * 0.5-1.5, capped."""
    exp = min(base * (2 ** max(attempts - 1, 0)), cap)
    factor = (rng or random).uniform(0.5, 1.5)  # jitter, not crypto
    delay: timedelta = min(exp * factor, cap)
    return delay


def record_failures(
    session: Session,
    *,
    connector: str,
    run_id: str,
    items: Sequence[FailureItem],
    now: datetime,
    max_attempts: int,
    base: timedelta,
    cap: timedelta,
) -> None:
    """Log failures in the failure log.

    A new item starts at attempt 1; a known one counts one more attempt per run and
    turns ``dead`` once ``max_attempts`` is reached.
    """
    latest = {item.item_key: item for item in items}
    if not latest:
        return
    known: dict[str, tuple[int, str | None, datetime]] = {}
    for part in chunked(list(latest)):
        query = sa.select(
            FAILURE.c.item_key,
            FAILURE.c.attempts,
            FAILURE.c.last_run_id,
            FAILURE.c.status,
            FAILURE.c.first_failed_at,
        ).where(FAILURE.c.connector == connector, FAILURE.c.item_key.in_(part))
        for key, attempts, last_run, status, first in session.execute(query):
            if status == "resolved":  # a new failure of a once-fixed record starts over
                known[key] = (0, None, now)
            else:
                known[key] = (attempts, last_run, first)
    rows = []
    for key, item in latest.items():
        attempts, last_run, first = known.get(key, (0, None, now))
        if last_run != run_id:
            attempts += 1
        dead = attempts >= max_attempts
        rows.append(
            {
                "connector": connector,
                "item_key": key,
                "lead_id": item.lead_id,
                "stage": item.stage,
                "code": item.code,
                "message": item.message,
                "position": item.position,
                "raw": item.raw,
                "attempts": max(attempts, 1),
                "status": "dead" if dead else "pending",
                "last_run_id": run_id,
                "first_failed_at": first,
                "last_failed_at": now,
                "next_retry_at": None
                if dead
                else now + backoff_delay(attempts, base=base, cap=cap),
                "resolved_at": None,
            }
        )
    stmt = insert_for(session, FAILURE)
    stmt = stmt.on_conflict_do_update(
        index_elements=[FAILURE.c.connector, FAILURE.c.item_key],
        set_={name: stmt.excluded[name] for name in rows[0] if name != "connector"},
    )
    execute_rows(session, stmt, rows)


def open_failure_keys(session: Session, *, connector: str) -> set[str]:
    """Keys of the connector's pending and dead failures."""
    query = sa.select(FAILURE.c.item_key).where(
        FAILURE.c.connector == connector, FAILURE.c.status.in_(OPEN_STATUSES)
    )
    return set(session.execute(query).scalars())


def resolve_failures(
    session: Session, *, connector: str, item_keys: Sequence[str], now: datetime
) -> int:
    """Mark failures resolved because a later version of their record synced fine."""
    done = 0
    for part in chunked(list(item_keys)):
        result: Any = session.execute(
            FAILURE.update()
            .where(
                FAILURE.c.connector == connector,
                FAILURE.c.item_key.in_(part),
                FAILURE.c.status.in_(OPEN_STATUSES),
            )
            .values(status="resolved", resolved_at=now, next_retry_at=None)
        )
        done += int(result.rowcount)
    return done


def due_failures(
    session: Session, *, connector: str, now: datetime, limit: int = 1000
) -> list[Failure]:
    """Pending failures whose retry time has come, oldest due first."""
    query = (
        select(Failure)
        .where(
            col(Failure.connector) == connector,
            col(Failure.status) == "pending",
            col(Failure.next_retry_at) <= now,
        )
        .order_by(col(Failure.next_retry_at), col(Failure.id))
        .limit(limit)
    )
    return list(session.execute(query).scalars())


def schedule_retry_now(
    session: Session, *, connector: str | None, failure_id: int | None, now: datetime
) -> int:
    """Make failures due now (dead ones get a fresh set of attempts)."""
    stmt = (
        FAILURE.update()
        .where(FAILURE.c.status.in_(OPEN_STATUSES))
        .values(
            status="pending",
            next_retry_at=now,
            attempts=sa.case((FAILURE.c.status == "dead", 0), else_=FAILURE.c.attempts),
        )
    )
    if connector is not None:
        stmt = stmt.where(FAILURE.c.connector == connector)
    if failure_id is not None:
        stmt = stmt.where(FAILURE.c.id == failure_id)
    result: Any = session.execute(stmt)
    return int(result.rowcount)


def purge_failures(
    session: Session, *, connector: str | None, statuses: Sequence[str]
) -> int:
    """Delete failures in the given statuses."""
    stmt = FAILURE.delete().where(FAILURE.c.status.in_(list(statuses)))
    if connector is not None:
        stmt = stmt.where(FAILURE.c.connector == connector)
    result: Any = session.execute(stmt)
    return int(result.rowcount)


def failure_counts(session: Session) -> dict[str, dict[str, int]]:
    """Per connector, the number of failures in each status."""
    query = sa.select(FAILURE.c.connector, FAILURE.c.status, sa.func.count()).group_by(
        FAILURE.c.connector, FAILURE.c.status
    )
    out: dict[str, dict[str, int]] = {}
    for connector, status, count in session.execute(query):
        out.setdefault(connector, {})[status] = int(count)
    return out
