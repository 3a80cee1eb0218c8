"""Leads in bulk: batched upserts keyed by (origin, lead_id), tombstones, payloads.

Every write here is one statement per batch (``INSERT ... ON CONFLICT``), never an ORM
round trip per lead. Callers own the transaction, so a batch of leads, its failures and
the cursor that covers it commit together.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from itertools import chain
from typing import Any, cast

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlmodel import SQLModel
from ulid import ULID

from state.models import CONTENT_FIELDS, Lead, LeadPayload, SeenId
from state.types import UTCDateTime, json_text

__all__ = [
    "LEAD",
    "PAYLOAD",
    "SEEN",
    "DeleteResult",
    "PreparedLeads",
    "UpsertResult",
    "changed_raw_ids",
    "chunked",
    "clear_seen",
    "content_hash",
    "execute_rows",
    "execute_values",
    "forget_payload_hashes",
    "has_live_leads",
    "has_payloads",
    "insert_for",
    "mark_seen",
    "new_lead_id",
    "payload_text",
    "prepare_leads",
    "tombstone_leads",
    "tombstone_unseen",
    "unseen_count",
    "upsert_leads",
    "upsert_payload_texts",
    "upsert_payloads",
    "upsert_prepared",
]

LEAD: sa.Table = SQLModel.metadata.tables[Lead.__tablename__]
PAYLOAD: sa.Table = SQLModel.metadata.tables[LeadPayload.__tablename__]
SEEN: sa.Table = SQLModel.metadata.tables[SeenId.__tablename__]
_CHUNK = 500  # ids per IN (...) list: far below every driver's parameter limit


def chunked(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    """Split a sequence into slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


# Rows per multi-row INSERT on SQLite: each statement of a sync's writer thread gives
# the GIL back and must wait to take it again while the reading thread runs Python, so
# fewer, larger statements (1,000 rows: 8% faster than 100 on a first load), below the
# parameter limit. (PostgreSQL takes a batch as column arrays: ``_unnest``.)
_ROWS_PER_STATEMENT = 1000
_MAX_PARAMS = 32_766 if sqlite3.sqlite_version_info >= (3, 32) else 999
_PG_POSITIONAL = postgresql.psycopg.dialect(paramstyle="format")  # type: ignore[no-untyped-call]


def execute_rows(session: Session, stmt: Any, rows: Sequence[dict[str, Any]]) -> None:
    """Execute an INSERT for many rows as a few multi-row ``VALUES`` statements.

    One statement per row (executemany) costs several times more on both databases;
    values are converted here, since SQLAlchemy's per-row parameter processing (and its
    compiling of a statement with thousands of parameters) would cost more than the
    database's own work.
    """
    if not rows:
        return
    name = session.get_bind().dialect.name
    sql, order, converters = _compiled(stmt, tuple(rows[0]), name)
    pairs = list(zip(order, converters, strict=True))
    params = [conv(row[col]) for row in rows for col, conv in pairs]
    execute_values(session, sql, len(order), params)


def execute_values(
    session: Session, sql: str, width: int, params: Sequence[Any]
) -> None:
    """Run ``sql`` (an INSERT of one row of ``width`` values) over flat ``params``.

    On SQLite the rows go as multi-row ``VALUES`` statements of
    ``_ROWS_PER_STATEMENT`` rows; on PostgreSQL as one statement of column arrays.
    """
    count = len(params) // width
    if not count:
        return
    name = session.get_bind().dialect.name
    if name == "postgresql":
        columns = [params[i::width] for i in range(width)]
        session.connection().exec_driver_sql(_unnest(sql), tuple(columns))
        return
    step = max(min(_ROWS_PER_STATEMENT, _MAX_PARAMS // width), 1)
    conn = session.connection()
    full = count // step * step
    size = step * width
    if full:
        conn.exec_driver_sql(
            _multi_values(sql, step),
            [tuple(params[i : i + size]) for i in range(0, full * width, size)],
        )
    if full < count:
        conn.exec_driver_sql(
            _multi_values(sql, count - full), tuple(params[full * width :])
        )


_UNNEST: dict[str, str] = {}
_INSERT = re.compile(r"^INSERT INTO (\w+) \(([^)]*)\) VALUES \(([^)]*)\)")


def _unnest(sql: str) -> str:
    """``sql`` (an INSERT of one row) rewritten to insert the rows of column arrays.

    PostgreSQL: ``INSERT ... SELECT * FROM unnest(%s::type[], ...)``, one array per
    column. The statement stays short and the same whatever the number of rows, so
    neither psycopg (which converts long statements anew each time) nor the server
    parses thousands of placeholders, and the arrays go over in binary.
    """
    cached = _UNNEST.get(sql)
    if cached is None:
        match = _INSERT.match(sql)
        if match is None:  # pragma: no cover # our INSERTs are all of this form
            raise ValueError(f"not a one-row INSERT: {sql[:80]}")
        table = SQLModel.metadata.tables[match.group(1)]
        names = [name.strip() for name in match.group(2).split(",")]
        types = [table.c[n].type.compile(dialect=_PG_POSITIONAL) for n in names]
        arrays = ", ".join(f"%b::{kind}[]" for kind in types)
        head, tail = sql[: match.start(3) - len("VALUES (")], sql[match.end() :]
        # placeholders and the column types of our own tables only
        cached = f"{head}SELECT * FROM unnest({arrays}){tail}"  # noqa: S608
        _UNNEST[sql] = cached
    return cached


_MULTI: dict[tuple[str, int], str] = {}


def _multi_values(sql: str, count: int) -> str:
    """``sql`` (an INSERT of one row) rewritten to insert ``count`` rows."""
    key = (sql, count)
    cached = _MULTI.get(key)
    if cached is None:
        start = sql.index("VALUES (") + len("VALUES ")
        depth, end = 0, start
        for end, char in enumerate(sql[start:], start):  # noqa: B007 # end is the result
            depth += (char == "(") - (char == ")")
            if depth == 0:
                break
        group = sql[start : end + 1]
        cached = f"{sql[:start]}{', '.join([group] * count)}{sql[end + 1 :]}"
        if len(_MULTI) < 256:
            _MULTI[key] = cached
    return cached


def _compiled(
    stmt: Any, columns: tuple[str, ...], dialect_name: str
) -> tuple[str, list[str], list[Any]]:
    # compiled per call: a millisecond per batch, against seconds of rows
    dialect = _PG_POSITIONAL if dialect_name == "postgresql" else sqlite.dialect()
    compiled = stmt.values({c: sa.bindparam(c) for c in columns}).compile(
        dialect=dialect
    )
    order = list(compiled.positiontup or ())
    converters = [_converter(stmt.table.c[name].type, dialect_name) for name in order]
    return str(compiled), order, converters


def _iso_naive(value: datetime | None) -> str | None:
    # SQLAlchemy's SQLite format, microseconds always written: text order = time order
    if value is None:
        return None
    return _iso_text(value)


@lru_cache(maxsize=4096)
def _iso_text(value: datetime) -> str:
    # cached: a batch stamps every row with the same ``now``, and sources repeat
    # timestamps; the conversion costs more than the lookup
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _json(value: Any) -> str | None:
    return None if value is None else json_text(value)


def _same(value: Any) -> Any:
    return value


def _converter(column_type: Any, dialect_name: str) -> Any:
    if isinstance(column_type, UTCDateTime):
        return _iso_naive if dialect_name == "sqlite" else _same
    if isinstance(column_type, sa.JSON):
        return _json
    return _same


_HASHED_FIELDS = tuple(name for name in CONTENT_FIELDS if name != "custom_fields")
_CROCKFORD = bytes.maketrans(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", b"0123456789ABCDEFGHJKMNPQRSTVWXYZ"
)


def new_lead_ids(count: int) -> list[str]:
    """``count`` new store ids: ``lead_`` + ULID (sortable by creation time).

    The 48-bit millisecond prefix is encoded once; each id's 80 random bits are
    exactly 16 base32 digits, which ``b32encode`` spells in Crockford's alphabet once
    translated: a fraction of the cost of building ULID objects one by one.
    """
    prefix = str(ULID())[:10]
    noise = base64.b32encode(os.urandom(10 * count)).translate(_CROCKFORD).decode()
    return [f"lead_{prefix}{noise[i : i + 16]}" for i in range(0, 16 * count, 16)]


def new_lead_id() -> str:
    """A new store id: ``lead_`` + ULID (sortable by creation time)."""
    return new_lead_ids(1)[0]


def content_hash(lead: Mapping[str, Any]) -> str:
    """Hash of a lead's content: equal hashes mean nothing a user sees changed.

    ``repr`` of the values (custom fields in key order) is several times cheaper than
    canonical JSON and as deterministic for the JSON-like values a lead holds.
    """
    content = [lead.get(name) for name in _HASHED_FIELDS]
    custom = lead.get("custom_fields") or {}
    blob = f"{content!r}{sorted(custom.items())!r}"
    return hashlib.blake2b(blob.encode(), digest_size=32).hexdigest()


def insert_for(session: Session, table: sa.Table) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


@dataclass(slots=True)
class UpsertResult:
    """What an upsert did: counts, and per lead_id the action and the store id."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    actions: dict[str, tuple[str, str]] = field(default_factory=dict)


#: The lead table's content columns, in table order (the order of the upsert's values).
_CONTENT_ORDER = tuple(c.name for c in LEAD.c if c.name in CONTENT_FIELDS)
_JSON_DEFAULTS = {"tags": list, "custom_fields": dict}


@dataclass(slots=True)
class PreparedLeads:
    """Mapped leads turned into database values ahead of the write.

    Content hashes and JSON text are computed here, so that the transaction that writes
    the batch (a writer thread, in a sync) only binds values. Within one batch the last
    lead for a lead_id wins.
    """

    lead_ids: list[str] = field(default_factory=list)
    digests: list[str] = field(default_factory=list)
    content: list[tuple[Any, ...]] = field(default_factory=list)
    source_updated: list[datetime | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.lead_ids)


def prepare_leads(leads: Iterable[Mapping[str, Any]]) -> PreparedLeads:
    """Hash mapped leads and convert their values for ``upsert_prepared``."""
    latest = {str(lead["lead_id"]): lead for lead in leads}
    prepared = PreparedLeads()
    order = _CONTENT_ORDER
    for lead_id, lead in latest.items():
        values = []
        for name in order:
            value = lead.get(name)
            if name in _JSON_DEFAULTS:
                value = _json(value if value else _JSON_DEFAULTS[name]())
            values.append(value)
        prepared.lead_ids.append(lead_id)
        prepared.digests.append(content_hash(lead))
        prepared.content.append(tuple(values))
        prepared.source_updated.append(lead.get("source_updated_at"))
    return prepared


def _placeholder(session: Session) -> str:
    return "%s" if session.get_bind().dialect.name == "postgresql" else "?"


def _existing(
    session: Session, origin: str, lead_ids: Sequence[str]
) -> dict[str, tuple[str, str, bool]]:
    """``lead_id -> (store id, content hash, tombstoned)`` of the stored leads."""
    found: dict[str, tuple[str, str, bool]] = {}
    mark = _placeholder(session)
    conn = session.connection()
    for part in chunked(lead_ids):
        marks = ", ".join([mark] * len(part))
        rows = conn.exec_driver_sql(
            "SELECT lead_id, id, content_hash, deleted_at IS NOT NULL FROM lead"  # noqa: S608 # placeholders only
            f" WHERE origin = {mark} AND lead_id IN ({marks})",
            (origin, *part),
        ).fetchall()
        for lead_id, id_, hash_, deleted in rows:
            found[lead_id] = (id_, hash_, bool(deleted))
    return found


_UPSERT_SQL: dict[str, str] = {}


def _upsert_sql(session: Session) -> str:
    """The lead upsert of one row, compiled once per dialect."""
    name = session.get_bind().dialect.name
    sql = _UPSERT_SQL.get(name)
    if sql is None:
        stmt = insert_for(session, LEAD)
        changed = sa.or_(
            LEAD.c.content_hash != stmt.excluded.content_hash,
            LEAD.c.deleted_at.is_not(None),
        )
        keep = {"id", "origin", "lead_id", "created_at"}
        stmt = stmt.on_conflict_do_update(
            index_elements=[LEAD.c.origin, LEAD.c.lead_id],
            set_={c.name: stmt.excluded[c.name] for c in LEAD.c if c.name not in keep},
            where=changed,
        )
        sql, order, _ = _compiled(stmt, tuple(c.name for c in LEAD.c), name)
        if tuple(order) != tuple(c.name for c in LEAD.c):  # pragma: no cover
            raise RuntimeError(f"unexpected column order in the lead upsert: {order}")
        _UPSERT_SQL[name] = sql
    return sql


def upsert_leads(
    session: Session, *, origin: str, leads: Sequence[Mapping[str, Any]], now: datetime
) -> UpsertResult:
    """Insert new leads, update changed or tombstoned ones, leave unchanged ones alone.

    A lead whose content hash is unchanged keeps its ``updated_at``. Within one call the
    last lead for a lead_id wins.
    """
    return upsert_prepared(
        session, origin=origin, prepared=prepare_leads(leads), now=now
    )


def upsert_prepared(
    session: Session, *, origin: str, prepared: PreparedLeads, now: datetime
) -> UpsertResult:
    """``upsert_leads`` for leads already passed through ``prepare_leads``."""
    result = UpsertResult()
    if not prepared:
        return result
    existing = _existing(session, origin, prepared.lead_ids)
    fresh = iter(new_lead_ids(len(prepared) - len(existing)))
    sqlite_dates = session.get_bind().dialect.name == "sqlite"
    stamp = _iso_naive(now) if sqlite_dates else now
    actions = result.actions
    params: list[Any] = []
    created = updated = 0
    for lead_id, digest, content, source_updated in zip(
        prepared.lead_ids,
        prepared.digests,
        prepared.content,
        prepared.source_updated,
        strict=True,
    ):
        known = existing.get(lead_id)
        if known is None:
            store_id = next(fresh)
            actions[lead_id] = ("created", store_id)
            created += 1
        elif known[1] == digest and not known[2]:
            actions[lead_id] = ("unchanged", known[0])
            continue
        else:
            store_id = known[0]
            actions[lead_id] = ("updated", store_id)
            updated += 1
        params.append(store_id)
        params.append(origin)
        params.append(lead_id)
        params.extend(content)
        params.append(digest)
        params.append(stamp)
        params.append(stamp)
        params.append(_iso_naive(source_updated) if sqlite_dates else source_updated)
        params.append(None)
    result.created, result.updated = created, updated
    result.unchanged = len(prepared) - created - updated
    if params:
        execute_values(session, _upsert_sql(session), len(LEAD.c), params)
    return result


def payload_text(raw: Mapping[str, Any]) -> str:
    """A raw record as the JSON text its payload row stores."""
    return _json(dict(raw)) or "{}"


def upsert_payloads(
    session: Session,
    *,
    origin: str,
    payloads: Iterable[tuple[str, Mapping[str, Any], str]],
    now: datetime,
) -> None:
    """Store the raw record ``(lead_id, raw, raw_hash)`` behind each synced lead."""
    upsert_payload_texts(
        session,
        origin=origin,
        payloads=[(i, payload_text(raw), h) for i, raw, h in payloads],
        now=now,
    )


_PAYLOAD_SQL: dict[str, str] = {}


def upsert_payload_texts(
    session: Session,
    *,
    origin: str,
    payloads: Iterable[tuple[str, str, str]],
    now: datetime,
) -> None:
    """``upsert_payloads`` for raw records already as JSON text (the last one wins)."""
    latest = {lead_id: (text, digest) for lead_id, text, digest in payloads}
    if not latest:
        return
    name = session.get_bind().dialect.name
    sql = _PAYLOAD_SQL.get(name)
    if sql is None:
        stmt = insert_for(session, PAYLOAD)
        stmt = stmt.on_conflict_do_update(
            index_elements=[PAYLOAD.c.origin, PAYLOAD.c.lead_id],
            set_={
                "raw": stmt.excluded.raw,
                "raw_hash": stmt.excluded.raw_hash,
                "fetched_at": stmt.excluded.fetched_at,
            },
        )
        sql, order, _ = _compiled(
            stmt, ("origin", "lead_id", "raw", "raw_hash", "fetched_at"), name
        )
        if order != [
            "origin",
            "lead_id",
            "raw",
            "raw_hash",
            "fetched_at",
        ]:  # pragma: no cover
            raise RuntimeError(
                f"unexpected column order in the payload upsert: {order}"
            )
        _PAYLOAD_SQL[name] = sql
    stamp = _iso_naive(now) if name == "sqlite" else now
    params = list(
        chain.from_iterable(
            (origin, lead_id, text, digest, stamp)
            for lead_id, (text, digest) in latest.items()
        )
    )
    execute_values(session, sql, 5, params)


def has_live_leads(session: Session, *, origin: str) -> bool:
    """Whether ``origin`` has a lead that is not tombstoned."""
    found = session.execute(
        sa.select(LEAD.c.id)
        .where(LEAD.c.origin == origin, LEAD.c.deleted_at.is_(None))
        .limit(1)
    ).first()
    return found is not None


def has_payloads(session: Session, *, origin: str) -> bool:
    """Whether any raw record of ``origin`` is stored."""
    found = session.execute(
        sa.select(PAYLOAD.c.lead_id).where(PAYLOAD.c.origin == origin).limit(1)
    ).first()
    return found is not None


def changed_raw_ids(
    session: Session, *, origin: str, hashes: Mapping[str, str]
) -> set[str]:
    """The ids among ``hashes`` (lead_id -> raw hash) whose stored payload differs.

    A lead with no payload, or a tombstoned one (tombstoning clears its payload's
    hash), differs. The page's ids and hashes go in as one JSON object and only the
    ids that differ come back: an unchanged page costs one statement and no rows,
    and the database compares without holding the GIL.
    """
    if not hashes:
        return set()
    dialect = session.get_bind().dialect.name
    sql = _CHANGED_SQL["postgresql" if dialect == "postgresql" else "sqlite"]
    # the driver's own cursor: none of SQLAlchemy's per-statement work
    driver = session.connection().connection.driver_connection
    cursor = driver.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql, (orjson.dumps(hashes).decode(), origin))
        return {row[0] for row in cursor.fetchall()}
    finally:
        cursor.close()


_CHANGED_SQL = {
    "sqlite": (
        "SELECT j.key FROM json_each(?) AS j LEFT JOIN lead_payload AS p"
        " ON p.origin = ? AND p.lead_id = j.key WHERE p.raw_hash IS NOT j.value"
    ),
    "postgresql": (
        "SELECT j.key FROM jsonb_each_text(CAST(%s AS jsonb)) AS j"
        " LEFT JOIN lead_payload AS p ON p.origin = %s AND p.lead_id = j.key"
        " WHERE p.raw_hash IS DISTINCT FROM j.value"
    ),
}


def forget_payload_hashes(
    session: Session, *, origin: str, where: sa.ColumnElement[bool]
) -> None:
    """Clear the payload hash of ``origin``'s leads that ``where`` selects.

    Called before such leads are tombstoned: a cleared hash matches no record, so the
    next sync that lists the lead maps and upserts it again, which brings it back.
    """
    chosen = sa.select(LEAD.c.lead_id).where(LEAD.c.origin == origin, where)
    session.execute(
        PAYLOAD.update()
        .where(PAYLOAD.c.origin == origin, PAYLOAD.c.lead_id.in_(chosen))
        .values(raw_hash="")
    )


@dataclass(slots=True)
class DeleteResult:
    """What a bulk delete did: newly tombstoned, already tombstoned, unknown ids."""

    deleted: list[str] = field(default_factory=list)
    already_deleted: list[str] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)


def tombstone_leads(
    session: Session, *, origin: str, lead_ids: Sequence[str], now: datetime
) -> DeleteResult:
    """Tombstone leads by (origin, lead_id): ``deleted_at``, ``updated_at`` = now."""
    result = DeleteResult()
    wanted = list(dict.fromkeys(str(i) for i in lead_ids))
    existing = _existing(session, origin, wanted)
    for lead_id in wanted:
        known = existing.get(lead_id)
        if known is None:
            result.not_found.append(lead_id)
        elif known[2]:
            result.already_deleted.append(lead_id)
        else:
            result.deleted.append(lead_id)
    for part in chunked(result.deleted):
        session.execute(
            PAYLOAD.update()
            .where(PAYLOAD.c.origin == origin, PAYLOAD.c.lead_id.in_(part))
            .values(raw_hash="")
        )
        session.execute(
            LEAD.update()
            .where(LEAD.c.origin == origin, LEAD.c.lead_id.in_(part))
            .where(LEAD.c.deleted_at.is_(None))
            .values(deleted_at=now, updated_at=now)
        )
    return result


def mark_seen(session: Session, *, run_id: str, lead_ids: Iterable[str]) -> None:
    """Remember that a snapshot pass listed these ids."""
    ids = dict.fromkeys(lead_ids)
    if not ids:
        return
    name = session.get_bind().dialect.name
    sql = _SEEN_SQL.get(name)
    if sql is None:
        stmt = insert_for(session, SEEN).on_conflict_do_nothing()
        sql, order, _ = _compiled(stmt, ("run_id", "lead_id"), name)
        if order != ["run_id", "lead_id"]:  # pragma: no cover
            raise RuntimeError(f"unexpected column order in the seen insert: {order}")
        _SEEN_SQL[name] = sql
    params = list(chain.from_iterable((run_id, lead_id) for lead_id in ids))
    execute_values(session, sql, 2, params)


_SEEN_SQL: dict[str, str] = {}


def _unseen(origin: str, run_id: str) -> sa.ColumnElement[bool]:
    # NOT EXISTS, not NOT IN: PostgreSQL plans NOT IN over a large subquery as a
    # per-row scan (quadratic) once the ids no longer fit in work_mem
    seen = sa.exists().where(SEEN.c.run_id == run_id, SEEN.c.lead_id == LEAD.c.lead_id)
    return sa.and_(LEAD.c.origin == origin, LEAD.c.deleted_at.is_(None), ~seen)


def unseen_count(session: Session, *, origin: str, run_id: str) -> tuple[int, int]:
    """``(missing, live)``: live leads the pass did not list, and all live leads."""
    seen = sa.exists().where(SEEN.c.run_id == run_id, SEEN.c.lead_id == LEAD.c.lead_id)
    missing = sa.func.coalesce(sa.func.sum(sa.case((~seen, 1), else_=0)), 0)
    # one scan of the origin's live leads answers both
    row = session.execute(
        sa.select(sa.func.count(), missing)
        .select_from(LEAD)
        .where(LEAD.c.origin == origin, LEAD.c.deleted_at.is_(None))
    ).one()
    return int(row[1]), int(row[0])


def tombstone_unseen(
    session: Session, *, origin: str, run_id: str, now: datetime
) -> int:
    """Tombstone the live leads a snapshot pass did not list; forget the pass."""
    forget_payload_hashes(session, origin=origin, where=_unseen(origin, run_id))
    result = session.execute(
        LEAD.update()
        .where(_unseen(origin, run_id))
        .values(deleted_at=now, updated_at=now)
    )
    clear_seen(session, run_id=run_id)
    return int(cast(sa.CursorResult[Any], result).rowcount)


def clear_seen(session: Session, *, run_id: str) -> None:
    """Forget the ids a snapshot pass listed."""
    session.execute(SEEN.delete().where(SEEN.c.run_id == run_id))
