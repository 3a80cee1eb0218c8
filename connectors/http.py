"""Shared HTTP helpers for connectors: retries with backoff and jitter, token buckets.

Plain classes and functions, no vendor knowledge: a connector translates its vendor's
errors into ``RetriableSourceError`` (with ``retry_after`` when the vendor said one) and
lets ``retry_call`` decide whether and how long to wait. Clocks, sleeps and the random
source are injectable so tests never sleep for real.
"""

from __future__ import annotations

import email.utils
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

import structlog

from connectors.errors import RetriableSourceError

__all__ = ["Backoff", "TokenBucket", "parse_retry_after", "prefetch", "retry_call"]

T = TypeVar("T")
Sleep = Callable[[float], None]
Clock = Callable[[], float]

log = structlog.get_logger("leadsync.http")


@dataclass(slots=True)
class Backoff:
    """Exponential backoff with full jitter, bounded in attempts and in total time.

    ``max_attempts`` counts every call, the first included; ``budget`` (seconds) bounds
    the time spent waiting between them, so a run never hangs on a sick API.
    """

    base: float = 0.5
    cap: float = 60.0
    max_attempts: int = 6
    budget: float = 300.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait after failed call number ``attempt`` (1-based)."""
        if retry_after is not None and retry_after >= 0:
            # The server said how long; a little jitter keeps parallel workers apart.
            return retry_after + self.rng.uniform(0, min(1.0, self.base))
        ceiling = min(self.cap, self.base * (2 ** (attempt - 1)))
        # Full jitter, with a floor of half the ceiling so a retry never comes at once.
        return self.rng.uniform(ceiling / 2, ceiling)


def retry_call(
    call: Callable[[], T],
    *,
    backoff: Backoff,
    sleep: Sleep = time.sleep,
    clock: Clock = time.monotonic,
    what: str = "request",
) -> T:
    """Call ``call`` until it stops raising ``RetriableSourceError``, within bounds.

    Raises:
        RetriableSourceError: the last error, once the attempts or the time budget
            are used up (or the wait the server asks for would not fit the budget).
    """
    started = clock()
    attempt = 0
    while True:
        attempt += 1
        try:
            return call()
        except RetriableSourceError as exc:
            if attempt >= backoff.max_attempts:
                raise
            wait = backoff.delay(attempt, exc.retry_after)
            if clock() - started + wait > backoff.budget:
                raise
            log.warning(
                "request_retried",
                what=what,
                attempt=attempt,
                wait_s=round(wait, 3),
                error=str(exc),
            )
            sleep(wait)


def parse_retry_after(
    value: str | None, *, now: datetime | None = None
) -> float | None:
    """Seconds from a ``Retry-After`` header: a number, or an HTTP date; else None."""
    if value is None:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now or datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


class TokenBucket:
    """A thread-safe token bucket: ``rate`` tokens per second, at most ``capacity``.

    A ``rate`` of 0 means no limit. ``update`` changes the limits when the vendor's
    headers reveal them; ``clamp`` lowers the tokens to what the vendor says remains.
    """

    def __init__(
        self,
        rate: float,
        capacity: float | None = None,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep
        self.rate = rate
        self.capacity = capacity if capacity is not None else max(rate, 1.0)
        self._tokens = self.capacity
        self._stamp = clock()

    def update(self, *, rate: float, capacity: float) -> None:
        """Set new limits, keeping the tokens already spent."""
        with self._lock:
            self._refill()
            self.rate, self.capacity = rate, capacity
            self._tokens = min(self._tokens, capacity)

    def clamp(self, remaining: float) -> None:
        """Never hold more tokens than the server says remain in its window."""
        with self._lock:
            self._refill()
            self._tokens = min(self._tokens, remaining)

    def drain(self) -> None:
        """Empty the bucket (after a 429): the next call waits a full token."""
        self.clamp(0.0)

    def acquire(self) -> float:
        """Take one token, sleeping until there is one; returns the seconds slept."""
        if self.rate <= 0:
            return 0.0
        slept = 0.0
        while True:
            with self._lock:
                self._refill()
                if self._tokens >= 1:
                    self._tokens -= 1
                    return slept
                wait = (1 - self._tokens) / self.rate
            self._sleep(wait)
            slept += wait

    @property
    def tokens(self) -> float:
        """Tokens available now."""
        with self._lock:
            self._refill()
            return self._tokens

    def _refill(self) -> None:
        now = self._clock()
        if self.rate > 0:
            self._tokens = min(
                self.capacity, self._tokens + (now - self._stamp) * self.rate
            )
        self._stamp = now


_ITEM, _ERROR, _END = range(3)


def prefetch(items: Iterator[T], *, depth: int = 1) -> Iterator[T]:
    """Run ``items`` in a worker thread that stays up to ``depth`` items ahead.

    Paging APIs are sequential (each page names the next), so this is how the next
    request overlaps the caller's work on the current page. Errors raised by ``items``
    are raised in the caller, in order; closing the result stops the worker.
    """
    slots: queue.Queue[tuple[int, object]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple[int, object]) -> bool:
        while not stop.is_set():
            try:
                slots.put(entry, timeout=0.05)
            except queue.Full:
                continue
            return True
        return False

    def work() -> None:
        try:
            for item in items:
                if not put((_ITEM, item)):
                    break
            else:
                put((_END, None))
        except BaseException as exc:  # noqa: BLE001 (handed to the caller's thread)
            put((_ERROR, exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=work, name="leadsync-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = slots.get()
            if kind == _ITEM:
                yield value  # type: ignore[misc]
            elif kind == _ERROR:
                assert isinstance(value, BaseException)  # noqa: S101 (by construction)
                raise value
            else:
                return
    finally:
        stop.set()
