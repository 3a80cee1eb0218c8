"""Single-lead endpoints, list filters, sorting, pagination and validation errors."""

from datetime import timedelta

import pytest

from state.db import session_scope
from state.store import upsert_leads

from .conftest import T0


def test_create_normalises_and_accepts_camel_case(api):
    response = api.request(
        "POST",
        "/v1/leads",
        json={
            "email": " Ada@Example.COM ",
            "firstName": "Ada",
            "phone": "+1 415 555 0123",
            "assignedTo": "grace",
            "customFields": {"industry": "Math", "teamSize": "12"},
        },
    )
    assert response.status_code == 201
    lead = response.json()
    assert response.headers["location"] == f"/v1/leads/{lead['id']}"
    assert lead["id"].startswith("lead_")
    assert (lead["origin"], lead["lead_id"]) == ("api", lead["id"])
    assert lead["email"] == "ada@example.com"
    assert lead["first_name"] == "Ada"
    assert lead["phone"] == "+14155550123"
    assert lead["owner"] == "grace"
    assert (lead["status"], lead["source"]) == ("new", "api")
    assert lead["custom_fields"] == {"industry": "Math", "team_size": 12}
    assert lead["created_at"] == lead["updated_at"] == "2024-01-01T00:00:00Z"
    assert lead["deleted_at"] is None
    assert api.request("GET", f"/v1/leads/{lead['id']}").json() == lead


def test_create_requires_a_unique_email_among_live_leads(api):
    first = api.create(email="dup@example.com")
    response = api.request("POST", "/v1/leads", json={"email": "DUP@example.com"})
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "conflict"
    assert error["existing_lead_id"] == first["id"]
    assert error["details"] == [
        {"field": "email", "message": "already used by another live lead"}
    ]
    api.request("DELETE", f"/v1/leads/{first['id']}")
    assert (
        api.request("POST", "/v1/leads", json={"email": "dup@example.com"}).status_code
        == 201
    )
    missing = api.request("POST", "/v1/leads", json={"name": "No Email"})
    assert missing.status_code == 422
    assert missing.json()["error"]["details"] == [
        {"field": "email", "message": "Field required"}
    ]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"email": "a@example.com", "phone": "555-0100"}, "phone"),
        ({"email": "a@example.com", "phone": "+1 2"}, "phone"),
        ({"email": "a@example.com", "status": "hot"}, "status"),
        ({"email": "a@example.com", "score": "many"}, "score"),
        ({"email": "a@example.com", "tags": "vip"}, "tags"),
        (
            {"email": "a@example.com", "custom_fields": {"color": "red"}},
            "custom_fields.color",
        ),
        (
            {"email": "a@example.com", "customFields": {"teamSize": "lots"}},
            "customFields.teamSize",  # named as the client sent it
        ),
        ({"email": "a@example.com", "nickname": "x"}, "nickname"),
    ],
)
def test_invalid_bodies_are_422_naming_the_field(api, body, field):
    response = api.request("POST", "/v1/leads", json=body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "unprocessable"
    assert [d["field"] for d in error["details"]] == [field]


def test_unknown_custom_field_message_names_it(api):
    response = api.request(
        "POST",
        "/v1/leads",
        json={"email": "a@example.com", "custom_fields": {"color": 1}},
    )
    assert response.json()["error"]["details"][0]["message"] == (
        "unknown custom field 'color' (declare it under lead_fields)"
    )


def test_malformed_json_and_bad_parameters_are_400(api):
    bad = api.request(
        "POST",
        "/v1/leads",
        content=b'{"email": ',
        headers={"Content-Type": "application/json"},
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_request"
    assert bad.json()["error"]["details"][0]["field"] == "body"
    for query in (
        "page=0",
        "limit=0",
        "limit=101",
        "sort_by=name",
        "status=hot",
        "updated_since=yesterday",
    ):
        response = api.request("GET", f"/v1/leads?{query}")
        assert response.status_code == 400, query
        assert response.json()["error"]["code"] == "invalid_request"
        assert response.json()["error"]["details"][0]["field"] == query.split("=")[0]


def test_body_over_the_limit_is_413(api):
    big = {"email": "a@example.com", "name": "x" * 1_100_000}
    response = api.request("POST", "/v1/leads", json=big)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "invalid_request"


def test_patch_changes_only_sent_fields_and_merges_custom_fields(api):
    lead = api.create(
        name="Ada", company="Old", custom_fields={"industry": "Math", "team_size": 3}
    )
    api.clock.advance(hours=1)
    response = api.request(
        "PATCH",
        f"/v1/leads/{lead['id']}",
        json={
            "company": "New",
            "customFields": {"teamSize": 4, "budget": 10.5, "industry": None},
        },
    )
    assert response.status_code == 200
    patched = response.json()
    assert patched["name"] == "Ada"
    assert patched["company"] == "New"
    assert patched["custom_fields"] == {"team_size": 4, "budget": 10.5}
    assert patched["updated_at"] == "2024-01-01T01:00:00Z"
    api.clock.advance(hours=1)
    same = api.request(
        "PATCH", f"/v1/leads/{lead['id']}", json={"company": "New"}
    ).json()
    assert same["updated_at"] == "2024-01-01T01:00:00Z"  # no change, no new updated_at
    other = api.create()
    clash = api.request(
        "PATCH", f"/v1/leads/{other['id']}", json={"email": lead["email"]}
    )
    assert clash.status_code == 409
    assert clash.json()["error"]["existing_lead_id"] == lead["id"]
    assert api.request("PATCH", "/v1/leads/lead_nope", json={}).status_code == 404


def test_delete_is_a_tombstone(api):
    lead = api.create()
    api.clock.advance(minutes=5)
    assert api.request("DELETE", f"/v1/leads/{lead['id']}").status_code == 204
    for method in ("GET", "DELETE"):
        gone = api.request(method, f"/v1/leads/{lead['id']}")
        assert gone.status_code == 404
        assert gone.json()["error"]["code"] == "not_found"
    listed = api.request("GET", "/v1/leads?include_deleted=true").json()["data"]
    assert listed[0]["deleted_at"] == "2024-01-01T00:05:00Z"
    assert api.request("GET", "/v1/leads").json()["pagination"]["total"] == 0


def test_upsert_matches_by_email_or_phone(api):
    first = api.request(
        "POST",
        "/v1/leads/upsert",
        json={"email": "u@example.com", "phone": "+14155550100"},
    )
    assert first.status_code == 201
    assert first.json()["created"] is True
    lead_id = first.json()["lead"]["id"]
    by_phone = api.request(
        "POST", "/v1/leads/upsert", json={"phone": "+1 415 555 0100", "company": "Acme"}
    )
    assert by_phone.status_code == 200
    assert by_phone.json()["created"] is False
    assert by_phone.json()["lead"]["id"] == lead_id
    assert by_phone.json()["lead"]["company"] == "Acme"
    only_email = api.request(
        "POST",
        "/v1/leads/upsert",
        json={"phone": "+14155550100", "matchBy": "email", "email": "v@example.com"},
    )
    assert only_email.json()["created"] is True
    missing = api.request(
        "POST", "/v1/leads/upsert", json={"match_by": "phone", "email": "w@example.com"}
    )
    assert missing.status_code == 422
    assert (
        missing.json()["error"]["details"][0]["message"] == "match_by=phone needs phone"
    )


def test_tags_add_keeps_existing_and_remove(api):
    lead = api.create(tags=["a"])
    added = api.request(
        "POST", f"/v1/leads/{lead['id']}/tags", json={"tags": ["b", "a", "c"]}
    )
    assert added.json()["tags"] == ["a", "b", "c"]
    removed = api.request("DELETE", f"/v1/leads/{lead['id']}/tags/b")
    assert removed.json()["tags"] == ["a", "c"]
    again = api.request("DELETE", f"/v1/leads/{lead['id']}/tags/b")
    assert again.status_code == 200
    assert again.json()["tags"] == ["a", "c"]
    empty = api.request("POST", f"/v1/leads/{lead['id']}/tags", json={"tags": []})
    assert empty.status_code == 422


def _seed(api, n=7):
    leads = []
    for i in range(n):
        api.clock.now = T0 + timedelta(minutes=i)
        leads.append(
            api.create(
                status="qualified" if i % 2 else "new",
                source="web" if i < 3 else "referral",
                score=i * 10 if i != 3 else None,
                tags=["vip"] if i in (1, 4) else [],
                owner="grace" if i == 2 else None,
            )
        )
    return leads


def test_list_pagination_edges(api):
    leads = _seed(api, 7)
    page = api.request("GET", "/v1/leads?limit=3&page=3").json()
    assert [x["id"] for x in page["data"]] == [leads[0]["id"]]
    assert page["pagination"] == {
        "page": 3,
        "limit": 3,
        "total": 7,
        "total_pages": 3,
        "has_more": False,
    }
    first = api.request("GET", "/v1/leads?limit=3").json()
    assert first["pagination"]["has_more"] is True
    assert [x["id"] for x in first["data"]] == [x["id"] for x in leads[::-1][:3]]
    beyond = api.request("GET", "/v1/leads?limit=3&page=4").json()
    assert beyond["data"] == []
    assert beyond["pagination"]["has_more"] is False
    full = api.request("GET", "/v1/leads?limit=100").json()
    assert len(full["data"]) == 7
    assert full["pagination"]["total_pages"] == 1
    assert api.request("GET", "/v1/leads?limit=101").status_code == 400


def test_list_filters_and_sorting(api):
    leads = _seed(api, 7)

    def ids(query):
        response = api.request("GET", f"/v1/leads?{query}")
        assert response.status_code == 200, response.text
        return [x["id"] for x in response.json()["data"]]

    def pick(*indexes):
        return [leads[i]["id"] for i in indexes]

    assert ids("status=qualified&sort_order=asc") == pick(1, 3, 5)
    assert ids("source=web&sortOrder=asc") == pick(0, 1, 2)
    assert ids("tag=vip&sort_order=asc") == pick(1, 4)
    assert ids("owner=grace") == pick(2)
    assert ids("assignedTo=grace") == pick(2)
    assert ids("origin=api&limit=2") == pick(6, 5)
    assert ids("origin=crm") == []
    assert ids("created_after=2024-01-01T00:04:00Z&sort_order=asc") == pick(5, 6)
    assert ids("createdBefore=2024-01-01T00:02:00Z&sortOrder=asc") == pick(0, 1)
    assert ids("sort_by=score&sort_order=desc") == pick(6, 5, 4, 2, 1, 0, 3)
    assert ids("sortBy=score&sortOrder=asc") == pick(0, 1, 2, 4, 5, 6, 3)


def test_updated_since_returns_changes_and_tombstones_oldest_first(api):
    leads = _seed(api, 3)
    api.clock.now = T0 + timedelta(hours=1)
    api.request("DELETE", f"/v1/leads/{leads[0]['id']}")
    api.clock.now = T0 + timedelta(hours=2)
    api.request("PATCH", f"/v1/leads/{leads[1]['id']}", json={"title": "CTO"})
    response = api.request("GET", "/v1/leads?updated_since=2024-01-01T00:30:00Z").json()
    assert [x["id"] for x in response["data"]] == [leads[0]["id"], leads[1]["id"]]
    assert response["data"][0]["deleted_at"] == "2024-01-01T01:00:00Z"
    assert response["data"][1]["deleted_at"] is None
    assert (
        api.request("GET", "/v1/leads?updatedSince=2024-01-01T02:00:00Z").json()[
            "pagination"
        ]["total"]
        == 1
    )


def test_synced_leads_are_listed_with_their_origin(api):
    with session_scope(api.db) as s:
        upsert_leads(
            s,
            origin="hubspot",
            leads=[{"lead_id": "h1", "email": "h@example.com"}],
            now=T0,
        )
    data = api.request("GET", "/v1/leads?origin=hubspot").json()["data"]
    assert [
        (x["origin"], x["lead_id"], x["tags"], x["custom_fields"]) for x in data
    ] == [("hubspot", "h1", [], {})]


def test_fields_lists_builtin_then_custom(api):
    data = api.request("GET", "/v1/fields").json()["data"]
    names = [f["name"] for f in data]
    assert names[:3] == ["id", "origin", "lead_id"]
    custom = [f for f in data if not f["builtin"]]
    assert [(f["name"], f["type"]) for f in custom] == [
        ("industry", "string"),
        ("team_size", "integer"),
        ("budget", "number"),
        ("newsletter", "boolean"),
        ("signed_up", "datetime"),
        ("interests", "list"),
    ]
    assert {
        "name": "email",
        "type": "string",
        "builtin": True,
        "description": None,
    } in data


def test_unknown_route_and_method_use_the_error_shape(api):
    missing = api.request("GET", "/v1/nothing")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    wrong = api.request("PUT", "/v1/leads")
    assert wrong.status_code == 405
    assert wrong.json()["error"]["code"] == "invalid_request"
