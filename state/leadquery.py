"""Reading leads for the API: filtered, sorted, paginated lists, search and get.

One statement text per shape of request (which filters are set), bound parameters
for every value; ``state.leadread`` runs them in one read transaction and answers the
leads as JSON. Totals may come from a ``Totals`` cache while the store is unchanged
(see ``service.api.totals``): 100,000-row counts cost more than a page. On SQLite,
which keeps no statistics, a filtered page walks the sort's index when the filter
matches many leads (``prefer_scan``).
"""

from __future__ import annotations

import functools
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from sqlalchemy.engine import Engine

from state.errors import LeadNotFound
from state.leadread import LEAD_COLUMNS_SQL, Reader, reading
from state.leadsearch import match_sql, query_words, search_params, search_sql

__all__ = [
    "SORT_FIELDS",
    "LeadFilter",
    "LeadPage",
    "Totals",
    "get_lead",
    "list_leads",
    "prefer_scan",
    "search_leads",
]

SORT_FIELDS = ("created_at", "updated_at", "score")
SortOrder = Literal["asc", "desc"]
_SELECT = f"SELECT {LEAD_COLUMNS_SQL} FROM lead"  # noqa: S608 # constant SQL


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


@dataclass(frozen=True, slots=True)
class LeadPage:
    """One page of leads (the JSON array of their objects) and the total of all."""

    data: bytes = b"[]"
    total: int = 0


class Totals(Protocol):
    """Where list and search totals are kept while the store is unchanged."""

    def version(self) -> int | None:
        """The store's change counter now, or None when nothing can be kept."""
        ...

    def get(self, key: Hashable, version: int | None) -> int | None:
        """The total counted for ``key`` at ``version``, if kept."""
        ...

    def put(self, key: Hashable, version: int | None, total: int) -> None:
        """Keep a total counted at ``version``."""
        ...


_TAG_SQL = {
    "postgresql": "lead.tags @> jsonb_build_array(CAST(:filter_tag AS text))",
    "sqlite": (
        "EXISTS (SELECT 1 FROM json_each(lead.tags) AS t WHERE t.value = :filter_tag)"
    ),
}
_EQUAL_FILTERS = ("status", "source", "origin", "owner")
_RANGE_FILTERS = (
    ("updated_since", "updated_at", ">="),
    ("created_after", "created_at", ">"),
    ("created_before", "created_at", "<"),
)
_Shape = tuple[str, tuple[str, ...], bool | None, bool, str, SortOrder]
_MAX_ROWID = "SELECT max(rowid) FROM lead"


def _bind_time(value: datetime, dialect: str) -> Any:
    # SQLite keeps naive UTC text that sorts as time (see state.types.UTCDateTime).
    if dialect != "sqlite":
        return value
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _shape_and_params(
    f: LeadFilter, dialect: str, sort_by: str, sort_order: SortOrder
) -> tuple[_Shape, dict[str, Any]]:
    """Which filters are set (the statement's shape) and their bound values."""
    params: dict[str, Any] = {}
    for name in (*_EQUAL_FILTERS, "tag"):
        value = getattr(f, name)
        if value is not None:
            params[f"filter_{name}"] = value
    for name, _, _ in _RANGE_FILTERS:
        value = getattr(f, name)
        if value is not None:
            params[f"filter_{name}"] = _bind_time(value, dialect)
    q_state = None
    if f.q is not None:
        words = query_words(f.q)
        q_state = bool(words)
        if words:
            params.update(search_params(f.q, words, dialect))
    # A mirror reading by updated_since must see deletes: tombstones come along.
    live_only = not f.include_deleted and f.updated_since is None
    names = tuple(sorted(params))
    return (dialect, names, q_state, live_only, sort_by, sort_order), params


@functools.lru_cache(maxsize=256)
def _list_sql(shape: _Shape, *, scan: bool = False) -> tuple[str, str]:
    """The count and page statements of one shape of list request.

    ``scan``: the filters are written so that SQLite cannot use their indexes (a
    unary ``+``) and walks the sort's index instead, stopping at the page.
    """
    dialect, names, q_state, live_only, sort_by, sort_order = shape
    plus = "+" if scan and dialect == "sqlite" else ""
    where = ["lead.deleted_at IS NULL"] if live_only else []
    where += [
        f"{plus}lead.{n} = :filter_{n}"
        for n in _EQUAL_FILTERS
        if f"filter_{n}" in names
    ]
    if "filter_tag" in names:
        where.append(_TAG_SQL[dialect])
    for name, column, compare in _RANGE_FILTERS:
        if f"filter_{name}" in names:
            other = plus if column != sort_by else ""
            where.append(f"{other}lead.{column} {compare} :filter_{name}")
    if q_state is not None:
        where.append(plus + match_sql(dialect) if q_state else "1 = 0")
    condition = f" WHERE {' AND '.join(where)}" if where else ""
    direction = "ASC" if sort_order == "asc" else "DESC"
    nulls = " NULLS LAST" if sort_by == "score" else ""
    order = f"lead.{sort_by} {direction}{nulls}, lead.id {direction}"
    # Only constants and checked column names go into the text; values are bound.
    count = f"SELECT count(*) FROM lead{condition}"  # noqa: S608 # see above
    page = f"{_SELECT}{condition} ORDER BY {order} LIMIT :limit OFFSET :offset"
    return count, page


def prefer_scan(*, rows: int, total: int, end: int) -> bool:
    """Whether to walk the sort's index rather than use a filter's index and sort.

    Without statistics SQLite always takes the filter's index, then sorts every match
    (``status=new`` on 100,000 leads: 30 ms). Walking the sort's index visits about
    ``end * rows / total`` leads to fill a page ending at ``end``; the filter's index
    visits ``total`` of them and sorts them.
    """
    return total > 0 and end * rows < total * total


def _kept_total(totals: Totals | None, key: Hashable) -> tuple[int | None, int | None]:
    """The total kept for ``key`` (or None), and the store version it is valid at."""
    if totals is None:
        return None, None
    version = totals.version()
    return totals.get(key, version), version


def _count(
    reader: Reader,
    sql: str,
    params: dict[str, Any],
    *,
    totals: Totals | None,
    key: Hashable,
    version: int | None,
) -> int:
    """Count a list or search; keep the total under the version read before it."""
    total = int(reader.rows(sql, params)[0][0])
    if totals is not None:
        totals.put(key, version, total)
    return total


def list_leads(
    engine: Engine,
    *,
    filters: LeadFilter,
    sort_by: str = "created_at",
    sort_order: SortOrder = "desc",
    page: int = 1,
    limit: int = 25,
    totals: Totals | None = None,
) -> LeadPage:
    """One page of leads matching ``filters``, ordered by ``sort_by`` then id."""
    if sort_by not in SORT_FIELDS:
        raise ValueError(f"cannot sort by {sort_by!r}")
    shape, params = _shape_and_params(filters, engine.dialect.name, sort_by, sort_order)
    count_sql, page_sql = _list_sql(shape)
    key = ("list", filters)
    total, version = _kept_total(totals, key)
    # Count and page share a snapshot; a page alone is one statement, atomic anyway.
    with reading(engine, snapshot=total is None) as reader:
        if total is None:
            total = _count(
                reader, count_sql, params, totals=totals, key=key, version=version
            )
        end = page * limit
        scan_sql = _list_sql(shape, scan=True)[1]
        if scan_sql != page_sql:
            rows = reader.rows(_MAX_ROWID, {})[0][0] or 0  # an upper bound, at once
            if prefer_scan(rows=rows, total=total, end=end):
                page_sql = scan_sql
        params.update(limit=limit, offset=end - limit)
        in_place = not reader.sorts(page_sql, params)
        data = reader.page_json(page_sql, params, in_place=in_place)
    return LeadPage(data=data, total=total)


def search_leads(
    engine: Engine,
    *,
    q: str,
    status: str | None = None,
    page: int = 1,
    limit: int = 25,
    totals: Totals | None = None,
) -> LeadPage:
    """Full-text search over live leads; each item carries its ``match_field``."""
    words = query_words(q)
    if not words:
        return LeadPage()
    dialect = engine.dialect.name
    count_sql, page_sql = search_sql(
        dialect, status=status is not None, columns=LEAD_COLUMNS_SQL
    )
    params = search_params(q, words, dialect)
    if status is not None:
        params["status"] = status
    key = ("search", q, status)
    total, version = _kept_total(totals, key)
    with reading(engine, snapshot=total is None) as reader:
        if total is None:
            total = _count(
                reader, count_sql, params, totals=totals, key=key, version=version
            )
        params.update(limit=limit, offset=(page - 1) * limit)
        data = reader.page_json(page_sql, params, words, in_place=True)
    return LeadPage(data=data, total=total)


_GET = f"{_SELECT} WHERE lead.id = :lead_id AND lead.deleted_at IS NULL"


def get_lead(engine: Engine, lead_id: str) -> bytes:
    """A live lead by store id: its JSON object (contract §4).

    Raises:
        LeadNotFound: no such lead, or it is deleted.
    """
    with reading(engine, snapshot=False) as reader:
        found = reader.page_json(_GET, {"lead_id": lead_id}, in_place=True)
    if found == b"[]":
        raise LeadNotFound(f"no lead with id '{lead_id}'")
    return found[1:-1]
