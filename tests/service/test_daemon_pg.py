"""Two daemons sharing one PostgreSQL store: one runner per connector, takeover, fencing."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from state.db import make_engine, session_scope
from state.leases import LostLeaseError
from state.syncstate import save_cursor
from tests.conftest import PG_AVAILABLE
from tests.service.test_daemon import (
    cli,
    free_port,
    procs_fixture,  # noqa: F401 (the fixture)
    rows,
    start,
    wait_for,
    write_config,
    write_csv,
)

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not PG_AVAILABLE, reason="PostgreSQL test server down"),
]
NAMES = ["one", "two", "three"]


@pytest.fixture(name="pg_url")
def pg_url_fixture(pg_database: str) -> Iterator[str]:
    schema = f"d_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(pg_database)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(pg_database).update_query_dict(
        {"options": f"-csearch_path={schema}"}
    )
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def leases(engine: sa.Engine) -> dict[str, tuple[str, int]]:
    with engine.connect() as conn:
        found = conn.execute(sa.text("select connector, owner, token from lease"))
        return {c: (o, t) for c, o, t in found}


def runs(engine: sa.Engine) -> list[tuple[str, datetime, datetime | None, str]]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.text(
                    "select connector, started_at, finished_at, outcome from run "
                    "order by connector, started_at"
                )
            )
        )


def assert_never_twice_at_once(
    found: list[tuple[str, datetime, datetime | None, str]],
) -> None:
    last: dict[str, datetime] = {}
    for connector, started, finished, outcome in found:
        if outcome == "abandoned":
            continue  # a killed daemon's run, closed by the next one
        assert connector not in last or last[connector] <= started, connector
        last[connector] = finished or datetime.max.replace(tzinfo=UTC)


@pytest.mark.slow
def test_two_daemons_share_connectors_and_take_over(tmp_path, procs, pg_url):
    dirs = [tmp_path / "a", tmp_path / "b"]
    configs = []
    for d in dirs:
        d.mkdir()
        for name in NAMES:
            write_csv(d / f"{name}.csv", rows(20))
        configs.append(write_config(d, pg_url, port=free_port(), connectors=NAMES))
    cli(["db", "upgrade", "--config", str(configs[0])])
    engine = make_engine(pg_url)
    a = start(["run", "--config", str(configs[0])], dirs[0] / "daemon.log")
    procs.append(a)
    wait_for(lambda: len(leases(engine)) == 3, 30, "A to take the leases")
    (owner_a,) = {o for o, _ in leases(engine).values()}
    b = start(["run", "--config", str(configs[1])], dirs[1] / "daemon.log")
    procs.append(b)
    time.sleep(4)
    # A keeps every connector while alive; each runs once per tick, one at a time
    assert {o for o, _ in leases(engine).values()} == {owner_a}
    found = runs(engine)
    assert_never_twice_at_once(found)
    per = {n: sum(1 for r in found if r[0] == n) for n in NAMES}
    assert all(3 <= n <= 9 for n in per.values()), per
    assert {r[3] for r in found} <= {"succeeded", "running"}

    a.send_signal(signal.SIGKILL)
    a.wait(10)
    killed = datetime.now(UTC)
    wait_for(
        lambda: (
            {o for o, _ in leases(engine).values()} - {owner_a} != set()
            and owner_a not in {o for o, _ in leases(engine).values()}
        ),
        10,
        "B to take every lease over",
    )
    taken = leases(engine)
    assert {t for _, t in taken.values()} == {2}  # a takeover is a new token

    def b_ran_all() -> bool:
        done = [r for r in runs(engine) if r[3] == "succeeded" and r[1] > killed]
        return {r[0] for r in done} == set(NAMES)

    wait_for(b_ran_all, 10, "B to run every connector")
    assert_never_twice_at_once(runs(engine))
    # the dead daemon's token (1) can no longer move a cursor
    now = datetime.now(UTC)
    with pytest.raises(LostLeaseError), session_scope(engine) as session:
        save_cursor(session, connector="one", ts=now, record_id="z", now=now, fence=1)
    assert b.poll() is None
    b.send_signal(signal.SIGTERM)
    assert b.wait(30) == 0
    assert leases(engine)["one"][1] == 2
    with engine.connect() as conn:
        total, distinct = conn.execute(
            sa.text("select count(*), count(distinct (origin, lead_id)) from lead")
        ).one()
    assert total == distinct == 60
    engine.dispose()
