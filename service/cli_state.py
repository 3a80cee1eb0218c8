"""Commands that read or tend the store: status, failures, export."""

from __future__ import annotations

import csv
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Annotated, Any, Literal

import typer
from rich.table import Table
from sqlmodel import col, select

from engine.runner import retry_due
from engine.sync import COUNTS
from service.cli_config import check_config, preview
from service.clicommon import (
    ConfigOpt,
    DebugOpt,
    JsonOpt,
    load_context,
    out,
    print_json,
    run_command,
)
from state.db import session_scope
from state.leadread import LEAD_COLUMNS
from state.models import Failure, Run
from state.reads import iter_leads, lead_counts
from state.syncstate import (
    failure_counts,
    get_cursor,
    purge_failures,
    schedule_retry_now,
)

__all__ = ["register"]

failures_app = typer.Typer(help="The per-item failure log.", no_args_is_help=True)
#: the CSV export's columns: a lead's fields in contract §4 order, as the API has them
EXPORT_FIELDS = LEAD_COLUMNS


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def status(
    config: ConfigOpt = None, as_json: JsonOpt = False, debug: DebugOpt = False
) -> None:
    """Per connector: cursor, last run, pending/dead failures, leads in store."""

    def body() -> None:
        ctx = load_context(config)
        rows: list[dict[str, Any]] = []
        with session_scope(ctx.db) as session:
            fails = failure_counts(session)
            counts = lead_counts(session)
            for cfg in ctx.settings.connectors:
                cursor = get_cursor(session, cfg.name)
                last = (
                    session.execute(
                        select(Run)
                        .where(col(Run.connector) == cfg.name)
                        .order_by(col(Run.started_at).desc())
                        .limit(1)
                    )
                    .scalars()
                    .first()
                )
                live, deleted = counts.get(cfg.name, (0, 0))
                rows.append(
                    {
                        "connector": cfg.name,
                        "type": cfg.type,
                        "enabled": cfg.enabled,
                        "cursor": {"ts": _iso(cursor.ts), "id": cursor.record_id}
                        if cursor and cursor.ts
                        else None,
                        "last_run": None
                        if last is None
                        else {
                            "id": last.id,
                            "kind": last.kind,
                            "outcome": last.outcome,
                            "started_at": _iso(last.started_at),
                            "finished_at": _iso(last.finished_at),
                            "error": last.error,
                            **{k: getattr(last, k) for k in COUNTS},
                        },
                        "failures": {
                            "pending": fails.get(cfg.name, {}).get("pending", 0),
                            "dead": fails.get(cfg.name, {}).get("dead", 0),
                        },
                        "leads": {"live": live, "deleted": deleted},
                        # set by the daemon while a failing connector backs off
                        "backoff": (cursor.state or {}).get("daemon")
                        if cursor
                        else None,
                    }
                )
        if as_json:
            print_json(rows)
            return
        table = Table("connector", "cursor", "last run", "counts", "failures", "leads")
        for r in rows:
            run = r["last_run"]
            table.add_row(
                f"{r['connector']} ({r['type']}{'' if r['enabled'] else ', disabled'})",
                r["cursor"]["ts"] if r["cursor"] else "-",
                "never" if run is None else f"{run['outcome']} {run['started_at']}",
                ""
                if run is None
                else (
                    f"read {run['read']} +{run['created']} ~{run['updated']} "
                    f"={run['unchanged']} -{run['deleted']} !{run['failed']}"
                ),
                f"{r['failures']['pending']} pending, {r['failures']['dead']} dead"
                + _backoff_text(r["backoff"]),
                f"{r['leads']['live']} live, {r['leads']['deleted']} deleted",
            )
        out.print(table)

    run_command(debug, body)


def _backoff_text(backoff: dict[str, Any] | None) -> str:
    if not backoff or not backoff.get("consecutive_failures"):
        return ""
    until = backoff.get("backoff_until")
    return f"; {backoff['consecutive_failures']} failed runs in a row" + (
        f", backing off until {until}" if until else ""
    )


@failures_app.command("list")
def failures_list(
    name: Annotated[str | None, typer.Argument(help="Only this connector.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Include resolved ones.")] = False,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 100,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """List failed records with their reason, attempts and next retry."""

    def body() -> None:
        ctx = load_context(config)
        query = (
            select(Failure)
            .order_by(col(Failure.connector), col(Failure.id))
            .limit(limit)
        )
        if name:
            query = query.where(col(Failure.connector) == ctx.connector(name).name)
        if not all_:
            query = query.where(col(Failure.status) != "resolved")
        with session_scope(ctx.db) as session:
            items = [f.model_dump() for f in session.execute(query).scalars()]
        if as_json:
            print_json(items)
            return
        table = Table(
            "id", "connector", "item", "status", "attempts", "next retry", "reason"
        )
        for f in items:
            table.add_row(
                str(f["id"]),
                f["connector"],
                f["item_key"],
                f["status"],
                str(f["attempts"]),
                _iso(f["next_retry_at"]) or "-",
                f"{f['code']}: {f['message']}",
            )
        out.print(table if items else "no failures")

    run_command(debug, body)


@failures_app.command("retry")
def failures_retry(
    name: Annotated[str | None, typer.Argument(help="Only this connector.")] = None,
    failure_id: Annotated[
        int | None, typer.Option("--id", help="Only this failure.")
    ] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Retry failures now (dead ones too), fetching fresh data where the source can."""

    def body() -> bool:
        ctx = load_context(config)
        now = datetime.now(UTC)
        targets = [ctx.connector(name)] if name else ctx.connectors()
        with session_scope(ctx.db) as session:
            for cfg in targets:
                schedule_retry_now(
                    session, connector=cfg.name, failure_id=failure_id, now=now
                )
        reports = []
        for cfg in targets:
            syncer = ctx.syncer(cfg)
            with syncer.source:
                reports.append(retry_due(syncer))
        rows = [
            {
                "connector": r.connector,
                "outcome": r.outcome,
                "retried": r.counts["retried"],
                "resolved": r.counts["resolved"],
                "failed": r.counts["failed"],
                "error": r.error,
            }
            for r in reports
        ]
        if as_json:
            print_json(rows)
        for r in [] if as_json else rows:
            out.print(
                f"{r['connector']}: retried {r['retried']}, resolved {r['resolved']}, "
                f"still failing {r['failed']}"
                + (f" ({r['error']})" if r["error"] else "")
            )
        return all(r.ok for r in reports)

    run_command(debug, body)


@failures_app.command("purge")
def failures_purge(
    name: Annotated[str | None, typer.Argument(help="Only this connector.")] = None,
    everything: Annotated[
        bool, typer.Option("--all", help="Also pending ones.")
    ] = False,
    config: ConfigOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Delete resolved and dead failures (with --all, pending ones too)."""

    def body() -> None:
        ctx = load_context(config)
        statuses = ["resolved", "dead", *(["pending"] if everything else [])]
        with session_scope(ctx.db) as session:
            gone = purge_failures(
                session,
                connector=ctx.connector(name).name if name else None,
                statuses=statuses,
            )
        out.print(f"purged {gone} failures ({', '.join(statuses)})")

    run_command(debug, body)


def _csv_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True) if value else ""
    return value


def export(
    origin: Annotated[
        str | None, typer.Option(help="Only leads of this origin.")
    ] = None,
    fmt: Annotated[
        Literal["jsonl", "csv"], typer.Option("--format", help="jsonl or csv.")
    ] = "jsonl",
    include_deleted: Annotated[bool, typer.Option("--include-deleted")] = False,
    output: Annotated[Path | None, typer.Option(help="File (default: stdout).")] = None,
    config: ConfigOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Stream the leads in the store as JSON lines or CSV."""

    def body() -> None:
        ctx = load_context(config)
        stream: IO[str] = (
            output.open("w", newline="", encoding="utf-8") if output else sys.stdout
        )
        try:
            leads = iter_leads(ctx.db, origin=origin, include_deleted=include_deleted)
            if fmt == "csv":
                writer = csv.writer(stream)
                writer.writerow(EXPORT_FIELDS)
                for lead in leads:
                    writer.writerow([_csv_value(lead[k]) for k in EXPORT_FIELDS])
            else:
                for lead in leads:
                    stream.write(
                        json.dumps(
                            {
                                k: _iso(v) if isinstance(v, datetime) else v
                                for k, v in lead.items()
                            }
                        )
                        + "\n"
                    )
        finally:
            if output:
                stream.close()

    run_command(debug, body)


def register(app: typer.Typer) -> None:
    """Add these commands to the main app."""
    app.command()(status)
    app.command()(export)
    app.add_typer(failures_app, name="failures")
    app.command("check-config")(check_config)
    app.command()(preview)
