"""Pydantic validation errors as ``ConfigError``s that name the file, key and line."""

from __future__ import annotations

import difflib
import os
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from connectors.errors import ConfigError
from service.configfile import KeyPath, LineIndex, format_key

__all__ = ["KeyedValueError", "validation_error"]

_ENV_PREFIX = "LEADSYNC_"
_MESSAGE_PREFIXES = ("Value error, ", "Assertion failed, ")


class KeyedValueError(ValueError):
    """Raised by a validator about a key other than the one it validates.

    ``loc`` is the key path from the root of the document, so the error points at the
    offending key (the second of two duplicate names, say) rather than at the list.
    """

    def __init__(self, message: str, loc: KeyPath) -> None:
        super().__init__(message)
        self.loc = loc


def validation_error(
    exc: ValidationError,
    *,
    model: type[BaseModel],
    data: Any,
    index: LineIndex,
    file: str,
    union_lists: dict[str, dict[str, type[BaseModel]]] | None = None,
) -> ConfigError:
    """The problems of ``exc`` as one ``ConfigError``, each with file, key and line.

    A single problem is returned as itself; several are listed in ``problems`` of one
    summary error (the convention of the mapping compiler), so callers iterate over
    ``err.problems or [err]``.

    Args:
        exc: the validation error of ``model`` over ``data``.
        model: the root model.
        data: the document that was validated (to pick union members and list keys).
        index: the document's lines.
        file: the file name to report.
        union_lists: for a list discriminated on ``type`` (``connectors``), its members
            by tag, so pydantic's tag segment is dropped from the key path.
    """
    unions = union_lists or {}
    env = {
        name.upper(): name
        for name in os.environ
        if name.upper().startswith(_ENV_PREFIX)
    }
    problems: list[ConfigError] = []
    for err in exc.errors(include_url=False):
        loc: KeyPath = tuple(err["loc"])
        message = err["msg"]
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, KeyedValueError):
            loc, message = cause.loc, str(cause)
        else:
            loc = _clean_loc(loc, data, unions)
            for prefix in _MESSAGE_PREFIXES:
                message = message.removeprefix(prefix)
            if err["type"] == "extra_forbidden":
                message = _unknown_key(loc, model, data)
            elif err["type"] in ("union_tag_invalid", "union_tag_not_found"):
                tags = unions.get(str(loc[0]), {}) if loc else {}
                known = ", ".join(sorted(tags))
                tag = (err.get("ctx") or {}).get("tag")
                what = (
                    f"unknown connector type '{tag}'" if tag else "missing key 'type'"
                )
                message = f"{what} (known: {known})"
                loc = (*loc, "type")
        variable = _env_variable(loc, env)
        if variable is not None:
            problems.append(
                ConfigError(
                    f"{message} (from environment variable {variable})",
                    key=format_key(loc) or None,
                )
            )
        else:
            problems.append(
                ConfigError(
                    message,
                    file=file,
                    key=format_key(loc) or None,
                    line=index.line_of(loc),
                )
            )
    if len(problems) == 1:
        return problems[0]
    return ConfigError(
        f"{len(problems)} problems in the configuration", file=file, problems=problems
    )


def _child(value: Any, part: str | int) -> Any:
    if isinstance(part, int):
        return (
            value[part]
            if isinstance(value, list) and -len(value) <= part < len(value)
            else None
        )
    return value.get(part) if isinstance(value, dict) else None


def _clean_loc(loc: KeyPath, data: Any, unions: dict[str, Any]) -> KeyPath:
    """Drop pydantic's union member segments (``csv``, ``str``) from a location."""
    out: list[str | int] = []
    value = data
    for i, part in enumerate(loc):
        if isinstance(part, str):
            tagged = i >= 2 and loc[i - 2] in unions and isinstance(loc[i - 1], int)
            if (tagged and part in unions[str(loc[i - 2])]) or (
                value is not None and not isinstance(value, dict)
            ):
                continue
        out.append(part)
        value = _child(value, part)
    return tuple(out)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _pick(models: list[type[BaseModel]], value: Any) -> type[BaseModel] | None:
    if len(models) == 1:
        return models[0]
    kind = value.get("type") if isinstance(value, dict) else None
    for model in models:
        field = model.model_fields.get("type")
        if field is not None and field.default == kind:
            return model
    return None


def _unknown_key(loc: KeyPath, root: type[BaseModel], data: Any) -> str:
    """``unknown key 'x'``, with a suggestion among the keys allowed there."""
    models: list[type[BaseModel]] = [root]
    value = data
    for part in loc[:-1]:
        if isinstance(part, str):
            model = _pick(models, value)
            field = model.model_fields.get(part) if model is not None else None
            models = _models_in(field.annotation) if field is not None else []
        value = _child(value, part)
    model = _pick(models, value)
    key = str(loc[-1]) if loc else ""
    message = f"unknown key '{key}'"
    if model is not None:
        close = difflib.get_close_matches(key, list(model.model_fields), n=1)
        if close:
            message += f"; did you mean '{close[0]}'?"
    return message


def _env_variable(loc: KeyPath, env: dict[str, str]) -> str | None:
    """The ``LEADSYNC_*`` variable that supplied the value at ``loc``, if one did."""
    for end in range(len(loc), 0, -1):
        parts = loc[:end]
        if all(isinstance(p, str) for p in parts):
            name = _ENV_PREFIX + "__".join(str(p) for p in parts).upper()
            if name in env:
                return env[name]
    return None
