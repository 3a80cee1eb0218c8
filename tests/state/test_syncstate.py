import random
from datetime import UTC, datetime, timedelta

from state.db import session_scope
from state.models import Failure
from state.syncstate import (
    FailureItem,
    backoff_delay,
    due_failures,
    get_cursor,
    open_failure_keys,
    purge_failures,
    record_failures,
    resolve_failures,
    save_cursor,
    schedule_retry_now,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def test_cursor_moves_forward_only(db):
    with session_scope(db) as s:
        assert save_cursor(s, connector="c", ts=T0, record_id="5", now=T0)
        assert not save_cursor(s, connector="c", ts=T0, record_id="4", now=T0)
        assert not save_cursor(
            s, connector="c", ts=T0 - timedelta(1), record_id="9", now=T0
        )
        assert save_cursor(s, connector="c", ts=T0, record_id="6", now=T0)
    with session_scope(db) as s:
        row = get_cursor(s, "c")
        assert (row.ts, row.record_id) == (T0, "6")


def _fail(db, run, keys, now, max_attempts=3):
    with session_scope(db) as s:
        record_failures(
            s,
            connector="c",
            run_id=run,
            items=[
                FailureItem(item_key=k, stage="map", code="required", message="m")
                for k in keys
            ],
            now=now,
            max_attempts=max_attempts,
            base=timedelta(minutes=1),
            cap=timedelta(hours=1),
        )


def _get(db, key):
    with session_scope(db) as s:
        return s.query(Failure).filter_by(item_key=key).one()


def test_failure_lifecycle_attempts_backoff_dead(db):
    _fail(db, "r1", ["a"], T0)
    _fail(db, "r1", ["a"], T0)  # same run: still one attempt
    f = _get(db, "a")
    assert (f.attempts, f.status) == (1, "pending")
    assert T0 + timedelta(seconds=30) <= f.next_retry_at <= T0 + timedelta(seconds=90)
    _fail(db, "r2", ["a"], T0)
    assert _get(db, "a").attempts == 2
    _fail(db, "r3", ["a"], T0)
    f = _get(db, "a")
    assert (f.attempts, f.status, f.next_retry_at) == (3, "dead", None)
    with session_scope(db) as s:
        assert open_failure_keys(s, connector="c") == {"a"}
        assert schedule_retry_now(s, connector="c", failure_id=None, now=T0) == 1
    f = _get(db, "a")
    assert (f.attempts, f.status, f.next_retry_at) == (0, "pending", T0)


def test_due_and_resolve_and_purge(db):
    _fail(db, "r1", ["a", "b"], T0)
    with session_scope(db) as s:
        assert due_failures(s, connector="c", now=T0) == []
        due = due_failures(s, connector="c", now=T0 + timedelta(hours=2))
        assert sorted(f.item_key for f in due) == ["a", "b"]
        assert resolve_failures(s, connector="c", item_keys=["a", "zz"], now=T0) == 1
        assert open_failure_keys(s, connector="c") == {"b"}
        assert purge_failures(s, connector="c", statuses=["resolved"]) == 1
    # a resolved record that fails again starts over at attempt 1
    _fail(db, "r9", ["b"], T0)
    assert _get(db, "b").attempts == 2


def test_backoff_grows_and_caps():
    rng = random.Random(1)
    delays = [
        backoff_delay(n, base=timedelta(minutes=1), cap=timedelta(hours=1), rng=rng)
        for n in range(1, 12)
    ]
    assert delays[0] <= timedelta(seconds=90)
    assert delays[4] >= timedelta(minutes=8)  # 16 min * >= 0.5
    assert max(delays) <= timedelta(hours=1)
