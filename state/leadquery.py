"""Reading leads for the API: filtered, sorted, paginated lists, search and get.

Every value is a bound parameter. Totals come from ``TotalCache`` while the store is
unchanged (SQLite ``PRAGMA data_version``): 100,000-row counts cost more than a page.
"""

from __future__ import annotations

import functools
import operator
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
from state.leadsearch import (
    match_condition,
    match_field,
    query_words,
    search_params,
    search_select,
)
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


_TAG_SQL = {
    "postgresql": "lead.tags @> jsonb_build_array(CAST(:filter_tag AS text))",
    "sqlite": (
        "EXISTS (SELECT 1 FROM json_each(lead.tags) AS t WHERE t.value = :filter_tag)"
    ),
}
_EQUAL_FILTERS = ("status", "source", "origin", "owner")
_RANGE_FILTERS = (
    ("updated_since", "updated_at", operator.ge),
    ("created_after", "created_at", operator.gt),
    ("created_before", "created_at", operator.lt),
)
_Shape = tuple[str, tuple[str, ...], bool | None, bool]


def _shape_and_params(f: LeadFilter, dialect: str) -> tuple[_Shape, dict[str, Any]]:
    """Which filters are set (the statement's shape) and their bound values."""
    params: dict[str, Any] = {}
    for name in (*_EQUAL_FILTERS, "tag", *(r[0] for r in _RANGE_FILTERS)):
        value = getattr(f, name)
        if value is not None:
            params[f"filter_{name}"] = value
    q_state = None
    if f.q is not None:
        words = query_words(f.q)
        q_state = bool(words)
        if words:
            params.update(search_params(f.q, words, dialect))
    # A mirror reading by updated_since must see deletes: tombstones come along.
    live_only = not f.include_deleted and f.updated_since is None
    return (dialect, tuple(sorted(params)), q_state, live_only), params


@functools.lru_cache(maxsize=256)
def _list_statements(
    shape: _Shape, sort_by: str, sort_order: SortOrder
) -> tuple[sa.Select[Any], sa.Select[Any]]:
    """The count and page statements of one shape of list request.

    Built once per shape, with bound parameters: composing the expressions costs
    more than running the query for a page of leads.
    """
    dialect, names, q_state, live_only = shape
    where: list[Any] = [LEAD.c.deleted_at.is_(None)] if live_only else []
    for name in _EQUAL_FILTERS:
        if f"filter_{name}" in names:
            where.append(LEAD.c[name] == sa.bindparam(f"filter_{name}"))
    if "filter_tag" in names:
        where.append(sa.text(_TAG_SQL[dialect]))
    for name, column, compare in _RANGE_FILTERS:
        if f"filter_{name}" in names:
            param = sa.bindparam(f"filter_{name}", type_=LEAD.c[column].type)
            where.append(compare(LEAD.c[column], param))
    if q_state is not None:
        where.append(match_condition(dialect) if q_state else sa.false())
    sort_column = LEAD.c[sort_by]
    ordered = sort_column.asc() if sort_order == "asc" else sort_column.desc()
    tiebreak = LEAD.c.id.asc() if sort_order == "asc" else LEAD.c.id.desc()
    if sort_by == "score":
        ordered = ordered.nulls_last()
    count = sa.select(sa.func.count()).select_from(
        sa.select(LEAD.c.id).where(*where).subquery()
    )
    page = sa.select(LEAD).where(*where).order_by(ordered, tiebreak)
    return count, page


def _count(
    session: Session,
    select: sa.Select[Any],
    key: Hashable,
    totals: TotalCache | None,
    params: dict[str, Any] | None = None,
) -> int:
    """The total of a list or search (``select`` counts), cached while unchanged."""
    version = totals.version() if totals is not None else None
    cached = totals.get(key, version) if totals is not None else None
    if cached is not None:
        return cached
    total = int(session.connection().execute(select, params).scalar_one())
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
    shape, params = _shape_and_params(filters, session.get_bind().dialect.name)
    count, select = _list_statements(shape, sort_by, sort_order)
    total = _count(session, count, ("list", filters), totals, params)
    rows = (
        session.connection()
        .execute(select.limit(limit).offset((page - 1) * limit), params)
        .mappings()
    )
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
    select, order = search_select(session)
    params = search_params(q, words, session.get_bind().dialect.name)
    if status is not None:
        select = select.where(LEAD.c.status == status)
    ids_select = select.with_only_columns(LEAD.c.id)
    count = sa.select(sa.func.count()).select_from(ids_select.subquery())
    total = _count(session, count, ("search", q, status), totals, params)
    # Rank with the ids alone, then read the page's rows: sorting every hit with all
    # its columns costs far more when a short query matches thousands of leads.
    page_ids = list(
        session.connection()
        .execute(
            ids_select.order_by(*order).limit(limit).offset((page - 1) * limit),
            params,
        )
        .scalars()
    )
    if not page_ids:
        return LeadPage(total=total)
    rows = session.connection().execute(_BY_IDS, {"page_ids": page_ids}).mappings()
    by_id = {row["id"]: row for row in rows}
    items = []
    # Without a shared snapshot a lead may be deleted between the two reads: skip it.
    for lead_id in (i for i in page_ids if i in by_id):
        item = lead_row_to_dict(by_id[lead_id])
        item["match_field"] = match_field(item, words)
        items.append(item)
    return LeadPage(items=items, total=total)


_BY_IDS = sa.select(LEAD).where(
    LEAD.c.id.in_(sa.bindparam("page_ids", expanding=True)),
    LEAD.c.deleted_at.is_(None),
)
_GET = sa.select(LEAD).where(
    LEAD.c.id == sa.bindparam("lead_id"), LEAD.c.deleted_at.is_(None)
)


def get_lead(session: Session, lead_id: str) -> dict[str, Any]:
    """A live lead by store id.

    Raises:
        LeadNotFound: no such lead, or it is deleted.
    """
    row = session.connection().execute(_GET, {"lead_id": lead_id}).mappings().first()
    if row is None:
        raise LeadNotFound(f"no lead with id '{lead_id}'")
    return lead_row_to_dict(row)
