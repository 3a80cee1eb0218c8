"""Per-key rate limits: the backend interface and its implementations.

``InMemoryRateLimiter`` serves one API process; ``SqliteFileRateLimiter`` keeps the
windows in a SQLite file that the processes of ``leadsync serve --workers N`` share.
"""

from service.api.ratelimit.base import (
    WINDOW_SECONDS,
    RateLimitBackend,
    RateLimitResult,
    rate_limit_headers,
)
from service.api.ratelimit.memory import InMemoryRateLimiter
from service.api.ratelimit.sqlitefile import SqliteFileRateLimiter, shared_limits_path

__all__ = [
    "WINDOW_SECONDS",
    "InMemoryRateLimiter",
    "RateLimitBackend",
    "RateLimitResult",
    "SqliteFileRateLimiter",
    "rate_limit_headers",
    "shared_limits_path",
]
