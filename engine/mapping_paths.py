"""Source paths and templates of the mapping language, compiled into getters.

A path is dotted (``properties.email``); a segment that looks like an integer also
indexes a list (``email.0.value``). A segment may hold inner spaces, so that CSV
headers such as ``First Name`` can be addressed. A getter returns ``None`` for anything
missing on the way and never raises.
"""

import re
from collections.abc import Callable, Mapping
from typing import Any

from engine.mapping_values import to_text

__all__ = [
    "Getter",
    "Template",
    "make_getter",
    "make_template",
    "parse_template",
    "path_problem",
]

Getter = Callable[[Mapping[str, Any]], Any]
Template = Callable[[Mapping[str, Any]], str | None]

_SEGMENT = re.compile(r"^[^.{}\s](?:[^.{}]*[^.{}\s])?$")
_TEMPLATE_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


def path_problem(path: object) -> str | None:
    """What is wrong with ``path`` as a source path, or ``None`` if it is valid."""
    if not isinstance(path, str):
        return f"a path must be text such as properties.email, not {path!r}"
    if not path:
        return "the path is empty"
    for segment in path.split("."):
        if not segment:
            return f"invalid path '{path}': empty segment (two dots or a dot at an end)"
        if not _SEGMENT.match(segment):
            return (
                f"invalid path '{path}': segment '{segment}' may not start or end"
                " with a space nor hold '{' or '}'"
            )
    return None


def _step(obj: Any, key: str, index: int | None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(key)
    if index is not None and isinstance(obj, list):
        return obj[index] if index < len(obj) else None
    return None


def make_getter(path: str) -> Getter:
    """A function reading ``path`` from a record (nested dicts and lists)."""
    keys = path.split(".")
    head = keys[0]
    steps = tuple((key, int(key) if key.isdecimal() else None) for key in keys[1:])
    if not steps:

        def get_top(record: Mapping[str, Any]) -> Any:
            return record.get(head)

        return get_top
    if len(steps) == 1:
        ((key, index),) = steps

        def get_nested(record: Mapping[str, Any]) -> Any:
            value = record.get(head)
            # Plain dicts are by far the common case: skip the ABC check for them.
            if value.__class__ is dict:
                return value.get(key)
            return None if value is None else _step(value, key, index)

        return get_nested

    def get_deep(record: Mapping[str, Any]) -> Any:
        value = record.get(head)
        for key, index in steps:
            if value is None:
                return None
            value = (
                value.get(key) if value.__class__ is dict else _step(value, key, index)
            )
        return value

    return get_deep


def parse_template(text: str) -> tuple[list[tuple[str, str]], str]:
    """Split a template into ``(literal, path)`` pairs and the trailing literal.

    ``{{`` and ``}}`` are literal braces.

    Raises:
        ValueError: an unbalanced brace, an empty placeholder or a bad path.
    """
    pairs: list[tuple[str, str]] = []
    literal: list[str] = []
    end = 0
    for token in _TEMPLATE_TOKEN.finditer(text):
        literal.append(text[end : token.start()])
        end = token.end()
        if token[0] in ("{{", "}}"):
            literal.append(token[0][0])
        elif token[1] is None:
            raise ValueError(
                f"unbalanced '{token[0]}' at position {token.start()}"
                " (write {{ or }} for a literal brace)"
            )
        else:
            path = token[1].strip()
            problem = path_problem(path) if path else "empty placeholder {}"
            if problem:
                raise ValueError(f"placeholder {token[0]}: {problem}")
            pairs.append(("".join(literal), path))
            literal = []
    literal.append(text[end:])
    return pairs, "".join(literal)


def make_template(pairs: list[tuple[str, str]], tail: str) -> Template:
    """A function filling the template from a record (missing values read as "").

    Runs of whitespace collapse to one space and the ends are stripped, so
    ``"{first} {last}"`` with no first name gives ``"Smith"``; all blank gives None.
    """
    parts = tuple((literal, make_getter(path)) for literal, path in pairs)

    def render(record: Mapping[str, Any]) -> str | None:
        out: list[str] = []
        for literal, get in parts:
            out.append(literal)
            value = get(record)
            if value is not None:
                out.append(value if value.__class__ is str else to_text(value))
        out.append(tail)
        return " ".join("".join(out).split()) or None

    return render
