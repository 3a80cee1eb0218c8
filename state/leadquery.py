"""Reading leads for the API: filtered, sorted, paginated lists, search and get.

Every query is built with SQLAlchemy, so every value is a bound parameter. Totals of
list and search pages come from ``TotalCache`` when the store has not changed since
they were counted (SQLite: ``PRAGMA data_version``), since counting 100,000 rows costs
far more than reading a page.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from state.errors import LeadNotFound
from state.leadsearch import match_condition, match_field, query_words, search_select
from state.reads import lead_row_to_dict
from state.store import LEAD

__all__ = [
    "SORT_FIELDS",
    "LeadFilter",
    "LeadPage",
    "TotalCache",
    "get_lead",
    "list_leads",
    "search_leads",
]

SORT_FIELDS = ("created_at", "updated_at", "score")
SortOrder = Literal["asc", "desc"]


@dataclass(frozen=True, slots=True)
class LeadFilter:
    """The filters of ``GET /v1/leads``; None means "any"."""

    status: str | None = None
    source: str | None = None
    origin: str | None = None
    owner: str | None = None
    tag: str | None = None
    q: str | None = None
    updated_since: datetime | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    include_deleted: bool = False


@dataclass(slots=True)
class LeadPage:
    """One page of leads (as contract §4 dicts) and the total across all pages."""

    items: list[dict[str, Any]] = field(default_factory=list)
    total: int = 0


class TotalCache:
    """Recent totals, valid while the store is unchanged (SQLite files only).

    ``PRAGMA data_version`` on a connection of our own that never writes changes
    whenever any other connection, in this process or another, commits. The version
    is read before counting, so a total is never kept under a version older than the
    data it counted.
    """

    def __init__(self, engine: Engine, size: int = 512) -> None:
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


def _tag_condition(session: Session, tag: str) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        sql = "lead.tags @> jsonb_build_array(CAST(:tag_filter AS text))"
    else:
        sql = (
            "EXISTS (SELECT 1 FROM json_each(lead.tags) AS t"
            " WHERE t.value = :tag_filter)"
        )
    return sa.text(sql).bindparams(tag_filter=tag)


def _conditions(session: Session, f: LeadFilter) -> list[Any]:
    where: list[Any] = []
    # A mirror reading by updated_since must see deletes: tombstones come along.
    if not f.include_deleted and f.updated_since is None:
        where.append(LEAD.c.deleted_at.is_(None))
    for name in ("status", "source", "origin", "owner"):
        value = getattr(f, name)
        if value is not None:
            where.append(LEAD.c[name] == value)
    if f.tag is not None:
        where.append(_tag_condition(session, f.tag))
    if f.updated_since is not None:
        where.append(LEAD.c.updated_at >= f.updated_since)
    if f.created_after is not None:
        where.append(LEAD.c.created_at > f.created_after)
    if f.created_before is not None:
        where.append(LEAD.c.created_at < f.created_before)
    if f.q is not None:
        words = query_words(f.q)
        if not words:
            where.append(sa.false())
        else:
            where.append(match_condition(session, words))
    return where


def _count(
    session: Session,
    select: sa.Select[Any],
    key: Hashable,
    totals: TotalCache | None,
) -> int:
    version = totals.version() if totals is not None else None
    cached = totals.get(key, version) if totals is not None else None
    if cached is not None:
        return cached
    total = int(
        session.execute(
            sa.select(sa.func.count()).select_from(select.subquery())
        ).scalar_one()
    )
    if totals is not None:
        totals.put(key, version, total)
    return total


def list_leads(
    session: Session,
    *,
    filters: LeadFilter,
    sort_by: str = "created_at",
    sort_order: SortOrder = "desc",
    page: int = 1,
    limit: int = 25,
    totals: TotalCache | None = None,
) -> LeadPage:
    """One page of leads matching ``filters``, ordered by ``sort_by`` then id."""
    if sort_by not in SORT_FIELDS:
        raise ValueError(f"cannot sort by {sort_by!r}")
    where = _conditions(session, filters)
    column = LEAD.c[sort_by]
    ordered = column.asc() if sort_order == "asc" else column.desc()
    tiebreak = LEAD.c.id.asc() if sort_order == "asc" else LEAD.c.id.desc()
    if sort_by == "score":
        ordered = ordered.nulls_last()
    base = sa.select(LEAD.c.id).where(*where)
    total = _count(session, base, ("list", filters), totals)
    rows = session.execute(
        sa.select(LEAD)
        .where(*where)
        .order_by(ordered, tiebreak)
        .limit(limit)
        .offset((page - 1) * limit)
    ).mappings()
    return LeadPage(items=[lead_row_to_dict(r) for r in rows], total=total)


def search_leads(
    session: Session,
    *,
    q: str,
    status: str | None = None,
    page: int = 1,
    limit: int = 25,
    totals: TotalCache | None = None,
) -> LeadPage:
    """Full-text search over live leads; each item carries its ``match_field``."""
    words = query_words(q)
    if not words:
        return LeadPage()
    select, order = search_select(session, q, words)
    if status is not None:
        select = select.where(LEAD.c.status == status)
    select = select.where(LEAD.c.deleted_at.is_(None))
    total = _count(
        session, select.with_only_columns(LEAD.c.id), ("search", q, status), totals
    )
    rows = session.execute(
        select.order_by(*order).limit(limit).offset((page - 1) * limit)
    ).mappings()
    items = []
    for row in rows:
        item = lead_row_to_dict(row)
        item["match_field"] = match_field(item, words)
        items.append(item)
    return LeadPage(items=items, total=total)


def get_lead(session: Session, lead_id: str) -> dict[str, Any]:
    """A live lead by store id.

    Raises:
        LeadNotFound: no such lead, or it is deleted.
    """
    row = (
        session.execute(
            sa.select(LEAD).where(LEAD.c.id == lead_id, LEAD.c.deleted_at.is_(None))
        )
        .mappings()
        .first()
    )
    if row is None:
        raise LeadNotFound(f"no lead with id '{lead_id}'")
    return lead_row_to_dict(row)
