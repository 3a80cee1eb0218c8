"""Keys and scopes: every route answers 401 without a valid key, 403 without the scope."""

from datetime import timedelta

import pytest

from service.api.auth import KeyCache
from state.apikeys import ApiKeyInfo, list_api_keys, revoke_api_key
from state.db import session_scope

from .conftest import T0

# (method, path, body, the scopes that allow it)
ROUTES = [
    ("GET", "/v1/leads", None, ("leads:read",)),
    ("GET", "/v1/leads/search?q=ada", None, ("leads:read",)),
    ("GET", "/v1/leads/{id}", None, ("leads:read",)),
    ("GET", "/v1/fields", None, ("leads:read",)),
    ("POST", "/v1/leads", {"email": "new@example.com"}, ("leads:write",)),
    ("PATCH", "/v1/leads/{id}", {"company": "X"}, ("leads:write",)),
    ("DELETE", "/v1/leads/{id}", None, ("leads:delete",)),
    ("POST", "/v1/leads/upsert", {"email": "up@example.com"}, ("leads:write",)),
    ("POST", "/v1/leads/{id}/tags", {"tags": ["a"]}, ("leads:write",)),
    ("DELETE", "/v1/leads/{id}/tags/a", None, ("leads:write",)),
    (
        "POST",
        "/v1/leads/sync",
        {"origin": "crm", "leads": [{"lead_id": "1"}]},
        ("leads:sync_create",),
    ),
    (
        "POST",
        "/v1/leads/sync/delete",
        {"origin": "crm", "lead_ids": ["1"]},
        ("leads:sync_create",),
    ),
    (
        "POST",
        "/api/leads/external",
        {"email": "ext@example.com"},
        ("leads:sync_create", "leads:write"),
    ),
]
ALL = ("leads:read", "leads:write", "leads:sync_create", "leads:delete")


def _call(api, method, path, body, headers):
    lead = api.create(name="Ada")  # a fresh lead per call: deletes must not collide
    url = path.format(id=lead["id"])
    if body and "email" in body:
        body = {**body, "email": f"n{next(api.seq)}-{body['email']}"}
    return api.client.request(method, url, json=body, headers=headers)


@pytest.mark.parametrize(("method", "path", "body", "allowed"), ROUTES)
def test_auth_and_scope_matrix(api, method, path, body, allowed):
    cases = []
    cases.append(("missing", {}, 401))
    cases.append(("malformed", {"X-API-Key": "nope"}, 401))
    wrong = api.key("leads:read")[:-4] + "AAAA"
    cases.append(("wrong secret", {"X-API-Key": wrong}, 401))
    cases.append(("bearer wrong", {"Authorization": "Bearer lsk_0000_x"}, 401))
    for scope in ALL:
        status = 200 if scope in allowed else 403
        cases.append((scope, {"X-API-Key": api.key(scope)}, status))
        cases.append(
            (f"bearer {scope}", {"Authorization": f"Bearer {api.key(scope)}"}, status)
        )
    cases.append(("admin", {"X-API-Key": api.key("admin")}, 200))
    for label, headers, expected in cases:
        response = _call(api, method, path, body, headers)
        if expected == 200:
            assert response.status_code in (200, 201, 204), (label, response.text)
            continue
        assert response.status_code == expected, (label, response.text)
        error = response.json()["error"]
        code = "unauthorized" if expected == 401 else "forbidden"
        assert error["code"] == code, label
        assert set(error) >= {"code", "message", "details"}


def test_revocation_takes_effect_immediately(api):
    headers = api.headers("leads:read")
    # The first request writes last_used_at; the next ones may be served from the
    # verified-key cache (SQLite files), which the revocation must empty.
    for _ in range(3):
        assert api.client.get("/v1/leads", headers=headers).status_code == 200
    with session_scope(api.db) as s:
        name = next(k.name for k in list_api_keys(s) if k.scopes == ("leads:read",))
        revoke_api_key(s, name=name, now=T0)
    response = api.client.get("/v1/leads", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "invalid or revoked API key"


def test_last_used_is_written_at_most_once_a_minute(api):
    headers = api.headers("leads:read")

    def last_used():
        with session_scope(api.db) as s:
            return next(
                k.last_used_at for k in list_api_keys(s) if k.scopes == ("leads:read",)
            )

    assert last_used() is None
    api.client.get("/v1/leads", headers=headers)
    assert last_used() == T0
    api.clock.advance(seconds=30)
    api.client.get("/v1/leads", headers=headers)
    assert last_used() == T0
    api.clock.advance(seconds=31)
    api.client.get("/v1/leads", headers=headers)
    assert last_used() == T0 + timedelta(seconds=61)


def test_operations_endpoints_need_no_key(api):
    assert api.client.get("/healthz").json() == {"status": "ok"}
    assert api.client.get("/readyz").json() == {"status": "ready"}
    assert api.client.get("/metrics").status_code == 200
    assert api.client.get("/openapi.json").status_code == 200
    assert api.client.get("/docs").status_code == 200


def test_verified_keys_are_cached_until_the_store_changes():
    info = ApiKeyInfo(
        id="key_1",
        name="k",
        prefix="abcd1234",
        scopes=("leads:read",),
        created_at=T0,
        last_used_at=T0,
        revoked_at=None,
    )
    cache = KeyCache(size=2)
    cache.put("d1", info, 7)
    assert cache.get("d1", 7) is info
    assert cache.get("d2", 7) is None
    # Any commit to the store moves the version on: every entry is forgotten.
    assert cache.get("d1", 8) is None
    cache.put("d1", info, 8)
    assert cache.get("d1", 8) is info
    # No version (PostgreSQL, in-memory SQLite): nothing is cached.
    cache.put("d3", info, None)
    assert cache.get("d3", None) is None
    # A full cache starts over rather than grow.
    cache.put("d2", info, 8)
    cache.put("d3", info, 8)
    assert (cache.get("d1", 8), cache.get("d3", 8)) == (None, info)


def test_a_cached_key_is_served_without_the_key_table(api, db_url):
    headers = api.headers("leads:read")
    for _ in range(2):  # the first one writes last_used_at, the second is cached
        assert api.client.get("/v1/leads", headers=headers).status_code == 200
    cached = api.app.state.key_cache._entries  # the cache under test
    if db_url.startswith("sqlite"):
        assert [i.scopes for i in cached.values()] == [("leads:read",)]
    else:
        assert cached == {}
