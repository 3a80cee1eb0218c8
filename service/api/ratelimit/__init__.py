"""Per-key rate limits: the backend interface and its implementations.

``InMemoryRateLimiter`` serves one API process; ``SharedFileRateLimiter`` keeps the
windows in a memory-mapped file that the processes of ``leadsync serve --workers N``
share.
"""

from service.api.ratelimit.base import (
    WINDOW_SECONDS,
    RateLimitBackend,
    RateLimitResult,
    rate_limit_headers,
)
from service.api.ratelimit.memory import InMemoryRateLimiter
from service.api.ratelimit.sharedfile import SharedFileRateLimiter, shared_limits_path

__all__ = [
    "WINDOW_SECONDS",
    "InMemoryRateLimiter",
    "RateLimitBackend",
    "RateLimitResult",
    "SharedFileRateLimiter",
    "rate_limit_headers",
    "shared_limits_path",
]
