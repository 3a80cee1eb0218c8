"""The connector registry: each config ``type:`` maps to a config model and a class.

``CONFIG_MODELS`` lists the config model of every connector type, so settings can be
validated without importing any connector's implementation. ``source_class`` returns the
``Source`` class for a type, importing it on first use.
"""

from __future__ import annotations

import functools
import importlib

from connectors.base import ConnectorConfig, Source
from connectors.csvfile import CsvConfig
from connectors.errors import ConfigError
from connectors.hubspot.config import HubSpotConfig

__all__ = ["CONFIG_MODELS", "source_class", "sources"]

#: The config model of every connector type, keyed by ``type``.
CONFIG_MODELS: dict[str, type[ConnectorConfig]] = {
    "csv": CsvConfig,
    "hubspot": HubSpotConfig,
}


#: Where the ``Source`` class of each ``type`` lives, imported on first use: a run of
#: one connector type never pays for importing another's client library.
_SOURCE_PATHS: dict[str, tuple[str, str]] = {
    "csv": ("connectors.csvfile", "CsvSource"),
    "hubspot": ("connectors.hubspot", "HubSpotSource"),
}


@functools.cache
def _load(kind: str) -> type[Source]:
    module, name = _SOURCE_PATHS[kind]
    cls: type[Source] = getattr(importlib.import_module(module), name)
    return cls


def sources() -> dict[str, type[Source]]:
    """The typed registry (``SOURCES``): the ``Source`` class of each ``type``."""
    return {kind: _load(kind) for kind in _SOURCE_PATHS}


def source_class(kind: str) -> type[Source]:
    """The ``Source`` class for a config ``type``; ``ConfigError`` if there is none."""
    if kind not in _SOURCE_PATHS:
        known = ", ".join(sorted(_SOURCE_PATHS))
        raise ConfigError(f"unknown connector type '{kind}' (known: {known})")
    return _load(kind)
