"""The rate limit backend interface: fixed one-minute windows per bucket.

Buckets are ``<key id>:requests``, ``<key id>:sync`` and ``<key id>:sync_leads``. A
backend only has to implement ``RateLimitBackend.hit``: ``memory.py`` keeps the windows
in one process, ``sharedfile.py`` in a memory-mapped file that several processes
share.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "WINDOW_SECONDS",
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
    """Counts hits per bucket; must be safe to call from many threads.

    The API calls it in its thread pool, never on the event loop: a backend may wait
    on a file lock or the network.
    """

    def hit(
        self, bucket: str, *, limit: int, cost: int = 1, window: float = WINDOW_SECONDS
    ) -> RateLimitResult:
        """Spend ``cost`` units of ``bucket`` if ``limit`` allows it."""
        ...


def rate_limit_headers(
    result: RateLimitResult, *, prefix: str = "X-RateLimit"
) -> list[tuple[bytes, bytes]]:
    """The ``X-RateLimit-Limit``, ``-Remaining`` and ``-Reset`` headers (ASGI form)."""
    return [
        (f"{prefix}-Limit".encode(), str(result.limit).encode()),
        (f"{prefix}-Remaining".encode(), str(result.remaining).encode()),
        (f"{prefix}-Reset".encode(), str(math.ceil(result.reset_after)).encode()),
    ]
