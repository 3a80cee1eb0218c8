"""state.pagesql: a page's JSON written in the statement's select list (in place) is
byte for byte the JSON written by an aggregate over the statement's rows; lists are
written in place exactly when their plan walks an index instead of sorting."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from state import leadread
from state.db import make_engine, session_scope
from state.leadquery import (
    LeadFilter,
    _list_sql,
    _shape_and_params,
    get_lead,
    list_leads,
    search_leads,
)
from state.leadread import LEAD_COLUMNS_SQL, reading
from state.leadsearch import query_words, search_params, search_sql
from state.migrate import upgrade
from state.pagesql import page_json_sql
from state.store import upsert_leads

NOW = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)


@pytest.fixture(name="engine")
def engine_fixture(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    upgrade(engine)
    leads = [
        {
            "lead_id": f"L{n}",
            "email": f"ada{n}@example.com",
            "name": f"Ada Lovelace {n}",
            "company": "Analytical Engines" if n % 2 else None,
            "score": n,
            "tags": ["vip", "q\u00e9bec"] if n % 3 else [],
            "custom_fields": {"team_size": n, "note": "say hi"} if n % 4 else {},
        }
        for n in range(30)
    ]
    with session_scope(engine) as session:
        upsert_leads(session, origin="crm", leads=leads, now=NOW)
    yield engine
    engine.dispose()


def _both(engine, sql, params, *, search):
    rows = []
    with engine.connect() as conn:
        for in_place in (True, False):
            statement = page_json_sql(sql, search=search, in_place=in_place)
            rows.append(conn.exec_driver_sql(statement, params).one())
    return rows


def test_a_search_page_in_place_is_the_aggregates_page(engine):
    _, page = search_sql("sqlite", status=False, columns=LEAD_COLUMNS_SQL)
    for q, offset in (("ada", 0), ("ada lovelace", 25), ("analytical", 5)):
        params = search_params(q, query_words(q), "sqlite")
        params.update(limit=25, offset=offset)
        in_place, aggregate = _both(engine, page, params, search=True)
        assert in_place == aggregate
        assert in_place[1] == 1  # clean: SQLite wrote it


def test_an_unclean_row_is_seen_in_place_too(engine):
    with engine.begin() as conn:  # a score stored as a fraction prints differently
        conn.execute(sa.text("UPDATE lead SET score = 1.5 WHERE lead_id = 'L27'"))
    _, page = search_sql("sqlite", status=False, columns=LEAD_COLUMNS_SQL)
    params = search_params("ada", ["ada"], "sqlite")
    params.update(limit=25, offset=0)
    in_place, aggregate = _both(engine, page, params, search=True)
    assert in_place == aggregate
    assert in_place[1] == 0  # the page takes the row path
    found = search_leads(engine, q="ada", limit=30).data
    assert b'"score":1.5' in found


def test_the_api_search_and_get_read_in_place(engine):
    found = search_leads(engine, q="lovelace", limit=5).data
    with engine.connect() as conn:
        lead_id = conn.exec_driver_sql("SELECT id FROM lead WHERE lead_id = 'L7'")
        lead_id = lead_id.scalar_one()
    got = get_lead(engine, lead_id)
    _, page = search_sql("sqlite", status=False, columns=LEAD_COLUMNS_SQL)
    sql = page_json_sql(page, search=True, in_place=True)
    assert "AS obj" in sql and sql.count("json_object(") == 1
    assert got.startswith(b'{"id":"') and b'"lead_id":"L7"' in got
    assert found.count(b'"match_field":"name"') == 5


@pytest.mark.parametrize(
    ("sort_by", "order"), [("created_at", "desc"), ("updated_at", "asc")]
)
def test_a_list_page_in_place_is_the_aggregates_page(engine, sort_by, order):
    shape, params = _shape_and_params(LeadFilter(), "sqlite", sort_by, order)
    _, page = _list_sql(shape)
    for offset in (0, 7, 25, 29):
        page_params = {**params, "limit": 7, "offset": offset}
        in_place, aggregate = _both(engine, page, page_params, search=False)
        assert in_place == aggregate
        assert in_place[0].count('"lead_id":') == min(7, 30 - offset)


def test_lists_are_written_in_place_only_when_their_plan_walks_an_index(engine):
    walked, _ = _shape_and_params(LeadFilter(), "sqlite", "created_at", "desc")
    sorted_, _ = _shape_and_params(LeadFilter(status="new"), "sqlite", "email", "asc")
    walk_sql, sort_sql = _list_sql(walked)[1], _list_sql(sorted_)[1]
    params = {"filter_status": "new", "limit": 5, "offset": 0}
    with reading(engine, snapshot=False) as reader:
        assert reader.sorts(walk_sql, params) is False
        assert reader.sorts(sort_sql, params) is True
    leadread._SORTS.clear()
    found = list_leads(engine, filters=LeadFilter(), limit=5).data
    assert dict(leadread._SORTS) == {walk_sql: False}  # asked once, then in place
    with engine.connect() as conn:
        statement = page_json_sql(walk_sql, search=False, in_place=False)
        expected = conn.exec_driver_sql(statement, params).one()[0]
    assert found == expected.encode()
