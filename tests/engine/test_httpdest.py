"""The HTTP destination against a mock remote lead API."""

import json
import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from connectors.http import Backoff
from engine.destinations import Batch
from engine.httpdest import DestinationError, HttpDestination

NOW = datetime(2024, 1, 1, tzinfo=UTC)


class Remote:
    """Answers the sync endpoints; the first upsert call gets a 429."""

    def __init__(self, first_status: int = 429) -> None:
        self.calls: list[tuple[str, dict[str, Any], str | None]] = []
        self.first_status = first_status

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.calls.append((request.url.path, body, request.headers.get("X-API-Key")))
        if len(self.calls) == 1 and self.first_status != 200:
            return httpx.Response(
                self.first_status, headers={"Retry-After": "7"}, json={"error": {}}
            )
        if request.url.path.endswith("/delete"):
            return httpx.Response(200, json={"deleted": len(body["lead_ids"])})
        errors = [
            {
                "index": i,
                "lead_id": lead["lead_id"],
                "code": "unprocessable",
                "message": "bad email",
            }
            for i, lead in enumerate(body["leads"])
            if lead["email"] is None
        ]
        return httpx.Response(
            200,
            json={
                "created": len(body["leads"]) - len(errors),
                "updated": 0,
                "unchanged": 0,
                "errors": errors,
            },
        )


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 3))
        self.now += seconds


def make(
    remote: Callable[[httpx.Request], httpx.Response], clock: Clock, **kw: int
) -> HttpDestination:
    return HttpDestination(
        url="http://remote.test/",
        api_key="k-123",
        transport=httpx.MockTransport(remote),
        clock=clock,
        sleep=clock.sleep,
        backoff=Backoff(base=0.0, max_attempts=3, rng=random.Random(1)),
        **kw,
    )


@pytest.fixture(name="session")
def session_fixture(tmp_path):
    from state.migrate import upgrade

    engine = create_engine(f"sqlite:///{tmp_path / 's.db'}")
    upgrade(engine)
    with Session(engine) as session:
        yield session
    engine.dispose()


def test_batches_of_at_most_batch_size_with_retry_after_and_item_errors(session):
    remote, clock = Remote(), Clock()
    dest = make(remote, clock, batch_size=100, requests_per_minute=600)
    leads = [
        {
            "lead_id": str(i),
            "email": None if i == 5 else f"u{i}@x.com",
            "source_updated_at": NOW,
        }
        for i in range(250)
    ]
    result = dest.apply(
        session, Batch(origin="csv", upserts=leads, deletes=["9"]), now=NOW
    )
    paths = [c[0] for c in remote.calls]
    assert paths == ["/v1/leads/sync"] * 4 + ["/v1/leads/sync/delete"]
    assert [len(c[1]["leads"]) for c in remote.calls[1:4]] == [100, 100, 50]
    assert {c[2] for c in remote.calls} == {"k-123"}
    assert (
        remote.calls[1][1]["leads"][0]["source_updated_at"]
        == "2024-01-01T00:00:00+00:00"
    )
    assert (result.created, result.deleted) == (249, 1)
    assert result.errors == [("5", "unprocessable", "bad email")]
    assert any(7.0 <= s < 8.0 for s in clock.slept)  # waited for Retry-After
    dest.close()


def test_client_side_pacing_spreads_requests(session):
    remote, clock = Remote(first_status=200), Clock()
    dest = make(
        remote, clock, batch_size=10, requests_per_minute=60, leads_per_minute=6000
    )
    leads = [{"lead_id": str(i), "email": f"u{i}@x.com"} for i in range(30)]
    dest.apply(session, Batch(origin="csv", upserts=leads), now=NOW)
    assert len(remote.calls) == 3
    assert clock.now == pytest.approx(2.0, abs=0.01)  # 3 requests at 1/s


def test_refusal_and_exhausted_retries_raise(session):
    dest = make(Remote(first_status=401), Clock())
    with pytest.raises(DestinationError, match="HTTP 401"):
        dest.apply(session, Batch(origin="csv", upserts=[{"lead_id": "1"}]), now=NOW)

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    dest = make(down, Clock())
    with pytest.raises(DestinationError, match="gave up retrying"):
        dest.apply(session, Batch(origin="csv", deletes=["1"]), now=NOW)


def test_snapshot_deletions_reach_the_remote(tmp_path):
    from engine import runner
    from engine.mapping import compile_mapping
    from engine.sync import Syncer
    from state.db import make_engine
    from state.migrate import upgrade
    from tests.fakes import FakeConfig, FakeSource

    db = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    upgrade(db)
    remote, clock = Remote(first_status=200), Clock()
    src = FakeSource(snapshot=True)
    for i in range(10):
        src.put(str(i), NOW, email=f"u{i}@x.com")
    mapping = compile_mapping({"lead_id": "id", "fields": {"email": "email"}})

    def sync(**kw):
        syncer = Syncer(
            db=db,
            cfg=FakeConfig(name="fake"),
            source=src,
            mapping=mapping,
            destination=make(remote, clock),
        )
        return runner.sync(syncer, **kw)

    assert sync().counts["created"] == 10
    del src.records["3"], src.records["7"]
    report = sync()
    assert report.ok and report.counts["deleted"] == 2
    deletes = [c[1] for c in remote.calls if c[0] == "/v1/leads/sync/delete"]
    assert deletes == [{"origin": "fake", "lead_ids": ["3", "7"]}]
    assert sync().counts["deleted"] == 0  # forwarded once, not again
    for i in range(8):
        src.records.pop(str(i), None)
    refused = sync()
    assert refused.outcome == "failed" and "refusing to delete 6 of 8" in refused.error
    assert len([c for c in remote.calls if c[0].endswith("/delete")]) == 1
    db.dispose()
