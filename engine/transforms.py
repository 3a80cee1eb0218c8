"""The named transforms of the mapping language (contract §3).

Each transform is built once, at mapping compile time, from its arguments into a plain
``Callable[[Any], Any]`` (see ``build_transform``). At run time a transform passes
``None`` through unchanged, applies itself to each item of a list, and raises
``TransformError`` for a value it cannot handle.
"""

import re
from collections.abc import Callable
from functools import partial
from typing import Any

import phonenumbers

from engine.mapping_values import (
    TransformError,
    format_datetime,
    normalize_email,
    normalize_phone,
    parse_bool,
    parse_datetime,
    parse_float,
    parse_int,
    show_value,
    to_text,
)

__all__ = [
    "TRANSFORM_NAMES",
    "Transform",
    "TransformError",
    "TransformSpecError",
    "build_transform",
    "format_datetime",
    "normalize_email",
    "normalize_phone",
    "parse_bool",
    "parse_datetime",
    "parse_float",
    "parse_int",
    "to_text",
]

Transform = Callable[[Any], Any]
_POSSESSIVE = re.compile(r"'S\b")


class TransformSpecError(ValueError):
    """Raised at compile time for an unknown transform or bad transform arguments."""


def _each(fn: Transform, *, text: bool) -> Transform:
    """Make a scalar transform pass ``None`` through and map itself over lists.

    With ``text``, ``fn`` takes ``str`` and other values are turned into text first.
    """

    def run(value: Any) -> Any:
        if value.__class__ is str:
            return fn(value)
        if value is None:
            return None
        if isinstance(value, list | tuple):
            if text:
                return [fn(to_text(item)) for item in value if item is not None]
            return [fn(item) for item in value if item is not None]
        return fn(to_text(value) if text else value)

    return run


def _title(value: str) -> str:
    # str.title() capitalises after every apostrophe: keep "Joe's", not "Joe'S".
    return _POSSESSIVE.sub("'s", value.title())


def _str_arg(name: str, key: str, args: object, default: str | None) -> str | None:
    if isinstance(args, dict):
        extra = set(args) - {key}
        if extra:
            raise TransformSpecError(
                f"'{name}' takes only '{key}', not {sorted(extra)}"
            )
        args = args.get(key, default)
    elif args is None:
        args = default
    if args is not None and not isinstance(args, str):
        raise TransformSpecError(f"'{name}': '{key}' must be a string")
    return args


def _no_args(name: str, fn: Transform, *, text: bool) -> Callable[[object], Transform]:
    def build(args: object) -> Transform:
        if args not in (None, {}):
            raise TransformSpecError(f"'{name}' takes no arguments")
        return _each(fn, text=text)

    return build


def _e164(args: object) -> Transform:
    region = _str_arg("e164", "region", args, None)
    if region is not None:
        region = region.upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise TransformSpecError(f"'e164': unknown region '{region}' (use e.g. US)")
    return _each(partial(normalize_phone, region=region), text=True)


def _split(args: object) -> Transform:
    sep = _str_arg("split", "sep", args, ",")
    if not sep:
        raise TransformSpecError("'split': the separator must not be empty")

    def split(value: Any) -> Any:
        if value.__class__ is str:
            parts = value.split(sep)
        elif value is None:
            return None
        else:
            items = value if isinstance(value, list | tuple) else (value,)
            parts = [p for i in items if i is not None for p in to_text(i).split(sep)]
        return [part for part in map(str.strip, parts) if part]

    return split


def _join(args: object) -> Transform:
    joiner = _str_arg("join", "sep", args, ", ") or ""

    def join(value: Any) -> Any:
        if isinstance(value, list | tuple):
            return joiner.join(to_text(item) for item in value if item is not None)
        return value

    return join


def _truncate(args: object) -> Transform:
    length = args.get("length") if isinstance(args, dict) else args
    if isinstance(args, dict) and set(args) - {"length"}:
        raise TransformSpecError("'truncate' takes only 'length'")
    if not isinstance(length, int) or isinstance(length, bool) or length < 1:
        raise TransformSpecError("'truncate' needs a length >= 1: {truncate: 100}")
    return _each(lambda value: value[:length], text=True)


def _datetime(args: object) -> Transform:
    fmt = _str_arg("datetime", "format", args, None)
    if fmt is not None and "%" not in fmt:
        raise TransformSpecError("'datetime': format is a strptime pattern: '%d/%m/%Y'")
    return _each(partial(parse_datetime, fmt=fmt), text=False)


_FACTORIES: dict[str, Callable[[object], Transform]] = {
    "strip": _no_args("strip", str.strip, text=True),
    "lower": _no_args("lower", str.lower, text=True),
    "upper": _no_args("upper", str.upper, text=True),
    "title": _no_args("title", _title, text=True),
    "email": _no_args("email", normalize_email, text=True),
    "int": _no_args("int", parse_int, text=False),
    "float": _no_args("float", parse_float, text=False),
    "bool": _no_args("bool", parse_bool, text=False),
    "e164": _e164,
    "datetime": _datetime,
    "split": _split,
    "join": _join,
    "truncate": _truncate,
}
#: The transform names of the mapping language.
TRANSFORM_NAMES = tuple(_FACTORIES)


def build_transform(spec: object) -> tuple[str, Transform]:
    """Build a transform from ``name`` or ``{name: args}``: its name and its callable.

    Raises:
        TransformSpecError: unknown name or bad arguments.
    """
    name: object = spec
    args: object = None
    if isinstance(spec, dict) and len(spec) == 1:
        ((name, args),) = spec.items()
    elif not isinstance(spec, str):
        raise TransformSpecError(
            "a transform is a name (strip) or a one-key mapping ({truncate: 100})"
        )
    factory = _FACTORIES.get(name) if isinstance(name, str) else None
    if factory is None or not isinstance(name, str):
        known = ", ".join(TRANSFORM_NAMES)
        raise TransformSpecError(
            f"unknown transform {show_value(name)}; known: {known}"
        )
    return name, factory(args)
