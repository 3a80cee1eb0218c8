"""Writing single leads for the API: create, patch, upsert by match, tags, delete.

Leads created here have origin ``api`` and their store id as ``lead_id``. Every change
recomputes the content hash; a write that changes nothing keeps ``updated_at``. Email
is unique among live leads: on PostgreSQL a transaction-scoped advisory lock on the
email closes the check-then-write race; on SQLite the caller serialises these writes
(SQLite has a single writer anyway).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from state.errors import LeadNotFound, StateError
from state.models import CONTENT_FIELDS
from state.reads import lead_row_to_dict
from state.store import LEAD, PAYLOAD, content_hash, new_lead_id

__all__ = [
    "API_ORIGIN",
    "EmailConflict",
    "MatchBy",
    "add_tags",
    "create_lead",
    "delete_lead",
    "patch_lead",
    "remove_tag",
    "upsert_lead",
]

API_ORIGIN = "api"
MatchBy = Literal["email", "phone", "email_or_phone"]


class EmailConflict(StateError):
    """Raised when a write would give a second live lead the same email."""

    def __init__(self, email: str, existing_lead_id: str) -> None:
        super().__init__("a live lead with this email already exists")
        self.email = email
        self.existing_lead_id = existing_lead_id


def _live(session: Session, lead_id: str) -> dict[str, Any]:
    row = (
        session.execute(
            sa.select(LEAD).where(LEAD.c.id == lead_id, LEAD.c.deleted_at.is_(None))
        )
        .mappings()
        .first()
    )
    if row is None:
        raise LeadNotFound(f"no lead with id '{lead_id}'")
    return dict(row)


def _find(session: Session, column: str, value: str) -> dict[str, Any] | None:
    row = (
        session.execute(
            sa.select(LEAD)
            .where(LEAD.c[column] == value, LEAD.c.deleted_at.is_(None))
            .order_by(LEAD.c.created_at, LEAD.c.id)
            .limit(1)
        )
        .mappings()
        .first()
    )
    return dict(row) if row is not None else None


def _check_email(session: Session, email: Any, own_id: str | None) -> None:
    if not isinstance(email, str) or not email:
        return
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            sa.text("SELECT pg_advisory_xact_lock(hashtext(:email))"), {"email": email}
        )
    query = sa.select(LEAD.c.id).where(
        LEAD.c.email == email, LEAD.c.deleted_at.is_(None)
    )
    if own_id is not None:
        query = query.where(LEAD.c.id != own_id)
    existing = session.execute(query.order_by(LEAD.c.created_at).limit(1)).first()
    if existing is not None:
        raise EmailConflict(email, existing[0])


def create_lead(
    session: Session, *, fields: Mapping[str, Any], now: datetime
) -> dict[str, Any]:
    """Create a lead with origin ``api`` (status ``new``, source ``api`` by default).

    Raises:
        EmailConflict: a live lead already has this email.
    """
    _check_email(session, fields.get("email"), None)
    store_id = new_lead_id()
    row: dict[str, Any] = {name: fields.get(name) for name in CONTENT_FIELDS}
    row["tags"] = list(row["tags"] or [])
    row["custom_fields"] = {
        k: v for k, v in (row["custom_fields"] or {}).items() if v is not None
    }
    row["status"] = row["status"] or "new"
    row["source"] = row["source"] or API_ORIGIN
    row.update(
        id=store_id,
        origin=API_ORIGIN,
        lead_id=store_id,
        content_hash=content_hash(row),
        created_at=now,
        updated_at=now,
        source_updated_at=now,
        deleted_at=None,
    )
    session.execute(LEAD.insert().values(**row))
    return lead_row_to_dict(row)


def _apply(
    session: Session, current: dict[str, Any], changes: Mapping[str, Any], now: datetime
) -> dict[str, Any]:
    new = {name: current[name] for name in CONTENT_FIELDS}
    for name, value in changes.items():
        if name == "custom_fields":
            merged = dict(new["custom_fields"] or {})
            for key, item in (value or {}).items():
                if item is None:
                    merged.pop(key, None)  # null removes a custom field
                else:
                    merged[key] = item
            new["custom_fields"] = merged
        elif name == "tags":
            new["tags"] = list(dict.fromkeys(value or []))
        elif name in CONTENT_FIELDS:
            new[name] = value
    if new["email"] != current["email"]:
        _check_email(session, new["email"], current["id"])
    digest = content_hash(new)
    if digest == current["content_hash"]:
        return lead_row_to_dict(current)
    values = {**new, "content_hash": digest, "updated_at": now}
    if current["origin"] == API_ORIGIN:
        values["source_updated_at"] = now
    session.execute(LEAD.update().where(LEAD.c.id == current["id"]).values(**values))
    return lead_row_to_dict({**current, **values})


def patch_lead(
    session: Session, lead_id: str, *, changes: Mapping[str, Any], now: datetime
) -> dict[str, Any]:
    """Change only the given fields; ``custom_fields`` merge key by key.

    Raises:
        LeadNotFound: no live lead has this id.
        EmailConflict: the new email belongs to another live lead.
    """
    return _apply(session, _live(session, lead_id), changes, now)


def upsert_lead(
    session: Session,
    *,
    fields: Mapping[str, Any],
    match_by: MatchBy = "email_or_phone",
    now: datetime,
) -> tuple[bool, dict[str, Any]]:
    """Update the live lead matching by email and/or phone, or create one.

    Returns ``(created, lead)``. With ``email_or_phone`` an email match wins over a
    phone match; among several matches the oldest lead is updated.
    """
    match = None
    email, phone = fields.get("email"), fields.get("phone")
    if match_by in ("email", "email_or_phone") and email:
        match = _find(session, "email", email)
    if match is None and match_by in ("phone", "email_or_phone") and phone:
        match = _find(session, "phone", phone)
    if match is None:
        return True, create_lead(session, fields=fields, now=now)
    return False, _apply(session, match, fields, now)


def add_tags(
    session: Session, lead_id: str, *, tags: Sequence[str], now: datetime
) -> dict[str, Any]:
    """Add tags to a lead, keeping its existing ones (and their order)."""
    current = _live(session, lead_id)
    merged = list(dict.fromkeys([*(current["tags"] or []), *tags]))
    return _apply(session, current, {"tags": merged}, now)


def remove_tag(
    session: Session, lead_id: str, *, tag: str, now: datetime
) -> dict[str, Any]:
    """Remove one tag from a lead (removing an absent tag changes nothing)."""
    current = _live(session, lead_id)
    kept = [t for t in (current["tags"] or []) if t != tag]
    return _apply(session, current, {"tags": kept}, now)


def delete_lead(session: Session, lead_id: str, *, now: datetime) -> None:
    """Tombstone a live lead: ``deleted_at`` and ``updated_at`` become ``now``.

    Raises:
        LeadNotFound: no live lead has this id.
    """
    result = session.execute(
        LEAD.update()
        .where(LEAD.c.id == lead_id, LEAD.c.deleted_at.is_(None))
        .values(deleted_at=now, updated_at=now)
        .returning(LEAD.c.origin, LEAD.c.lead_id)
    )
    row = result.first()
    if row is None:
        raise LeadNotFound(f"no lead with id '{lead_id}'")
    # a tombstoned lead's record must never look unchanged to the next sync
    session.execute(
        PAYLOAD.update()
        .where(PAYLOAD.c.origin == row[0], PAYLOAD.c.lead_id == row[1])
        .values(raw_hash="")
    )
