"""The ``serve`` and ``apikey`` commands (registered by ``service.cli``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from service.clicommon import (
    ConfigOpt,
    DebugOpt,
    JsonOpt,
    load_context,
    out,
    print_json,
    run_command,
)
from state.apikeys import (
    SCOPES,
    ApiKeyInfo,
    create_api_key,
    list_api_keys,
    parse_scopes,
    revoke_api_key,
)
from state.db import session_scope

__all__ = ["apikey_app", "serve"]

apikey_app = typer.Typer(
    help="API keys of the lead API (each key is shown once).", no_args_is_help=True
)


WorkersOpt = Annotated[
    int,
    typer.Option(
        "--workers",
        min=1,
        help="API processes (one core each); rate limits are shared between them.",
    ),
]


def serve(
    config: ConfigOpt = None, debug: DebugOpt = False, workers: WorkersOpt = 1
) -> None:
    """Serve the lead API alone (no sync schedule) until SIGTERM or Ctrl-C."""

    def body() -> None:
        # imported here: the web stack is no cost of the other commands
        from service.api.server import api_server
        from service.api.workers import serve_workers

        ctx = load_context(config)
        settings = ctx.settings
        db = ctx.db  # migrates the store, once, before any worker starts
        where = f"http://{settings.api.host}:{settings.api.port}"
        processes = f", {workers} processes" if workers > 1 else ""
        out.print(f"lead API on {where}{processes} (docs at /docs)", highlight=False)
        if workers > 1:
            db.dispose()
            serve_workers(settings, workers)
            return
        server = api_server(settings, db)
        server.run()
        db.dispose()

    run_command(debug, body)


def _row(info: ApiKeyInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "prefix": info.prefix,
        "scopes": list(info.scopes),
        "created_at": info.created_at,
        "last_used_at": info.last_used_at,
        "revoked_at": info.revoked_at,
    }


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if value else "-"


@apikey_app.command("create")
def apikey_create(
    name: Annotated[str, typer.Option("--name", help="A unique name for the key.")],
    scopes: Annotated[
        str, typer.Option("--scopes", help=f"Comma-separated: {', '.join(SCOPES)}.")
    ],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Create a key and print it once; the store keeps only its hash."""

    def body() -> None:
        valid = parse_scopes([scopes])
        ctx = load_context(config)
        with session_scope(ctx.db) as session:
            info, key = create_api_key(
                session, name=name, scopes=valid, now=datetime.now(UTC)
            )
        if as_json:
            print_json({**_row(info), "key": key})
            return
        out.print(
            f"created API key [bold]{info.name}[/] ({', '.join(info.scopes)})",
            highlight=False,
        )
        out.print(key, highlight=False, markup=False)
        out.print("Store it now: it will not be shown again.", highlight=False)

    run_command(debug, body)


@apikey_app.command("list")
def apikey_list(
    config: ConfigOpt = None, as_json: JsonOpt = False, debug: DebugOpt = False
) -> None:
    """List keys: name, prefix, scopes, created, last used, revoked."""

    def body() -> None:
        ctx = load_context(config)
        with session_scope(ctx.db) as session:
            keys = list_api_keys(session)
        if as_json:
            print_json([_row(k) for k in keys])
            return
        if not keys:
            out.print("no API keys yet: leadsync apikey create --name N --scopes S")
            return
        table = Table("name", "prefix", "scopes", "created", "last used", "revoked")
        for k in keys:
            table.add_row(
                k.name,
                f"lsk_{k.prefix}_…",
                ",".join(k.scopes),
                _when(k.created_at),
                _when(k.last_used_at),
                _when(k.revoked_at),
            )
        out.print(table)

    run_command(debug, body)


@apikey_app.command("revoke")
def apikey_revoke(
    name: Annotated[str, typer.Argument(help="The key's name.")],
    config: ConfigOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Revoke a key; requests with it fail from now on."""

    def body() -> None:
        ctx = load_context(config)
        with session_scope(ctx.db) as session:
            info = revoke_api_key(session, name=name, now=datetime.now(UTC))
        out.print(f"revoked API key {info.name} (lsk_{info.prefix}_…)", highlight=False)

    run_command(debug, body)
