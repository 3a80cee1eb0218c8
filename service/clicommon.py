"""What every command shares: options, loading the context, errors, output."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from sqlalchemy.exc import SQLAlchemyError

from connectors.errors import ConfigError, LeadSyncError
from engine import gcpolicy
from service.context import AppContext
from service.logconfig import configure_logging, redact
from service.settings import load_settings
from state import sqlitetune

__all__ = [
    "ConfigOpt",
    "DebugOpt",
    "JsonOpt",
    "err_console",
    "fail",
    "load_context",
    "out",
    "parse_time",
    "print_json",
    "run_command",
]

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Config file [default: $LEADSYNC_CONFIG, else ./leadsync.yaml].",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")]

out = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print a one-line error and exit non-zero."""
    err_console.print(f"[bold red]error:[/] {redact(message)}", highlight=False)
    raise typer.Exit(code)


_open_contexts: list[AppContext] = []


def load_context(config: Path | None) -> AppContext:
    """Load settings and configure logging; ``run_command`` closes the context."""
    settings = load_settings(config)
    fmt = settings.logging.format
    configure_logging(
        json=None if fmt == "auto" else fmt == "json", level=settings.logging.level
    )
    ctx = AppContext(settings)
    _open_contexts.append(ctx)
    return ctx


@contextmanager
def _errors(debug: bool) -> Iterator[None]:
    try:
        yield
    except ConfigError as exc:
        if debug:
            raise
        fail(str(exc), code=2)
    except (LeadSyncError, SQLAlchemyError, OSError) as exc:
        if debug:
            raise
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        fail(message)


def run_command(debug: bool, body: Callable[[], Any]) -> Any:
    """Run a command body: known errors become one-line messages, ``False`` exit 1."""
    gcpolicy.tune()
    sqlitetune.tune()  # before the body opens a store
    try:
        with _errors(debug):
            result = body()
    finally:
        while _open_contexts:
            _open_contexts.pop().close()
    if result is False:  # a body returns False when a run failed as a whole
        raise typer.Exit(1)
    return result


def parse_time(value: str | None, option: str) -> datetime | None:
    """Parse an ISO 8601 time (``2024-01-31`` or ``2024-01-31T12:00:00Z``), UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        fail(f"{option}: '{value}' is not an ISO 8601 time (e.g. 2024-01-31T12:00:00Z)")
    return (
        parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    )


def print_json(data: Any) -> None:
    """Print JSON to stdout (datetimes as ISO 8601)."""
    sys.stdout.write(json.dumps(data, default=_json_default, indent=2) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return str(value)
