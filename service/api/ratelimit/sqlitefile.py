"""Rate limit windows in a SQLite file, shared by the API processes of one host.

``leadsync serve --workers N`` runs N processes; each key's limits must hold across
all of them, so every hit is one atomic ``INSERT ... ON CONFLICT DO UPDATE ...
RETURNING`` on a small table in a file of its own (never the store: the windows are
throw-away state, written without fsync). A hit costs ~12 us. Windows use the wall
clock, which the processes share; one that starts more than a window in the future
(the clock was set back) starts over.
"""

from __future__ import annotations

import hashlib
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.engine import make_url

from service.api.ratelimit.base import WINDOW_SECONDS, RateLimitResult

__all__ = ["SqliteFileRateLimiter", "shared_limits_path"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS rate_window (bucket TEXT PRIMARY KEY,"
    " start REAL NOT NULL, until REAL NOT NULL, used INTEGER NOT NULL,"
    " allowed INTEGER NOT NULL) WITHOUT ROWID"
)
# One statement, so one atomic step under SQLite's write lock. SET expressions read
# the row as it was: ``allowed`` records whether this hit fitted, since a refused hit
# spends nothing. A window is over when its end has passed, or when it starts more than
# a window ahead (the clock was set back). Processes read the clock before they queue
# for the lock, so a hit may carry a time a little before the start a faster process
# wrote: that hit still belongs to the window.
_FRESH = ":now >= until OR :now + :window < start"
_HIT = f"""
INSERT INTO rate_window (bucket, start, until, used, allowed)
VALUES (:bucket, :now, :now + :window,
        CASE WHEN :cost <= :limit THEN :cost ELSE 0 END, :cost <= :limit)
ON CONFLICT (bucket) DO UPDATE SET
    allowed = CASE WHEN {_FRESH} THEN :cost <= :limit ELSE used + :cost <= :limit END,
    used = CASE WHEN {_FRESH} THEN (CASE WHEN :cost <= :limit THEN :cost ELSE 0 END)
                WHEN used + :cost <= :limit THEN used + :cost ELSE used END,
    start = CASE WHEN {_FRESH} THEN :now ELSE start END,
    until = CASE WHEN {_FRESH} THEN :now + :window ELSE until END
RETURNING until, used, allowed
"""  # noqa: S608 # constant SQL
_PRUNE = "DELETE FROM rate_window WHERE until <= :now OR start > :now"


def shared_limits_path(store_url: str) -> Path:
    """Where the processes serving one store keep their shared rate limit windows.

    Next to a SQLite store (``<store>-ratelimit``, like SQLite's own ``-wal``);
    otherwise a file in the temporary folder named after the store's URL.
    """
    url = make_url(store_url)
    database = url.database or ""
    memory = database in ("", ":memory:") or database.startswith("file::memory:")
    if url.get_backend_name() == "sqlite" and not memory:
        path = Path(database).expanduser()
        return path.with_name(f"{path.name}-ratelimit")
    name = url.render_as_string(hide_password=True)
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"leadsync-ratelimit-{digest}.db"


class SqliteFileRateLimiter:
    """Fixed windows in a SQLite file: limits that hold across processes."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            path, timeout=5, isolation_level=None, check_same_thread=False
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=OFF")  # throw-away state
        self._conn.execute(_SCHEMA)
        self._next_prune = 0.0

    def hit(
        self, bucket: str, *, limit: int, cost: int = 1, window: float = WINDOW_SECONDS
    ) -> RateLimitResult:
        """Spend ``cost`` units of ``bucket``; a refused hit spends nothing."""
        now = self._clock()
        values = {
            "bucket": bucket,
            "now": now,
            "window": window,
            "cost": cost,
            "limit": limit,
        }
        with self._lock:
            if now >= self._next_prune:
                # Forget expired windows now and then, so idle keys do not pile up.
                self._conn.execute(_PRUNE, {"now": now})
                self._next_prune = now + WINDOW_SECONDS
            until, used, allowed = self._conn.execute(_HIT, values).fetchone()
        return RateLimitResult(
            allowed=bool(allowed),
            limit=limit,
            remaining=max(0, limit - int(used)),
            reset_after=min(window, max(0.0, float(until) - now)),
        )

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._conn.close()
