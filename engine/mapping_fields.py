"""Compiles one ``fields:`` entry of a mapping into a closure run per record.

The closure reads the source, runs the transform chain, ``split``, ``map``, ``default``,
``type`` and the target's coercion, with every choice made here at compile time.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from engine.mapping_coerce import (
    BUILTIN_TARGETS,
    TYPE_NAMES,
    Coercer,
    as_status,
    custom_coercer,
    make_mapper,
    map_key,
    target_coercer,
    type_coercer,
)
from engine.mapping_paths import (
    Getter,
    make_getter,
    make_template,
    parse_template,
    path_problem,
)
from engine.mapping_runner import Runner, make_runner
from engine.mapping_values import TransformError
from engine.transforms import Transform, TransformSpecError, build_transform

__all__ = ["CompiledField", "KeyPath", "Report", "compile_field"]

KeyPath = tuple[str | int, ...]
Report = Callable[[KeyPath, str], None]

_SOURCES = ("from", "coalesce", "template", "value")
_KEYS = frozenset({*_SOURCES, "transform", "map", "default", "type", "split"})


@dataclass(frozen=True, slots=True)
class CompiledField:
    """One compiled field: ``run(record, unmapped)`` gives the lead's value."""

    target: str
    custom: str | None
    run: Runner
    paths: tuple[str, ...]


def _source(
    spec: dict[str, Any], where: KeyPath, report: Report, *, short: bool
) -> Getter | None:
    """The getter of the one source of ``spec`` (``short``: spec was a bare path)."""
    given = [key for key in _SOURCES if key in spec]
    if len(given) != 1:
        found = f"; found {', '.join(given)}" if given else ""
        report(where, f"give exactly one of from, coalesce, template, value{found}")
        return None
    key = given[0]
    arg = spec[key]
    if key == "value":
        return lambda _record: arg
    if key == "from":
        problem = path_problem(arg)
        if problem:
            report(where if short else (*where, "from"), problem)
            return None
        return make_getter(arg)
    if key == "template":
        if not isinstance(arg, str):
            report((*where, "template"), "a template is text: '{first} {last}'")
            return None
        try:
            pairs, tail = parse_template(arg)
        except ValueError as exc:
            report((*where, "template"), f"malformed template: {exc}")
            return None
        return make_template(pairs, tail)
    if not isinstance(arg, list) or not arg:
        report((*where, "coalesce"), "coalesce takes a list of paths: [a, b]")
        return None
    bad = False
    for index, path in enumerate(arg):
        problem = path_problem(path)
        if problem:
            report((*where, "coalesce", index), problem)
            bad = True
    if bad:
        return None
    getters = tuple(make_getter(path) for path in arg)

    def first(record: Mapping[str, Any]) -> Any:
        for get in getters:
            value = get(record)
            if value is not None and value != "":
                return value
        return None

    return first


def _paths(spec: dict[str, Any]) -> tuple[str, ...]:
    if "from" in spec:
        return (spec["from"],)
    if "coalesce" in spec:
        return tuple(spec["coalesce"])
    if "template" in spec:
        return tuple(path for _, path in parse_template(spec["template"])[0])
    return ()


def _chain(
    spec: dict[str, Any], where: KeyPath, report: Report
) -> list[tuple[str, Transform]]:
    chain: list[tuple[str, Transform]] = []
    items = spec.get("transform", [])
    located: list[tuple[KeyPath, object]]
    if isinstance(items, list):
        located = [((*where, "transform", i), item) for i, item in enumerate(items)]
    else:
        located = [((*where, "transform"), items)]
    if "split" in spec:
        located.append(((*where, "split"), {"split": spec["split"]}))
    for key, item in located:
        try:
            chain.append(build_transform(item))
        except TransformSpecError as exc:
            report(key, str(exc))
    return chain


def _target(
    target: str, custom_types: Mapping[str, str], phone_region: str | None
) -> tuple[Coercer, str, str | None] | str:
    """The coercer, error code and custom name of ``target``, or what is wrong."""
    if target.startswith("custom."):
        name = target[len("custom.") :]
        if name not in custom_types:
            return (
                f"custom field '{name}' is not declared in lead_fields"
                f" (add {{name: {name}, type: string}} under lead_fields)"
            )
        return custom_coercer(custom_types[name]), "type", name
    if target not in BUILTIN_TARGETS:
        known = ", ".join(BUILTIN_TARGETS)
        return f"unknown lead field '{target}' (known: {known}, custom.<name>)"
    coerce, code = target_coercer(target, phone_region)
    return coerce, code, None


def _check_status(value: Any, key: KeyPath, report: Report) -> None:
    if value is None:
        return
    try:
        as_status(value)
    except TransformError as exc:
        report(key, str(exc))


def compile_field(
    target: str,
    spec: object,
    *,
    where: KeyPath,
    report: Report,
    custom_types: Mapping[str, str],
    phone_region: str | None,
) -> CompiledField | None:
    """Compile ``fields.<target>``; report every problem and return ``None`` if any."""
    problems: list[str] = []

    def note(key: KeyPath, message: str) -> None:
        problems.append(message)
        report(key, message)

    resolved = _target(target, custom_types, phone_region)
    if isinstance(resolved, str):
        note(where, resolved)
    short = isinstance(spec, str)
    if isinstance(spec, str):
        spec = {"from": spec}
    elif isinstance(spec, Mapping):
        spec = dict(spec)
        for key in spec:
            if key not in _KEYS:
                allowed = ", ".join(sorted(_KEYS))
                note((*where, str(key)), f"unknown key '{key}' (allowed: {allowed})")
    else:
        note(where, "a field is a path or a mapping with from/coalesce/template/value")
        return None
    source = _source(spec, where, note, short=short)
    chain = _chain(spec, where, note)
    table: dict[str, Any] | None = None
    if "map" in spec:
        if isinstance(spec["map"], dict):
            table = {map_key(k): v for k, v in spec["map"].items()}
            if target == "status":
                for key, value in spec["map"].items():
                    _check_status(value, (*where, "map", str(key)), note)
        else:
            note((*where, "map"), "map must be a mapping of source value: lead value")
    default = spec.get("default")
    if target == "status":
        _check_status(default, (*where, "default"), note)
        if "value" in spec and not chain and table is None:
            _check_status(spec["value"], (*where, "value"), note)
    kind = None
    if "type" in spec:
        kind = type_coercer(spec["type"]) if isinstance(spec["type"], str) else None
        if kind is None:
            note((*where, "type"), f"type must be one of {', '.join(TYPE_NAMES)}")
    if problems or source is None or isinstance(resolved, str):
        return None
    coerce, code, custom = resolved
    mapper = (
        None
        if table is None
        else make_mapper(target, table, default, "default" in spec)
    )
    top = spec.get("from")
    top_key = top if isinstance(top, str) and "." not in top else None
    run = make_runner(
        target, source, top_key, tuple(chain), mapper, default, kind, coerce, code
    )
    return CompiledField(target, custom, run, _paths(spec))
