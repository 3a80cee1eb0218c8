"""Rate limit windows in a dict behind a lock: for one API process."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from service.api.ratelimit.base import WINDOW_SECONDS, RateLimitResult

__all__ = ["InMemoryRateLimiter"]


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
