"""systemd notifications (``Type=notify``) over the documented datagram protocol.

systemd passes a unix datagram socket in ``NOTIFY_SOCKET`` (a path, or ``@name`` for
the abstract namespace); a service sends newline-separated ``KEY=VALUE`` states to it:
``READY=1``, ``STOPPING=1``, ``WATCHDOG=1``, ``STATUS=...``. With ``WatchdogSec`` set,
systemd passes ``WATCHDOG_USEC`` (and ``WATCHDOG_PID``) and expects a ping at least
that often; we ping at half of it. Without ``NOTIFY_SOCKET`` every call is a no-op.
See sd_notify(3).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

import structlog

__all__ = ["Notifier"]

log = structlog.get_logger("leadsync.daemon")


class Notifier:
    """Sends states to the service manager, if there is one."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        path = env.get("NOTIFY_SOCKET") or ""
        self._address: str | bytes | None = None
        if path.startswith("@"):
            self._address = b"\0" + path[1:].encode()
        elif path.startswith("/"):
            self._address = path
        self.watchdog_interval = _watchdog_interval(env)

    @property
    def enabled(self) -> bool:
        """Whether a service manager listens."""
        return self._address is not None

    def notify(self, *states: str) -> bool:
        """Send ``states`` (``"READY=1"``...) in one datagram; whether it was sent."""
        if self._address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto("\n".join(states).encode(), self._address)
        except OSError as exc:
            # the service manager going away must never take the daemon down
            log.warning("notify_failed", error=str(exc), states=list(states))
            return False
        return True

    def ready(self, status: str = "") -> bool:
        """Tell the service manager start-up is done."""
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def stopping(self) -> bool:
        """Tell the service manager shutdown has begun."""
        return self.notify("STOPPING=1")

    def watchdog(self) -> bool:
        """Ping the watchdog."""
        return self.notify("WATCHDOG=1")


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    """Seconds between watchdog pings (half of ``WATCHDOG_USEC``), or None."""
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) <= 0:
        return None
    pid = env.get("WATCHDOG_PID", "")
    if pid.isdigit() and int(pid) != os.getpid():
        return None  # the watchdog is meant for another process
    return int(usec) / 2_000_000
