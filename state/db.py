"""Engines and sessions: SQLite (WAL, busy timeout, foreign keys) or PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from state.types import json_text

__all__ = [
    "is_sqlite",
    "make_engine",
    "redact_url",
    "refresh_statistics",
    "session_scope",
]

_SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA busy_timeout=10000",
    "PRAGMA foreign_keys=ON",
    "PRAGMA synchronous=NORMAL",
    # checkpoint every ~40 MB of WAL instead of ~4 MB: bulk syncs write a few MB per
    # batch, and a checkpoint (with its fsync) after nearly every commit cost a third
    # of the write time
    "PRAGMA wal_autocheckpoint=10000",
    # 8 MiB of page cache per connection instead of 2: a bulk write touches index
    # pages all over a large store, and a miss costs a read from the OS each time
    "PRAGMA cache_size=-8192",
)


def _normalise(url: str | URL) -> URL:
    parsed = make_url(url)
    # A bare postgresql:// URL means psycopg 3, the driver we ship.
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def is_sqlite(engine: Engine) -> bool:
    """Whether the engine talks to SQLite."""
    return engine.dialect.name == "sqlite"


def redact_url(url: str | URL) -> str:
    """The URL with its password hidden, fit for logs and messages."""
    return _normalise(url).render_as_string(hide_password=True)


def make_engine(url: str | URL, **kwargs: Any) -> Engine:
    """Create the engine for a store URL (a SQLite file's folder is created)."""
    parsed = _normalise(url)
    kwargs.setdefault("json_serializer", json_text)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        memory = database in ("", ":memory:") or database.startswith("file::memory:")
        if not memory:
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        if memory:
            kwargs.setdefault("poolclass", StaticPool)
        engine = sa.create_engine(
            parsed, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            for pragma in _SQLITE_PRAGMAS:
                cur.execute(pragma)
            cur.close()

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    # No server-side prepared statements: after a few executions PostgreSQL would plan
    # the bulk ``IN (...)`` lookups generically, and such plans scan whole tables.
    pg_args: dict[str, Any] = {"prepare_threshold": None}
    pg_args.update(kwargs.pop("connect_args", {}))
    return sa.create_engine(parsed, connect_args=pg_args, **kwargs)


def refresh_statistics(engine: Engine) -> None:
    """Refresh PostgreSQL's planner statistics of the bulk-written tables."""
    if engine.dialect.name != "postgresql":
        return
    with engine.begin() as conn:
        conn.execute(sa.text("ANALYZE lead, lead_payload"))


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
