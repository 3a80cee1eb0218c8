"""Full-text search: prefix words, ranking, match_field, hidden tombstones."""

import pytest

from state.db import session_scope
from state.leadsearch import match_field, query_words, rebuild_search_index
from state.store import upsert_leads

from .conftest import T0


def _search(api, q, **params):
    response = api.request("GET", "/v1/leads/search", params={"q": q, **params})
    assert response.status_code == 200, response.text
    return response.json()


def test_ranking_puts_exact_then_prefix_email_and_name_first(api):
    company = api.create(email="zed@example.com", name="Zed", company="Annex Corp")
    custom = api.create(
        email="yan@example.com", name="Yan", custom_fields={"industry": "Ann Arbor"}
    )
    name_prefix = api.create(email="bob@example.com", name="Annabel Smith")
    exact_name = api.create(email="carl@example.com", name="Ann")
    email_prefix = api.create(email="ann.lee@example.com", name="Lee")
    result = _search(api, "ann")
    hits = [(h["id"], h["match_field"]) for h in result["data"]]
    assert hits[0] == (exact_name["id"], "name")
    assert set(hits[1:3]) == {
        (name_prefix["id"], "name"),
        (email_prefix["id"], "email"),
    }
    # The company before the custom field, though stored first.
    assert hits[3:] == [
        (company["id"], "company"),
        (custom["id"], "custom_fields.industry"),
    ]
    assert result["pagination"]["total"] == 5


def test_hits_rank_by_the_fields_holding_every_word_then_newest_first(api):
    # Stored oldest first: custom field, company, name and email, then again.
    def batch(n):
        return [
            api.create(name=f"P{n}a", custom_fields={"industry": "Kappa Mining"}),
            api.create(name=f"P{n}b", company="Kappa Mining"),
            api.create(name=f"Mia Kappa{n}", company="Mining Co"),
            api.create(email=f"m{n}.kappa@mining.io", name=f"P{n}d"),
        ]

    old, new = batch(1), batch(2)
    ids = [h["id"] for h in _search(api, "kappa")["data"]]
    # Every word in the email or name, then in the company, then anywhere; the
    # newest first within each.
    order = [new[3], new[2], old[3], old[2], new[1], old[1], new[0], old[0]]
    assert ids == [lead["id"] for lead in order]
    # Two words: both in the email; one in the name or company and the other in the
    # company; both in a custom field.
    ids = [h["id"] for h in _search(api, "kappa mining")["data"]]
    order = [new[3], old[3], new[2], new[1], old[2], old[1], new[0], old[0]]
    assert ids == [lead["id"] for lead in order]
    hits = _search(api, "kappa mining", limit=3, page=2)["data"]
    assert [h["id"] for h in hits] == [lead["id"] for lead in order[3:6]]


def test_exact_email_ranks_first_and_every_word_must_match(api):
    other = api.create(email="ada.l@example.com", name="Ada Lovelace")
    exact = api.create(email="ada@example.com", name="Countess")
    data = _search(api, "ada@example.com")["data"]
    assert [h["id"] for h in data] == [exact["id"], other["id"]]
    assert data[0]["match_field"] == "email"
    assert [h["id"] for h in _search(api, "ada lovel")["data"]] == [other["id"]]
    assert _search(api, "ada nobody")["data"] == []


def test_search_hides_deleted_filters_status_and_paginates(api):
    keep = api.create(name="Grace Hopper", status="qualified")
    gone = api.create(name="Grace Kelly")
    api.create(name="Grace Jones", status="lost")
    api.request("DELETE", f"/v1/leads/{gone['id']}")
    assert [h["id"] for h in _search(api, "grace", status="qualified")["data"]] == [
        keep["id"]
    ]
    page = _search(api, "grace", limit=1, page=2)
    assert page["pagination"] == {
        "page": 2,
        "limit": 1,
        "total": 2,
        "total_pages": 2,
        "has_more": False,
    }
    assert len(page["data"]) == 1


def test_updates_and_synced_leads_are_searchable(api):
    lead = api.create(name="Old Name")
    api.request("PATCH", f"/v1/leads/{lead['id']}", json={"name": "Brand New"})
    assert _search(api, "old name")["data"] == []
    assert [h["id"] for h in _search(api, "brand")["data"]] == [lead["id"]]
    with session_scope(api.db) as s:
        upsert_leads(
            s,
            origin="crm",
            leads=[
                {
                    "lead_id": "1",
                    "company": "Initech",
                    "custom_fields": {"industry": "Software"},
                }
            ],
            now=T0,
        )
    hits = _search(api, "softw")["data"]
    assert [(h["lead_id"], h["match_field"]) for h in hits] == [
        ("1", "custom_fields.industry")
    ]
    with session_scope(api.db) as s:
        upsert_leads(
            s, origin="crm", leads=[{"lead_id": "1", "company": "Initrode"}], now=T0
        )
    assert _search(api, "initech")["data"] == []
    assert [h["lead_id"] for h in _search(api, "initrode")["data"]] == ["1"]


def test_q_filters_the_list_too(api):
    a = api.create(name="Alan Turing")
    api.create(name="Kurt Godel")
    listed = api.request("GET", "/v1/leads", params={"q": "turing"}).json()
    assert [x["id"] for x in listed["data"]] == [a["id"]]


def test_short_query_is_rejected(api):
    response = api.request("GET", "/v1/leads/search", params={"q": "a"})
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["field"] == "q"
    assert _search(api, "--")["data"] == []


def test_rebuild_keeps_search_working(api):
    lead = api.create(name="Rebuilt Lead")
    with session_scope(api.db) as s:
        rebuild_search_index(s)
    assert [h["id"] for h in _search(api, "rebuilt")["data"]] == [lead["id"]]


@pytest.mark.parametrize(
    ("lead", "q", "expected"),
    [
        ({"email": "jo@x.io", "name": "Jo"}, "jo", "email"),
        ({"email": "a@x.io", "first_name": "José"}, "jose", "name"),
        ({"email": "a@x.io", "company": "Acme", "name": "Acme Smith"}, "acme", "name"),
        (
            {"email": "a@x.io", "custom_fields": {"interests": ["chess", "go"]}},
            "chess",
            "custom_fields.interests",
        ),
        ({"email": "a@x.io", "name": "Jo", "company": "Big Co"}, "jo big", "name"),
    ],
)
def test_match_field(lead, q, expected):
    assert match_field(lead, query_words(q)) == expected
