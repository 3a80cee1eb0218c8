"""The store's tables (SQLModel).

``Lead`` holds the leads of contract §4; ``LeadPayload`` the raw source record behind
each synced lead (for ``remap`` and retries); ``ConnectorCursor``, ``Run`` and
``Failure`` the sync state; ``ApiKey`` the hashed API keys; ``SeenId`` the ids a
snapshot pass listed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from state.models_lease import Lease as Lease  # registers the lease table
from state.types import JSONType, UTCDateTime

__all__ = [
    "CONTENT_FIELDS",
    "LEAD_STATUSES",
    "STRING_FIELDS",
    "ApiKey",
    "ConnectorCursor",
    "Failure",
    "Lead",
    "LeadPayload",
    "Run",
    "SeenId",
]

#: The lead's string fields of contract §4 that a mapping or the API may set.
STRING_FIELDS = (
    "email",
    "first_name",
    "last_name",
    "name",
    "company",
    "title",
    "phone",
    "owner",
    "status",
    "source",
)
#: Every field whose change is a change of content (and so moves ``updated_at``).
CONTENT_FIELDS = (*STRING_FIELDS, "score", "tags", "custom_fields")
LEAD_STATUSES = ("new", "contacted", "qualified", "converted", "lost")


def _dt(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(
        default=None,
        sa_column=sa.Column(UTCDateTime(), nullable=nullable, index=index),
    )


class Lead(SQLModel, table=True):
    """A lead: unique by ``(origin, lead_id)``; deletes are tombstones."""

    __tablename__ = "lead"
    __table_args__ = (
        sa.UniqueConstraint("origin", "lead_id", name="uq_lead_origin_lead_id"),
        sa.Index("ix_lead_updated_at_id", "updated_at", "id"),
        # deleted_at too: a list of live leads skips its OFFSET in the index alone.
        sa.Index("ix_lead_created_at_id", "created_at", "id", "deleted_at"),
        sa.Index("ix_lead_email", "email"),
        sa.Index("ix_lead_phone", "phone"),
    )

    id: str = Field(primary_key=True, max_length=40)
    origin: str = Field(max_length=100)
    lead_id: str = Field(max_length=255)
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    name: str | None = None
    company: str | None = None
    title: str | None = None
    phone: str | None = None
    owner: str | None = None
    status: str | None = Field(default=None, index=True)
    score: int | None = Field(default=None, index=True)
    source: str | None = Field(default=None, index=True)
    tags: list[str] = Field(
        default_factory=list, sa_column=sa.Column(JSONType, nullable=False)
    )
    custom_fields: dict[str, Any] = Field(
        default_factory=dict, sa_column=sa.Column(JSONType, nullable=False)
    )
    content_hash: str = Field(max_length=64)
    created_at: datetime = _dt(nullable=False)
    updated_at: datetime = _dt(nullable=False)
    source_updated_at: datetime | None = _dt()
    deleted_at: datetime | None = _dt()


class LeadPayload(SQLModel, table=True):
    """The raw record behind a synced lead, and the hash that skips re-mapping it."""

    __tablename__ = "lead_payload"

    origin: str = Field(primary_key=True, max_length=100)
    lead_id: str = Field(primary_key=True, max_length=255)
    raw: dict[str, Any] = Field(sa_column=sa.Column(JSONType, nullable=False))
    raw_hash: str = Field(max_length=64)
    fetched_at: datetime = _dt(nullable=False)


class ConnectorCursor(SQLModel, table=True):
    """How far a connector has synced: ``(ts, record_id)``, plus free-form state."""

    __tablename__ = "cursor"

    connector: str = Field(primary_key=True, max_length=100)
    ts: datetime | None = _dt()
    record_id: str = Field(default="", max_length=255)
    state: dict[str, Any] = Field(
        default_factory=dict, sa_column=sa.Column(JSONType, nullable=False)
    )
    fence: int = Field(default=0)
    updated_at: datetime = _dt(nullable=False)


class Run(SQLModel, table=True):
    """One run of one connector (sync, backfill, retry or remap) and its counts."""

    __tablename__ = "run"
    __table_args__ = (sa.Index("ix_run_connector_started", "connector", "started_at"),)

    id: str = Field(primary_key=True, max_length=40)
    connector: str = Field(max_length=100)
    kind: str = Field(max_length=20)
    started_at: datetime = _dt(nullable=False)
    finished_at: datetime | None = _dt()
    outcome: str = Field(default="running", max_length=20)
    read: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    failed: int = 0
    retried: int = 0
    resolved: int = 0
    error: str | None = None


class Failure(SQLModel, table=True):
    """A record that could not be synced, and when it is retried next.

    ``item_key`` is the record's id in the source, or ``line:N`` when it has none.
    ``status`` is ``pending`` (will be retried), ``dead`` (out of attempts) or
    ``resolved``.
    """

    __tablename__ = "failure"
    __table_args__ = (
        sa.UniqueConstraint("connector", "item_key", name="uq_failure_connector_item"),
        sa.Index("ix_failure_due", "connector", "status", "next_retry_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    connector: str = Field(max_length=100)
    item_key: str = Field(max_length=255)
    lead_id: str | None = Field(default=None, max_length=255)
    stage: str = Field(max_length=20)
    code: str = Field(max_length=60)
    message: str
    position: str | None = None
    raw: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(JSONType))
    attempts: int = 1
    status: str = Field(default="pending", max_length=20)
    last_run_id: str | None = Field(default=None, max_length=40)
    first_failed_at: datetime = _dt(nullable=False)
    last_failed_at: datetime = _dt(nullable=False)
    next_retry_at: datetime | None = _dt()
    resolved_at: datetime | None = _dt()


class ApiKey(SQLModel, table=True):
    """An API key: only its SHA-256 is stored; ``prefix`` identifies it in listings."""

    __tablename__ = "api_key"

    id: str = Field(primary_key=True, max_length=40)
    name: str = Field(max_length=100, unique=True)
    prefix: str = Field(max_length=20, index=True)
    key_hash: str = Field(max_length=64)
    scopes: list[str] = Field(
        default_factory=list, sa_column=sa.Column(JSONType, nullable=False)
    )
    created_at: datetime = _dt(nullable=False)
    last_used_at: datetime | None = _dt()
    revoked_at: datetime | None = _dt()


class SeenId(SQLModel, table=True):
    """The ids a snapshot pass listed, so that what it missed can be tombstoned."""

    __tablename__ = "seen_id"
    # SQLite: one B-tree keyed by the primary key, not a rowid table plus its index
    __table_args__ = {"sqlite_with_rowid": False}

    run_id: str = Field(primary_key=True, max_length=40)
    lead_id: str = Field(primary_key=True, max_length=255)
