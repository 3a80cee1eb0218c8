"""The email and phone indexes of a first load: built once at the end, not row by row.

(On PostgreSQL, the full-text GIN index too.)

Each new lead lands at a random place in the email and phone indexes. On a large store
those indexes outgrow the page cache, so every insert reads a page back from the OS and
every commit rewrites thousands of index pages: on a 1,000,000-row first load they cost
more than a third of the write time. Building them afterwards is one sort, about a
second per million leads.

So a large pass into an empty lead table drops both indexes (in its first write after
``DEFER_AFTER`` records) and creates them again when the pass ends, whether it succeeded
or not. Reads stay correct meanwhile (a lookup by email or phone scans the table). A
process killed in between leaves them missing: the next sync pass, the API's start and
``leadsync db upgrade`` create them again (``restore``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from state.leadsearch import PG_DOCUMENT
from state.store import LEAD

__all__ = ["DEFER_AFTER", "deferring", "drop", "lead_table_empty", "missing", "restore"]

log = structlog.get_logger("leadsync.store")

#: records a pass reads before it drops the indexes (a small pass keeps them)
DEFER_AFTER = 20_000
_NAMES = ("ix_lead_email", "ix_lead_phone")
_INDEXES = tuple(sorted((i for i in LEAD.indexes if i.name in _NAMES), key=str))
# PostgreSQL's full-text GIN index (migration 0002) costs as much per insert, and is
# as cheap to build in one go. It is not in the models, hence its DDL here.
_PG_SEARCH = "ix_lead_search"
_PG_SEARCH_DDL = (
    f"CREATE INDEX IF NOT EXISTS {_PG_SEARCH} ON lead USING gin"
    f" (({PG_DOCUMENT.replace('lead.', '')})) WHERE deleted_at IS NULL"
)
# Passes of this process that dropped the indexes: another pass starting meanwhile
# (another connector of the same daemon) must not build them in the middle of the load.
_holders = 0
_lock = threading.Lock()


def lead_table_empty(session: Session) -> bool:
    """Whether the store holds no lead at all (of any origin, tombstones included)."""
    return session.execute(sa.select(LEAD.c.id).limit(1)).first() is None


def _names(dialect: str) -> tuple[str, ...]:
    return (*_NAMES, _PG_SEARCH) if dialect == "postgresql" else _NAMES


def missing(engine: Engine) -> list[str]:
    """The names of the deferrable indexes that the store lacks."""
    with engine.connect() as conn:
        present = {i["name"] for i in sa.inspect(conn).get_indexes(LEAD.name)}
    return [name for name in _names(engine.dialect.name) if name not in present]


def drop(session: Session) -> None:
    """Drop the indexes in the caller's transaction, which must have written already.

    (Python's sqlite3 runs DDL outside any transaction until a write opens one: the
    drops would then commit one by one.)
    """
    conn = session.connection()
    for index in _INDEXES:
        index.drop(conn, checkfirst=True)
    names = _names(conn.dialect.name)
    if _PG_SEARCH in names:
        conn.execute(sa.text(f"DROP INDEX IF EXISTS {_PG_SEARCH}"))
    log.info("indexes_deferred", indexes=list(names))


def restore(engine: Engine) -> list[str]:
    """Create the deferrable indexes that are missing; their names.

    Does nothing while a pass of this process holds them dropped (``deferring``).
    """
    with _lock:
        if _holders:
            return []
    absent = missing(engine)
    if not absent:
        return []
    started = time.perf_counter()
    for name in absent:
        try:
            with engine.begin() as conn:
                if name == _PG_SEARCH:
                    conn.execute(sa.text(_PG_SEARCH_DDL))
                else:
                    next(i for i in _INDEXES if i.name == name).create(
                        conn, checkfirst=True
                    )
        except DBAPIError:
            # Another process created it between our check and ours (PostgreSQL
            # reports the race as a duplicate); anything else is a real error.
            if name in missing(engine):
                raise
    log.info(
        "indexes_built", indexes=absent, seconds=round(time.perf_counter() - started, 3)
    )
    return absent


@contextmanager
def deferring() -> Iterator[None]:
    """Hold the indexes dropped for one pass; ``restore`` builds them when it ends."""
    global _holders
    with _lock:
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
