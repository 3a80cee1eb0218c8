"""Reading leads as JSON for the API: one read transaction, rows to contract §4.

Plain parameterised SQL on the DBAPI cursor on SQLite and as ``text()`` on PostgreSQL:
building SQLAlchemy expressions and its per-row type processing cost more than the
queries. On SQLite the store writes a page's JSON itself (``json_object`` per row,
joined in one aggregate row): one ``sqlite3_step`` per page rather than one per row,
each of which hands the GIL to the event loop and waits to get it back, and no Python
objects per lead. That text is byte for byte what ``to_json`` makes of ``_lead_dict``
for the values the store writes; a page holding anything else (see ``state.pagesql``) is
read row by row instead. PostgreSQL pages are always read row by row.
"""

from __future__ import annotations

import functools
import json
import re
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from state.pagesql import (
    LEAD_COLUMNS,
    LEAD_COLUMNS_SQL,
    SEPARATOR,
    TIMES,
    page_json_sql,
)
from state.searchmatch import match_fields

__all__ = ["LEAD_COLUMNS", "LEAD_COLUMNS_SQL", "Reader", "reading", "to_json"]


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# Datetimes come tz-aware UTC from the store (state.types.UTCDateTime), which orjson
# writes natively as ``...Z``: far cheaper than a Python callback per datetime.
_ORJSON_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC


def to_json(data: Any) -> bytes:
    """Compact JSON; datetimes as ISO 8601 UTC with ``Z``."""
    try:
        return orjson.dumps(data, default=_default, option=_ORJSON_OPTIONS)
    except orjson.JSONEncodeError:
        # orjson refuses what the standard library accepts (integers over 64 bits,
        # non-string keys): fall back rather than fail.
        return json.dumps(
            data, default=_default, separators=(",", ":"), ensure_ascii=False
        ).encode()


# orjson reads an integer over 64 bits as a float: such text goes to the stdlib.
_LONG_INTEGER = re.compile(r"\d{19}")


def _loads(text: Any) -> Any:
    if not isinstance(text, str):
        return text  # already decoded (PostgreSQL JSONB)
    if _LONG_INTEGER.search(text) is None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:  # what only the standard library reads
            pass
    return json.loads(text)


def _time_text(text: str | None) -> str | datetime | None:
    """A stored SQLite datetime as the API writes it (ISO 8601, ``Z``)."""
    if text is None:
        return None
    # The format SQLAlchemy and state.store write: 'YYYY-MM-DD HH:MM:SS.ffffff', in
    # UTC. Written out like orjson writes a UTC datetime (no zero microseconds).
    if len(text) == 26 and text[10] == " " and text[19] == ".":
        clock = text[11:19] if text.endswith(".000000") else text[11:]
        return f"{text[:10]}T{clock}Z"
    value = datetime.fromisoformat(text)  # anything else: parse it
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _time_value(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


def _lead_dict(row: Sequence[Any], time: Callable[[Any], Any]) -> dict[str, Any]:
    """A row of ``LEAD_COLUMNS`` as the lead's JSON object (contract §4)."""
    lead = dict(zip(LEAD_COLUMNS, row, strict=True))
    tags = _loads(lead["tags"])
    custom = _loads(lead["custom_fields"])
    lead["tags"] = list(tags) if tags else []
    lead["custom_fields"] = dict(custom) if custom else {}
    for name in TIMES:
        lead[name] = time(lead[name])
    return lead


_MATCH_KEY = '"match_field":'


@functools.lru_cache(maxsize=1024)  # a few field names, asked once per hit
def _json_text(value: str) -> str:
    return orjson.dumps(value).decode()


@functools.lru_cache(maxsize=256)
def _text(sql: str) -> sa.TextClause:
    return sa.text(sql)


# Whether a statement's plan sorts (``Reader.sorts``), by statement text: a list has a
# few dozen shapes (filters set, sort field, order).
_SORTS: dict[str, bool] = {}
_SORTS_KEPT = 512


class Reader:
    """One read transaction: runs statements, answers leads as JSON (contract §4)."""

    def __init__(self, dialect: str, run: Callable[[str, dict[str, Any]], Any]):
        self.dialect = dialect
        self._run = run
        self._time = _time_text if dialect == "sqlite" else _time_value

    def rows(self, sql: str, params: dict[str, Any]) -> list[Any]:
        """All rows of one statement."""
        return list(self._run(sql, params))

    def leads(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """The leads a statement selects (``LEAD_COLUMNS``), as contract §4 dicts."""
        return [_lead_dict(row, self._time) for row in self._run(sql, params)]

    def sorts(self, sql: str, params: dict[str, Any]) -> bool:
        """Whether SQLite sorts a statement's rows (a temporary B-tree in its plan).

        A statement that walks an index in its ORDER BY's order skips its OFFSET
        rows before it computes a select list, so it may write each lead's JSON in
        place (``page_json``); one that sorts computes the list for every row it
        sorts. Asked once per statement text: SQLite plans without the values.
        """
        if self.dialect != "sqlite":
            return True
        known = _SORTS.get(sql)
        if known is None:
            plan = self._run(f"EXPLAIN QUERY PLAN {sql}", params)
            known = any("TEMP B-TREE" in str(row[-1]) for row in plan)
            if len(_SORTS) < _SORTS_KEPT:
                _SORTS[sql] = known
        return known

    def page_json(
        self,
        sql: str,
        params: dict[str, Any],
        words: list[str] | None = None,
        *,
        in_place: bool = False,
    ) -> bytes:
        """The JSON array of the leads a statement selects (``LEAD_COLUMNS_SQL``).

        An ordered statement must end in ``ORDER BY ... LIMIT``. With ``words`` (a
        search), each lead carries its ``match_field``. ``in_place``: the statement
        reads the lead rows of its page only (it ranks or looks up keys first), so
        SQLite may write each lead's JSON in its select list.
        """
        if self.dialect == "sqlite":
            written = self._written_by_sqlite(sql, params, words, in_place)
            if written is not None:
                return written
        items = self.leads(sql, params)
        if words is not None:
            for item, field in zip(items, match_fields(items, words), strict=True):
                item["match_field"] = field
        return to_json(items)

    def _written_by_sqlite(
        self,
        sql: str,
        params: dict[str, Any],
        words: list[str] | None,
        in_place: bool,
    ) -> bytes | None:
        """The page as SQLite writes it, or None when a row needs the row path."""
        statement = page_json_sql(sql, search=words is not None, in_place=in_place)
        try:
            (row,) = self._run(statement, params)
        except sqlite3.OperationalError as exc:
            if "JSON" not in str(exc):
                raise
            return None  # stored text that is not JSON: the row path decides
        if row[1] == 0:
            return None
        if words is None or row[0] is None:
            return str(row[0] or "[]").encode()
        objects = str(row[0]).split(SEPARATOR)
        # match_field reads the leads themselves: one parse of the page as an array
        # costs less than SQLite writing their searched fields a second time.
        matched = orjson.loads(f"[{','.join(objects)}]")
        parts = [
            f"{obj[:-1]},{_MATCH_KEY}{_json_text(field)}}}"
            for obj, field in zip(objects, match_fields(matched, words), strict=True)
        ]
        return f"[{','.join(parts)}]".encode()


# Reads through a memory map of the store file: a page the OS has cached costs no
# read() call and no copy. A search touches a few hundred pages scattered over the
# file, so this cuts its time by a fifth. (Only reads use the map; writes and the
# WAL are unchanged.)
_MMAP = "PRAGMA mmap_size=1073741824"
_MAPPED = "leadsync_mmap"


@contextmanager
def reading(engine: Engine, *, snapshot: bool = True) -> Iterator[Reader]:
    """A ``Reader`` on a pooled connection; ``snapshot``: its statements share one."""
    if engine.dialect.name != "sqlite":
        with engine.connect() as conn:
            if snapshot:
                conn.execution_options(isolation_level="REPEATABLE READ")

            def run_pg(sql: str, params: dict[str, Any]) -> Any:
                return conn.execute(_text(sql), params)

            yield Reader(engine.dialect.name, run_pg)
        return
    # The DBAPI connection itself: no statement compilation, no result processing.
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if not raw.info.get(_MAPPED):
            cursor.execute(_MMAP)
            raw.info[_MAPPED] = True

        def run_sqlite(sql: str, params: dict[str, Any]) -> Any:
            return cursor.execute(sql, params).fetchall()

        if not snapshot:
            yield Reader("sqlite", run_sqlite)
            return
        cursor.execute("BEGIN")  # one snapshot for the count and the page
        try:
            yield Reader("sqlite", run_sqlite)
        finally:
            raw.rollback()
    finally:
        raw.close()
