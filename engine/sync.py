"""One run of one connector: stream pages, map, write in batches, commit the cursor.

A page's leads, its failures and the cursor that covers it commit together (with the
pages right before it, when the writer fell behind), so a crash at any point resumes
from the last committed page and re-writing what was already stored is a no-op
(content hashes).
"""

from __future__ import annotations

import contextvars
import functools
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from connectors.base import (
    ConnectorConfig,
    Cursor,
    FlatRecords,
    Source,
    SourceRecord,
    utcnow,
)
from connectors.errors import LeadSyncError
from engine import cursor as cursors
from engine.destinations import Batch, Destination, StoreDestination
from engine.mapping import CompiledMapping
from engine.mapping_pool import MappedPage, MappingPool, auto_workers, map_records
from engine.rawhash import raw_hashes, row_hashes
from state import bulkindex
from state.db import refresh_statistics, session_scope
from state.leases import check_fence
from state.store import (
    changed_raw_ids,
    has_payloads,
    mark_seen,
    upsert_payload_texts,
)
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


@dataclass(slots=True)
class _Batch:
    """A page after hashing and mapping, ready to be written."""

    #: the ids of the page's records (the records themselves are not kept: a page
    #: waiting for the writer holds only what will be written)
    ids: list[str]
    leads: list[dict[str, Any]] = field(default_factory=list)
    #: the leads as the destination's ``prepare`` left them (None: it has none)
    prepared: Any = None
    #: ``(lead_id, raw record as JSON text, raw hash)``
    payloads: list[tuple[str, str, str]] = field(default_factory=list)
    failures: list[FailureItem] = field(default_factory=list)
    ok_keys: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))


def _merge(counts: dict[str, int], delta: dict[str, int]) -> None:
    for key, value in delta.items():
        counts[key] += value


def _merge_into(counts: dict[str, int], delta: dict[str, int]) -> None:
    for key, value in delta.items():
        counts[key] = counts.get(key, 0) + value


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
        # both destinations keep the raw payloads (and their hashes) in this store
        self._changed = changed_raw_ids
        self._written = 0
        self._analyze_at = 5_000
        #: worker processes that map the pages of a large pass (0: this thread maps)
        workers = cfg.map_workers
        self.map_workers = auto_workers() if workers == "auto" else workers

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
    ) -> _Batch:
        """Hash, skip what is stored already, map the rest here (no writes)."""
        batch, todo = self._screen(
            records, page_failures, skip_unchanged=skip_unchanged, in_flight=_nowhere
        )
        mapped = map_records(
            self.mapping,
            [(record.fields, digest) for record, digest in todo],
            prepare=getattr(self.destination, "prepare", None),
        )
        self._assemble(batch, todo, mapped, stage)
        return batch

    def _screen(
        self,
        records: Sequence[SourceRecord],
        page_failures: Iterable[tuple[str, str | None, str, dict[str, Any]]],
        *,
        skip_unchanged: bool,
        in_flight: Callable[[str], bool],
    ) -> tuple[_Batch, list[tuple[SourceRecord, str | None]]]:
        """Hash a page and set aside what is stored already: ``(batch, to map)``.

        Without ``skip_unchanged`` nothing is hashed here: mapping hashes the records
        (in a worker process, for a large pass).

        An id for which ``in_flight`` is true belongs to a page still being written:
        the stored hash read now predates it, so such a record is never skipped (the
        last version of a record listed twice must win).
        """
        flat = records if isinstance(records, FlatRecords) else None
        ids = flat.ids if flat is not None else [r.id for r in records]
        batch = _Batch(ids=list(ids))
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
        if not skip_unchanged or not records:
            return batch, [(record, None) for record in records]
        fingerprint = self.mapping.fingerprint
        if flat is not None:  # rows hashed as they are: no dict for what is unchanged
            hashes = row_hashes(fingerprint, flat.keys, flat.rows)
        else:
            hashes = raw_hashes(fingerprint, [r.fields for r in records])
        by_id = dict(zip(ids, hashes, strict=True))
        with session_scope(self.db) as session:
            changed = self._changed(session, origin=self.name, hashes=by_id)
        if len(by_id) < len(ids):  # an id listed twice in the page: map every copy
            pairs = zip(ids, hashes, strict=True)
            changed.update(rid for rid, digest in pairs if by_id[rid] != digest)
        todo: list[tuple[SourceRecord, str | None]] = []
        ok_keys = batch.ok_keys
        for i, rid in enumerate(ids):
            if rid in changed or in_flight(rid):
                todo.append((records[i], hashes[i]))
            else:
                ok_keys.append(rid)
        batch.counts["unchanged"] += len(ok_keys)
        return batch, todo

    def _assemble(
        self,
        batch: _Batch,
        todo: Sequence[tuple[SourceRecord, str | None]],
        mapped: MappedPage,
        stage: str,
    ) -> None:
        """Put a mapped page into its batch: leads, payloads, mapping failures."""
        batch.leads = mapped.leads or []
        batch.prepared = mapped.prepared
        batch.payloads = mapped.payloads
        batch.ok_keys.extend(todo[index][0].id for index in mapped.mapped)
        for index, code, message in mapped.failures:
            record = todo[index][0]
            where = f"{record.position}: " if record.position else ""
            batch.failures.append(
                FailureItem(
                    item_key=record.id,
                    lead_id=record.id,
                    stage=stage,
                    code=code,
                    message=f"{where}{message}",
                    position=record.position,
                    raw=record.fields,
                )
            )

    def _write(
        self,
        batch: _Batch,
        run_id: str,
        cursor: Cursor | None,
        seen_run: str | None,
    ) -> dict[str, int]:
        """Write a prepared batch, its failures and its cursor in one transaction."""
        return self._write_group([batch], run_id, cursor, seen_run)

    def _write_group(
        self,
        batches: Sequence[_Batch],
        run_id: str,
        cursor: Cursor | None,
        seen_run: str | None,
        *,
        drop_indexes: bool = False,
    ) -> dict[str, int]:
        """Write consecutive batches and the cursor that covers them in one transaction.

        A writer that falls behind takes the pages that piled up together: one commit
        instead of several (fewer index pages written twice, fewer search segments).
        With ``drop_indexes``, the transaction also drops the indexes a first load
        builds at its end (``state.bulkindex``).
        """
        now = self.clock()
        counts: dict[str, int] = {}
        with session_scope(self.db) as session:
            for batch in batches:
                _merge_into(
                    counts, self._write_batch(session, batch, run_id, seen_run, now)
                )
            if drop_indexes:
                # after the rows: Python's sqlite3 runs DDL outside a transaction
                # until a write has opened one, and the drops must commit together
                bulkindex.drop(session)
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

    def _write_batch(
        self,
        session: Session,
        batch: _Batch,
        run_id: str,
        seen_run: str | None,
        now: datetime,
    ) -> dict[str, int]:
        """One batch's leads, payloads, failures and seen ids (caller's session)."""
        counts: dict[str, int] = {}
        result = self.destination.apply(
            session,
            Batch(origin=self.name, upserts=batch.leads, prepared=batch.prepared),
            now=now,
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
        upsert_payload_texts(
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
            k for k in batch.ok_keys if k in self._open_failures and k not in rejected
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
                    *batch.ids,
                    *(f.item_key for f in failures),
                ],
            )
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

        The stages overlap: while a writer thread commits page N (the database does its
        work without the GIL), worker processes map the pages after it (or this thread
        does, for a small pass) and this thread reads and screens the next one. At most
        a few pages are in memory; pages still commit one by one, in order, each with
        the cursor that covers it.
        """
        flow = _Flow(self, report, seen_run)
        pages = iter(self.source.read_changes(since, until=until))
        try:
            while True:
                try:
                    page = next(pages)
                except StopIteration:
                    break
                except Exception:
                    # the source failed: the pages read before it are whole, so they
                    # are written (and their cursor committed) before the run fails
                    flow.salvage()
                    raise
                if self.stop is not None and self.stop.is_set():
                    raise RunStopped("stopped between pages; nothing half-written")
                safe = cursors.cap(page.next_cursor, limit) if commit_cursor else None
                flow.add(page.records, page.failures, safe)
                log.debug("page_read", records=len(page.records), cursor=str(safe))
                if progress is not None:
                    progress(len(page.records) + len(page.failures))
            flow.drain()
        finally:
            flow.close()

    def committed_cursor(self) -> Cursor | None:
        """The cursor stored for this connector."""
        with session_scope(self.db) as session:
            return cursors.from_row(get_cursor(session, self.name))


@dataclass(slots=True)
class _Queued:
    batch: _Batch
    todo: list[tuple[SourceRecord, str | None]]
    mapped: Future[MappedPage] | MappedPage
    cursor: Cursor | None
    ids: set[str]


class _Flow:
    """The pipeline of one pass: screen here, map (here or in workers), write.

    Pages enter in order and are written in order. Pages mapped while the writer is
    busy wait in ``group`` and are written together in one transaction (at most
    ``GROUP`` pages). The ids of every page screened but not yet committed are in
    flight: such a record must not be skipped as unchanged.
    """

    #: pages mapped ahead of the writer, at most
    DEPTH = 1
    #: pages one transaction takes when the writer fell behind, at most
    GROUP = 8
    #: records a pass maps in its own thread before it starts worker processes
    POOL_AFTER = 5_000

    def __init__(self, syncer: Syncer, report: RunReport, seen_run: str | None) -> None:
        self.syncer = syncer
        self.report = report
        self.seen_run = seen_run
        self.queue: deque[_Queued] = deque()
        self.group: list[_Queued] = []
        #: ids of the pages screened and not yet committed, oldest first
        self.pending_ids: deque[set[str]] = deque()
        self.writing: tuple[Future[dict[str, int]], int] | None = None
        self.writer = ThreadPoolExecutor(1, thread_name_prefix=f"write-{syncer.name}")
        self.pool: MappingPool | None = None
        self.mapped_here = 0
        self.prepare = getattr(syncer.destination, "prepare", None)
        self.read = 0
        #: the indexes a first load builds at its end (state.bulkindex): "keep",
        #: "ready" to drop once the pass is large, "drop" at the next write, "dropped"
        self.indexes = "keep"
        self.hold = ExitStack()
        store = isinstance(syncer.destination, StoreDestination)
        with session_scope(syncer.db) as session:
            # An origin with no stored payload (a first load) has nothing to skip:
            # its pages are not hashed here nor looked up, and a record listed twice
            # in the pass is simply upserted twice (the content hash makes that a
            # no-op).
            self.skip = has_payloads(session, origin=syncer.name)
            empty = store and bulkindex.lead_table_empty(session)
        if empty:
            self.indexes = "ready"
        elif store:
            self._restore_indexes()  # left missing by a first load that was killed

    def add(
        self,
        records: Sequence[SourceRecord],
        failures: Iterable[tuple[str, str | None, str, dict[str, Any]]],
        cursor: Cursor | None,
    ) -> None:
        """Screen a page and start mapping it; write the pages whose turn it is."""
        pending = tuple(self.pending_ids)

        def in_flight(rid: str) -> bool:
            return any(rid in ids for ids in pending)

        batch, todo = self.syncer._screen(
            records, failures, skip_unchanged=self.skip, in_flight=in_flight
        )
        ids = set(batch.ids)
        self.pending_ids.append(ids)
        self.read += len(records)
        if self.indexes == "ready" and self.read >= bulkindex.DEFER_AFTER:
            self.indexes = "drop"
        pairs = [(record.fields, digest) for record, digest in todo]
        pool = self._pool(len(pairs))
        mapped: Future[MappedPage] | MappedPage
        if pool is not None and pairs:
            mapped = pool.submit(pairs)
        else:
            mapped = map_records(self.syncer.mapping, pairs, prepare=self.prepare)
            self.mapped_here += len(pairs)
        self.queue.append(_Queued(batch, todo, mapped, cursor, ids))
        while self.queue and (
            len(self.queue) > self.DEPTH or _done(self.queue[0].mapped)
        ):
            self._take_next()

    def drain(self) -> None:
        """Write every page still queued and wait for the last write."""
        while self.queue:
            self._take_next()
        self._submit_group()
        self._finish_write()

    def salvage(self) -> None:
        """``drain``, after a source error: a failure here is logged, not raised."""
        try:
            self.drain()
        except Exception:
            log.warning("pages_not_written", exc_info=True)

    def close(self) -> None:
        """Wait for the write under way (even after an error), stop the workers."""
        try:
            self._finish_write()
        finally:
            self.writer.shutdown(wait=True)
            if self.pool is not None:
                self.pool.close()
            if self.indexes == "dropped":
                self._restore_indexes()

    def _restore_indexes(self) -> None:
        self.hold.close()
        try:
            bulkindex.restore(self.syncer.db)
        except Exception:  # the leads are safe: a later pass builds them
            log.warning("indexes_not_built", exc_info=True)

    def _pool(self, count: int) -> MappingPool | None:
        syncer = self.syncer
        if self.pool is None:
            workers = syncer.map_workers
            if (
                not workers
                or self.prepare is None
                or syncer.mapping.recipe is None
                or self.mapped_here + count <= self.POOL_AFTER
            ):
                return None
            log.debug("mapping_workers_started", workers=workers)
            self.pool = MappingPool(syncer.mapping, workers)
        return self.pool if self.pool.ready else None

    def _take_next(self) -> None:
        """Finish mapping the oldest queued page and hand it to the writer."""
        item = self.queue.popleft()
        mapped = item.mapped
        if isinstance(mapped, Future):
            try:
                mapped = mapped.result()
            except Exception:  # a worker died: map here, and stop using the workers
                log.warning("mapping_worker_failed", exc_info=True)
                mapped = map_records(
                    self.syncer.mapping,
                    [(record.fields, digest) for record, digest in item.todo],
                    prepare=self.prepare,
                )
                if self.pool is not None:
                    self.pool.close()
                self.syncer.map_workers = 0
        self.syncer._assemble(item.batch, item.todo, mapped, "map")
        item.todo = []  # the raw records are no longer needed
        item.mapped = mapped
        self.group.append(item)
        writer_busy = self.writing is not None and not self.writing[0].done()
        if not writer_busy or len(self.group) >= self.GROUP:
            self._submit_group()

    def _submit_group(self) -> None:
        if not self.group:
            return
        self._finish_write()
        group, self.group = self.group, []
        for item in group:
            _merge(self.report.counts, item.batch.counts)
        cursor = next(
            (item.cursor for item in reversed(group) if item.cursor is not None), None
        )
        drop = self.indexes == "drop"
        if drop:
            self.hold.enter_context(bulkindex.deferring())
            self.indexes = "dropped"
        future = self.writer.submit(
            contextvars.copy_context().run,
            functools.partial(self.syncer._write_group, drop_indexes=drop),
            [item.batch for item in group],
            self.report.run_id,
            cursor,
            self.seen_run,
        )
        self.writing = (future, len(group))

    def _finish_write(self) -> None:
        if self.writing is None:
            return
        future, pages = self.writing
        self.writing = None
        try:
            _merge(self.report.counts, future.result())
        finally:
            for _ in range(pages):
                self.pending_ids.popleft()


def _nowhere(rid: str) -> bool:  # noqa: ARG001 # the in_flight of a lone page
    return False


def _done(mapped: Future[MappedPage] | MappedPage) -> bool:
    return not isinstance(mapped, Future) or mapped.done()
