"""The lead API (contract §5): a FastAPI app over the store."""

from service.api.app import create_app
from service.api.ratelimit import InMemoryRateLimiter, RateLimitBackend, RateLimitResult

__all__ = ["InMemoryRateLimiter", "RateLimitBackend", "RateLimitResult", "create_app"]
