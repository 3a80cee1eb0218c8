"""Full-text search over live leads, on the objects of migration 0002.

SQLite matches against the FTS5 table ``lead_search``; PostgreSQL against the tsvector
expression of the partial GIN index ``ix_lead_search``. A query is split into words and
each word matches as a prefix (``ann`` finds ``Anna``). Hits rank exact, then prefix
matches of the whole query on email or name first, then by relevance. Which field
matched (``match_field``) is decided on the page's rows, in Python.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from state.store import LEAD

__all__ = [
    "PG_DOCUMENT",
    "SEARCH_OBJECT_PREFIX",
    "include_schema_name",
    "match_condition",
    "match_field",
    "query_words",
    "rebuild_search_index",
    "search_params",
    "search_select",
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
_WORD = re.compile(r"[^\W_]+")
_FIELDS = (
    ("email", "email"),
    ("name", "name"),
    ("first_name", "name"),
    ("last_name", "name"),
    ("company", "company"),
)
_SQLITE_REBUILD = (
    "INSERT INTO lead_search(rowid, email, name, first_name, last_name, company,"
    " custom)"
    " SELECT rowid, email, name, first_name, last_name, company,"
    " (SELECT group_concat(value, ' ') FROM json_tree(lead.custom_fields)"
    " WHERE type IN ('text', 'integer', 'real')) FROM lead WHERE deleted_at IS NULL"
)
_FTS = sa.table("lead_search", sa.column("rowid"))
_FTS_COLUMN: sa.ColumnClause[Any] = sa.literal_column("lead_search")
_ROWID: sa.ColumnClause[Any] = sa.literal_column("lead.rowid")
_SIMPLE: sa.ColumnClause[Any] = sa.literal_column("'simple'::regconfig")
#: Bound parameters of the search statements; ``search_params`` fills them.
_WHOLE = sa.bindparam("search_whole", type_=sa.String())
_SIZE = sa.bindparam("search_size", type_=sa.Integer())
_QUERY = sa.bindparam("search_query", type_=sa.String())


def include_schema_name(name: str | None, type_: str, parent_names: Any) -> bool:  # noqa: ARG001 # alembic's include_name signature
    """Alembic ``include_name`` hook: False for the search objects of migration 0002."""
    return not (name or "").startswith(SEARCH_OBJECT_PREFIX)


def _fold(text: str) -> str:
    # The same folding as FTS5's unicode61 with remove_diacritics: "José" is "jose".
    if text.isascii():  # nothing to fold: skip the costly normalisation
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def query_words(q: str) -> list[str]:
    """The words of a search query, lower-cased and without diacritics."""
    return _WORD.findall(_fold(q))


def match_condition(dialect: str) -> sa.ColumnElement[bool]:
    """A WHERE condition: live leads whose indexed text has every word as a prefix.

    Its bound parameter ``search_query`` comes from ``search_params``.
    """
    if dialect == "postgresql":
        return sa.and_(
            sa.literal_column(PG_DOCUMENT).op("@@")(
                sa.func.to_tsquery(_SIMPLE, _QUERY)
            ),
            LEAD.c.deleted_at.is_(None),
        )
    hits = sa.select(_FTS.c.rowid).where(_FTS_COLUMN.op("MATCH")(_QUERY))
    return _ROWID.in_(hits.scalar_subquery())


def search_params(q: str, words: list[str], dialect: str) -> dict[str, Any]:
    """The values of the bound parameters of ``search_select`` for one query."""
    whole = q.strip().lower()
    if dialect == "postgresql":
        query = " & ".join(f"{w}:*" for w in words)
    else:
        query = " AND ".join(f'"{w}"*' for w in words)
    return {"search_whole": whole, "search_size": len(whole), "search_query": query}


@functools.cache
def _search_statement(dialect: str) -> tuple[sa.Select[Any], tuple[Any, ...]]:
    # Built once per dialect with bound parameters: composing these expressions
    # costs more than running the query for a typical search.
    email = sa.func.lower(sa.func.coalesce(LEAD.c.email, ""))
    name = sa.func.lower(sa.func.coalesce(LEAD.c.name, ""))
    tier = sa.case(
        (sa.or_(email == _WHOLE, name == _WHOLE), 0),
        (
            sa.or_(
                sa.func.substr(email, 1, _SIZE) == _WHOLE,
                sa.func.substr(name, 1, _SIZE) == _WHOLE,
            ),
            1,
        ),
        else_=2,
    )
    if dialect == "postgresql":
        tsquery = sa.func.to_tsquery(_SIMPLE, _QUERY)
        document: sa.ColumnClause[Any] = sa.literal_column(PG_DOCUMENT)
        relevance: Any = sa.func.ts_rank(document, tsquery).desc()
        select = sa.select(LEAD).where(
            document.op("@@")(tsquery), LEAD.c.deleted_at.is_(None)
        )
        return select, (tier, relevance, LEAD.c.id)
    # bm25 weights follow _SQLITE_COLUMNS: email and name count most.
    hits = (
        sa.select(
            _FTS.c.rowid.label("rid"),
            sa.func.bm25(_FTS_COLUMN, 10.0, 10.0, 5.0, 5.0, 3.0, 1.0).label("score"),
        )
        .where(_FTS_COLUMN.op("MATCH")(_QUERY))
        .subquery("hits")
    )
    select = sa.select(LEAD).join_from(LEAD, hits, hits.c.rid == _ROWID)
    return select, (tier, hits.c.score, LEAD.c.id)


def search_select(session: Session) -> tuple[sa.Select[Any], tuple[Any, ...]]:
    """The live leads matching every word, and the ORDER BY that ranks them.

    Ranking: exact, then prefix matches of the whole query on email or name first,
    then relevance (bm25 or ts_rank), then id. Execute with ``search_params``.
    """
    return _search_statement(session.get_bind().dialect.name)


def _field_words(value: Any) -> list[str]:
    if value is None or isinstance(value, dict):
        return []
    if isinstance(value, list):
        return [w for item in value for w in _field_words(item)]
    return _WORD.findall(_fold(str(value)))


def _hits(words: list[str], value: Any) -> int:
    tokens = _field_words(value)
    return sum(1 for w in words if any(t.startswith(w) for t in tokens))


def match_field(lead: Mapping[str, Any], words: Iterable[str]) -> str:
    """The field a search hit matched: the one matching most query words, by priority.

    Priority: email, name (first/last name count as name), company, then custom fields
    as ``custom_fields.<key>``.
    """
    wanted = list(words)
    best, best_hits = "name", 0
    candidates: list[tuple[str, Any]] = [(label, lead.get(f)) for f, label in _FIELDS]
    custom = lead.get("custom_fields") or {}
    candidates += [(f"custom_fields.{k}", v) for k, v in custom.items()]
    for label, value in candidates:
        hits = _hits(wanted, value)
        if hits > best_hits:
            best, best_hits = label, hits
            if hits == len(wanted):
                break
    return best


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
