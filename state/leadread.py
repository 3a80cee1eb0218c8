"""Reading leads as JSON for the API: one read transaction, rows to contract §4.

Plain parameterised SQL on the DBAPI cursor on SQLite and as ``text()`` on PostgreSQL:
building SQLAlchemy expressions and its per-row type processing cost more than the
queries. On SQLite the store writes a page's JSON itself (``json_object`` per row,
joined in one aggregate row): one ``sqlite3_step`` per page rather than one per row,
each of which hands the GIL to the event loop and waits to get it back, and no Python
objects per lead. That text is byte for byte what ``to_json`` makes of ``_lead_dict``
for the values the store writes; a page holding anything else (see ``_CLEAN``) is read
row by row instead. PostgreSQL pages are always read row by row.
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

from state.models import CONTENT_FIELDS
from state.searchmatch import match_fields

__all__ = ["LEAD_COLUMNS", "LEAD_COLUMNS_SQL", "Reader", "reading", "to_json"]

_TIMES = ("created_at", "updated_at", "source_updated_at", "deleted_at")
#: The columns of a lead, in the order of its JSON object (contract §4).
LEAD_COLUMNS = ("id", "origin", "lead_id", *CONTENT_FIELDS, *_TIMES)
#: ``LEAD_COLUMNS`` of table ``lead``, as a SELECT list.
LEAD_COLUMNS_SQL = ", ".join(f"lead.{c}" for c in LEAD_COLUMNS)
_JSON_COLUMNS = ("tags", "custom_fields")


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
    for name in _TIMES:
        lead[name] = time(lead[name])
    return lead


# The page as JSON, written by SQLite. Text columns have TEXT affinity (a number
# given to them is stored as text), and json_object quotes text exactly as orjson
# does. What could differ is checked per row (``_CLEAN``), and one row that fails
# sends the page down the row path: a datetime not in the format ``_time_text``
# rewrites as text; a score that is not an integer (floats print differently); tags
# or custom fields that are not an array or object (``null`` reads as [] or {}), or
# whose text holds a token json() copies as stored where the row path re-writes it:
# an escape, an exponent, ``-0``, an integer of 19 digits or more. orjson
# (state.store) and json.dumps (SQLAlchemy) write none of these for plain text and
# numbers, and both write fractions as the shortest repr. The checks read the text,
# so a string that only looks like such a token takes the row path: slower, never
# different.


def _time_sql(column: str) -> str:
    c = f"hit.{column}"
    return (
        f"CASE WHEN {c} IS NULL THEN NULL"
        f" WHEN substr({c}, 20) = '.000000'"
        f" THEN substr({c}, 1, 10) || 'T' || substr({c}, 12, 8) || 'Z'"
        f" ELSE substr({c}, 1, 10) || 'T' || substr({c}, 12) || 'Z' END"
    )


def _value_sql(column: str) -> str:
    if column in _TIMES:
        return _time_sql(column)
    if column in _JSON_COLUMNS:
        return f"json(hit.{column})"
    return f"hit.{column}"


_DIGITS_19 = "[0-9]" * 19
_JSON_TEXT = "(hit.tags || hit.custom_fields)"
# Most tags and custom fields hold no digit nor escape: one pass over the text, and
# the token checks only for the others.
_PLAIN_JSON = f"NOT {_JSON_TEXT} GLOB '*[0-9\\' || char(30) || ']*'"
_CHECKED_JSON = " AND ".join(
    [
        f"instr({_JSON_TEXT}, '\\') = 0 AND instr({_JSON_TEXT}, char(30)) = 0",
        f"NOT {_JSON_TEXT} GLOB '*[0-9][eE][-+0-9]*'",
        f"NOT {_JSON_TEXT} GLOB '*[[:, ]-0[]}}, ]*'",
        f"NOT {_JSON_TEXT} GLOB '*{_DIGITS_19}*'",
    ]
)
_CLEAN = " AND ".join(
    [
        *(
            f"(hit.{c} IS NULL OR hit.{c} GLOB '????-??-?? ??:??:??.??????')"
            for c in _TIMES
        ),
        "typeof(hit.score) IN ('integer', 'null')",
        "hit.tags GLOB '[[]*' AND hit.custom_fields GLOB '{*'",
        f"(({_PLAIN_JSON}) OR ({_CHECKED_JSON}))",
    ]
)
_OBJECT = "json_object({})".format(
    ", ".join(f"'{c}', {_value_sql(c)}" for c in LEAD_COLUMNS)
)
_MATCH_KEY = '"match_field":'
_SEPARATOR = "\x1e"  # char(30) in the SQL: JSON text escapes control characters


@functools.lru_cache(maxsize=256)
def _page_json_sql(page_sql: str, *, search: bool) -> str:
    # The aggregate takes the rows in the order the subquery gives them: its ORDER BY
    # comes with a LIMIT, so SQLite can neither drop nor flatten it.
    clean = f"min(CASE WHEN {_CLEAN} THEN 1 ELSE 0 END)"
    if search:  # the objects apart, for their match_field
        agg = f"group_concat({_OBJECT}, char(30)), {clean}"
    else:
        agg = f"'[' || coalesce(group_concat({_OBJECT}, ','), '') || ']', {clean}"
    return f"SELECT {agg} FROM ({page_sql}) AS hit"  # noqa: S608 # constant SQL


@functools.lru_cache(maxsize=1024)  # a few field names, asked once per hit
def _json_text(value: str) -> str:
    return orjson.dumps(value).decode()


@functools.lru_cache(maxsize=256)
def _text(sql: str) -> sa.TextClause:
    return sa.text(sql)


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

    def page_json(
        self, sql: str, params: dict[str, Any], words: list[str] | None = None
    ) -> bytes:
        """The JSON array of the leads a statement selects (``LEAD_COLUMNS``).

        An ordered statement must end in ``ORDER BY ... LIMIT``. With ``words`` (a
        search), each lead carries its ``match_field``.
        """
        if self.dialect == "sqlite":
            written = self._written_by_sqlite(sql, params, words)
            if written is not None:
                return written
        items = self.leads(sql, params)
        if words is not None:
            for item, field in zip(items, match_fields(items, words), strict=True):
                item["match_field"] = field
        return to_json(items)

    def _written_by_sqlite(
        self, sql: str, params: dict[str, Any], words: list[str] | None
    ) -> bytes | None:
        """The page as SQLite writes it, or None when a row needs the row path."""
        statement = _page_json_sql(sql, search=words is not None)
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
        objects = str(row[0]).split(_SEPARATOR)
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
