"""Full-text search over live leads, on the objects of migration 0002.

SQLite matches against the FTS5 table ``lead_search``; PostgreSQL against the tsvector
expression of the partial GIN index ``ix_lead_search``. A query is split into words and
each word matches as a prefix (``ann`` finds ``Anna``). Hits rank exact, then prefix
matches of the whole query on email or name first, then by relevance, then in a fixed
order (``search_sql``). Which field matched (``match_field``) is decided on the page's
rows, in Python (``state.searchmatch``).
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

# Keep in step with state/migrations/versions/0002_search.py: PostgreSQL uses the
# index only when the query's expression is exactly the indexed one.
PG_DOCUMENT = (
    "to_tsvector('simple', coalesce(lead.name, '') || ' ' || "
    "coalesce(lead.first_name, '') || ' ' || coalesce(lead.last_name, '') || ' ' || "
    "coalesce(lead.company, '') || ' ' || "
    "translate(coalesce(lead.email, ''), '@._+-', '     ')) || "
    "jsonb_to_tsvector('simple', lead.custom_fields, '[\"string\", \"numeric\"]')"
)
_SQLITE_REBUILD = (
    "INSERT INTO lead_search(rowid, email, name, first_name, last_name, company,"
    " custom)"
    " SELECT rowid, email, name, first_name, last_name, company,"
    " (SELECT group_concat(value, ' ') FROM json_tree(lead.custom_fields)"
    " WHERE type IN ('text', 'integer', 'real')) FROM lead WHERE deleted_at IS NULL"
)


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
        # Every lead whose email or name starts with the whole query (tiers 0 and 1)
        # has a first token there that starts with the first word.
        "search_initial": f'{{email name}} : ^"{words[0]}"*',
        "search_exact": exact,
        "search_prefix": f"{exact}%",
    }


_PG_QUERY = "to_tsquery('simple'::regconfig, :search_query)"
_PG_MATCH = f"{PG_DOCUMENT} @@ {_PG_QUERY}"
_SQLITE_MATCH = "lead_search MATCH :search_query"
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
# bm25 weights follow the FTS5 columns (email, name, first_name, last_name, company,
# custom): email and name count most.
_BM25 = "bm25(lead_search, 10.0, 10.0, 5.0, 5.0, 3.0, 1.0)"
_SQLITE_HITS = (
    f"SELECT rowid AS rid, {_BM25} AS score"  # noqa: S608 # constant SQL
    f" FROM lead_search WHERE {_SQLITE_MATCH}"
)
# Tiers 0 and 1 can only hold leads whose email or name begins with the first word
# (``:search_initial``): a handful, whose rows are read for their exact tier. Every
# other hit is tier 2 and ranked in the index alone, by score then rowid, without
# reading its row; the first ``:limit + :offset`` of those are all a page can need
# beside the handful (a candidate found in both keeps its lower tier).
_SQLITE_RANKED = (
    "SELECT rid AS hit_key, min(tier) AS tier, score FROM ("  # noqa: S608 # constant SQL
    f"SELECT lead.rowid AS rid, {_SQLITE_TIER} AS tier, hits.score AS score"
    f" FROM lead JOIN ({_SQLITE_HITS} AND rowid IN (SELECT rowid FROM lead_search"
    " WHERE lead_search MATCH :search_initial)) AS hits ON hits.rid = lead.rowid"
    f" UNION ALL SELECT * FROM (SELECT rowid, 2, {_BM25} FROM lead_search"
    f" WHERE {_SQLITE_MATCH} ORDER BY 3, 1 LIMIT :limit + :offset)"
    ") GROUP BY rid"
)


@functools.cache
def search_sql(dialect: str, *, status: bool, columns: str) -> tuple[str, str]:
    """The count and one page of hits (SQL text) of a search.

    Ranking: exact, then prefix matches of the whole query on email or name first,
    then relevance (bm25 or ts_rank), then a tie-break that stays the same from page
    to page: the order leads were stored in (SQLite's rowid), or the lead id on
    PostgreSQL. The hits are ranked by these keys alone and only the page's rows are
    read (``columns``, of table ``lead``): sorting every hit with all its columns
    costs far more when a short query matches thousands of leads. Bound parameters:
    those of ``search_params``, ``:status`` when ``status`` is set, ``:limit`` and
    ``:offset``.
    """
    where = " AND lead.status = :status" if status else ""
    if dialect == "postgresql":
        matched = f"FROM lead WHERE {_PG_MATCH} AND lead.deleted_at IS NULL{where}"
        count = f"SELECT count(*) {matched}"
        ranked = (
            f"SELECT lead.id AS hit_key, {_PG_TIER} AS tier,"
            f" -ts_rank({PG_DOCUMENT}, {_PG_QUERY}) AS score"
            f" {matched}"
        )
        key = "id"
    elif status:
        # Only live leads are in the index; the status is in the row, so every
        # hit's row is read.
        count = f"SELECT count(*) FROM lead WHERE {match_sql(dialect)}{where}"  # noqa: S608 # constant SQL
        ranked = (
            f"SELECT lead.rowid AS hit_key, {_SQLITE_TIER} AS tier,"  # noqa: S608 # constant SQL
            " hits.score AS score"
            f" FROM lead JOIN ({_SQLITE_HITS}) AS hits ON hits.rid = lead.rowid"
            f" WHERE 1 = 1{where}"
        )
        key = "rowid"
    else:
        # The index holds exactly the live leads: it counts them alone.
        count = f"SELECT count(*) FROM lead_search WHERE {_SQLITE_MATCH}"  # noqa: S608 # constant SQL
        ranked = _SQLITE_RANKED
        key = "rowid"
    order = "tier, score, hit_key"
    page = (
        f"SELECT {columns} FROM ({ranked} ORDER BY {order}"  # noqa: S608 # constant SQL
        f" LIMIT :limit OFFSET :offset) AS page JOIN lead ON lead.{key} = page.hit_key"
        # The LIMIT again: an ORDER BY with a LIMIT stays where it is written, even
        # inside a subquery (state.leadread wraps this in an aggregate).
        " ORDER BY page.tier, page.score, page.hit_key LIMIT :limit"
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
