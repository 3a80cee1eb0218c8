"""Where mapped leads go: the embedded store (default), or a remote lead-sync API.

A destination applies one batch of upserts and deletes inside the caller's state
transaction, so that for the embedded store the leads, the failures and the cursor that
covers them commit together.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session

from state.store import (
    PreparedLeads,
    prepare_leads,
    tombstone_leads,
    upsert_prepared,
)

__all__ = ["Batch", "BatchResult", "Destination", "StoreDestination"]


@dataclass(slots=True)
class Batch:
    """Mapped leads to upsert and lead_ids to tombstone, for one origin."""

    origin: str
    upserts: Sequence[Mapping[str, Any]] = ()
    deletes: Sequence[str] = ()
    #: ``upserts`` as the destination's own ``prepare`` returned them, if it has one
    prepared: Any = None


@dataclass(slots=True)
class BatchResult:
    """What a destination did with a batch; ``errors`` are per-item rejections."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    errors: list[tuple[str, str, str]] = field(default_factory=list)


class Destination(Protocol):
    """Receives batches of leads; ``apply`` runs inside the state transaction."""

    name: str

    def apply(self, session: Session, batch: Batch, *, now: datetime) -> BatchResult:
        """Write the batch; rejected items come back as ``(lead_id, code, msg)``."""
        ...


class StoreDestination:
    """The embedded lead store: same database, same transaction as the sync state."""

    name = "store"

    def prepare(self, leads: Sequence[Mapping[str, Any]]) -> PreparedLeads:
        """Hash and convert leads ahead of ``apply``, outside the transaction."""
        return prepare_leads(leads)

    def apply(self, session: Session, batch: Batch, *, now: datetime) -> BatchResult:
        """Upsert and tombstone in the caller's transaction."""
        result = BatchResult()
        if batch.upserts or batch.prepared is not None:
            prepared = batch.prepared
            if not isinstance(prepared, PreparedLeads):
                prepared = prepare_leads(batch.upserts)
            upserted = upsert_prepared(
                session, origin=batch.origin, prepared=prepared, now=now
            )
            result.created = upserted.created
            result.updated = upserted.updated
            result.unchanged = upserted.unchanged
        if batch.deletes:
            deleted = tombstone_leads(
                session, origin=batch.origin, lead_ids=batch.deletes, now=now
            )
            result.deleted = len(deleted.deleted)
        return result
