"""Client-side rate limits per HubSpot account, shared by every connector using it.

HubSpot counts requests per account (per private app or installed OAuth app), so two
connectors with the same token must share one budget: the buckets live in a process-wide
registry keyed by a hash of the token (never the token itself). Search has its own
limit (4-5 requests/s, crm-notes §1.3) and does not count against the 10-second burst
limit, which every other call does; that burst limit is learnt from the
``X-HubSpot-RateLimit-*`` headers of the responses.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from connectors.http import Clock, Sleep, TokenBucket

__all__ = ["AccountLimits", "account_key", "account_limits", "reset_accounts"]

# How long, after a daily-limit answer, every connector of the account stops asking.
_DAILY_PAUSE = 300.0


@dataclass(slots=True)
class AccountLimits:
    """The buckets of one HubSpot account."""

    search: TokenBucket
    general: TokenBucket
    clock: Clock
    daily_blocked_until: float = 0.0
    daily_remaining: float | None = None

    def observe(self, headers: Mapping[str, str]) -> float | None:
        """Learn the burst limit and what remains of it from a response's headers.

        Returns what the response says is left of the daily limit (None: not said).
        ``headers`` must look names up case-insensitively (urllib3's do).
        """
        get = headers.get
        limit = _number(get("X-HubSpot-RateLimit-Max"))
        if limit:
            interval = _number(get("X-HubSpot-RateLimit-Interval-Milliseconds"))
            if interval:
                rate = limit / (interval / 1000)
                if (rate, limit) != (self.general.rate, self.general.capacity):
                    self.general.update(rate=rate, capacity=limit)
        remaining = _number(get("X-HubSpot-RateLimit-Remaining"))
        if remaining is not None:
            self.general.clamp(remaining)
        daily = _number(get("X-HubSpot-RateLimit-Daily-Remaining"))
        if daily is not None:
            self.daily_remaining = daily
        return daily

    def block_daily(self) -> None:
        """Stop every connector of this account from asking for a while."""
        self.daily_blocked_until = self.clock() + _DAILY_PAUSE

    @property
    def daily_blocked(self) -> bool:
        """Whether the daily limit was hit a moment ago."""
        return self.clock() < self.daily_blocked_until


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None


_ACCOUNTS: dict[str, AccountLimits] = {}
_LOCK = threading.Lock()


def account_key(secret: str) -> str:
    """A stable, non-reversible key for the account behind a token."""
    return hashlib.sha256(secret.encode()).hexdigest()[:24]


def account_limits(
    key: str,
    *,
    search_rate: float,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
) -> AccountLimits:
    """The shared limits of an account; the first connector to ask creates them.

    A later connector asking for a lower search rate lowers it for all: the account's
    limit is one number, so the most careful setting wins.
    """
    with _LOCK:
        limits = _ACCOUNTS.get(key)
        if limits is None:
            limits = AccountLimits(
                search=TokenBucket(search_rate, clock=clock, sleep=sleep),
                # No burst limit until a response's headers tell it.
                general=TokenBucket(0.0, 1.0, clock=clock, sleep=sleep),
                clock=clock,
            )
            _ACCOUNTS[key] = limits
        elif search_rate > 0 and not 0 < limits.search.rate <= search_rate:
            limits.search.update(rate=search_rate, capacity=max(search_rate, 1.0))
        return limits


def reset_accounts() -> None:
    """Forget every account's limits (for tests and config reloads)."""
    with _LOCK:
        _ACCOUNTS.clear()
