"""A small JSON Schema checker for the OpenAPI response schemas (no jsonschema dep).

Covers what FastAPI and pydantic emit for our models: $ref, type, properties,
required, items, anyOf, enum/const, additionalProperties false.
"""

from typing import Any

_TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "null": type(None),
}


def problems(
    value: Any, schema: dict[str, Any], spec: dict[str, Any], at: str = "$"
) -> list[str]:
    """What is wrong with ``value`` against ``schema`` (empty when it matches)."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return problems(value, spec["components"]["schemas"][name], spec, at)
    if "anyOf" in schema:
        options = [problems(value, s, spec, at) for s in schema["anyOf"]]
        return [] if any(not o for o in options) else [f"{at}: matches no anyOf option"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{at}: {value!r} not in {schema['enum']}"]
    if "const" in schema and value != schema["const"]:
        return [f"{at}: {value!r} != {schema['const']!r}"]
    kind = schema.get("type")
    if kind is not None:
        expected = _TYPES[kind]
        if isinstance(value, bool) and kind in ("integer", "number"):
            return [f"{at}: bool is not {kind}"]
        if not isinstance(value, expected):
            return [f"{at}: {type(value).__name__} is not {kind}"]
    found: list[str] = []
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                found.append(f"{at}.{name}: missing")
        for name, item in value.items():
            if name in props:
                found += problems(item, props[name], spec, f"{at}.{name}")
            elif schema.get("additionalProperties") is False:
                found.append(f"{at}.{name}: not allowed")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            found += problems(item, schema["items"], spec, f"{at}[{i}]")
    return found
