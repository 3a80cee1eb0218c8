"""The ``serve`` and ``apikey`` commands (registered by ``service.cli``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
import uvicorn
from rich.table import Table
from sqlalchemy.engine import Engine

from service.api import create_app
from service.clicommon import (
    ConfigOpt,
    DebugOpt,
    JsonOpt,
    load_context,
    out,
    print_json,
    run_command,
)
from service.settings import Settings
from state.apikeys import (
    SCOPES,
    ApiKeyInfo,
    create_api_key,
    list_api_keys,
    parse_scopes,
    revoke_api_key,
)
from state.db import session_scope

__all__ = ["api_server", "apikey_app", "serve"]

apikey_app = typer.Typer(
    help="API keys of the lead API (each key is shown once).", no_args_is_help=True
)


class _Server(uvicorn.Server):
    """uvicorn, minus re-raising SIGTERM/SIGINT after its graceful shutdown.

    uvicorn re-sends the captured signal once stopped, so the process would die of
    it; the contract wants a clean stop with exit status 0.
    """

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Stop on SIGTERM/SIGINT (main thread only), then forget the signal."""
        with super().capture_signals():
            yield
            self._captured_signals.clear()


def api_server(settings: Settings, engine: Engine) -> uvicorn.Server:
    """A uvicorn server for the lead API on ``settings.api.host:port``.

    ``Server.run()`` in the main thread stops cleanly on SIGTERM/SIGINT; the daemon
    can instead run it in a thread and set ``should_exit``.
    """
    app = create_app(settings, db=engine)
    config = uvicorn.Config(
        app,
        host=settings.api.host,
        port=settings.api.port,
        log_config=None,  # our structlog configuration stays in charge
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    return _Server(config)


def serve(config: ConfigOpt = None, debug: DebugOpt = False) -> None:
    """Serve the lead API alone (no sync schedule) until SIGTERM or Ctrl-C."""

    def body() -> None:
        ctx = load_context(config)
        server = api_server(ctx.settings, ctx.db)
        out.print(
            f"lead API on http://{ctx.settings.api.host}:{ctx.settings.api.port}"
            " (docs at /docs)",
            highlight=False,
        )
        server.run()
        ctx.db.dispose()

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
