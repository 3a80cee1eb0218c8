"""Totals of lists and searches, kept while the store is unchanged (SQLite files only).

Counting 100,000 leads costs more than reading a page, and a page's total changes only
when something commits to the store. SQLite's ``PRAGMA data_version``, read on a
connection of our own that never writes, changes whenever any other connection, in
this process or another, commits: a total is kept under the version read before it
was counted, so it is never kept under a version older than the data it counted. The
same version tells ``service.api.auth.KeyCache`` when verified keys must be re-read.

A request reads the version once (``RequestTotals``): its key check and its count
share it. That version was read before anything the request counts, so the rule
above holds, and the request makes one ``PRAGMA`` where it made two.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

from sqlalchemy.engine import Engine

__all__ = ["RequestTotals", "TotalCache"]


class TotalCache:
    """Recent totals, each kept under the store version it was counted at."""

    # An entry is a few hundred bytes: 8,192 of them (~2 MiB) keep the totals of the
    # many different filters and search words a busy API sees between two writes.
    def __init__(self, engine: Engine, size: int = 8192) -> None:
        database = engine.url.database or ""
        memory = database in ("", ":memory:") or database.startswith("file::memory:")
        self._path = None if engine.dialect.name != "sqlite" or memory else database
        self._size = size
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._entries: OrderedDict[Hashable, tuple[int, int]] = OrderedDict()

    def version(self) -> int | None:
        """The store's change counter, or None when totals cannot be cached."""
        if self._path is None:
            return None
        with self._lock:
            if self._conn is None:
                self._conn = sqlite3.connect(
                    self._path, isolation_level=None, check_same_thread=False
                )
            return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def get(self, key: Hashable, version: int | None) -> int | None:
        """The total counted for ``key`` at ``version``, if still current."""
        if version is None:
            return None
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] != version:
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def put(self, key: Hashable, version: int | None, total: int) -> None:
        """Remember a total counted at ``version``."""
        if version is None:
            return
        with self._lock:
            self._entries[key] = (version, total)
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def close(self) -> None:
        """Close the watching connection."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class RequestTotals:
    """A ``TotalCache`` as one request sees it: the store version read once."""

    def __init__(self, cache: TotalCache, state: Any) -> None:
        self.cache = cache
        self._state = state  # the request's ``request.state``

    def version(self) -> int | None:
        """The store's change counter, read at this request's first call."""
        if not hasattr(self._state, "store_version"):
            self._state.store_version = self.cache.version()
        version: int | None = self._state.store_version
        return version

    def get(self, key: Hashable, version: int | None) -> int | None:
        """The total counted for ``key`` at ``version``, if still current."""
        return self.cache.get(key, version)

    def put(self, key: Hashable, version: int | None, total: int) -> None:
        """Remember a total counted at ``version``."""
        self.cache.put(key, version, total)
