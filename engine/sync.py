"""One run of one connector: stream pages, map, write in batches, commit the cursor.

Each page is one transaction: its leads, its failures and the cursor that covers it
commit together, so a crash at any point resumes from the last committed page and
re-writing what was already stored is a no-op (content hashes).
"""

from __future__ import annotations

import contextvars
import hashlib
import threading
from collections.abc import Callable, Iterable, Sequence
from collections.abc import Set as AbstractSet
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.engine import Engine

from connectors.base import ConnectorConfig, Cursor, Source, SourceRecord, utcnow
from connectors.errors import LeadSyncError
from engine import cursor as cursors
from engine.destinations import Batch, Destination
from engine.errors import MappingError
from engine.mapping import CompiledMapping
from state.db import refresh_statistics, session_scope
from state.leases import check_fence
from state.store import known_raw_hashes, mark_seen, upsert_payloads
from state.syncstate import (
    FailureItem,
    get_cursor,
    open_failure_keys,
    record_failures,
    resolve_failures,
    save_cursor,
)

__all__ = ["COUNTS", "Progress", "RunReport", "RunStopped", "Syncer"]

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


class RunStopped(LeadSyncError):
    """Raised between pages when the run was asked to stop (daemon shutdown)."""


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
    """Hash of a raw record under one mapping: equal means mapping it again is moot.

    ``repr`` is several times cheaper than canonical JSON; a source that reorders keys
    only costs a needless re-map (the content hash still prevents a spurious update).
    """
    return hashlib.blake2b(
        f"{fingerprint}\n{raw!r}".encode(), digest_size=20
    ).hexdigest()


@dataclass(slots=True)
class _Batch:
    """A page after hashing and mapping, ready to be written."""

    records: Sequence[SourceRecord]
    leads: list[dict[str, Any]] = field(default_factory=list)
    payloads: list[tuple[str, dict[str, Any], str]] = field(default_factory=list)
    failures: list[FailureItem] = field(default_factory=list)
    ok_keys: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))


def _merge(counts: dict[str, int], delta: dict[str, int]) -> None:
    for key, value in delta.items():
        counts[key] += value


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
        #: the lease token every write of this syncer must still hold (daemon only)
        self.fence: int | None = None
        #: set to stop a pass between pages (daemon shutdown, lost lease)
        self.stop: threading.Event | None = None
        # a destination that does not fill the local lead table knows its own hashes
        self._known_hashes = getattr(destination, "known_raw_hashes", known_raw_hashes)
        self._written = 0
        self._analyze_at = 5_000

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
        batch = self._prepare(
            records, page_failures, skip_unchanged=skip_unchanged, stage=stage
        )
        _merge(report.counts, batch.counts)
        _merge(report.counts, self._write(batch, report.run_id, cursor, seen_run))

    def _prepare(
        self,
        records: Sequence[SourceRecord],
        page_failures: Iterable[tuple[str, str | None, str, dict[str, Any]]],
        *,
        skip_unchanged: bool,
        stage: str,
        in_flight: AbstractSet[str] = frozenset(),
    ) -> _Batch:
        """Hash, skip what is stored already, map the rest (no writes).

        Ids in ``in_flight`` belong to the page still being written: the stored hash
        read now predates it, so such a record is never skipped (the last version of a
        record listed twice must win).
        """
        batch = _Batch(records=records)
        batch.failures = [
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
        batch.counts["read"] = len(records) + len(batch.failures)
        fingerprint = self.mapping.fingerprint
        hashes = [raw_hash(fingerprint, r.fields) for r in records]
        known: dict[str, str] = {}
        if skip_unchanged and records:
            with session_scope(self.db) as session:
                known = self._known_hashes(
                    session, origin=self.name, lead_ids=[r.id for r in records]
                )
        apply = self.mapping.apply
        for record, digest in zip(records, hashes, strict=True):
            if known.get(record.id) == digest and record.id not in in_flight:
                batch.counts["unchanged"] += 1
                batch.ok_keys.append(record.id)
                continue
            try:
                lead = apply(record.fields)
            except MappingError as exc:
                where = f"{record.position}: " if record.position else ""
                batch.failures.append(
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
            batch.leads.append(lead)
            batch.payloads.append((lead["lead_id"], record.fields, digest))
            batch.ok_keys.append(record.id)
        return batch

    def _write(
        self,
        batch: _Batch,
        run_id: str,
        cursor: Cursor | None,
        seen_run: str | None,
    ) -> dict[str, int]:
        """Write a prepared batch, its failures and its cursor in one transaction."""
        now = self.clock()
        counts: dict[str, int] = {}
        with session_scope(self.db) as session:
            result = self.destination.apply(
                session, Batch(origin=self.name, upserts=batch.leads), now=now
            )
            counts.update(
                created=result.created,
                updated=result.updated,
                unchanged=result.unchanged,
            )
            rejected = {lead_id for lead_id, _, _ in result.errors}
            failures = batch.failures + [
                FailureItem(
                    item_key=lead_id,
                    lead_id=lead_id,
                    stage="write",
                    code=code,
                    message=message,
                )
                for lead_id, code, message in result.errors
            ]
            upsert_payloads(
                session,
                origin=self.name,
                payloads=[p for p in batch.payloads if p[0] not in rejected],
                now=now,
            )
            if failures:
                policy = self.cfg.retry
                record_failures(
                    session,
                    connector=self.name,
                    run_id=run_id,
                    items=failures,
                    now=now,
                    max_attempts=policy.max_attempts,
                    base=policy.backoff,
                    cap=policy.max_backoff,
                )
                counts["failed"] = len(failures)
                log.info("failures_recorded", count=len(failures))
            fixed = [
                k
                for k in batch.ok_keys
                if k in self._open_failures and k not in rejected
            ]
            if fixed:
                counts["resolved"] = resolve_failures(
                    session, connector=self.name, item_keys=fixed, now=now
                )
                self._open_failures.difference_update(fixed)
            if seen_run is not None:
                mark_seen(
                    session,
                    run_id=seen_run,
                    lead_ids=[
                        *(r.id for r in batch.records),
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
                    fence=self.fence,
                )
            elif self.fence is not None:
                check_fence(session, connector=self.name, token=self.fence)
        self._written += counts.get("created", 0) + counts.get("updated", 0)
        if self._written >= self._analyze_at:
            # A store that grew fast (a first load) still has the planner statistics
            # of an empty table; PostgreSQL then scans whole tables for each batch.
            refresh_statistics(self.db)
            self._analyze_at = self._written * 2
        return counts

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
        """Stream every page of changes after ``since`` into the store.

        Two stages overlap: while a writer thread commits page N (the database does
        its work without the GIL), this thread reads and maps page N+1. At most two
        pages are in memory; pages still commit one by one, in order, each with the
        cursor that covers it.
        """
        pending: Future[dict[str, int]] | None = None
        in_flight: set[str] = set()
        with ThreadPoolExecutor(1, thread_name_prefix=f"write-{self.name}") as writer:
            try:
                for page in self.source.read_changes(since, until=until):
                    if self.stop is not None and self.stop.is_set():
                        raise RunStopped("stopped between pages; nothing half-written")
                    safe = (
                        cursors.cap(page.next_cursor, limit) if commit_cursor else None
                    )
                    batch = self._prepare(
                        page.records,
                        page.failures,
                        skip_unchanged=True,
                        stage="map",
                        in_flight=in_flight,
                    )
                    if pending is not None:
                        _merge(report.counts, pending.result())
                    _merge(report.counts, batch.counts)
                    in_flight = {r.id for r in page.records}
                    pending = writer.submit(
                        contextvars.copy_context().run,
                        self._write,
                        batch,
                        report.run_id,
                        safe,
                        seen_run,
                    )
                    log.debug("page_read", records=len(page.records), cursor=str(safe))
                    if progress is not None:
                        progress(len(page.records) + len(page.failures))
            finally:
                if pending is not None:
                    _merge(report.counts, pending.result())

    def committed_cursor(self) -> Cursor | None:
        """The cursor stored for this connector."""
        with session_scope(self.db) as session:
            return cursors.from_row(get_cursor(session, self.name))
