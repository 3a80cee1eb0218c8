"""FastRoute: the read routes answer exactly as FastAPI's own routing would."""

from typing import Annotated

import pytest
from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request, Response
from fastapi.routing import APIRoute

import service.api.routes_read as routes_read
from service.api import create_app
from service.api.auth import require
from service.api.deps import get_engine
from service.api.fastroute import FastRoute

from .conftest import Api, TestClient, make_settings

# Valid and invalid reads: auth failures, scopes, every kind of bad parameter.
REQUESTS = [
    ("/v1/leads", {}),
    ("/v1/leads?page=2&limit=1", {}),
    ("/v1/leads?limit=2&sort_by=score&sort_order=asc", {}),
    ("/v1/leads?sortBy=updated_at&sortOrder=desc&limit=3", {}),
    ("/v1/leads?status=qualified&tag=vip&include_deleted=true", {}),
    ("/v1/leads?updated_since=2024-01-01&created_before=2030-01-01T00:00:00Z", {}),
    ("/v1/leads?q=ada&source=web&origin=api&owner=grace", {}),
    ("/v1/leads?page=0", {}),
    ("/v1/leads?limit=101&page=x&status=hot", {}),
    ("/v1/leads?sort_by=name&updated_since=yesterday&include_deleted=maybe", {}),
    ("/v1/leads?tag=&q=", {}),
    ("/v1/leads?limit=1&limit=2&unknown=1", {}),
    ("/v1/leads", {"X-API-Key": "nope"}),
    ("/v1/leads?page=0", {"X-API-Key": None}),
    ("/v1/leads", {"X-API-Key": " ", "Authorization": "Bearer {key}"}),
    ("/v1/leads", {"X-API-Key": None, "Authorization": "Basic {key}"}),
    ("/v1/leads/search?q=ada", {}),
    ("/v1/leads/search?q=ada&status=new&page=1&limit=1", {}),
    ("/v1/leads/search?q=a", {}),
    ("/v1/leads/search", {}),
    ("/v1/leads/search?q=--", {}),
    ("/v1/leads/{id}", {}),
    ("/v1/leads/lead_missing", {}),
    ("/v1/leads/{id}", {"X-API-Key": "{write_key}"}),
    ("/v1/fields", {}),
]


def _api(db, clock) -> Api:
    app = create_app(make_settings(), db=db)
    from service.api.deps import get_clock

    app.dependency_overrides[get_clock] = lambda: clock
    return Api(app=app, client=TestClient(app), db=db, clock=clock)


@pytest.fixture(name="twins")
def twins_fixture(db, clock, monkeypatch):
    """The same store served by the FastRoute app and by a plain-APIRoute app."""
    fast = _api(db, clock)
    monkeypatch.setattr(routes_read, "FastRoute", APIRoute)
    plain = _api(db, clock)
    plain.keys = fast.keys  # one set of keys for both
    with fast.client, plain.client:
        yield fast, plain


def _comparable(response):
    headers = {
        k: v
        for k, v in response.headers.items()
        if k.startswith("x-ratelimit") or k in ("content-type", "www-authenticate")
    }
    return response.status_code, response.content, headers


def test_answers_are_those_of_fastapi_routing(twins):
    fast, plain = twins
    lead = fast.create(name="Ada Lovelace", tags=["vip"], status="qualified")
    fast.create(name="Ada Byron", custom_fields={"industry": "Math"})
    keys = {"key": fast.key("leads:read"), "write_key": fast.key("leads:write")}
    for path, given in REQUESTS:
        url = path.format(id=lead["id"])
        headers = {"X-API-Key": keys["key"], **given}
        headers = {k: v.format(**keys) for k, v in headers.items() if v is not None}
        answers = [_comparable(api.client.get(url, headers=headers)) for api in twins]
        # Each app keeps its own rate-limit window: the remaining count differs.
        for _, _, limits in answers:
            limits.pop("x-ratelimit-remaining", None)
            limits.pop("x-ratelimit-reset", None)
        assert answers[0] == answers[1], (path, given)
        assert answers[0][0] != 500, path
    assert (
        fast.client.get("/openapi.json").json()
        == plain.client.get("/openapi.json").json()
    )


def test_dependency_overrides_are_honoured(api):
    class Engine:
        dialect = type("Dialect", (), {"name": "nothing"})()

    api.app.dependency_overrides[get_engine] = Engine
    response = api.request("GET", "/v1/leads/lead_x", headers={"X-Request-ID": "r1"})
    assert response.status_code == 500  # our engine was used, and failed
    assert response.json()["error"]["request_id"] == "r1"


def _app_with(endpoint, **route) -> FastAPI:
    router = APIRouter(route_class=FastRoute)
    router.add_api_route("/x/{name}", endpoint, methods=["GET"], **route)
    app = FastAPI()
    app.include_router(router)
    return app


def test_unsupported_declarations_are_refused_when_the_app_is_built():
    def header(x_thing: Annotated[str, Header()]) -> Response:
        return Response()

    def nested(dep: Annotated[object, Depends(lambda request, other: 1)]) -> Response:
        return Response()

    def typed_path(name: int) -> Response:
        return Response()

    for endpoint in (header, nested, typed_path):
        with pytest.raises(TypeError, match="FastRoute"):
            _app_with(endpoint)


def test_plain_routes_get_their_parameters_and_must_answer_with_a_response():
    seen = []

    async def endpoint(name: str, request: Request, n: Annotated[int, Query()] = 1):
        seen.append((name, n, request.url.path))
        return {"name": name}

    client = TestClient(_app_with(endpoint))
    with pytest.raises(TypeError, match="must return a Response"):
        client.get("/x/y?n=3")
    assert seen == [("y", 3, "/x/y")]


def _sync_endpoint() -> Response:
    return Response()


async def _async_endpoint() -> Response:
    return Response()


@pytest.mark.parametrize("endpoint", [_sync_endpoint, _async_endpoint])
def test_key_requirements_are_recognised(endpoint):
    app = _app_with(endpoint, dependencies=[Depends(require("leads:read"))])
    with pytest.raises(AttributeError):  # a bare app has no settings: the key check ran
        TestClient(app).get("/x/y", headers={"X-API-Key": "lsk_a_b"})
