"""Runs: the bookkeeping around a ``Syncer`` pass (run rows, retries, deletes, logs).

``sync`` is one incremental pass (retries first, then changes, then deletions);
``backfill`` re-reads a window; ``remap`` re-applies the mapping to stored payloads;
``retry`` works through the due failures alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import structlog
from sqlalchemy.exc import SQLAlchemyError

from connectors.base import Cursor, SourceRecord
from connectors.errors import LeadSyncError
from engine import cursor as cursors
from engine.destinations import Batch, StoreDestination
from engine.sync import COUNTS, Progress, RunReport, RunStopped, Syncer
from state.db import session_scope
from state.reads import iter_payloads
from state.store import (
    chunked,
    clear_seen,
    has_live_leads,
    tombstone_unseen,
    unseen_count,
)
from state.syncstate import (
    abandon_stale_runs,
    due_failures,
    finish_run,
    get_cursor,
    save_cursor_state,
    start_run,
)

__all__ = ["MassDeleteError", "backfill", "remap", "retry_due", "sync"]

log = structlog.get_logger("leadsync.run")


class MassDeleteError(LeadSyncError):
    """Raised when a snapshot would tombstone more than the allowed share of leads."""


@contextmanager
def _run(syncer: Syncer, kind: str) -> Iterator[RunReport]:
    now = syncer.clock()
    with session_scope(syncer.db) as session:
        abandon_stale_runs(session, connector=syncer.name, now=now)
        run = start_run(session, connector=syncer.name, kind=kind, now=now)
    report = RunReport(run_id=run.id, connector=syncer.name, kind=kind, started_at=now)
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(run_id=run.id, connector=syncer.name)
    log.info("run_started", kind=kind)
    try:
        syncer.load_open_failures()
        yield report
        report.outcome = "succeeded"
    except RunStopped as exc:
        report.outcome = "interrupted"
        report.error = str(exc)
        log.info("run_stopped")
    except (LeadSyncError, SQLAlchemyError, OSError) as exc:
        report.outcome = "failed"
        report.error = str(exc) or type(exc).__name__
        # the message says what failed; a traceback would repeat vendor detail
        log.error(  # noqa: TRY400
            "run_failed", error=report.error, error_type=type(exc).__name__
        )
    except BaseException:
        report.outcome = "interrupted"
        report.error = "interrupted"
        raise
    finally:
        report.finished_at = syncer.clock()
        with session_scope(syncer.db) as session:
            clear_seen(session, run_id=report.run_id)
            finish_run(
                session,
                run_id=report.run_id,
                outcome=report.outcome,
                counts={k: report.counts[k] for k in COUNTS},
                error=report.error,
                now=report.finished_at,
            )
        duration = (report.finished_at - now).total_seconds()
        log.info(
            "run_finished",
            kind=kind,
            outcome=report.outcome,
            error=report.error,
            duration_s=round(duration, 3),
            **report.counts,
        )
        structlog.contextvars.clear_contextvars()


def _retry_pass(syncer: Syncer, report: RunReport) -> None:
    now = syncer.clock()
    with session_scope(syncer.db) as session:
        due = due_failures(session, connector=syncer.name, now=now)
    if not due:
        return
    report.counts["retried"] += len(due)
    fresh: dict[str, SourceRecord] = {}
    if syncer.source.supports_fetch:
        fresh = {r.id: r for r in syncer.source.fetch([f.item_key for f in due])}
    records = [
        fresh.get(f.item_key)
        or SourceRecord(
            id=f.item_key, updated_at=None, fields=f.raw or {}, position=f.position
        )
        for f in due
    ]
    read_before = report.counts["read"]
    syncer.write_records(records, report, skip_unchanged=False)
    report.counts["read"] = read_before  # retries are counted as retried, not read
    log.info("failures_retried", count=len(due))


def _snapshot_deletes(
    syncer: Syncer, report: RunReport, run_id: str, *, allow_mass_delete: bool
) -> None:
    """Delete what a complete snapshot pass did not list, unless that is too much.

    The embedded store tombstones in one statement; a destination that keeps its own
    record of what it holds (``unseen_lead_ids``, the HTTP destination) is sent the
    deletions in batches.
    """
    threshold = syncer.cfg.mass_delete_threshold
    finder = getattr(syncer.destination, "unseen_lead_ids", None)
    ids: list[str] | None = None
    with session_scope(syncer.db) as session:
        if finder is None:
            missing, live = unseen_count(session, origin=syncer.name, run_id=run_id)
        else:
            ids, live = finder(session, origin=syncer.name, run_id=run_id)
            missing = len(ids)
        share = missing / live if live else 0.0
        refused = bool(missing) and share > threshold and not allow_mass_delete
        if refused or ids is not None or not missing:
            clear_seen(session, run_id=run_id)
        else:
            report.counts["deleted"] += tombstone_unseen(
                session, origin=syncer.name, run_id=run_id, now=syncer.clock()
            )
    if refused:
        raise MassDeleteError(
            f"refusing to delete {missing} of {live} leads ({share:.0%} > "
            f"{threshold:.0%} allowed): the source may be incomplete; rerun with "
            "--allow-mass-delete if these deletions are intended"
        )
    for part in chunked(ids or [], 100):
        with session_scope(syncer.db) as session:
            result = syncer.destination.apply(
                session, Batch(origin=syncer.name, deletes=part), now=syncer.clock()
            )
            report.counts["deleted"] += result.deleted


def _stamp(syncer: Syncer, key: str, when: datetime) -> None:
    """Record in the connector's cursor state when a periodic pass (``key``) ran."""
    with session_scope(syncer.db) as session:
        save_cursor_state(
            session,
            connector=syncer.name,
            state={key: when.isoformat()},
            now=syncer.clock(),
        )


def _first_load(syncer: Syncer) -> bool:
    """Whether the embedded store holds no live lead of this connector."""
    if not isinstance(syncer.destination, StoreDestination):
        return False
    with session_scope(syncer.db) as session:
        return not has_live_leads(session, origin=syncer.name)


def _source_deletes(syncer: Syncer, report: RunReport, run_start: datetime) -> None:
    with session_scope(syncer.db) as session:
        row = get_cursor(session, syncer.name)
        state = dict(row.state) if row else {}
    since_text = state.get("deletions_checked_at")
    since = datetime.fromisoformat(since_text) if since_text else None
    for ids in syncer.source.read_deletions(since):
        now = syncer.clock()
        with session_scope(syncer.db) as session:
            result = syncer.destination.apply(
                session, Batch(origin=syncer.name, deletes=ids), now=now
            )
            report.counts["deleted"] += result.deleted
    _stamp(syncer, "deletions_checked_at", run_start)


def _sweep_due(syncer: Syncer, run_start: datetime) -> bool:
    sweep = syncer.cfg.sweep
    if sweep is None or sweep.every is None:
        return False
    with session_scope(syncer.db) as session:
        row = get_cursor(session, syncer.name)
        last = (row.state if row else {}).get("swept_at")
    return last is None or datetime.fromisoformat(last) + sweep.every <= run_start


def sync(
    syncer: Syncer,
    *,
    allow_mass_delete: bool = False,
    sweep: bool = False,
    progress: Progress | None = None,
) -> RunReport:
    """One incremental pass: due retries, then changes after the cursor, then deletes.

    A snapshot source (CSV without an updated-at column) is read whole and what it no
    longer lists is tombstoned. Any other source does the same as an ID sweep when
    ``sweep`` is asked for or its ``sweep`` schedule is due.
    """
    with _run(syncer, "sync") as report:
        run_start = report.started_at or syncer.clock()
        _retry_pass(syncer, report)
        limit = run_start - syncer.cfg.lag
        snapshot = syncer.source.snapshot
        full = snapshot or sweep or _sweep_due(syncer, run_start)
        since = None
        if not full:
            since = cursors.read_from(syncer.committed_cursor(), syncer.cfg.lookback)
        # A full pass into a store holding no live lead of this origin (a first load)
        # has nothing it could find missing: it neither records what it lists nor
        # looks for what it did not list.
        diff = full and not _first_load(syncer)
        syncer.read_pass(
            report,
            since=since,
            until=limit if syncer.cfg.lag else None,
            commit_cursor=not snapshot,
            seen_run=report.run_id if diff else None,
            progress=progress,
            limit=limit,
        )
        if diff:
            _snapshot_deletes(
                syncer, report, report.run_id, allow_mass_delete=allow_mass_delete
            )
        if full and not snapshot:
            _stamp(syncer, "swept_at", run_start)
        if syncer.source.supports_deletions:
            _source_deletes(syncer, report, run_start)
    return report


def backfill(
    syncer: Syncer,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    progress: Progress | None = None,
) -> RunReport:
    """Re-read a window of the source; the cursor may move forward, never back.

    The cursor moves only when the window starts at or before it (a full backfill
    does), since only then is everything up to the new cursor stored.
    """
    with _run(syncer, "backfill") as report:
        run_start = report.started_at or syncer.clock()
        committed = syncer.committed_cursor()
        start = Cursor(since, "") if since else None
        contiguous = start is None or (committed is not None and start <= committed)
        limit = min(run_start - syncer.cfg.lag, until) if until else run_start
        syncer.read_pass(
            report,
            since=start,
            until=until,
            commit_cursor=contiguous and not syncer.source.snapshot,
            progress=progress,
            limit=limit,
        )
    return report


def retry_due(syncer: Syncer) -> RunReport:
    """Retry the due failures now, without reading changes."""
    with _run(syncer, "retry") as report:
        _retry_pass(syncer, report)
    return report


def remap(syncer: Syncer, *, progress: Progress | None = None) -> RunReport:
    """Re-apply the current mapping to the stored payloads of the live leads."""
    with _run(syncer, "remap") as report:
        for chunk in iter_payloads(
            syncer.db, origin=syncer.name, chunk=syncer.cfg.batch_size
        ):
            records = [
                SourceRecord(id=lead_id, updated_at=None, fields=raw)
                for lead_id, raw in chunk
            ]
            syncer.write_records(records, report, skip_unchanged=False, stage="remap")
            if progress is not None:
                progress(len(records))
    return report
