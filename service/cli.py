"""The ``leadsync`` command line."""

from __future__ import annotations

from typing import Annotated

import typer

from engine import runner
from engine.preview import preview_records
from engine.sync import RunReport
from service.cli_api import apikey_app, serve
from service.cli_daemon import run as run_daemon
from service.cli_state import register as register_state_commands
from service.clicommon import (
    ConfigOpt,
    DebugOpt,
    JsonOpt,
    fail,
    load_context,
    out,
    parse_time,
    print_json,
    run_command,
)
from service.context import AppContext
from service.progress import progress_reporter
from state import bulkindex
from state.db import make_engine, redact_url
from state.migrate import upgrade

__all__ = ["app", "main"]

app = typer.Typer(
    name="leadsync",
    help="Keep a lead database in sync with your CRMs and CSV exports.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="The store's schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
register_state_commands(app)
app.command()(serve)
app.command(name="run")(run_daemon)
app.add_typer(apikey_app, name="apikey")


def _report_row(report: RunReport) -> dict[str, object]:
    return {
        "connector": report.connector,
        "kind": report.kind,
        "run_id": report.run_id,
        "outcome": report.outcome,
        "error": report.error,
        **report.counts,
    }


def _print_reports(ctx: AppContext, reports: list[RunReport], as_json: bool) -> None:
    if as_json:
        print_json([_report_row(r) for r in reports])
        return
    for r in reports:
        c = r.counts
        style = "green" if r.ok else "red"
        out.print(
            f"[bold]{r.connector}[/] {r.kind} [{style}]{r.outcome}[/]: "
            f"read {c['read']}, created {c['created']}, updated {c['updated']}, "
            f"unchanged {c['unchanged']}, deleted {c['deleted']}, failed {c['failed']}"
            + (
                f", retried {c['retried']}, resolved {c['resolved']}"
                if c["retried"]
                else ""
            ),
            highlight=False,
        )
        if r.error:
            out.print(f"  [red]{r.error}[/]", highlight=False)
    out.print(f"leads are in {redact_url(ctx.settings.store_url())}", highlight=False)


@app.command()
def sync(
    names: Annotated[
        list[str] | None, typer.Argument(help="Connectors (default: all enabled).")
    ] = None,
    allow_mass_delete: Annotated[
        bool,
        typer.Option(
            "--allow-mass-delete",
            help="Allow a snapshot to delete more than the threshold.",
        ),
    ] = False,
    sweep: Annotated[
        bool, typer.Option("--sweep", help="Also run the ID sweep now.")
    ] = False,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """One incremental pass of the named connectors (default: all enabled)."""

    def body() -> bool:
        ctx = load_context(config)
        reports = []
        for cfg in ctx.connectors(names):
            syncer = ctx.syncer(cfg)
            with syncer.source, progress_reporter(f"sync {cfg.name}") as tick:
                reports.append(
                    runner.sync(
                        syncer,
                        allow_mass_delete=allow_mass_delete,
                        progress=tick,
                        sweep=sweep,
                    )
                )
        _print_reports(ctx, reports, as_json)
        return all(r.ok for r in reports)

    run_command(debug, body)


@app.command()
def backfill(
    name: Annotated[str, typer.Argument(help="The connector.")],
    since: Annotated[
        str | None, typer.Option(help="Start of the window (ISO 8601).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="End of the window (ISO 8601).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Read and map, write nothing.")
    ] = False,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Re-read a time window (default: everything); never moves the cursor backwards."""
    start, end = parse_time(since, "--since"), parse_time(until, "--until")
    if start and end and start >= end:
        fail("--since must be before --until")

    def body() -> bool:
        ctx = load_context(config)
        cfg = ctx.connector(name)
        if dry_run:
            with (
                ctx.source(cfg) as source,
                progress_reporter(f"dry run {name}") as tick,
            ):
                summary = preview_records(
                    source, ctx.mapping(cfg), since=start, until=end, progress=tick
                )
            if as_json:
                print_json(summary.as_dict())
            else:
                out.print(summary.render_text(), highlight=False)
            return True
        syncer = ctx.syncer(cfg)
        with syncer.source, progress_reporter(f"backfill {name}") as tick:
            report = runner.backfill(syncer, since=start, until=end, progress=tick)
        _print_reports(ctx, [report], as_json)
        return report.ok

    run_command(debug, body)


@app.command()
def remap(
    name: Annotated[str, typer.Argument(help="The connector.")],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Re-apply the current mapping to the stored raw payloads, without fetching."""

    def body() -> bool:
        ctx = load_context(config)
        syncer = ctx.syncer(ctx.connector(name))
        with syncer.source, progress_reporter(f"remap {name}") as tick:
            report = runner.remap(syncer, progress=tick)
        _print_reports(ctx, [report], as_json)
        return report.ok

    run_command(debug, body)


@db_app.command("upgrade")
def db_upgrade(config: ConfigOpt = None, debug: DebugOpt = False) -> None:
    """Create or migrate the store's schema."""

    def body() -> None:
        ctx = load_context(config)
        engine = make_engine(ctx.settings.store_url())
        before, after = upgrade(engine)
        rebuilt = bulkindex.restore(engine)  # left missing by a killed first load
        where = redact_url(ctx.settings.store_url())
        if rebuilt:
            out.print(f"{where}: built the missing indexes {', '.join(rebuilt)}")
        if before == after:
            out.print(f"{where} is up to date (revision {after})", highlight=False)
        else:
            out.print(
                f"{where} migrated from {before or 'empty'} to {after}", highlight=False
            )

    run_command(debug, body)


def main() -> None:
    """Entry point of the ``leadsync`` console script."""
    app()


if __name__ == "__main__":
    main()
