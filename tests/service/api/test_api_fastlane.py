"""The read lane: GETs of the FastRoute routes skip the app's stack, nothing else does.

Every other API test also runs through the lane (the auth matrix, 400s, 404s, 429s,
the generic 500); these check which requests take it and what it sets for the rest
of the middleware.
"""

import pytest

from service.api.middleware import ApiMiddleware


class _Counting:
    """An ASGI app that counts the requests passed to the app it wraps."""

    def __init__(self, inner):
        self.inner = inner
        self.paths: list[str] = []

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            self.paths.append(scope["path"])
        await self.inner(scope, receive, send)


@pytest.fixture(name="stack")
def stack_fixture(api) -> _Counting:
    api.client.get("/healthz")  # builds the middleware stack
    layer = api.app.middleware_stack
    while not isinstance(layer, ApiMiddleware):
        layer = layer.app
    counting = _Counting(layer.app)
    layer.app = counting
    return counting


def test_read_routes_skip_the_app_stack(api, stack):
    lead = api.create(name="Ada Lovelace")
    stack.paths.clear()
    for url in (
        f"/v1/leads/{lead['id']}",
        "/v1/leads?limit=1",
        "/v1/leads/search?q=ada",
        "/v1/fields",
    ):
        response = api.request("GET", url)
        assert response.status_code == 200, (url, response.text)
    assert (
        api.request("GET", "/v1/leads/search?q=ada").json()["data"][0]["id"]
        == (lead["id"])
    )
    assert api.request("GET", "/v1/leads/nope").status_code == 404
    assert api.request("GET", "/v1/leads?limit=101").status_code == 400
    assert api.client.get("/v1/leads").status_code == 401
    assert stack.paths == []


def test_other_requests_go_through_the_app(api, stack):
    lead = api.create(name="Grace Hopper")
    assert stack.paths == ["/v1/leads"]  # the POST
    stack.paths.clear()
    assert api.request("PATCH", f"/v1/leads/{lead['id']}", json={}).status_code == 200
    assert api.client.get("/healthz").status_code == 200
    slash = api.request("GET", "/v1/leads/", follow_redirects=False)
    assert slash.status_code in (307, 404)
    assert api.request("HEAD", "/v1/leads").status_code in (200, 405)
    assert api.request("GET", f"/v1/leads/{lead['id']}/tags").status_code in (404, 405)
    assert stack.paths == [
        f"/v1/leads/{lead['id']}",
        "/healthz",
        "/v1/leads/",
        "/v1/leads",
        f"/v1/leads/{lead['id']}/tags",
    ]


def test_lane_requests_are_measured_by_route_template(api):
    lead = api.create(name="Alan Turing")
    api.request("GET", f"/v1/leads/{lead['id']}")
    api.request("GET", "/v1/leads/unknown")
    text = api.client.get("/metrics").text
    assert 'method="GET",route="/v1/leads/{id}",status="200"' in text
    assert 'method="GET",route="/v1/leads/{id}",status="404"' in text


def test_lane_answers_carry_the_request_id_and_limit_headers(api):
    response = api.request("GET", "/v1/leads", headers={"X-Request-ID": "lane-1"})
    assert response.headers["X-Request-ID"] == "lane-1"
    assert "X-RateLimit-Limit" in response.headers
    assert "X-RateLimit-Remaining" in response.headers
