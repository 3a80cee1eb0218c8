"""Full-text search over live leads, on the objects of migration 0002.

SQLite matches against the FTS5 table ``lead_search``; PostgreSQL against the tsvector
expression of the partial GIN index ``ix_lead_search``. A query is split into words and
each word matches as a prefix (``ann`` finds ``Anna``). Hits rank exact, then prefix
matches of the whole query on email or name first, then by the fields holding the
words (email and name, then company, then custom fields), then newest first
(``search_sql``). No hit is scored one by one: on SQLite the ranking is read from the
index in rowid order, which keeps a search's cost near that of counting its hits.
Which field matched (``match_field``) is decided on the page's rows, in Python
(``state.searchmatch``).
"""

from __future__ import annotations

import functools
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from state.searchmatch import match_field, match_fields, query_words

__all__ = [
    "PG_DOCUMENT",
    "SEARCH_OBJECT_PREFIX",
    "include_schema_name",
    "match_field",
    "match_fields",
    "match_sql",
    "query_words",
    "rebuild_search_index",
    "search_params",
    "search_sql",
]

#: Every schema object migration 0002 adds starts with this (tables, triggers,
#: indexes); schema comparisons against the SQLModel metadata skip them.
SEARCH_OBJECT_PREFIX = ("lead_search", "ix_lead_search")

# The words of the names and of the email (its separators made spaces), on PostgreSQL.
_PG_NAME_TEXT = (
    "coalesce(lead.name, '') || ' ' || "
    "coalesce(lead.first_name, '') || ' ' || coalesce(lead.last_name, '') || ' ' || "
)
_PG_EMAIL_TEXT = "translate(coalesce(lead.email, ''), '@._+-', '     ')"
# Keep in step with state/migrations/versions/0002_search.py: PostgreSQL uses the
# index only when the query's expression is exactly the indexed one.
PG_DOCUMENT = (
    f"to_tsvector('simple', {_PG_NAME_TEXT}coalesce(lead.company, '') || ' ' || "
    f"{_PG_EMAIL_TEXT}) || "
    "jsonb_to_tsvector('simple', lead.custom_fields, '[\"string\", \"numeric\"]')"
)
_SQLITE_REBUILD = (
    "INSERT INTO lead_search(rowid, email, name, first_name, last_name, company,"
    " custom)"
    " SELECT rowid, email, name, first_name, last_name, company,"
    " (SELECT group_concat(value, ' ') FROM json_tree(lead.custom_fields)"
    " WHERE type IN ('text', 'integer', 'real')) FROM lead WHERE deleted_at IS NULL"
)


# The FTS5 column groups of the field classes (``search_sql``).
_NAMES = "email name first_name last_name"
_NAMED = f"{_NAMES} company"


def include_schema_name(name: str | None, type_: str, parent_names: Any) -> bool:  # noqa: ARG001 # alembic's include_name signature
    """Alembic ``include_name`` hook: False for the search objects of migration 0002."""
    return not (name or "").startswith(SEARCH_OBJECT_PREFIX)


def match_sql(dialect: str) -> str:
    """A WHERE condition (SQL text): live leads whose text has every word as a prefix.

    Its bound parameter ``:search_query`` comes from ``search_params``.
    """
    if dialect == "postgresql":
        return f"({_PG_MATCH} AND lead.deleted_at IS NULL)"
    return f"lead.rowid IN (SELECT rowid FROM lead_search WHERE {_SQLITE_MATCH})"  # noqa: S608 # constant SQL


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search_params(q: str, words: list[str], dialect: str) -> dict[str, Any]:
    """The values of the bound parameters of the search statements for one query."""
    whole = q.strip().lower()
    if dialect == "postgresql":
        query = " & ".join(f"{w}:*" for w in words)
        return {"search_whole": whole, "search_size": len(whole), "search_query": query}
    query = " AND ".join(f'"{w}"*' for w in words)
    exact = _like(whole)
    return {
        "search_query": query,
        "search_names": f"{{{_NAMES}}} : ({query})",
        "search_named": f"{{{_NAMED}}} : ({query})",
        # Every lead whose email or name starts with the whole query (tiers 0 and 1)
        # has a first token there that starts with the first word.
        "search_initial": f'{{email name}} : ^"{words[0]}"*',
        "search_exact": exact,
        "search_prefix": f"{exact}%",
    }


_PG_QUERY = "to_tsquery('simple'::regconfig, :search_query)"
_PG_MATCH = f"{PG_DOCUMENT} @@ {_PG_QUERY}"
_SQLITE_MATCH = "lead_search MATCH :search_query"
# A search's status filter, on the lead's row.
_STATUS_ROW = " AND lead.status = :status"
# The tier: 0 for an exact, 1 for a prefix match of the whole query on email or name.
_EMAIL = "lower(coalesce(lead.email, ''))"
_NAME = "lower(coalesce(lead.name, ''))"
_SIZE = "CAST(:search_size AS INTEGER)"
_PG_TIER = (
    f"CASE WHEN {_EMAIL} = :search_whole OR {_NAME} = :search_whole THEN 0"
    f" WHEN substr({_EMAIL}, 1, {_SIZE}) = :search_whole"
    f" OR substr({_NAME}, 1, {_SIZE}) = :search_whole THEN 1 ELSE 2 END"
)
# The same on SQLite, where LIKE folds case exactly as lower() does (ASCII only) and
# stops at the first differing character instead of lower-casing every hit's email
# and name. Most hits start with neither, so that is asked first (an exact match is
# also a prefix match); a NULL email or name matches neither, as CASE reads NULL.
_SQLITE_TIER = (
    "CASE WHEN lead.email LIKE :search_prefix ESCAPE '\\'"
    " OR lead.name LIKE :search_prefix ESCAPE '\\' THEN"
    " (CASE WHEN lead.email LIKE :search_exact ESCAPE '\\'"
    " OR lead.name LIKE :search_exact ESCAPE '\\' THEN 0 ELSE 1 END) ELSE 2 END"
)
# The field class, the rank after the tier: 0 when every word is found in the email or
# name (first and last name included), 1 when every word is found there or in the
# company, else 2 (a custom field holds one). The column groups are nested, so a
# hit's class is the first group that holds the whole query.
_PG_NAMES = f"to_tsvector('simple', {_PG_NAME_TEXT}{_PG_EMAIL_TEXT})"
_PG_CLASS = (
    f"CASE WHEN {_PG_NAMES} @@ {_PG_QUERY} THEN 0"
    f" WHEN ({_PG_NAMES} || to_tsvector('simple', coalesce(lead.company, '')))"
    f" @@ {_PG_QUERY} THEN 1 ELSE 2 END"
)


_END = ":limit + :offset"
# Read a class's list only while the lists before it are short of the page's end:
# when the email or name of ``:limit + :offset`` leads hold the query (the usual
# search for a person), the other lists are never read. SQLite skips the scan of a
# statement whose LIMIT is 0.
_NAMES_SHORT = f"(SELECT count(*) FROM names) < {_END}"  # noqa: S608 # constant SQL
_NAMED_SHORT = f"{_NAMES_SHORT} AND (SELECT count(*) FROM named) < {_END}"  # noqa: S608


# With a status filter, a hit of a list must have it: its row is read, in the index's
# order, until the list is full.
_STATUS = (
    " AND (SELECT lead.status FROM lead WHERE lead.rowid = lead_search.rowid) = :status"
)


def _class_list(group: str, short: str | None, status: bool) -> str:
    # The newest ``:limit + :offset`` hits of one column group, read from the index
    # in rowid order (no score to compute, no sort).
    limit = _END if short is None else f"CASE WHEN {short} THEN {_END} ELSE 0 END"
    where = _STATUS if status else ""
    return (
        f"SELECT rowid AS rid FROM lead_search WHERE lead_search MATCH :{group}{where}"  # noqa: S608 # constant SQL
        f" ORDER BY rowid DESC LIMIT {limit}"
    )


# Tiers 0 and 1 can only hold leads whose email or name begins with the first word
# (``:search_initial``): a handful, whose rows are read for their exact tier. A lead
# of tier 0 or 1 is of class 0: the whole query begins its email or name, so each of
# its words begins a word there. Every other hit is tier 2 and ranked in the index
# alone: the page needs at most the newest ``:limit + :offset`` hits of each class,
# and since the groups are nested, those of a group's list that belong to a lower
# class stand before the ones it lacks. A lead found in several lists keeps its
# lowest tier and class (a candidate of tier 2 takes its class from the lists; one
# missing from the list of its class has a full page before it).
def _sqlite_ranked(status: bool) -> str:
    where = _STATUS_ROW if status else ""
    return (
        f"WITH names AS MATERIALIZED ({_class_list('search_names', None, status)}),"  # noqa: S608 # constant SQL
        f" named AS MATERIALIZED ({_class_list('search_named', _NAMES_SHORT, status)})"
        " SELECT rid AS hit_key, min(tier) AS tier,"
        " min(CASE WHEN tier < 2 THEN 0 ELSE cls END) AS cls FROM ("
        f"SELECT lead.rowid AS rid, {_SQLITE_TIER} AS tier, 2 AS cls FROM lead"
        f" WHERE lead.rowid IN (SELECT rowid FROM lead_search WHERE {_SQLITE_MATCH}"
        " AND rowid IN (SELECT rowid FROM lead_search"
        f" WHERE lead_search MATCH :search_initial)){where}"
        " UNION ALL SELECT rid, 2, 0 FROM names UNION ALL SELECT rid, 2, 1 FROM named"
        f" UNION ALL SELECT rid, 2, 2 FROM"
        f" ({_class_list('search_query', _NAMED_SHORT, status)})"
        ") GROUP BY rid"
    )


@functools.cache
def search_sql(dialect: str, *, status: bool, columns: str) -> tuple[str, str]:
    """The count and one page of hits (SQL text) of a search.

    Ranking: exact, then prefix matches of the whole query on email or name first;
    then the field class (every word in the email or name, then in those or the
    company, then anywhere); then the newest first, an order that stays the same from
    page to page: the order leads were stored in (SQLite's rowid), or the creation
    time then the id on PostgreSQL. The hits are ranked by these keys alone and only
    the page's rows are read (``columns``, of table ``lead``): sorting every hit with
    all its columns costs far more when a short query matches thousands of leads.
    Bound parameters: those of ``search_params``, ``:status`` when ``status`` is
    set, ``:limit`` and ``:offset``.
    """
    where = _STATUS_ROW if status else ""
    if dialect == "postgresql":
        matched = f"FROM lead WHERE {_PG_MATCH} AND lead.deleted_at IS NULL{where}"
        count = f"SELECT count(*) {matched}"
        # The hits first, then their tier and class: computed per row inside the
        # scan, they would make PostgreSQL plan a parallel scan that costs more than
        # it saves on the usual few hundred hits.
        hits = (
            "SELECT lead.id, lead.email, lead.name, lead.first_name, lead.last_name,"
            f" lead.company, lead.created_at {matched}"
        )
        ranked = (
            f"WITH hits AS MATERIALIZED ({hits}) SELECT lead.id AS hit_key,"  # noqa: S608 # constant SQL
            f" {_PG_TIER} AS tier, {_PG_CLASS} AS cls, lead.created_at AS newest"
            " FROM hits AS lead"
        )
        key, order = "id", "tier, cls, newest DESC, hit_key DESC"
    else:
        # The index holds exactly the live leads: it counts them alone, unless the
        # status (in the row) must be read too.
        count = (
            f"SELECT count(*) FROM lead WHERE {match_sql(dialect)}{where}"  # noqa: S608 # constant SQL
            if status
            else f"SELECT count(*) FROM lead_search WHERE {_SQLITE_MATCH}"  # noqa: S608 # constant SQL
        )
        ranked = _sqlite_ranked(status)
        key, order = "rowid", "tier, cls, hit_key DESC"
    outer = ", ".join(f"page.{term}" for term in order.split(", "))
    page = (
        f"SELECT {columns} FROM ({ranked} ORDER BY {order}"  # noqa: S608 # constant SQL
        f" LIMIT :limit OFFSET :offset) AS page JOIN lead ON lead.{key} = page.hit_key"
        # The LIMIT again: an ORDER BY with a LIMIT stays where it is written, even
        # inside a subquery (state.leadread wraps this in an aggregate).
        f" ORDER BY {outer} LIMIT :limit"
    )
    return count, page


def rebuild_search_index(session: Session) -> None:
    """Rebuild the SQLite search index from the lead table (no-op on PostgreSQL).

    Needed only if rowids of ``lead`` were renumbered outside leadsync (a VACUUM of a
    copy made with another tool, say).
    """
    if session.get_bind().dialect.name != "sqlite":
        return
    session.execute(
        sa.text("INSERT INTO lead_search(lead_search) VALUES('delete-all')")
    )
    session.execute(sa.text(_SQLITE_REBUILD))
