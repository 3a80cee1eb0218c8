"""Errors of the engine, and the whole tree re-exported for callers.

The tree::

    LeadSyncError
    ├── ConfigError          invalid config or mapping (file, key path, line)
    ├── MappingError         one record cannot be mapped: skipped into the failure log
    ├── StateError           the store refused (state/errors.py)
    │   └── LeadNotFound     also a LookupError
    └── SourceError          (connectors/errors.py) AuthError, RetriableSourceError,
                             FatalSourceError
"""

from __future__ import annotations

from connectors.errors import (
    AuthError,
    ConfigError,
    FatalSourceError,
    LeadSyncError,
    RetriableSourceError,
    SourceError,
)
from state.errors import LeadNotFound, StateError

__all__ = [
    "AuthError",
    "ConfigError",
    "FatalSourceError",
    "LeadNotFound",
    "LeadSyncError",
    "MappingError",
    "RetriableSourceError",
    "SourceError",
    "StateError",
]


class MappingError(LeadSyncError):
    """Raised when one record cannot be mapped; it goes to the failure log.

    A transform failed or a required field is missing; the run goes on.

    ``field`` is the lead field concerned, ``code`` a short machine-readable reason
    (``required``, ``transform``, ``invalid_email``...).
    """

    def __init__(
        self, message: str, *, field: str | None = None, code: str = "mapping"
    ) -> None:
        self.field = field
        self.code = code
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)
