"""The event loop never runs SQL: every route reads and writes in worker threads."""

import asyncio

import pytest
import sqlalchemy as sa

from service.api import create_app
from service.api.deps import get_clock
from service.api.ratelimit import SharedFileRateLimiter
from service.api.totals import TotalCache

from .conftest import Api, TestClient, make_settings
from .test_auth import ROUTES


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@pytest.fixture(name="watched")
def watched_fixture(db, clock, tmp_path, monkeypatch):
    """The API, and a list of (what ran, whether on the event loop) for its SQL."""
    seen: list[tuple[str, bool]] = []

    def record(what: str) -> None:
        seen.append((what, _on_event_loop()))

    @sa.event.listens_for(db, "before_cursor_execute")
    def _statement(conn, cursor, statement, *args):
        record(statement)

    @sa.event.listens_for(db.pool, "checkout")
    def _raw_reads(dbapi_conn, record_, proxy):
        # Reads on SQLite run on the DBAPI cursor, past SQLAlchemy's events.
        if db.dialect.name == "sqlite":
            dbapi_conn.set_trace_callback(record)

    version = TotalCache.version

    def watched_version(self):
        record("PRAGMA data_version")
        return version(self)

    monkeypatch.setattr(TotalCache, "version", watched_version)
    limiter = SharedFileRateLimiter(tmp_path / "limits")
    hit = limiter.hit

    def watched_hit(*args, **kwargs):
        record("rate limit hit")
        return hit(*args, **kwargs)

    monkeypatch.setattr(limiter, "hit", watched_hit)
    app = create_app(make_settings(), db=db, rate_limiter=limiter)
    app.dependency_overrides[get_clock] = lambda: clock
    with TestClient(app) as client:
        yield Api(app=app, client=client, db=db, clock=clock), seen
    limiter.close()


def test_no_route_runs_sql_on_the_event_loop(watched):
    api, seen = watched
    lead = api.create(name="Ada Lovelace")
    urls = [
        ("GET", "/v1/leads?status=new&q=ada", None),
        ("GET", "/v1/leads/lead_missing", None),
        ("GET", "/readyz", None),
        ("GET", "/metrics", None),
    ]
    urls += [(method, path, body) for method, path, body, _ in ROUTES]
    seen.clear()
    for method, path, body in urls:
        if body and "email" in body:
            body = {**body, "email": f"n{next(api.seq)}-{body['email']}"}
        url = path.format(id=api.create(name="Ada")["id"])
        response = api.request(method, url, json=body)
        assert response.status_code < 500, (path, response.text)
    response = api.request("GET", f"/v1/leads/{lead['id']}")
    assert response.status_code == 200
    ran = {what for what, _ in seen}
    assert "PRAGMA data_version" in ran
    assert "rate limit hit" in ran
    assert any("FROM lead" in what for what in ran)
    assert [what for what, on_loop in seen if on_loop] == []
