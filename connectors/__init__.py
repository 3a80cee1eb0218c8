"""The connector registry: each config ``type:`` maps to a config model and a class.

``CONFIG_MODELS`` lists the config model of every connector type, so settings can be
validated without importing any connector's implementation. ``source_class`` returns the
``Source`` class for a type, importing it on first use.
"""

from __future__ import annotations

import functools

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


@functools.cache
def sources() -> dict[str, type[Source]]:
    """The typed registry (``SOURCES``): the ``Source`` class of each ``type``."""
    # Built on first use: validating a config needs only CONFIG_MODELS, so the Source
    # classes are looked up only when something is about to run.
    from connectors.csvfile import CsvSource
    from connectors.hubspot import HubSpotSource

    registry: dict[str, type[Source]] = {"csv": CsvSource, "hubspot": HubSpotSource}
    return registry


def source_class(kind: str) -> type[Source]:
    """The ``Source`` class for a config ``type``; ``ConfigError`` if there is none."""
    registry = sources()
    try:
        return registry[kind]
    except KeyError:
        known = ", ".join(sorted(registry))
        raise ConfigError(f"unknown connector type '{kind}' (known: {known})") from None
