"""Search pages rank exactly as the documented order, worked out in Python.

The order is: exact, then prefix matches of the whole query on email or name, then
the field class (every word in the email or name, then there or in the company, then
anywhere), then newest first (rowid, descending). SQLite reads the rows of the few
leads that may be in the first two tiers only, and takes every other hit from one
list per class, each cut at the page's end; these tests hold that plan to the order
computed in Python from every hit, on pages anywhere in the list, with every class
mixed through the rowids and with tier-0/1 leads stored before and after the rest.
PostgreSQL ranks in one statement; the same tests hold it to the same order.
"""

import json
import random
import re
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from state.db import make_engine, session_scope
from state.leadquery import search_leads
from state.leadsearch import match_sql, query_words, search_params
from state.migrate import upgrade
from state.store import upsert_leads

NOW = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
_WORDS = ["ann", "anna", "annex", "bob", "lee", "smith", "ada", "grace", "hopper"]


def _leads(count: int) -> list[dict[str, object]]:
    rng = random.Random(7)
    leads: list[dict[str, object]] = []
    for i in range(count):
        first = rng.choice(_WORDS)
        last = rng.choice(_WORDS)
        # Many leads share a shape (same words, same lengths): tied scores.
        name = f"{first.title()} {last.title()}" if i % 7 else first.title()
        lead: dict[str, object] = {
            "lead_id": f"r-{i}",
            "email": f"{rng.choice(_WORDS)}{i % 5 or ''}@{rng.choice(_WORDS)}.io",
            "name": name,
            "first_name": first.title(),
            "last_name": last.title(),
            "company": f"{rng.choice(_WORDS).title()} Corp" if i % 3 else None,
            "custom_fields": {"industry": rng.choice(_WORDS)} if i % 4 == 0 else {},
            "status": ("new", "contacted")[i % 2],
        }
        leads.append(lead)
    return leads


@pytest.fixture(name="store")
def store_fixture(db_url):
    engine = make_engine(db_url)
    upgrade(engine)
    leads = _leads(600)
    with session_scope(engine) as session:
        upsert_leads(session, origin="crm", leads=leads, now=NOW)
    yield engine
    engine.dispose()


def _tokens(*values: object) -> list[str]:
    # The index's tokens (unicode61 folds case; these leads are ASCII).
    return [w for v in values if v for w in re.findall(r"[^\W_]+", str(v).lower())]


def _expected(engine, q: str, status: str | None) -> list[str]:
    """Every hit, ranked in Python: tier, then field class, then newest first."""
    words = query_words(q)
    dialect = engine.dialect.name
    params = search_params(q, words, dialect)
    where = " AND lead.status = :status" if status else ""
    # Newest first: the order stored on SQLite; creation time, then id, on PostgreSQL.
    newest = "lead.rowid" if dialect == "sqlite" else "lead.created_at"
    sql = (
        f"SELECT lead.id, {newest} AS newest, lead.email, lead.name, lead.first_name,"
        f" lead.last_name, lead.company FROM lead WHERE {match_sql(dialect)}{where}"
    )
    with engine.connect() as conn:
        rows = conn.execute(sa.text(sql), {**params, "status": status}).all()
    whole = q.strip().lower()

    def tier(email: str | None, name: str | None) -> int:
        texts = [(t or "").lower() for t in (email, name)]
        if whole in texts:
            return 0
        return 1 if any(t.startswith(whole) for t in texts) else 2

    def holds(tokens: list[str]) -> bool:
        return all(any(t.startswith(w) for t in tokens) for w in words)

    def field_class(r) -> int:
        names = _tokens(r.email, r.name, r.first_name, r.last_name)
        if holds(names):
            return 0
        return 1 if holds([*names, *_tokens(r.company)]) else 2

    ranked = sorted(rows, key=lambda r: (r.newest, r.id), reverse=True)
    ranked.sort(key=lambda r: (tier(r.email, r.name), field_class(r)))  # stable
    return [r.id for r in ranked]


@pytest.mark.parametrize(
    "q",
    [
        "ann", "anna", "Ann Lee", "lee", "smith", "bob@", "ada", "corp", "an",
        "ann corp", "grace hopper corp", "lee hopper",
    ],
)  # fmt: skip
@pytest.mark.parametrize("status", [None, "new"])
def test_every_page_ranks_as_the_whole_list(store, q, status):
    expected = _expected(store, q, status)
    assert expected, "the query should find something"
    for limit in (1, 7, 25, 100):
        last = -(-len(expected) // limit)
        # The first pages, one in the middle, the last two and one past the end.
        for page in sorted({1, 2, 3, last // 2 + 1, last - 1, last, last + 1} - {0}):
            result = search_leads(store, q=q, status=status, page=page, limit=limit)
            items = [item["id"] for item in json.loads(result.data)]
            assert result.total == len(expected)
            assert items == expected[(page - 1) * limit : page * limit], (page, limit)


def test_tier_candidates_cover_leads_stored_first(store):
    # A lead whose name is the query ranks first even when it is the oldest hit, and
    # would come last in every class list: its tier comes from its row.
    extra = {
        "lead_id": "long-one",
        "email": None,
        "name": "Zed",
        "first_name": "Zed",
        "last_name": "Zed",
        "company": "Zed " * 30,
        "custom_fields": {"note": "zed " * 50},
    }
    short = [
        {"lead_id": f"zed-co-{i}", "name": f"Person {i}", "company": "Zed"}
        for i in range(5)
    ]
    with session_scope(store) as session:
        upsert_leads(session, origin="crm", leads=[extra], now=NOW)
        upsert_leads(session, origin="crm", leads=short, now=NOW)
    expected = _expected(store, "zed", None)
    assert len(expected) == 6
    for limit in (1, 2, 6):
        result = search_leads(store, q="zed", page=1, limit=limit)
        items = json.loads(result.data)
        assert items[0]["name"] == "Zed"
        assert [item["id"] for item in items] == expected[:limit]
