"""The read paths' SQL and row conversion: the same leads as the ORM would give."""

import json

import pytest
import sqlalchemy as sa

from service.api.errors import dumps
from service.api.totals import TotalCache
from state.db import make_engine
from state.leadquery import LeadFilter, _list_sql, _shape_and_params, prefer_scan
from state.leadread import LEAD_COLUMNS
from state.migrate import upgrade
from state.models import CONTENT_FIELDS
from state.pagesql import page_json_sql
from state.reads import lead_row_to_dict
from state.store import LEAD

from .conftest import T0


def _orm_view(db, lead_id):
    """The lead as SQLAlchemy's typed columns and ``lead_row_to_dict`` read it."""
    with db.connect() as conn:
        row = conn.execute(sa.select(LEAD).where(LEAD.c.id == lead_id)).mappings().one()
    return json.loads(dumps(lead_row_to_dict(row)))


def test_columns_are_the_contract_fields_in_order():
    assert (
        "id",
        "origin",
        "lead_id",
        *CONTENT_FIELDS,
        "created_at",
        "updated_at",
        "source_updated_at",
        "deleted_at",
    ) == LEAD_COLUMNS


def test_get_list_and_search_show_leads_as_the_orm_reads_them(api):
    lead = api.create(
        name="Zoë Ørsted",
        phone="+14155550123",
        tags=["a", "b"],
        custom_fields={"industry": "Ünïcode", "team_size": 3, "newsletter": True},
    )
    api.clock.advance(microseconds=123)
    plain = api.create(name="Plain")
    for one in (lead, plain):
        expected = _orm_view(api.db, one["id"])
        assert api.request("GET", f"/v1/leads/{one['id']}").json() == expected
        listed = api.request("GET", "/v1/leads").json()["data"]
        assert next(x for x in listed if x["id"] == one["id"]) == expected
    found = api.request("GET", "/v1/leads/search", params={"q": "zo"}).json()
    assert found["data"] == [{**_orm_view(api.db, lead["id"]), "match_field": "name"}]


def test_unusual_stored_values_read_as_the_orm_reads_them(api, db_url):
    if not db_url.startswith("sqlite"):
        pytest.skip("PostgreSQL types the columns: no such values there")
    lead = api.create(name="Odd")
    with api.db.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE lead SET tags = 'null',"
                " custom_fields = '{\"team_size\": 123456789012345678901234567890}',"
                " created_at = '2024-01-01 00:00:00',"
                " updated_at = '2024-01-01 00:00:00.000000',"
                " source_updated_at = '2024-01-02 03:04:05.000006' WHERE id = :id"
            ),
            {"id": lead["id"]},
        )
    got = json.loads(api.request("GET", f"/v1/leads/{lead['id']}").content)
    assert got == _orm_view(api.db, lead["id"])
    assert got["tags"] == []
    assert got["custom_fields"] == {"team_size": 123456789012345678901234567890}
    assert got["created_at"] == got["updated_at"] == "2024-01-01T00:00:00Z"
    assert got["source_updated_at"] == "2024-01-02T03:04:05.000006Z"
    found = api.request("GET", "/v1/leads/search", params={"q": "odd"}).content
    assert json.loads(found)["data"] == [{**got, "match_field": "name"}]
    listed = api.request("GET", "/v1/leads").content
    assert json.loads(listed)["data"] == [got]


def test_whole_query_ranking_treats_like_wildcards_as_text(api):
    # "a_b" must not rank "axb ..." as starting with it, nor "100%" rank "100x".
    looks_like = api.create(name="axb b")
    starts_with = api.create(name="a_b c")
    ids = [h["id"] for h in api.request("GET", "/v1/leads/search?q=a_b").json()["data"]]
    assert ids == [starts_with["id"], looks_like["id"]]
    prefix = api.create(name="100x")
    exact = api.create(name="100%")
    ids = [
        h["id"] for h in api.request("GET", "/v1/leads/search?q=100%25").json()["data"]
    ]
    assert ids == [exact["id"], prefix["id"]]


def test_whole_query_ranking_with_missing_names(api):
    # A lead without a name starts with nothing: it ranks by the field holding the
    # word (its company), after an older one whose name holds it.
    relevant = api.create(name="Alpha Zeta Zeta")
    nameless = api.create(company="Zeta Corp")
    prefix = api.create(name="Zetas")
    exact = api.create(name="Zeta")
    found = api.request("GET", "/v1/leads/search?q=zeta").json()["data"]
    assert [h["id"] for h in found] == [
        exact["id"],
        prefix["id"],
        relevant["id"],
        nameless["id"],
    ]


def test_whole_query_ranking_folds_case_like_before(api, db_url):
    if not db_url.startswith("sqlite"):
        pytest.skip("PostgreSQL's 'simple' search keeps diacritics")
    accented = api.create(name="École Normale")
    lower = api.create(name="école normale")
    upper_ascii = api.create(name="ECOLE", email="ecole@example.com")
    ids = [
        h["id"] for h in api.request("GET", "/v1/leads/search?q=ecole").json()["data"]
    ]
    assert ids[0] == upper_ascii["id"]  # ASCII case folds: an exact match
    assert set(ids[1:]) == {accented["id"], lower["id"]}
    ids = [
        h["id"] for h in api.request("GET", "/v1/leads/search?q=école").json()["data"]
    ]
    assert ids[0] == lower["id"]  # SQLite's lower() and LIKE fold ASCII only


# The list statements on SQLite, as EXPLAIN QUERY PLAN shows them (private helpers:
# the plan is what is under test).
PLANS = [
    ({}, "created_at", "desc", "ix_lead_created_at_id"),
    ({}, "updated_at", "asc", "ix_lead_updated_at_id"),
    ({"updated_since": T0}, "updated_at", "asc", "ix_lead_updated_at_id"),
    ({"created_after": T0}, "created_at", "desc", "ix_lead_created_at_id"),
    ({"status": "new"}, "created_at", "desc", "ix_lead_created_at_id"),
    ({"origin": "crm", "source": "web"}, "created_at", "desc", "ix_lead_created_at_id"),
    ({"q": "ada"}, "created_at", "desc", "ix_lead_created_at_id"),
    ({"updated_since": T0}, "created_at", "asc", "ix_lead_created_at_id"),
]


@pytest.fixture(name="sqlite_store", scope="module")
def sqlite_store_fixture(tmp_path_factory):
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('plans') / 's.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.mark.parametrize(("filters", "sort_by", "order", "index"), PLANS)
def test_a_scanned_page_walks_the_sort_index(
    sqlite_store, filters, sort_by, order, index
):
    shape, params = _shape_and_params(LeadFilter(**filters), "sqlite", sort_by, order)
    _, page_sql = _list_sql(shape, scan=True)
    params.update(limit=25, offset=0)
    # The statement as it runs: the page inside the aggregate that writes its JSON.
    statement = page_json_sql(page_sql, search=False, in_place=False)
    with sqlite_store.connect() as conn:
        plan = [
            row[3]
            for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params)
        ]
    assert any(f"USING INDEX {index}" in step for step in plan), plan
    assert not any("TEMP B-TREE" in step for step in plan), plan


def test_when_to_walk_the_sort_index():
    assert prefer_scan(rows=100_000, total=20_000, end=25)  # status=new: 1 in 5
    assert not prefer_scan(rows=100_000, total=100, end=25)  # a rare value
    assert not prefer_scan(rows=100_000, total=0, end=25)
    assert not prefer_scan(rows=100_000, total=20_000, end=20_000)  # the last pages


def test_both_ways_to_a_filtered_page_give_the_same_leads(api):
    made = [
        api.create(status="new" if n % 6 else "lost", score=n % 7) for n in range(60)
    ]
    new = [m for m in made if m["status"] == "new"]
    by_score = sorted(new, key=lambda m: (m["score"], m["id"]), reverse=True)
    for page in (1, 2, 3):
        got = api.request(
            "GET",
            "/v1/leads",
            params={"status": "new", "sort_by": "score", "limit": 20, "page": page},
        ).json()
        expected = by_score[(page - 1) * 20 : page * 20]
        assert [x["id"] for x in got["data"]] == [x["id"] for x in expected]
        assert got["pagination"]["total"] == len(new)
    newest = sorted(new, key=lambda m: (m["created_at"], m["id"]), reverse=True)
    got = api.request("GET", "/v1/leads", params={"status": "new", "limit": 30}).json()
    assert [x["id"] for x in got["data"]] == [x["id"] for x in newest[:30]]


def test_a_request_reads_the_store_version_once(api, db_url, monkeypatch):
    if not db_url.startswith("sqlite"):
        pytest.skip("PostgreSQL has no store version: nothing is cached")
    # The key check and the count share one PRAGMA data_version (after a commit the
    # key is verified again, which reads it afresh); a commit shows in the next total.
    calls = []
    version = TotalCache.version

    def counted(self):
        calls.append(1)
        return version(self)

    monkeypatch.setattr(TotalCache, "version", counted)
    for expected in (1, 2):
        api.create(name=f"Lead {expected}")
        for _ in range(2):
            calls.clear()
            got = api.request("GET", "/v1/leads", params={"status": "new"}).json()
            assert got["pagination"]["total"] == expected
        assert len(calls) == 1
