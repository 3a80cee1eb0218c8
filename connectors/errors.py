"""Errors raised by connectors and shared by every layer.

The tree::

    LeadSyncError
    ├── ConfigError                  an invalid config or mapping (file, key, line)
    └── SourceError                  talking to a source failed
        ├── AuthError                credentials rejected: fatal for the run
        ├── RetriableSourceError     429, 5xx, connection errors: retry with backoff
        └── FatalSourceError         anything else the source refuses: fail the run

Messages never carry response bodies, tokens or lead data; vendor detail stays on
``__cause__``.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AuthError",
    "ConfigError",
    "FatalSourceError",
    "LeadSyncError",
    "RetriableSourceError",
    "SourceError",
]


class LeadSyncError(Exception):
    """Base class of every error leadsync raises on purpose."""


class ConfigError(LeadSyncError):
    """Raised when a configuration or mapping is invalid.

    ``file``, ``key`` (a dotted path such as ``connectors[0].schedule.every``) and
    ``line`` say where; ``str()`` renders them as ``file:line: key: message``.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        key: str | None = None,
        line: int | None = None,
        problems: Sequence[ConfigError] = (),
    ) -> None:
        self.message = message
        self.file = file
        self.key = key
        self.line = line
        self.problems = list(problems)
        super().__init__(self.render())

    def render(self) -> str:
        """Render as ``file:line: key: message`` (parts that are unknown left out)."""
        where = ""
        if self.file:
            where = self.file + (f":{self.line}" if self.line else "") + ": "
        elif self.line:
            where = f"line {self.line}: "
        key = f"{self.key}: " if self.key else ""
        head = f"{where}{key}{self.message}"
        if self.problems:
            head += "".join(f"\n  - {p.render()}" for p in self.problems)
        return head


class SourceError(LeadSyncError):
    """Raised when a source cannot be read."""


class AuthError(SourceError):
    """Raised when the source rejects the credentials (401/403); fatal for the run."""


class RetriableSourceError(SourceError):
    """Raised on rate limits, server errors and dropped connections.

    ``retry_after`` is the delay in seconds the source asked for, if it said one.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class FatalSourceError(SourceError):
    """Raised when the source refuses a request in a way retrying cannot fix."""
