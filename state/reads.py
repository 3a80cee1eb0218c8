"""Reading leads in bulk: streamed exports, payloads for remap, counts for status."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from state.models import CONTENT_FIELDS
from state.store import LEAD, PAYLOAD

__all__ = ["iter_leads", "iter_payloads", "lead_counts", "lead_row_to_dict"]


def lead_row_to_dict(row: Mapping[Any, Any]) -> dict[str, Any]:
    """A lead row as the JSON object of contract §4."""
    out = {name: row[name] for name in ("id", "origin", "lead_id", *CONTENT_FIELDS)}
    out["tags"] = list(out["tags"] or [])
    out["custom_fields"] = dict(out["custom_fields"] or {})
    for name in ("created_at", "updated_at", "source_updated_at", "deleted_at"):
        out[name] = row[name]
    return out


def iter_leads(
    engine: Engine,
    *,
    origin: str | None = None,
    include_deleted: bool = False,
    chunk: int = 1000,
) -> Iterator[dict[str, Any]]:
    """Stream leads ordered by id, one short query per chunk (keyset pagination)."""
    after = ""
    while True:
        query = (
            sa.select(LEAD).where(LEAD.c.id > after).order_by(LEAD.c.id).limit(chunk)
        )
        if origin is not None:
            query = query.where(LEAD.c.origin == origin)
        if not include_deleted:
            query = query.where(LEAD.c.deleted_at.is_(None))
        with engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        for row in rows:
            yield lead_row_to_dict(row)
        if len(rows) < chunk:
            return
        after = rows[-1]["id"]


def iter_payloads(
    engine: Engine, *, origin: str, chunk: int = 1000
) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Stream the raw payloads behind one origin's live leads, a chunk at a time."""
    after = ""
    join = PAYLOAD.join(
        LEAD,
        sa.and_(LEAD.c.origin == PAYLOAD.c.origin, LEAD.c.lead_id == PAYLOAD.c.lead_id),
    )
    while True:
        query = (
            sa.select(PAYLOAD.c.lead_id, PAYLOAD.c.raw)
            .select_from(join)
            .where(
                PAYLOAD.c.origin == origin,
                PAYLOAD.c.lead_id > after,
                LEAD.c.deleted_at.is_(None),
            )
            .order_by(PAYLOAD.c.lead_id)
            .limit(chunk)
        )
        with engine.connect() as conn:
            rows = [(r[0], r[1]) for r in conn.execute(query)]
        if rows:
            yield rows
        if len(rows) < chunk:
            return
        after = rows[-1][0]


def lead_counts(session: Session) -> dict[str, tuple[int, int]]:
    """Per origin: ``(live, deleted)`` lead counts."""
    query = sa.select(
        LEAD.c.origin,
        sa.func.count().filter(LEAD.c.deleted_at.is_(None)),
        sa.func.count().filter(LEAD.c.deleted_at.is_not(None)),
    ).group_by(LEAD.c.origin)
    return {
        origin: (int(live), int(dead)) for origin, live, dead in session.execute(query)
    }
