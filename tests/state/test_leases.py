"""Connector leases: one holder at a time, takeover after expiry, fenced cursor writes."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine

from state.db import session_scope
from state.leases import (
    LostLeaseError,
    acquire_lease,
    check_fence,
    list_leases,
    release_lease,
    renew_lease,
)
from state.syncstate import get_cursor, save_cursor

T0 = datetime(2024, 1, 1, tzinfo=UTC)
TTL = timedelta(seconds=30)


def take(db: Engine, owner: str, now: datetime, connector: str = "c") -> int | None:
    with session_scope(db) as s:
        return acquire_lease(s, connector=connector, owner=owner, ttl=TTL, now=now)


def test_one_holder_until_expiry_then_takeover_with_a_new_token(db):
    assert take(db, "a", T0) == 1
    assert take(db, "b", T0 + timedelta(seconds=29)) is None
    assert take(db, "a", T0 + timedelta(seconds=10)) == 1  # the holder keeps its token
    assert take(db, "b", T0 + timedelta(seconds=39)) is None  # renewed at +10s
    assert take(db, "b", T0 + timedelta(seconds=40)) == 2
    with session_scope(db) as s:
        (info,) = list_leases(s)
        assert (info.connector, info.owner, info.token) == ("c", "b", 2)
        assert info.expires_at == T0 + timedelta(seconds=70)
        assert not renew_lease(s, connector="c", owner="a", token=1, ttl=TTL, now=T0)
        assert renew_lease(s, connector="c", owner="b", token=2, ttl=TTL, now=T0)


def test_release_lets_another_take_at_once(db):
    assert take(db, "a", T0) == 1
    with session_scope(db) as s:
        assert release_lease(s, connector="c", owner="a", token=1, now=T0)
    assert take(db, "b", T0) == 2
    assert take(db, "a", T0, connector="other") == 1


def test_stale_cursor_write_is_refused(db):
    assert take(db, "a", T0) == 1
    with session_scope(db) as s:
        assert save_cursor(s, connector="c", ts=T0, record_id="1", now=T0, fence=1)
    assert take(db, "b", T0 + timedelta(minutes=1)) == 2
    with (
        pytest.raises(LostLeaseError, match="token 1 is stale"),
        session_scope(db) as s,
    ):
        save_cursor(
            s, connector="c", ts=T0 + timedelta(hours=1), record_id="2", now=T0, fence=1
        )
    with session_scope(db) as s:
        row = get_cursor(s, "c")
        assert row is not None
        assert (row.ts, row.record_id) == (T0, "1")
        assert save_cursor(
            s, connector="c", ts=T0 + timedelta(hours=1), record_id="2", now=T0, fence=2
        )
        with pytest.raises(LostLeaseError):
            check_fence(s, connector="unknown", token=1)
