"""The ``run`` command: the daemon (registered by ``service.cli``)."""

from __future__ import annotations

from service.clicommon import ConfigOpt, DebugOpt, load_context, run_command

__all__ = ["run"]


def run(config: ConfigOpt = None, debug: DebugOpt = False) -> None:
    """The daemon: schedule every enabled connector and serve the API until stopped.

    SIGHUP reloads the config; SIGTERM or Ctrl-C stops cleanly (exit status 0).
    """
    # imported here: the scheduler and the API server are no cost of other commands
    from service.daemon import Daemon

    def body() -> None:
        ctx = load_context(config)
        Daemon(ctx, config_path=config).run()

    run_command(debug, body)
