"""A first load builds the email and phone indexes at its end (state/bulkindex.py)."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from connectors.errors import RetriableSourceError
from engine import runner
from service.api.app import create_app
from state import bulkindex
from state.db import session_scope
from tests.engine.test_mapping_pool import content, fill, make
from tests.fakes import FakeSource


def deferred(db) -> list[str]:
    """What a first load drops: email and phone, and PostgreSQL's search index."""
    extra = ["ix_lead_search"] if db.dialect.name == "postgresql" else []
    return ["ix_lead_email", "ix_lead_phone", *extra]


@pytest.fixture(name="drops")
def drops_fixture(db, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Each drop, as the indexes the store lacked just after it (a small threshold)."""
    monkeypatch.setattr(bulkindex, "DEFER_AFTER", 100)
    seen: list[list[str]] = []
    real = bulkindex.drop

    def drop(session):
        real(session)
        present = {
            i["name"] for i in sa.inspect(session.connection()).get_indexes("lead")
        }
        seen.append([name for name in deferred(db) if name not in present])
        if db.dialect.name == "sqlite":  # (PostgreSQL's DDL is transactional anyway)
            # the drops commit with the page, all at once: nothing shows outside yet
            assert bulkindex.missing(db) == []

    monkeypatch.setattr(bulkindex, "drop", drop)
    return seen


def drop_now(db) -> None:
    with session_scope(db) as session:
        bulkindex.drop(session)


def test_a_large_first_load_drops_the_indexes_and_builds_them_at_the_end(db, drops):
    src = FakeSource(page_size=50, snapshot=True)
    fill(src, 1_000)
    report = runner.sync(make(db, src, workers=0))
    assert report.ok and report.counts["created"] == 1_000
    assert drops == [deferred(db)]  # dropped once, in the pass
    assert bulkindex.missing(db) == []
    with db.connect() as conn:
        found = conn.execute(
            sa.text("SELECT lead_id FROM lead WHERE email = 'u737@example.com'")
        ).scalar_one()
    assert found == "L0737"
    # the store is not empty any more: the next passes keep the indexes
    src.put("L0001", src.records["L0001"][0], email="new@example.com", phone="")
    assert runner.sync(make(db, src, workers=0)).counts["updated"] == 1
    assert drops == [deferred(db)]


def test_a_small_first_load_keeps_its_indexes(db, drops):
    src = FakeSource(page_size=20)
    fill(src, 90)
    assert runner.sync(make(db, src, workers=0)).ok
    assert drops == []
    assert bulkindex.missing(db) == []


def test_a_first_load_that_fails_still_builds_them(db, drops):
    src = FakeSource(page_size=50)
    fill(src, 1_000)
    src.fail_after_pages = (6, RetriableSourceError("connection reset"))
    report = runner.sync(make(db, src, workers=0))
    assert not report.ok
    assert drops == [deferred(db)]
    assert bulkindex.missing(db) == []
    assert len(content(db, "fake")) == 300  # the pages read before the error


def test_indexes_left_missing_are_built_by_the_next_pass(db):
    src = FakeSource(page_size=50)
    fill(src, 200)
    assert runner.sync(make(db, src, workers=0)).ok
    drop_now(db)  # as a first load killed after its drop leaves the store
    assert bulkindex.missing(db) == deferred(db)
    assert runner.sync(make(db, src, workers=0)).ok
    assert bulkindex.missing(db) == []


def test_indexes_left_missing_are_built_when_the_api_starts(db):
    from tests.service.api.conftest import TestClient, make_settings

    drop_now(db)
    with TestClient(create_app(make_settings(), db=db)):
        assert bulkindex.missing(db) == []


def test_no_rebuild_while_a_pass_of_this_process_holds_them_dropped(db):
    drop_now(db)
    entered, release = threading.Event(), threading.Event()

    def load() -> None:
        with bulkindex.deferring():
            entered.set()
            release.wait(10)

    holder = threading.Thread(target=load)
    holder.start()
    try:
        assert entered.wait(10)
        assert bulkindex.restore(db) == []
        assert bulkindex.missing(db) == deferred(db)
    finally:
        release.set()
        holder.join()
    assert bulkindex.restore(db) == deferred(db)
    assert bulkindex.restore(db) == []


def test_a_first_snapshot_load_records_no_seen_ids_and_later_ones_still_delete(
    db, monkeypatch
):
    import engine.sync as sync_module

    marked: list[int] = []
    real = sync_module.mark_seen

    def counting(session, *, run_id, lead_ids):
        marked.append(len(lead_ids))
        real(session, run_id=run_id, lead_ids=lead_ids)

    monkeypatch.setattr(sync_module, "mark_seen", counting)
    src = FakeSource(page_size=50, snapshot=True)
    fill(src, 200)
    first = runner.sync(make(db, src, workers=0))
    assert first.ok and first.counts["created"] == 200
    assert marked == []  # nothing was live before: nothing can be missing
    del src.records["L0007"]
    second = runner.sync(make(db, src, workers=0))
    assert second.counts["deleted"] == 1 and sum(marked) == 199
    assert "L0007" not in content(db, "fake")


def test_rebuilt_indexes_are_the_ones_the_migrations_made(db):
    def definitions():
        with db.connect() as conn:
            if db.dialect.name == "postgresql":
                rows = conn.execute(
                    sa.text(
                        "SELECT indexname, indexdef FROM pg_indexes"
                        " WHERE tablename = 'lead'"
                    )
                )
            else:
                rows = conn.execute(
                    sa.text(
                        "SELECT name, sql FROM sqlite_master"
                        " WHERE type = 'index' AND tbl_name = 'lead'"
                    )
                )
            return dict(rows.all())

    before = definitions()
    drop_now(db)
    assert bulkindex.restore(db) == deferred(db)
    assert definitions() == before


def test_a_pass_that_cannot_build_missing_indexes_still_syncs(db, monkeypatch):
    src = FakeSource(page_size=50, snapshot=True)
    fill(src, 100)
    assert runner.sync(make(db, src, workers=0)).ok
    drop_now(db)

    def locked(engine):
        raise sa.exc.OperationalError(
            "CREATE INDEX", {}, Exception("database is locked")
        )

    monkeypatch.setattr(bulkindex, "restore", locked)
    src.put("L0001", src.records["L0001"][0], email="new@example.com", phone="")
    report = runner.sync(make(db, src, workers=0))
    assert report.ok and report.counts["updated"] == 1
    assert bulkindex.missing(db) == deferred(db)  # left for a later pass
