"""Coercions of mapped values to the lead's field types, built once per mapping.

A coercer takes a non-``None`` value and returns the field's value (``None`` when it
is blank) or raises ``TransformError``; the field compiler wraps that into a
``MappingError`` with the right code.
"""

import re
from collections.abc import Callable
from typing import Any

from engine.mapping_values import (
    TransformError,
    format_datetime,
    normalize_phone,
    parse_bool,
    parse_datetime,
    parse_float,
    parse_int,
    show_value,
    to_text,
)
from state.models import LEAD_STATUSES, STRING_FIELDS

__all__ = [
    "BUILTIN_TARGETS",
    "TYPE_NAMES",
    "Coercer",
    "Unmapped",
    "as_list",
    "as_status",
    "as_text",
    "custom_coercer",
    "make_mapper",
    "map_key",
    "phone_coercer",
    "target_coercer",
    "type_coercer",
]

Coercer = Callable[[Any], Any]
Unmapped = list[tuple[str, Any]] | None

#: The lead fields a mapping may set besides ``custom.<name>``.
BUILTIN_TARGETS = (*STRING_FIELDS, "score", "tags")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_STATUSES = frozenset(LEAD_STATUSES)
_MISS = object()


def as_text(value: Any) -> str | None:
    """A value as stripped text; blank reads as ``None``."""
    if value.__class__ is str:
        return value.strip() or None
    return to_text(value).strip() or None


def as_list(value: Any) -> list[str]:
    """A value as a list of distinct non-blank strings, in order."""
    items = value if isinstance(value, list | tuple) else (value,)
    seen: dict[str, None] = {}
    for item in items:
        if item is not None:
            text = (item if item.__class__ is str else to_text(item)).strip()
            if text:
                seen[text] = None
    return list(seen)


def as_status(value: Any) -> str | None:
    """A lead status (any case); anything outside ``LEAD_STATUSES`` fails."""
    text = to_text(value).strip().lower()
    if text in _STATUSES:
        return text
    if not text:
        return None
    raise TransformError(
        f"{show_value(value)} is not a lead status ({', '.join(LEAD_STATUSES)})"
    )


def phone_coercer(region: str | None) -> Coercer:
    """Phone numbers as E.164: values already in E.164 are kept as they are."""

    def as_phone(value: Any) -> str | None:
        text = as_text(value)
        if text is None or _E164.match(text):
            return text
        return normalize_phone(text, region)

    return as_phone


def _as_iso(value: Any) -> str:
    return format_datetime(parse_datetime(value))


def _each(fn: Coercer) -> Coercer:
    def run(value: Any) -> Any:
        if isinstance(value, list | tuple):
            return [fn(item) for item in value if item is not None]
        return fn(value)

    return run


#: ``type:`` of a field spec: applied after transforms and map, item by item on lists.
_TYPES: dict[str, Coercer] = {
    "int": _each(parse_int),
    "float": _each(parse_float),
    "bool": _each(parse_bool),
    "string": _each(to_text),
    "datetime": _each(parse_datetime),
}
TYPE_NAMES = tuple(_TYPES)

_CUSTOM: dict[str, Coercer] = {
    "string": as_text,
    "number": parse_float,
    "integer": parse_int,
    "boolean": parse_bool,
    "datetime": _as_iso,
    # An empty list is no value: the custom field is left out, as when missing.
    "list": lambda value: as_list(value) or None,
}


def type_coercer(name: str) -> Coercer | None:
    """The coercer of a field spec's ``type:`` name, or ``None`` if unknown."""
    return _TYPES.get(name)


def custom_coercer(field_type: str) -> Coercer:
    """The coercer of a custom field's declared type (``LeadFieldSpec.type``)."""
    return _CUSTOM[field_type]


def target_coercer(target: str, phone_region: str | None) -> tuple[Coercer, str]:
    """The coercer of a built-in target and the error code when it fails."""
    if target == "phone":
        return phone_coercer(phone_region), "transform"
    if target == "status":
        return as_status, "invalid_status"
    if target == "score":
        return parse_int, "type"
    if target == "tags":
        return as_list, "type"
    return as_text, "type"


def map_key(value: Any) -> str:
    """A source value as a ``map`` key: ``1.0`` reads ``1``, ``True`` ``true``."""
    return value if value.__class__ is str else to_text(value)


def make_mapper(
    field: str, table: dict[str, Any], default: Any, has_default: bool
) -> Callable[[Any, Unmapped], Any]:
    """The ``map`` step: unmatched values are reported and replaced by ``default``."""
    # A second, case-insensitive table, without keys that differ only by case.
    folded: dict[str, Any] = {}
    clashes = set()
    for key, target in table.items():
        fold = key.strip().casefold()
        if fold in folded and folded[fold] != target:
            clashes.add(fold)
        folded[fold] = target
    for fold in clashes:
        del folded[fold]

    def one(value: Any, unmapped: Unmapped) -> Any:
        key = value if value.__class__ is str else map_key(value)
        hit = table.get(key, _MISS)
        if hit is _MISS:
            hit = folded.get(key.strip().casefold(), _MISS)
            if hit is _MISS:
                if unmapped is not None:
                    unmapped.append((field, value))
                return default if has_default else value
        return hit

    def lookup(value: Any, unmapped: Unmapped) -> Any:
        if isinstance(value, list | tuple):
            mapped = (one(item, unmapped) for item in value)
            return [item for item in mapped if item is not None]
        return one(value, unmapped)

    return lookup
