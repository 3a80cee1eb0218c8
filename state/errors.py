"""Errors raised by the store."""

from __future__ import annotations

from connectors.errors import LeadSyncError

__all__ = ["LeadNotFound", "StateError"]


class StateError(LeadSyncError):
    """Raised when the store cannot do what was asked (old schema, lost lease...)."""


class LeadNotFound(StateError, LookupError):
    """Raised when a lead looked up by id does not exist."""
