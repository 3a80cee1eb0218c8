"""Bulk sync and bulk delete: partial failures, idempotency, tombstones for mirrors."""

from datetime import timedelta

from .conftest import T0

BAD = {
    7: ({"email": "not-an-email"}, "leads[7].email"),
    23: ({"status": "hot"}, "leads[23].status"),
    42: ({"customFields": {"color": "red"}}, "leads[42].customFields.color"),
    99: ({"phone": "12"}, "leads[99].phone"),
}


def _batch():
    leads = []
    for i in range(100):
        lead = {
            "lead_id": f"crm-{i}",
            "email": f"p{i}@example.com",
            "name": f"Person {i}",
            "score": i,
            "customFields": {"industry": "Retail"},
            "sourceUpdatedAt": "2024-01-01T00:00:00Z",
        }
        if i in BAD:
            lead.update(BAD[i][0])
        leads.append(lead)
    leads[50] = {"email": "x@example.com"}  # no lead_id at all
    return leads


def test_bulk_sync_keeps_valid_leads_and_lists_exactly_the_bad_indexes(api):
    response = api.request(
        "POST", "/v1/leads/sync", json={"origin": "crm", "leads": _batch()}
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["created"], body["updated"], body["unchanged"], body["failed"]) == (
        95,
        0,
        0,
        5,
    )
    errors = {e["index"]: e for e in body["errors"]}
    assert sorted(errors) == [7, 23, 42, 50, 99]
    for index, (_, field) in BAD.items():
        assert errors[index]["lead_id"] == f"crm-{index}"
        assert errors[index]["code"] == "unprocessable"
        assert [d["field"] for d in errors[index]["details"]] == [field]
    assert errors[50]["lead_id"] is None
    assert errors[50]["details"][0]["field"] == "leads[50].lead_id"
    assert [r["index"] for r in body["results"]] == [
        i for i in range(100) if i not in errors
    ]
    stored = api.request("GET", "/v1/leads?origin=crm&limit=100").json()
    assert stored["pagination"]["total"] == 95
    one = next(x for x in stored["data"] if x["lead_id"] == "crm-3")
    assert one["custom_fields"] == {"industry": "Retail"}
    assert one["source_updated_at"] == "2024-01-01T00:00:00Z"
    assert one["id"] == next(
        r["id"] for r in body["results"] if r["lead_id"] == "crm-3"
    )


def test_same_bulk_twice_is_all_unchanged(api):
    batch = [b for i, b in enumerate(_batch()) if i not in BAD and i != 50]
    first = api.request(
        "POST", "/v1/leads/sync", json={"origin": "crm", "leads": batch}
    ).json()
    api.clock.advance(hours=1)
    second = api.request(
        "POST", "/v1/leads/sync", json={"origin": "crm", "leads": batch}
    ).json()
    assert (first["created"], first["unchanged"]) == (95, 0)
    assert (
        second["created"],
        second["updated"],
        second["unchanged"],
        second["failed"],
    ) == (0, 0, 95, 0)
    assert {r["action"] for r in second["results"]} == {"unchanged"}
    assert [r["id"] for r in second["results"]] == [r["id"] for r in first["results"]]
    listed = api.request(
        "GET", "/v1/leads?origin=crm&limit=1&sort_by=updated_at"
    ).json()
    assert listed["data"][0]["updated_at"] == "2024-01-01T00:00:00Z"
    batch[0]["name"] = "Changed"
    third = api.request(
        "POST", "/v1/leads/sync", json={"origin": "crm", "leads": batch}
    ).json()
    assert (third["updated"], third["unchanged"]) == (1, 94)


def test_bulk_limits(api):
    too_many = [{"lead_id": str(i)} for i in range(101)]
    response = api.request(
        "POST", "/v1/leads/sync", json={"origin": "crm", "leads": too_many}
    )
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "leads"
    bad_origin = api.request(
        "POST", "/v1/leads/sync", json={"origin": "", "leads": [{"lead_id": "1"}]}
    )
    assert bad_origin.status_code == 422
    assert bad_origin.json()["error"]["details"][0]["field"] == "origin"


def test_delete_then_updated_since_shows_the_tombstone(api):
    api.request(
        "POST",
        "/v1/leads/sync",
        json={"origin": "crm", "leads": [{"lead_id": "a"}, {"lead_id": "b"}]},
    )
    api.clock.now = T0 + timedelta(hours=1)
    response = api.request(
        "POST",
        "/v1/leads/sync/delete",
        json={"origin": "crm", "leadIds": ["a", "zz", "a"]},
    )
    assert response.json() == {
        "deleted": 1,
        "already_deleted": 0,
        "not_found": 1,
        "results": [
            {"lead_id": "a", "status": "deleted"},
            {"lead_id": "zz", "status": "not_found"},
        ],
    }
    again = api.request(
        "POST", "/v1/leads/sync/delete", json={"origin": "crm", "lead_ids": ["a"]}
    ).json()
    assert (again["deleted"], again["already_deleted"]) == (0, 1)
    mirror = api.request("GET", "/v1/leads?updated_since=2024-01-01T00:30:00").json()
    assert [(x["lead_id"], x["deleted_at"]) for x in mirror["data"]] == [
        ("a", "2024-01-01T01:00:00Z")
    ]
    live = api.request("GET", "/v1/leads?origin=crm").json()
    assert [x["lead_id"] for x in live["data"]] == ["b"]
    api.clock.now = T0 + timedelta(hours=2)
    back = api.request(
        "POST", "/v1/leads/sync", json={"origin": "crm", "leads": [{"lead_id": "a"}]}
    ).json()
    assert back["updated"] == 1  # a tombstoned lead synced again comes back


def test_external_create_takes_custom_fields_at_top_level(api):
    response = api.request(
        "POST",
        "/api/leads/external",
        json={
            "email": "form@example.com",
            "name": "Form Fill",
            "industry": "Retail",
            "teamSize": 7,
            "newsletter": "yes",
        },
        scopes=("leads:sync_create",),
    )
    assert response.status_code == 201
    lead = response.json()
    assert lead["custom_fields"] == {
        "industry": "Retail",
        "team_size": 7,
        "newsletter": True,
    }
    assert lead["origin"] == "api"
    unknown = api.request(
        "POST", "/api/leads/external", json={"email": "f2@example.com", "colour": "red"}
    )
    assert unknown.status_code == 422
    assert unknown.json()["error"]["details"] == [
        {"field": "colour", "message": "unknown field 'colour'"}
    ]
    clash = api.request(
        "POST", "/api/leads/external", json={"email": "form@example.com"}
    )
    assert clash.status_code == 409
    assert clash.json()["error"]["existing_lead_id"] == lead["id"]
