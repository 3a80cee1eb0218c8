"""OpenAPI: custom fields in the docs, and a property test over every operation."""

import json
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .schemacheck import problems


def _body_schema(spec, path, method="post"):
    content = spec["paths"][path][method]["requestBody"]["content"]["application/json"]
    ref = content["schema"]["$ref"].rsplit("/", 1)[-1]
    return spec["components"]["schemas"][ref]


def test_custom_fields_shape_the_request_schemas_and_examples(api):
    spec = api.client.get("/openapi.json").json()
    create = _body_schema(spec, "/v1/leads")
    custom_ref = create["properties"]["custom_fields"]["anyOf"][0]["$ref"].rsplit(
        "/", 1
    )[-1]
    custom = spec["components"]["schemas"][custom_ref]
    assert list(custom["properties"]) == [
        "industry",
        "team_size",
        "budget",
        "newsletter",
        "signed_up",
        "interests",
    ]
    assert custom["additionalProperties"] is False
    example = create["examples"][0]
    assert example["custom_fields"] == {
        "industry": "Software",
        "team_size": 42,
        "budget": 25000.0,
        "newsletter": True,
        "signed_up": "2024-01-31T12:00:00Z",
        "interests": ["a", "b"],
    }
    external = _body_schema(spec, "/api/leads/external")
    assert {"industry", "team_size", "budget", "email"} <= set(external["properties"])
    assert external["examples"][0]["industry"] == "Software"
    assert external["required"] == ["email"]
    sync = _body_schema(spec, "/v1/leads/sync")
    item = sync["properties"]["leads"]["items"]
    assert "team_size" in json.dumps(item["properties"]["custom_fields"])
    assert sync["properties"]["leads"]["maxItems"] == 100
    # Errors are documented in the contract's shape, not FastAPI's default.
    responses = spec["paths"]["/v1/leads"]["post"]["responses"]
    assert responses["422"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ErrorResponse"
    )
    assert "HTTPValidationError" not in spec["components"]["schemas"]


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(
        [
            "new",
            "lost",
            "a@b.co",
            "+14155550123",
            "2024-01-31",
            "2024-01-31T12:00:00Z",
            "lead_x",
            "ada",
            "-1",
            "0",
            "101",
        ]
    ),
)
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


def _operations(spec):
    ops = []
    for path, item in sorted(spec["paths"].items()):
        for method, op in sorted(item.items()):
            ops.append((path, method, op))
    return ops


@st.composite
def _request(draw, spec, lead_id):
    path, method, op = draw(st.sampled_from(_operations(spec)))
    url = path
    query = {}
    for param in op.get("parameters", []):
        if param["in"] == "path":
            value = draw(
                st.one_of(
                    st.just(lead_id),
                    st.text(
                        string.ascii_letters + string.digits + "_-",
                        min_size=1,
                        max_size=20,
                    ),
                )
            )
            url = url.replace("{" + param["name"] + "}", value)
        elif param["in"] == "query" and draw(st.booleans()):
            query[param["name"]] = str(draw(_scalars))
    body = None
    if "requestBody" in op:
        schema = _body_schema(spec, path, method)
        example = schema.get("examples", [{}])[0]
        props = list(schema.get("properties", {}))
        keys = st.sampled_from(props) if props else st.text(max_size=8)
        mutated = st.builds(
            lambda ex, extra: {**ex, **extra},
            st.just(example),
            st.dictionaries(keys, _json, max_size=3),
        )
        body = draw(st.one_of(mutated, _json, st.dictionaries(keys, _json, max_size=5)))
    return method.upper(), url, query, body, op


def test_property_no_500_and_answers_match_the_schema(api):
    spec = api.client.get("/openapi.json").json()
    lead_id = api.create(name="Fuzz")["id"]

    @settings(
        max_examples=300,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(_request(spec, lead_id))
    def check(request):
        method, url, query, body, op = request
        response = api.request(method, url, params=query, json=body)
        assert response.status_code != 500, (method, url, query, body, response.text)
        status = str(response.status_code)
        documented = op["responses"].get(status) or op["responses"].get(
            f"{status[0]}XX"
        )
        assert documented is not None, (
            method,
            url,
            response.status_code,
            response.text,
        )
        if response.status_code == 204:
            assert response.content == b""
            return
        content = documented.get("content", {}).get("application/json")
        assert content is not None, (method, url, response.status_code)
        payload = response.json()
        if response.status_code >= 400:
            assert set(payload) == {"error"}
            assert {"code", "message", "details"} <= set(payload["error"])
        found = problems(payload, content["schema"], spec)
        assert found == [], (method, url, response.status_code, found)

    check()
