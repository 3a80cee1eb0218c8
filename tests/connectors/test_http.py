"""The shared HTTP helpers: backoff, retry_call, Retry-After, token bucket."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime

import pytest

from connectors.errors import FatalSourceError, RetriableSourceError
from connectors.http import (
    Backoff,
    TokenBucket,
    parse_retry_after,
    prefetch,
    retry_call,
)


class Time:
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def flaky(failures, error):
    calls = []

    def call():
        calls.append(1)
        if len(calls) <= failures:
            raise error
        return len(calls)

    return call, calls


def test_backoff_grows_exponentially_with_jitter_and_a_cap():
    backoff = Backoff(base=1.0, cap=8.0, rng=random.Random(3))
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)]:
        delay = backoff.delay(attempt, None)
        assert ceiling / 2 <= delay <= ceiling


def test_backoff_obeys_retry_after_plus_small_jitter():
    backoff = Backoff(base=0.5, rng=random.Random(3))
    assert 30.0 <= backoff.delay(1, 30.0) <= 30.5


def test_retry_call_retries_retriable_errors_then_returns():
    time = Time()
    call, calls = flaky(2, RetriableSourceError("503"))
    result = retry_call(
        call, backoff=Backoff(rng=random.Random(1)), sleep=time.sleep, clock=time.clock
    )
    assert result == 3
    assert len(calls) == 3
    assert len(time.sleeps) == 2


def test_retry_call_gives_up_after_max_attempts():
    time = Time()
    call, calls = flaky(10, RetriableSourceError("503"))
    with pytest.raises(RetriableSourceError):
        retry_call(
            call, backoff=Backoff(max_attempts=4), sleep=time.sleep, clock=time.clock
        )
    assert len(calls) == 4


def test_retry_call_gives_up_when_the_wait_exceeds_the_budget():
    time = Time()
    call, calls = flaky(10, RetriableSourceError("429", retry_after=120.0))
    with pytest.raises(RetriableSourceError):
        retry_call(
            call, backoff=Backoff(budget=60.0), sleep=time.sleep, clock=time.clock
        )
    assert len(calls) == 1
    assert time.sleeps == []


def test_retry_call_does_not_retry_fatal_errors():
    time = Time()
    call, calls = flaky(1, FatalSourceError("400"))
    with pytest.raises(FatalSourceError):
        retry_call(call, backoff=Backoff(), sleep=time.sleep, clock=time.clock)
    assert len(calls) == 1


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7", 7.0),
        (" 1.5 ", 1.5),
        ("-3", 0.0),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
        ("soon", None),
        (None, None),
    ],
)
def test_parse_retry_after(value, expected):
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)
    assert parse_retry_after(value, now=now) == expected


def test_token_bucket_paces_calls_after_the_burst():
    time = Time()
    bucket = TokenBucket(4.0, 4.0, clock=time.clock, sleep=time.sleep)
    waits = [bucket.acquire() for _ in range(8)]
    assert waits[:4] == [0.0, 0.0, 0.0, 0.0]
    assert waits[4:] == pytest.approx([0.25, 0.25, 0.25, 0.25])
    assert time.now == pytest.approx(1.0)


def test_token_bucket_zero_rate_is_unlimited():
    time = Time()
    bucket = TokenBucket(0.0, clock=time.clock, sleep=time.sleep)
    assert [bucket.acquire() for _ in range(100)] == [0.0] * 100


def test_token_bucket_clamp_drain_and_update():
    time = Time()
    bucket = TokenBucket(10.0, 100.0, clock=time.clock, sleep=time.sleep)
    bucket.clamp(3)
    assert bucket.tokens == 3
    bucket.drain()
    assert bucket.acquire() == pytest.approx(0.1)
    bucket.update(rate=1.0, capacity=2.0)
    time.now += 100
    assert bucket.tokens == 2.0


def test_prefetch_keeps_order_and_raises_errors_in_the_caller():
    def items():
        yield 1
        yield 2
        raise RetriableSourceError("boom")

    stream = prefetch(items())
    assert [next(stream), next(stream)] == [1, 2]
    with pytest.raises(RetriableSourceError, match="boom"):
        next(stream)


def test_prefetch_stops_the_worker_when_the_caller_stops():
    closed = threading.Event()

    def items():
        try:
            yield from range(1000)
        finally:
            closed.set()

    stream = prefetch(items(), depth=2)
    assert [next(stream), next(stream)] == [0, 1]
    stream.close()
    assert closed.wait(5)
