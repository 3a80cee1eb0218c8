"""Cursor arithmetic: where a run starts reading and how far it may commit."""

from __future__ import annotations

from datetime import datetime, timedelta

from connectors.base import Cursor
from state.models import ConnectorCursor

__all__ = ["cap", "from_row", "read_from"]


def from_row(row: ConnectorCursor | None) -> Cursor | None:
    """The committed cursor of a connector, if it has one."""
    if row is None or row.ts is None:
        return None
    return Cursor(row.ts, row.record_id)


def read_from(committed: Cursor | None, lookback: timedelta) -> Cursor | None:
    """Where a run starts: the committed cursor moved back by the lookback."""
    return None if committed is None else committed.minus(lookback)


def cap(cursor: Cursor | None, limit: datetime) -> Cursor | None:
    """Never commit past ``limit`` (the run's start minus lag).

    A record stamped later than the run started may still be joined by others with
    the same stamp that the source has not indexed yet; the next run re-reads from
    ``limit``.
    """
    if cursor is None or cursor.ts <= limit:
        return cursor
    return Cursor(limit, "")
