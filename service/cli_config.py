"""``check-config`` and ``preview``: what a RevOps user runs while writing a mapping."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.columns import Columns
from rich.panel import Panel
from rich.syntax import Syntax

from connectors.errors import ConfigError, SourceError
from engine.preview import preview_records
from service.clicommon import (
    ConfigOpt,
    DebugOpt,
    JsonOpt,
    fail,
    load_context,
    out,
    print_json,
    run_command,
)

__all__ = ["check_config", "preview"]


def check_config(
    online: Annotated[
        bool, typer.Option("--online", help="Also check credentials and source fields.")
    ] = False,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Validate the config and every mapping; errors name the file, key and line."""

    def body() -> None:
        ctx = load_context(config)
        problems: list[str] = []
        checked = []
        for cfg in ctx.settings.connectors:
            try:
                mapping = ctx.mapping(cfg)
                if online:
                    with ctx.source(cfg) as source:
                        source.check()
                checked.append(
                    {
                        "connector": cfg.name,
                        "type": cfg.type,
                        "fields": list(mapping.targets),
                    }
                )
            except ConfigError as exc:
                problems.append(str(exc))
            except SourceError as exc:
                problems.append(f"connector {cfg.name}: {exc}")
        if problems:
            fail("\n".join(problems), code=2)
        if as_json:
            print_json(
                {
                    "ok": True,
                    "config": str(ctx.settings.config_file),
                    "connectors": checked,
                }
            )
            return
        out.print(f"{ctx.settings.config_file}: OK", highlight=False)
        for item in checked:
            out.print(
                f"  {item['connector']} ({item['type']}): maps "
                f"{', '.join(item['fields'])}",
                highlight=False,
            )

    run_command(debug, body)


def preview(
    name: Annotated[str, typer.Argument(help="The connector.")],
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Records to show.")] = 5,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Show N source records beside their mapped leads; writes nothing."""

    def body() -> None:
        ctx = load_context(config)
        cfg = ctx.connector(name)
        with ctx.source(cfg) as source:
            summary = preview_records(source, ctx.mapping(cfg), limit=limit, keep=limit)
        if as_json:
            print_json(summary.as_dict())
            return
        for src, lead in summary.pairs:
            left = Panel(
                Syntax(json.dumps(src, indent=2, default=str), "json"),
                title="source record",
            )
            right = Panel(
                Syntax(json.dumps(lead, indent=2, default=str), "json")
                if isinstance(lead, dict)
                else f"[red]{lead}[/]",
                title="lead" if isinstance(lead, dict) else "failure",
            )
            out.print(Columns([left, right], equal=True, expand=True))
        out.print(summary.render_text(), highlight=False)

    run_command(debug, body)
