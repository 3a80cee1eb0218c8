"""The per-record closure of one mapped field, specialised for the common shapes."""

from collections.abc import Callable, Mapping
from typing import Any

from engine.errors import MappingError
from engine.mapping_coerce import Coercer, Unmapped, as_text
from engine.mapping_paths import Getter
from engine.mapping_values import TransformError
from engine.transforms import Transform

__all__ = ["Runner", "make_runner"]

Runner = Callable[[Mapping[str, Any], Unmapped], Any]


def make_runner(
    target: str,
    source: Getter,
    top_key: str | None,
    chain: tuple[tuple[str, Transform], ...],
    mapper: Callable[[Any, Unmapped], Any] | None,
    default: Any,
    kind: Coercer | None,
    coerce: Coercer,
    code: str,
) -> Runner:
    """Compose one field's compiled steps into the closure ``apply`` calls per record.

    ``top_key`` is the source path when it is a single top-level key: then the record
    is read directly, with no getter call in between.
    """
    list_target = target == "tags"
    label = "transform 'e164' failed: " if target == "phone" else ""

    def failed(exc: TransformError) -> MappingError:
        return MappingError(f"{label}{exc}", field=target, code=code)

    plain = not chain and mapper is None and default is None and kind is None
    if plain and top_key is not None and coerce is as_text:
        # The commonest field of all (a CSV column into a text field): one call.
        def run_text(record: Mapping[str, Any], _unmapped: Unmapped) -> Any:
            value = record.get(top_key)
            if value.__class__ is str:
                return value.strip() or None
            if value is None:
                return None
            try:
                return as_text(value)
            except TransformError as exc:
                raise failed(exc) from None

        return run_text
    if plain and top_key is not None:

        def run_top(record: Mapping[str, Any], _unmapped: Unmapped) -> Any:
            value = record.get(top_key)
            if value is None or value == "":
                return [] if list_target else None
            try:
                return coerce(value)
            except TransformError as exc:
                raise failed(exc) from None

        return run_top
    if plain:
        # The short form `first_name: properties.firstname`: keep it lean.
        def run_plain(record: Mapping[str, Any], _unmapped: Unmapped) -> Any:
            value = source(record)
            if value is None or value == "":
                return [] if list_target else None
            try:
                return coerce(value)
            except TransformError as exc:
                raise failed(exc) from None

        return run_plain

    def run(record: Mapping[str, Any], unmapped: Unmapped) -> Any:
        value = source(record)
        if value == "":
            value = None
        elif value is not None and chain:
            name = ""
            try:
                for name, transform in chain:  # noqa: B007 named in the error
                    value = transform(value)
            except TransformError as exc:
                raise MappingError(
                    f"transform '{name}' failed: {exc}", field=target, code="transform"
                ) from None
            if value == "":
                value = None
        if mapper is not None and value is not None:
            value = mapper(value, unmapped)
        if value is None:
            value = default
            if value is None:
                return [] if list_target else None
        try:
            if kind is not None:
                value = kind(value)
        except TransformError as exc:
            raise MappingError(str(exc), field=target, code="type") from None
        try:
            return coerce(value)
        except TransformError as exc:
            raise failed(exc) from None

    return run
