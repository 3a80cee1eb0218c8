"""The uvicorn server of the lead API, for ``leadsync serve`` and ``leadsync run``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from sqlalchemy.engine import Engine

from service.api.app import create_app
from service.settings import Settings

__all__ = ["api_server"]


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
