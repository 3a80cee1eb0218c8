"""Checks of a mapping's top level, problem reporting and the mapping fingerprint."""

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

import phonenumbers

from connectors.errors import ConfigError
from engine.mapping_fields import KeyPath
from engine.mapping_paths import path_problem
from engine.mapping_values import show_value

__all__ = [
    "TOP_KEYS",
    "Problems",
    "fingerprint",
    "path_key",
    "phone_region",
    "required_fields",
]

TOP_KEYS = ("lead_id", "updated_at", "fields", "require", "phone_region")
#: Bump when the meaning of a mapping changes, so every fingerprint changes with it.
_SEMANTICS_VERSION = 1


class Problems:
    """Collects the problems of one mapping, each located by key path and line."""

    def __init__(
        self, file: str | None, locate: Callable[[KeyPath], int | None] | None
    ) -> None:
        self.file = file
        self.locate = locate
        self.found: list[ConfigError] = []

    def __call__(self, path: KeyPath, message: str) -> None:
        """Record one problem at ``path`` (``("fields", "phone", "transform", 0)``)."""
        key = "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in path
        ).lstrip(".")
        line = self.locate(path) if self.locate is not None else None
        self.found.append(
            ConfigError(message, file=self.file, key=key or None, line=line)
        )

    def error(self) -> ConfigError:
        """The one problem found, or one error listing them all."""
        if len(self.found) == 1:
            return self.found[0]
        return ConfigError(
            f"{len(self.found)} problems in mapping",
            file=self.file,
            problems=self.found,
        )


def _canonical(value: Any) -> Any:
    """The spec as plain JSON: string keys, dates as ISO text."""
    if isinstance(value, Mapping):
        return {str(key): _canonical(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(item) for item in value]
    if isinstance(value, date | datetime):
        return value.isoformat()
    return value


def fingerprint(spec: Mapping[str, Any], custom_types: Mapping[str, str]) -> str:
    """sha256 of the canonical JSON of the mapping and the custom fields it sets."""
    # Only the custom fields the mapping sets: declaring an unrelated one maps nothing.
    targets = [str(target) for target in spec.get("fields") or {}]
    used = {
        name: custom_types[name]
        for name in (t[len("custom.") :] for t in targets if t.startswith("custom."))
        if name in custom_types
    }
    document = {
        "version": _SEMANTICS_VERSION,
        "mapping": _canonical(spec),
        "lead_fields": used,
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def path_key(
    spec: Mapping[str, Any], key: str, report: Problems, *, required: bool
) -> str | None:
    """The source path under the top-level ``key`` (``lead_id``, ``updated_at``)."""
    if key not in spec or spec[key] is None:
        if required:
            report((key,), f"missing: the path of the record's {key} ({key}: id)")
        return None
    problem = path_problem(spec[key])
    if problem:
        report((key,), problem)
        return None
    return str(spec[key])


def phone_region(spec: Mapping[str, Any], report: Problems) -> str | None:
    """The mapping's default phone region (``phone_region: US``), upper-cased."""
    region = spec.get("phone_region")
    if region is None:
        return None
    if isinstance(region, str) and region.upper() in phonenumbers.SUPPORTED_REGIONS:
        return region.upper()
    report(("phone_region",), f"unknown region {show_value(region)}: use e.g. US, GB")
    return None


def required_fields(
    spec: Mapping[str, Any], targets: Sequence[str], report: Problems
) -> list[str]:
    """The ``require`` list, each name checked against the mapped ``targets``."""
    names = spec.get("require") or []
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list):
        report(("require",), "require takes a list of lead fields: [email]")
        return []
    for index, name in enumerate(names):
        if name not in targets:
            report(
                ("require", index),
                f"{show_value(name)} is required but not mapped under fields",
            )
    return [name for name in names if isinstance(name, str)]
