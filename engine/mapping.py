"""The mapping language of contract §3: compile a mapping once, apply it per record.

``compile_mapping`` checks the whole mapping and reports every problem at once as a
``ConfigError`` naming the file, the key path and the line; what it returns applies
itself to a record with no further parsing: paths, transforms and coercions are all
closures by then.
"""

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from connectors.base import MappingHints
from engine.errors import MappingError
from engine.fields import LeadFieldSpec
from engine.mapping_coerce import Unmapped
from engine.mapping_compile import (
    TOP_KEYS,
    Problems,
    fingerprint,
    path_key,
    phone_region,
    required_fields,
)
from engine.mapping_fields import CompiledField, KeyPath, compile_field
from engine.mapping_paths import Getter, make_getter
from engine.mapping_values import TransformError, parse_datetime, to_text
from state.models import CONTENT_FIELDS

__all__ = ["CompiledMapping", "compile_mapping"]


class CompiledMapping:
    """A compiled mapping: ``apply(record)`` turns one source record into a lead."""

    __slots__ = (
        "_blank",
        "_builtin",
        "_custom",
        "_lead_id",
        "_required",
        "_updated_at",
        "fingerprint",
        "lead_id_path",
        "recipe",
        "source_paths",
        "targets",
        "updated_at_path",
    )

    def __init__(
        self,
        *,
        lead_id_path: str,
        updated_at_path: str | None,
        fields: Sequence[CompiledField],
        required: Sequence[str],
        fingerprint: str,
    ) -> None:
        self.lead_id_path = lead_id_path
        self.updated_at_path = updated_at_path
        #: what ``compile_mapping`` was given (spec, lead fields): another process
        #: compiles the same mapping from it
        self.recipe: tuple[Any, tuple[LeadFieldSpec, ...]] | None = None
        self.fingerprint = fingerprint
        self.targets = tuple(field.target for field in fields)
        paths = {lead_id_path, *(p for field in fields for p in field.paths)}
        if updated_at_path is not None:
            paths.add(updated_at_path)
        self.source_paths = frozenset(paths)
        self._lead_id = make_getter(lead_id_path)
        self._updated_at = (
            None if updated_at_path is None else make_getter(updated_at_path)
        )
        self._builtin = tuple((f.target, f.run) for f in fields if f.custom is None)
        self._custom = tuple((f.custom, f.run) for f in fields if f.custom is not None)
        self._required = tuple(required)
        self._blank: dict[str, Any] = dict.fromkeys(
            ("lead_id", "source_updated_at", *CONTENT_FIELDS)
        )

    def hints(self) -> MappingHints:
        """What a connector should request: id, modification time, every path read."""
        return MappingHints(
            id_path=self.lead_id_path,
            updated_at_path=self.updated_at_path,
            paths=self.source_paths,
        )

    def apply(
        self, record: Mapping[str, Any], unmapped: Unmapped = None
    ) -> dict[str, Any]:
        """Map one record to a lead's fields.

        ``unmapped``, when given, collects ``(field, value)`` for each value that no
        ``map`` entry matched.

        Raises:
            MappingError: no lead id, a transform failed, a required field is missing.
        """
        lead = self._blank.copy()
        lead["lead_id"] = self._lead_id_of(record)
        if self._updated_at is not None:
            lead["source_updated_at"] = self._updated_at_of(self._updated_at, record)
        lead["tags"] = []
        custom: dict[str, Any] = {}
        lead["custom_fields"] = custom
        for target, run in self._builtin:
            lead[target] = run(record, unmapped)
        for name, run in self._custom:
            value = run(record, unmapped)
            if value is not None:
                custom[name] = value
        if self._required:
            self._check_required(lead, custom)
        return lead

    def _lead_id_of(self, record: Mapping[str, Any]) -> str:
        value = self._lead_id(record)
        text: str | None = None
        if value.__class__ is str:
            text = value.strip()
        elif isinstance(value, int | float) and not isinstance(value, bool):
            # JSON ids arrive as 123 or 123.0; both are the id "123".
            text = to_text(value)
        elif value is not None:
            raise MappingError(
                f"the id at '{self.lead_id_path}' is not text or a number",
                field="lead_id",
                code="missing_lead_id",
            )
        if not text:
            raise MappingError(
                f"no id at '{self.lead_id_path}'",
                field="lead_id",
                code="missing_lead_id",
            )
        return text

    def _updated_at_of(self, get: Getter, record: Mapping[str, Any]) -> datetime | None:
        value = get(record)
        if value is None or value == "":
            return None
        try:
            return parse_datetime(value)
        except TransformError as exc:
            raise MappingError(
                f"updated_at: {exc}", field="source_updated_at", code="transform"
            ) from None

    def _check_required(self, lead: dict[str, Any], custom: dict[str, Any]) -> None:
        missing = []
        for target in self._required:
            if target.startswith("custom."):
                value = custom.get(target[len("custom.") :])
            else:
                value = lead[target]
            if value is None or value == "" or value == []:
                missing.append(target)
        if missing:
            raise MappingError(
                f"missing required field{'s' if len(missing) > 1 else ''}: "
                + ", ".join(missing),
                field=missing[0] if len(missing) == 1 else None,
                code="required",
            )


def compile_mapping(
    spec: Mapping[str, Any],
    *,
    lead_fields: Sequence[LeadFieldSpec] = (),
    file: str | None = None,
    locate: Callable[[KeyPath], int | None] | None = None,
) -> CompiledMapping:
    """Check and compile a mapping (contract §3).

    ``locate`` turns a key path such as ``("fields", "phone", "transform", 0)`` into
    the line of the mapping file where it is written.

    Raises:
        ConfigError: every problem of the mapping (one, or several in ``problems``).
    """
    report = Problems(file, locate)
    raw: object = spec  # YAML may hold anything here, whatever the annotation says
    if not isinstance(raw, Mapping):
        report((), "a mapping must be a YAML mapping with lead_id and fields")
        raise report.error()
    for key in spec:
        if key not in TOP_KEYS:
            report((str(key),), f"unknown key '{key}' (allowed: {', '.join(TOP_KEYS)})")
    lead_id_path = path_key(spec, "lead_id", report, required=True)
    updated_at_path = path_key(spec, "updated_at", report, required=False)
    region = phone_region(spec, report)
    custom_types = {field.name: field.type for field in lead_fields}
    fields_spec = spec.get("fields") or {}
    compiled: list[CompiledField] = []
    if not isinstance(fields_spec, Mapping):
        report(("fields",), "fields must be a mapping of lead field: source")
        fields_spec = {}
    for target, field_spec in fields_spec.items():
        field = compile_field(
            str(target),
            field_spec,
            where=("fields", str(target)),
            report=report,
            custom_types=custom_types,
            phone_region=region,
        )
        if field is not None:
            compiled.append(field)
    required = required_fields(spec, [str(target) for target in fields_spec], report)
    if report.found or lead_id_path is None:
        raise report.error()
    mapping = CompiledMapping(
        lead_id_path=lead_id_path,
        updated_at_path=updated_at_path,
        fields=compiled,
        required=required,
        fingerprint=fingerprint(spec, custom_types),
    )
    mapping.recipe = (_plain(spec), tuple(lead_fields))
    return mapping


def _plain(value: Any) -> Any:
    """``value`` with YAML's mapping and sequence types turned into dicts and lists."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value
