"""Connector leases: each connector runs in one daemon at a time, fenced by a token.

A lease is a row per connector (owner, token, expiry) updated with plain SQL, so it
works the same on PostgreSQL (several hosts) and SQLite (one host). A daemon takes a
free or expired lease, renews it while it holds it, and releases it when it stops. A
takeover by another owner increments the token; every cursor write checks the token in
the same transaction (``check_fence``), so a daemon that lost its lease can never move
a cursor. On PostgreSQL that check takes the lease row's lock, so a takeover waits for
a page in flight to commit (and that page's cursor write sees the new token if the
takeover committed first).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlmodel import SQLModel

from state.errors import StateError
from state.models_lease import Lease
from state.store import insert_for

__all__ = [
    "LeaseInfo",
    "LostLeaseError",
    "acquire_lease",
    "check_fence",
    "list_leases",
    "release_lease",
    "renew_lease",
]

LEASE: sa.Table = SQLModel.metadata.tables[Lease.__tablename__]


class LostLeaseError(StateError):
    """Raised when a write carries the token of a lease that was taken over."""


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    """A lease as stored."""

    connector: str
    owner: str
    token: int
    expires_at: datetime


def acquire_lease(
    session: Session, *, connector: str, owner: str, ttl: timedelta, now: datetime
) -> int | None:
    """Take (or keep) the connector's lease; its token, or None if another holds it.

    A lease that ``owner`` already holds is renewed with the same token; an expired
    one held by someone else is taken over with the next token.
    """
    expires = now + ttl
    stmt = insert_for(session, LEASE).values(
        connector=connector, owner=owner, token=1, expires_at=expires, acquired_at=now
    )
    stmt = stmt.on_conflict_do_nothing(index_elements=[LEASE.c.connector]).returning(
        LEASE.c.token
    )
    token = session.execute(stmt).scalar_one_or_none()
    if token is not None:
        return int(token)
    mine = LEASE.c.owner == owner
    update = (
        LEASE.update()
        .where(
            LEASE.c.connector == connector,
            sa.or_(mine, LEASE.c.expires_at <= now),
        )
        .values(
            owner=owner,
            token=sa.case((mine, LEASE.c.token), else_=LEASE.c.token + 1),
            expires_at=expires,
            acquired_at=sa.case((mine, LEASE.c.acquired_at), else_=now),
        )
        .returning(LEASE.c.token)
    )
    token = session.execute(update).scalar_one_or_none()
    return None if token is None else int(token)


def renew_lease(
    session: Session,
    *,
    connector: str,
    owner: str,
    token: int,
    ttl: timedelta,
    now: datetime,
) -> bool:
    """Push the lease's expiry out; False when it was lost (taken over)."""
    return _set_expiry(session, connector, owner, token, now + ttl)


def release_lease(
    session: Session, *, connector: str, owner: str, token: int, now: datetime
) -> bool:
    """Let the lease expire now, so another daemon may take it at once."""
    return _set_expiry(session, connector, owner, token, now)


def _set_expiry(
    session: Session, connector: str, owner: str, token: int, expires_at: datetime
) -> bool:
    # only the holder (same owner, same token) may move its lease's expiry
    result: Any = session.execute(
        LEASE.update()
        .where(
            LEASE.c.connector == connector,
            LEASE.c.owner == owner,
            LEASE.c.token == token,
        )
        .values(expires_at=expires_at)
    )
    return int(result.rowcount) == 1


def check_fence(session: Session, *, connector: str, token: int) -> None:
    """Refuse (raise ``LostLeaseError``) unless ``token`` is the lease's current token.

    A no-op UPDATE rather than a SELECT: it locks the row on PostgreSQL until the
    caller's transaction ends, so a takeover cannot slip in before the commit.
    """
    result: Any = session.execute(
        LEASE.update()
        .where(LEASE.c.connector == connector, LEASE.c.token == token)
        .values(token=LEASE.c.token)
    )
    if int(result.rowcount) != 1:
        raise LostLeaseError(
            f"connector {connector}: the lease was taken over by another daemon "
            f"(token {token} is stale); this write is refused"
        )


def list_leases(session: Session) -> list[LeaseInfo]:
    """Every lease row, by connector."""
    query = sa.select(
        LEASE.c.connector, LEASE.c.owner, LEASE.c.token, LEASE.c.expires_at
    ).order_by(LEASE.c.connector)
    return [
        LeaseInfo(connector=c, owner=o, token=int(t), expires_at=e)
        for c, o, t, e in session.execute(query)
    ]
