"""Per-key rate limits: a small backend protocol and an in-process implementation.

Limits are fixed one-minute windows per bucket (``<key id>:requests``,
``<key id>:sync``, ``<key id>:sync_leads``). A shared backend (Redis, a PostgreSQL
table) only has to implement ``RateLimitBackend.hit`` to serve several API processes.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "WINDOW_SECONDS",
    "InMemoryRateLimiter",
    "RateLimitBackend",
    "RateLimitResult",
    "rate_limit_headers",
]

WINDOW_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class RateLimitResult:
    """The outcome of one hit: allowed or not, and the window's state after it."""

    allowed: bool
    limit: int
    remaining: int
    reset_after: float  # seconds until the window resets

    @property
    def retry_after(self) -> int:
        """Whole seconds to wait before retrying (at least 1)."""
        return max(1, math.ceil(self.reset_after))


class RateLimitBackend(Protocol):
    """Counts hits per bucket; must be safe to call from many threads."""

    def hit(
        self, bucket: str, *, limit: int, cost: int = 1, window: float = WINDOW_SECONDS
    ) -> RateLimitResult:
        """Spend ``cost`` units of ``bucket`` if ``limit`` allows it."""
        ...


class InMemoryRateLimiter:
    """Fixed windows in a dict behind a lock: for one API process."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[float, int]] = {}
        self._next_prune = 0.0

    def hit(
        self, bucket: str, *, limit: int, cost: int = 1, window: float = WINDOW_SECONDS
    ) -> RateLimitResult:
        """Spend ``cost`` units of ``bucket``; a refused hit spends nothing."""
        now = self._clock()
        with self._lock:
            if now >= self._next_prune:
                self._prune(now, window)
            start, used = self._windows.get(bucket, (now, 0))
            if now - start >= window:
                start, used = now, 0
            allowed = used + cost <= limit
            if allowed:
                used += cost
            self._windows[bucket] = (start, used)
        return RateLimitResult(
            allowed=allowed,
            limit=limit,
            remaining=max(0, limit - used),
            reset_after=max(0.0, start + window - now),
        )

    def _prune(self, now: float, window: float) -> None:
        # Forget expired windows now and then, so idle keys do not accumulate.
        self._windows = {
            b: (s, u) for b, (s, u) in self._windows.items() if now - s < window
        }
        self._next_prune = now + window


def rate_limit_headers(
    result: RateLimitResult, *, prefix: str = "X-RateLimit"
) -> list[tuple[bytes, bytes]]:
    """The ``X-RateLimit-Limit``, ``-Remaining`` and ``-Reset`` headers (ASGI form)."""
    return [
        (f"{prefix}-Limit".encode(), str(result.limit).encode()),
        (f"{prefix}-Remaining".encode(), str(result.remaining).encode()),
        (f"{prefix}-Reset".encode(), str(math.ceil(result.reset_after)).encode()),
    ]
