"""Pages whose JSON SQLite writes: the same bytes as the row-by-row path, or that path.

The route answers with ``Reader.page_json``; these tests hold its two ways to the same
bytes for every kind of stored value, and check which way each one takes.
"""

import json
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from state.db import make_engine, session_scope
from state.leadread import LEAD_COLUMNS_SQL, reading, to_json
from state.leadsearch import match_field, query_words, search_params, search_sql
from state.migrate import upgrade
from state.store import upsert_leads

NOW = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
_ONE = f"SELECT {LEAD_COLUMNS_SQL} FROM lead WHERE lead.id = :id"

# Values the store writes: SQLite writes their page.
PLAIN = {
    "ascii": {"custom_fields": {"industry": "Retail"}, "tags": ["a", "b"]},
    "unicode": {"name": "Zoë Ørsted 😀", "custom_fields": {"industry": "Ünïcode"}},
    "quotes": {"name": 'say "hi" \\ \t\n\x1f', "company": "\u2028<&>/"},
    "numbers": {
        "score": 0,
        "custom_fields": {"team_size": -3, "budget": 1500.25, "ratio": 0.1 + 0.2},
    },
    "dates": {"custom_fields": {"signed_up": "2024-01-05T10:00:00-05:00"}},
    "nested": {"custom_fields": {"interests": ["x", 1, True, None, {"k": [2]}]}},
    "empty": {"tags": [], "custom_fields": {}, "email": None, "score": None},
}
# Stored text the row path re-writes: their pages take the row path.
ODD = {
    "tags null": {"tags": "null"},
    "custom null": {"custom_fields": "null"},
    "spaced": {"custom_fields": '{"a": "\\u00e9"}'},
    "exponent": {"custom_fields": '{"a": 1e+20, "b": 1E5}'},
    "negative zero": {"custom_fields": '{"a": -0}'},
    "long integer": {"custom_fields": '{"a": 123456789012345678901234567890}'},
    "not json": {"tags": "[NaN]"},  # json.loads reads it, SQLite does not
    "real score": {"score": 2.5},
    "short time": {"created_at": "2024-01-01 00:00:00"},
    "zoned time": {"updated_at": "2024-01-01T00:00:00+02:00"},
}


@pytest.fixture(name="store", scope="module")
def store_fixture(tmp_path_factory):
    """A SQLite store with one lead per case; the cases' names are their lead_ids."""
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('pj') / 's.db'}")
    upgrade(engine)
    leads = [
        {"lead_id": case, "email": f"{n}@example.com", "name": f"Case {n}", **fields}
        for n, (case, fields) in enumerate(PLAIN.items())
    ]
    leads += [
        {"lead_id": case, "email": f"odd{n}@example.com", "name": f"Odd {n}"}
        for n, case in enumerate(ODD)
    ]
    with session_scope(engine) as session:
        upsert_leads(session, origin="crm", leads=leads, now=NOW)
    with engine.begin() as conn:
        for case, stored in ODD.items():
            (column, text), *_ = stored.items()
            conn.execute(
                sa.text(f"UPDATE lead SET {column} = :v WHERE lead_id = :id"),
                {"v": text, "id": case},
            )
    yield engine
    engine.dispose()


def _store_id(engine, case):
    with engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT id FROM lead WHERE lead_id = :id"), {"id": case}
        ).scalar_one()


@pytest.mark.parametrize("case", [*PLAIN, *ODD])
def test_a_lead_reads_the_same_both_ways(store, case):
    params = {"id": _store_id(store, case)}
    with reading(store) as reader:
        # in place (as a lead by id is read) and by an aggregate (as a list page is)
        written = [
            reader._written_by_sqlite(_ONE, params, None, p) for p in (True, False)
        ]
        by_rows = to_json(reader.leads(_ONE, params))
        answered = reader.page_json(_ONE, params, in_place=True)
    assert answered == by_rows
    if case in PLAIN:
        assert written == [by_rows, by_rows]
    else:
        assert written == [None, None]


def _search(reader, q):
    words = query_words(q)
    _, page_sql = search_sql("sqlite", status=False, columns=LEAD_COLUMNS_SQL)
    params = {**search_params(q, words, "sqlite"), "limit": 100, "offset": 0}
    rows = reader.leads(page_sql, params)
    by_rows = to_json([{**r, "match_field": match_field(r, words)} for r in rows])
    written = reader._written_by_sqlite(page_sql, params, words, True)
    return written, by_rows, len(rows)


def test_search_pages_read_the_same_both_ways(store):
    with reading(store) as reader:
        by_sqlite, by_rows, found = _search(reader, "case")  # plain, by their names
        assert found == len(PLAIN) - 2
        assert by_sqlite == by_rows
        by_sqlite, by_rows, found = _search(reader, "retail")  # a custom field
        assert found == 1
        assert by_sqlite == by_rows
        assert b'"match_field":"custom_fields.industry"' in by_sqlite
        by_sqlite, by_rows, found = _search(reader, "nothing")
        assert (by_sqlite, by_rows, found) == (b"[]", b"[]", 0)
        by_sqlite, _, found = _search(reader, "odd")  # any odd row: the row path
        assert found == len(ODD)
        assert by_sqlite is None


def test_a_separator_in_stored_text_takes_the_row_path(store):
    # Raw control characters are not JSON, so the store never writes them; were one
    # there, SQLite's page could not be split into leads.
    lead_id = _store_id(store, "ascii")
    with store.begin() as conn:
        conn.execute(
            sa.text("UPDATE lead SET tags = :v WHERE id = :id"),
            {"v": '["a\x1eb"]', "id": lead_id},
        )
    try:
        with reading(store) as reader:
            for in_place in (True, False):
                found = reader._written_by_sqlite(_ONE, {"id": lead_id}, None, in_place)
                assert found is None
    finally:
        with store.begin() as conn:
            conn.execute(
                sa.text('UPDATE lead SET tags = \'["a","b"]\' WHERE id = :id'),
                {"id": lead_id},
            )


def test_a_page_keeps_the_order_of_its_statement(store):
    page = (
        f"SELECT {LEAD_COLUMNS_SQL} FROM lead WHERE lead.lead_id IN"
        " ('ascii', 'unicode', 'numbers', 'dates', 'nested')"
        " ORDER BY lead.lead_id DESC LIMIT :limit OFFSET :offset"
    )
    with reading(store) as reader:
        data = reader.page_json(page, {"limit": 4, "offset": 1})
        assert data == to_json(reader.leads(page, {"limit": 4, "offset": 1}))
    assert [lead["lead_id"] for lead in json.loads(data)] == [
        "numbers",
        "nested",
        "dates",
        "ascii",
    ]
