"""One run of one connector: stream pages, map, write in batches, commit the cursor.

Each page is one transaction: its leads, its failures and the cursor that covers it
commit together, so a crash at any point resumes from the last committed page and
re-writing what was already stored is a no-op (content hashes).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from connectors.base import ConnectorConfig, Cursor, Page, Source, SourceRecord, utcnow
from engine import cursor as cursors
from engine.destinations import Batch, Destination
from engine.errors import MappingError
from engine.mapping import CompiledMapping
from state.db import session_scope
from state.store import known_raw_hashes, mark_seen, upsert_payloads
from state.syncstate import (
    FailureItem,
    get_cursor,
    open_failure_keys,
    record_failures,
    resolve_failures,
    save_cursor,
)

__all__ = ["COUNTS", "Progress", "RunReport", "Syncer"]

log = structlog.get_logger("leadsync.sync")

COUNTS = (
    "read",
    "created",
    "updated",
    "unchanged",
    "deleted",
    "failed",
    "retried",
    "resolved",
)
Progress = Callable[[int], None]


@dataclass(slots=True)
class RunReport:
    """How a run went: outcome, counts, error message."""

    run_id: str
    connector: str
    kind: str
    outcome: str = "running"
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def ok(self) -> bool:
        """Whether the run succeeded as a whole (per-item failures allowed)."""
        return self.outcome == "succeeded"


def raw_hash(fingerprint: str, raw: dict[str, Any]) -> str:
    """Hash of a raw record under one mapping: equal means mapping it again is moot."""
    blob = json.dumps(raw, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{fingerprint}\n{blob}".encode()).hexdigest()


class Syncer:
    """Moves records from one source through one mapping into one destination."""

    def __init__(
        self,
        *,
        db: Engine,
        cfg: ConnectorConfig,
        source: Source,
        mapping: CompiledMapping,
        destination: Destination,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.cfg = cfg
        self.source = source
        self.mapping = mapping
        self.destination = destination
        self.clock = clock
        self.name = cfg.name
        self._open_failures: set[str] = set()

    # -- one batch -------------------------------------------------------------------

    def load_open_failures(self) -> None:
        """Remember which items have open failures, to resolve them when they sync."""
        with session_scope(self.db) as session:
            self._open_failures = open_failure_keys(session, connector=self.name)

    def write_records(
        self,
        records: Sequence[SourceRecord],
        report: RunReport,
        *,
        page_failures: Iterable[tuple[str, str | None, str, dict[str, Any]]] = (),
        skip_unchanged: bool = True,
        cursor: Cursor | None = None,
        seen_run: str | None = None,
        stage: str = "map",
    ) -> None:
        """Map and write one batch, with its failures and cursor, in one transaction."""
        now = self.clock()
        counts = report.counts
        failures = [
            FailureItem(
                item_key=key,
                stage="read",
                code="malformed",
                message=msg,
                position=pos,
                raw=raw,
            )
            for key, pos, msg, raw in page_failures
        ]
        counts["read"] += len(records) + len(failures)
        fingerprint = self.mapping.fingerprint
        hashes = [raw_hash(fingerprint, r.fields) for r in records]
        with session_scope(self.db) as session:
            known: dict[str, str] = {}
            if skip_unchanged and records:
                known = known_raw_hashes(
                    session, origin=self.name, lead_ids=[r.id for r in records]
                )
            leads: list[dict[str, Any]] = []
            payloads: list[tuple[str, dict[str, Any], str]] = []
            ok_keys: list[str] = []
            for record, digest in zip(records, hashes, strict=True):
                if known.get(record.id) == digest:
                    counts["unchanged"] += 1
                    ok_keys.append(record.id)
                    continue
                try:
                    lead = self.mapping.apply(record.fields)
                except MappingError as exc:
                    where = f"{record.position}: " if record.position else ""
                    failures.append(
                        FailureItem(
                            item_key=record.id,
                            lead_id=record.id,
                            stage=stage,
                            code=exc.code,
                            message=f"{where}{exc}",
                            position=record.position,
                            raw=record.fields,
                        )
                    )
                    continue
                leads.append(lead)
                payloads.append((lead["lead_id"], record.fields, digest))
                ok_keys.append(record.id)
            self._apply(session, leads, payloads, failures, ok_keys, report, now)
            if seen_run is not None:
                mark_seen(
                    session,
                    run_id=seen_run,
                    lead_ids=[
                        *(r.id for r in records),
                        *(f.item_key for f in failures),
                    ],
                )
            if cursor is not None:
                save_cursor(
                    session,
                    connector=self.name,
                    ts=cursor.ts,
                    record_id=cursor.id,
                    now=now,
                )

    def _apply(
        self,
        session: Session,
        leads: list[dict[str, Any]],
        payloads: list[tuple[str, dict[str, Any], str]],
        failures: list[FailureItem],
        ok_keys: list[str],
        report: RunReport,
        now: datetime,
    ) -> None:
        counts = report.counts
        result = self.destination.apply(
            session, Batch(origin=self.name, upserts=leads), now=now
        )
        counts["created"] += result.created
        counts["updated"] += result.updated
        counts["unchanged"] += result.unchanged
        rejected = {lead_id for lead_id, _, _ in result.errors}
        for lead_id, code, message in result.errors:
            failures.append(
                FailureItem(
                    item_key=lead_id,
                    lead_id=lead_id,
                    stage="write",
                    code=code,
                    message=message,
                )
            )
        upsert_payloads(
            session,
            origin=self.name,
            payloads=[p for p in payloads if p[0] not in rejected],
            now=now,
        )
        if failures:
            policy = self.cfg.retry
            record_failures(
                session,
                connector=self.name,
                run_id=report.run_id,
                items=failures,
                now=now,
                max_attempts=policy.max_attempts,
                base=policy.backoff,
                cap=policy.max_backoff,
            )
            counts["failed"] += len(failures)
            log.info("failures_recorded", count=len(failures))
        fixed = [k for k in ok_keys if k in self._open_failures and k not in rejected]
        if fixed:
            counts["resolved"] += resolve_failures(
                session, connector=self.name, item_keys=fixed, now=now
            )
            self._open_failures.difference_update(fixed)

    # -- a pass over the source ------------------------------------------------------

    def read_pass(
        self,
        report: RunReport,
        *,
        since: Cursor | None,
        until: datetime | None,
        commit_cursor: bool,
        seen_run: str | None = None,
        progress: Progress | None = None,
        limit: datetime,
    ) -> None:
        """Stream every page of changes after ``since`` through ``write_records``."""
        pages: Iterable[Page] = self.source.read_changes(since, until=until)
        for page in pages:
            safe = cursors.cap(page.next_cursor, limit) if commit_cursor else None
            self.write_records(
                page.records,
                report,
                page_failures=page.failures,
                cursor=safe,
                seen_run=seen_run,
            )
            log.debug("page_upserted", records=len(page.records), cursor=str(safe))
            if progress is not None:
                progress(len(page.records) + len(page.failures))

    def committed_cursor(self) -> Cursor | None:
        """The cursor stored for this connector."""
        with session_scope(self.db) as session:
            return cursors.from_row(get_cursor(session, self.name))
