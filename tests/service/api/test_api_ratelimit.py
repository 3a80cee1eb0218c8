"""Rate limit backends: in one process, and in a memory-mapped file shared by processes."""

import multiprocessing
from pathlib import Path

import pytest

from service.api.ratelimit import (
    InMemoryRateLimiter,
    SharedFileRateLimiter,
    shared_limits_path,
)


class Ticks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(name="backend", params=["memory", "shared-file"])
def backend_fixture(request, tmp_path):
    ticks = Ticks()
    if request.param == "memory":
        yield InMemoryRateLimiter(clock=ticks), ticks
        return
    limiter = SharedFileRateLimiter(tmp_path / "limits", clock=ticks)
    yield limiter, ticks
    limiter.close()


def test_fixed_windows_per_bucket(backend):
    limiter, ticks = backend
    hits = [limiter.hit("k:requests", limit=3) for _ in range(4)]
    assert [(h.allowed, h.remaining) for h in hits] == [
        (True, 2),
        (True, 1),
        (True, 0),
        (False, 0),
    ]
    assert hits[-1].limit == 3
    assert hits[-1].reset_after == 60.0
    assert limiter.hit("other:requests", limit=3).remaining == 2  # per bucket
    ticks.now += 45
    refused = limiter.hit("k:requests", limit=3)
    assert (refused.allowed, refused.retry_after) == (False, 15)
    ticks.now += 15
    assert limiter.hit("k:requests", limit=3).remaining == 2  # a new window


def test_a_refused_hit_spends_nothing(backend):
    limiter, _ = backend
    assert limiter.hit("k:sync_leads", limit=5, cost=3).remaining == 2
    refused = limiter.hit("k:sync_leads", limit=5, cost=3)
    assert (refused.allowed, refused.remaining) == (False, 2)
    assert limiter.hit("k:sync_leads", limit=5, cost=2).allowed
    assert not limiter.hit("k:fresh", limit=5, cost=6).allowed  # over on its own
    assert limiter.hit("k:fresh", limit=5, cost=5).remaining == 0


def test_custom_windows(backend):
    limiter, ticks = backend
    assert limiter.hit("k:a", limit=1, window=2.0).allowed
    assert not limiter.hit("k:a", limit=1, window=2.0).allowed
    ticks.now += 2
    assert limiter.hit("k:a", limit=1, window=2.0).allowed


def test_a_clock_set_back_starts_a_new_window(tmp_path):
    ticks = Ticks()
    limiter = SharedFileRateLimiter(tmp_path / "limits", clock=ticks)
    assert limiter.hit("k:requests", limit=2).allowed
    ticks.now -= 3600  # the wall clock was set back
    assert limiter.hit("k:requests", limit=2).remaining == 1
    limiter.close()


def test_a_hit_timed_just_before_the_window_start_counts_in_it(tmp_path):
    # Two processes read the clock, then queue for the lock: the one that read it
    # later may write first. The earlier time must not start a new window.
    ticks = Ticks()
    limiter = SharedFileRateLimiter(tmp_path / "limits", clock=ticks)
    assert limiter.hit("k:requests", limit=2).remaining == 1
    ticks.now -= 0.001
    late = limiter.hit("k:requests", limit=2)
    assert (late.remaining, late.reset_after) == (0, 60.0)
    assert not limiter.hit("k:requests", limit=2).allowed
    limiter.close()


def test_ended_windows_free_their_slots(tmp_path):
    ticks = Ticks()
    limiter = SharedFileRateLimiter(tmp_path / "limits", clock=ticks)
    for n in range(5):
        limiter.hit(f"k{n}:requests", limit=1)
    assert limiter.live_windows() == 5
    ticks.now += 120
    assert limiter.live_windows() == 0
    for n in range(5, 10):  # new buckets reuse ended slots where they probe past them
        assert limiter.hit(f"k{n}:requests", limit=1).allowed
    assert limiter.hit("k0:requests", limit=1).remaining == 0  # a new window
    assert limiter.live_windows() == 6
    limiter.close()


def test_buckets_that_share_a_probe_run_keep_their_own_windows(tmp_path, monkeypatch):
    from service.api.ratelimit import sharedfile

    monkeypatch.setattr(sharedfile, "SLOTS", 4)  # every bucket collides
    ticks = Ticks()
    limiter = SharedFileRateLimiter(tmp_path / "limits", clock=ticks)
    for n in range(4):
        assert limiter.hit(f"k{n}", limit=n + 1).remaining == n
    for n in range(4):
        assert limiter.hit(f"k{n}", limit=n + 1).remaining == max(0, n - 1)
    # A full table: the window nearest its end is taken over, nothing fails.
    ticks.now += 1
    assert limiter.hit("k-new", limit=1).allowed
    assert limiter.live_windows() == 4
    limiter.close()


def test_a_file_not_ours_is_laid_out_anew(tmp_path):
    path = tmp_path / "limits"
    path.write_bytes(b"SQLite format 3\0" + bytes(100))
    limiter = SharedFileRateLimiter(path)
    assert limiter.hit("k", limit=2).remaining == 1
    limiter.close()
    again = SharedFileRateLimiter(path)  # ours now: the window is still there
    assert again.hit("k", limit=2).remaining == 0
    again.close()


def test_instances_on_one_file_share_their_windows(tmp_path):
    path = tmp_path / "limits"
    first, second = SharedFileRateLimiter(path), SharedFileRateLimiter(path)
    assert first.hit("k:requests", limit=2).remaining == 1
    assert second.hit("k:requests", limit=2).remaining == 0
    assert not first.hit("k:requests", limit=2).allowed
    first.close()
    second.close()


def _hammer(path: str, hits: int, queue) -> None:  # runs in a child process
    limiter = SharedFileRateLimiter(Path(path))
    allowed = [limiter.hit("k:requests", limit=25).allowed for _ in range(hits)]
    queue.put(sum(allowed))


def test_limits_hold_across_processes(tmp_path):
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    path = str(tmp_path / "limits")
    procs = [context.Process(target=_hammer, args=(path, 20, queue)) for _ in range(3)]
    for proc in procs:
        proc.start()
    allowed = [queue.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(30)
        assert proc.exitcode == 0
    assert sum(allowed) == 25  # of 60 hits, whichever process made them


def test_where_the_shared_windows_live(tmp_path):
    store = tmp_path / "var" / "leadsync.db"
    assert shared_limits_path(f"sqlite:///{store}") == store.with_name(
        "leadsync.db-ratelimits"
    )
    pg = shared_limits_path("postgresql+psycopg://u:secret@db/leads")
    assert pg.name.startswith("leadsync-ratelimits-")
    assert "secret" not in str(pg)
    assert pg == shared_limits_path("postgresql+psycopg://u:other@db/leads")
    assert pg != shared_limits_path("postgresql+psycopg://u:secret@db/other")
