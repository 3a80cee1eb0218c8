"""YAML config files with line numbers, and ``${VAR}`` interpolation.

``load_yaml`` builds plain Python values from PyYAML's node tree and records the line of
every key and list item, so a validation error can point at ``leadsync.yaml:12``.

Scalars follow the YAML 1.2 core schema rather than PyYAML's YAML 1.1 default: only
``true``/``false`` are booleans (a region ``NO`` stays a string), ``0123`` is the
integer 123 rather than octal, and dates stay strings. Mapping keys are always strings.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from connectors.errors import ConfigError

__all__ = [
    "KeyPath",
    "LineIndex",
    "format_key",
    "interpolate",
    "load_yaml",
    "load_yaml_text",
]

KeyPath = tuple[str | int, ...]
"""Where a value sits: mapping keys and list indexes from the document's root."""

_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"


class _Loader(yaml.SafeLoader):
    """SafeLoader resolving plain scalars by the YAML 1.2 core schema."""

    yaml_implicit_resolvers: dict[Any, Any] = {}  # noqa: RUF012 (PyYAML's class registry)


_CORE_SCHEMA = (
    ("null", r"~|null|Null|NULL|", "~nN"),
    ("bool", r"true|True|TRUE|false|False|FALSE", "tTfF"),
    ("int", r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+", "-+0123456789"),
    (
        "float",
        r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)",
        "-+.0123456789",
    ),
    ("merge", r"<<", "<"),
)
for _name, _pattern, _first in _CORE_SCHEMA:
    _Loader.add_implicit_resolver(
        f"tag:yaml.org,2002:{_name}",
        re.compile(f"^(?:{_pattern})$"),
        # "" lets the null resolver see empty scalars (`key:` with no value).
        [*_first, ""] if _name == "null" else list(_first),
    )


class LineIndex:
    """The 1-based line of every node of a YAML document, by key path."""

    __slots__ = ("_lines", "_prefix")

    def __init__(self, lines: dict[KeyPath, int] | None = None, prefix: KeyPath = ()):
        self._lines: dict[KeyPath, int] = lines if lines is not None else {}
        self._prefix = prefix

    def line_of(self, path: KeyPath) -> int | None:
        """The line of the deepest node along ``path`` that exists in the document."""
        full = self._prefix + tuple(path)
        for end in range(len(full), len(self._prefix) - 1, -1):
            line = self._lines.get(full[:end])
            if line is not None:
                return line
        return None

    def sub(self, prefix: KeyPath) -> LineIndex:
        """A view of this index rooted at ``prefix`` (e.g. an inline mapping)."""
        return LineIndex(self._lines, self._prefix + tuple(prefix))


def format_key(path: KeyPath) -> str:
    """Render a key path: ``("connectors", 0, "lag")`` -> ``connectors[0].lag``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def load_yaml(path: Path) -> tuple[Any, LineIndex]:
    """Parse a YAML file into plain values and the line of each of its nodes."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("config file not found", file=str(path)) from None
    except IsADirectoryError:
        raise ConfigError(
            "config path is a directory, not a file", file=str(path)
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text: {exc.reason}", file=str(path)) from None
    return load_yaml_text(text, str(path))


def load_yaml_text(text: str, file_label: str) -> tuple[Any, LineIndex]:
    """Parse YAML text; ``file_label`` names it in errors."""
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.problem and exc.context and exc.context_mark is not None:
            problem += f" ({exc.context} started on line {exc.context_mark.line + 1})"
        raise ConfigError(
            f"invalid YAML: {problem}", file=file_label, line=line
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", file=file_label) from None
    lines: dict[KeyPath, int] = {}
    if root is None:
        return None, LineIndex(lines)
    builder = _Builder(file_label, lines)
    lines[()] = root.start_mark.line + 1
    return builder.build(root, ()), LineIndex(lines)


class _Builder:
    """Turns a composed node tree into dicts, lists and scalars, recording lines."""

    def __init__(self, file_label: str, lines: dict[KeyPath, int]) -> None:
        self._file = file_label
        self._lines = lines
        self._constructor = SafeConstructor()

    def _error(self, message: str, node: Node, path: KeyPath) -> ConfigError:
        return ConfigError(
            message,
            file=self._file,
            key=format_key(path) or None,
            line=node.start_mark.line + 1,
        )

    def build(self, node: Node, path: KeyPath) -> Any:
        if isinstance(node, MappingNode):
            return self._mapping(node, path)
        if isinstance(node, SequenceNode):
            items = []
            for i, child in enumerate(node.value):
                self._lines[(*path, i)] = child.start_mark.line + 1
                items.append(self.build(child, (*path, i)))
            return items
        if isinstance(node, ScalarNode):
            return self._scalar(node, path)
        raise self._error("unsupported YAML node", node, path)

    def _mapping(self, node: MappingNode, path: KeyPath) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        explicit: dict[str, Any] = {}
        seen: dict[str, int] = {}
        # Merges first, so the explicit keys' lines win in the index.
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                merged.update(self._merge_source(value_node, path))
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                continue
            if not isinstance(key_node, ScalarNode):
                raise self._error("mapping keys must be plain strings", key_node, path)
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise self._error(
                    f"duplicate key '{key}' (lines {seen[key]} and {line})",
                    key_node,
                    (*path, key),
                )
            seen[key] = line
            self._lines[(*path, key)] = line
            explicit[key] = self.build(value_node, (*path, key))
        merged.update(explicit)
        return merged

    def _merge_source(self, node: Node, path: KeyPath) -> dict[str, Any]:
        # `<<: *anchor` or `<<: [*a, *b]`; explicit keys win, earlier sources win.
        sources = node.value if isinstance(node, SequenceNode) else [node]
        out: dict[str, Any] = {}
        for source in reversed(sources):
            if not isinstance(source, MappingNode):
                raise self._error("'<<' merges only mappings", source, path)
            out.update(self._mapping(source, path))
        return out

    def _scalar(self, node: ScalarNode, path: KeyPath) -> Any:
        convert = _SCALARS.get(node.tag)
        try:
            if convert is not None:
                return convert(node.value)
            # Explicit tags (!!binary, !!timestamp, ...) keep PyYAML's meaning.
            return self._constructor.construct_object(node, deep=True)
        except yaml.MarkedYAMLError as exc:
            problem = exc.problem
        except (yaml.YAMLError, ValueError):
            problem = f"not a valid {node.tag.rsplit(':', 1)[-1]}"
        raise self._error(f"cannot read value: {problem}", node, path)


def _to_int(value: str) -> int:
    if value.startswith(("0x", "0o")):
        return int(value[2:], 16 if value[1] == "x" else 8)
    return int(value, 10)


def _to_float(value: str) -> float:
    lowered = value.lower()
    if lowered.endswith(".inf"):
        return -math.inf if lowered.startswith("-") else math.inf
    if lowered == ".nan":
        return math.nan
    return float(value)


_SCALARS: dict[str, Callable[[str], Any]] = {
    _STR: str,
    "tag:yaml.org,2002:null": lambda _value: None,
    "tag:yaml.org,2002:bool": lambda value: value.lower() == "true",
    "tag:yaml.org,2002:int": _to_int,
    "tag:yaml.org,2002:float": _to_float,
}
_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate(
    data: Any,
    index: LineIndex,
    file: str | None,
    environ: Mapping[str, str] | None = None,
) -> Any:
    """Expand ``${VAR}``, ``${VAR:-default}`` and ``$$`` in every string value.

    ``${VAR:-default}`` takes the default when VAR is unset or empty, as the shell does.
    Keys are left alone. An unset variable without a default is a ``ConfigError`` naming
    the key and its line.
    """
    env = os.environ if environ is None else environ
    return _interpolate(data, (), index, file, env)


def _interpolate(
    data: Any, path: KeyPath, index: LineIndex, file: str | None, env: Mapping[str, str]
) -> Any:
    if isinstance(data, str):
        if "$" not in data:
            return data

        def _expand(match: re.Match[str]) -> str:
            name, default = match[1], match[2]
            if name is None:
                return "$"
            value = env.get(name)
            if value is None or (value == "" and default is not None):
                if default is None:
                    raise ConfigError(
                        f"environment variable {name} is not set",
                        file=file,
                        key=format_key(path) or None,
                        line=index.line_of(path),
                    )
                return default
            return value

        return _VAR.sub(_expand, data)
    if isinstance(data, dict):
        return {
            k: _interpolate(v, (*path, k), index, file, env) for k, v in data.items()
        }
    if isinstance(data, list):
        return [
            _interpolate(v, (*path, i), index, file, env) for i, v in enumerate(data)
        ]
    return data
