from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from connectors.errors import RetriableSourceError
from engine import runner
from engine.destinations import StoreDestination
from engine.mapping import compile_mapping
from engine.sync import Syncer
from state.db import session_scope
from state.models import Failure, Run
from state.reads import iter_leads
from state.syncstate import get_cursor
from tests.fakes import FakeConfig, FakeSource

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
SPEC = {
    "lead_id": "id",
    "updated_at": "updated",
    "fields": {
        "email": {"from": "email", "transform": ["strip", "lower", "email"]},
        "company": "company",
    },
    "require": ["email"],
}


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture(name="clock")
def clock_fixture():
    return Clock(T0 + timedelta(days=1))


def make(db, source, clock, spec=SPEC, **cfg):
    return Syncer(
        db=db,
        cfg=FakeConfig(name=source.name, **cfg),
        source=source,
        mapping=compile_mapping(spec),
        destination=StoreDestination(),
        clock=clock,
    )


def store(db, include_deleted=False):
    return {x["lead_id"]: x for x in iter_leads(db, include_deleted=include_deleted)}


def failures(db):
    with session_scope(db) as s:
        return {f.item_key: f for f in s.query(Failure).all()}


def test_first_sync_then_identical_sync_writes_nothing(db, clock):
    src = FakeSource(page_size=2)
    for i in range(5):
        src.put(
            str(i), T0 + timedelta(minutes=i), email=f"U{i}@Example.com", company="Acme"
        )
    report = runner.sync(make(db, src, clock))
    assert report.ok
    assert report.counts["created"] == 5 and report.counts["read"] == 5
    first = store(db)
    assert first["3"]["email"] == "u3@example.com"
    clock.now += timedelta(hours=1)
    report = runner.sync(make(db, src, clock, lookback=timedelta(days=30)))
    assert report.counts["read"] == 5  # the lookback re-reads everything...
    assert (report.counts["created"], report.counts["updated"]) == (0, 0)
    assert report.counts["unchanged"] == 5  # ...and writes nothing
    assert store(db) == first  # not even updated_at moved


def test_modified_record_is_updated(db, clock):
    src = FakeSource()
    src.put("1", T0, email="a@x.com", company="A")
    src.put("2", T0, email="b@x.com", company="B")
    runner.sync(make(db, src, clock))
    src.put("2", T0 + timedelta(minutes=1), email="b@x.com", company="B2")
    clock.now += timedelta(minutes=5)
    report = runner.sync(make(db, src, clock))
    assert (report.counts["read"], report.counts["updated"]) == (1, 1)
    leads = store(db)
    assert leads["2"]["company"] == "B2" and leads["2"]["updated_at"] == clock.now
    assert leads["1"]["company"] == "A"


def test_same_timestamp_across_pages_and_runs(db, clock):
    src = FakeSource(page_size=7)
    for i in range(1000):
        src.put(f"{i:04d}", T0, email=f"u{i}@x.com")
    assert runner.sync(make(db, src, clock)).counts["created"] == 1000
    with session_scope(db) as s:
        cur = get_cursor(s, "fake")
        assert (cur.ts, cur.record_id) == (T0, "0999")
    # a record with the very same stamp that the source indexes late is still read
    src.put("1000", T0, email="late@x.com")
    src.put("0500", T0 + timedelta(seconds=1), email="changed@x.com")
    report = runner.sync(make(db, src, clock))
    assert (report.counts["created"], report.counts["updated"]) == (1, 1)
    assert len(store(db)) == 1001
    assert store(db)["0500"]["email"] == "changed@x.com"


def test_crash_between_batches_resumes_without_loss_or_duplicates(db, clock):
    src = FakeSource(page_size=10)
    for i in range(100):
        src.put(f"{i:03d}", T0 + timedelta(seconds=i // 3), email=f"u{i}@x.com")
    src.fail_after_pages = (4, RetriableSourceError("connection reset"))
    report = runner.sync(make(db, src, clock))
    assert report.outcome == "failed" and "connection reset" in report.error
    assert len(store(db)) == 40
    with session_scope(db) as s:
        assert get_cursor(s, "fake").record_id == "039"
    src.fail_after_pages = None
    report = runner.sync(make(db, src, clock))
    assert report.ok and report.counts["created"] == 60
    leads = store(db)
    assert sorted(leads) == [f"{i:03d}" for i in range(100)]
    with db.connect() as conn:
        assert conn.execute(sa.text("select count(*) from lead")).scalar_one() == 100


def test_cursor_is_capped_at_run_start(db, clock):
    src = FakeSource()
    src.put("future", clock.now + timedelta(hours=5), email="f@x.com")
    runner.sync(make(db, src, clock))
    with session_scope(db) as s:
        assert get_cursor(s, "fake").ts == clock.now


def test_lag_leaves_recent_changes_for_the_next_run(db, clock):
    src = FakeSource()
    src.put("old", clock.now - timedelta(minutes=10), email="o@x.com")
    src.put("new", clock.now - timedelta(seconds=30), email="n@x.com")
    runner.sync(make(db, src, clock, lag=timedelta(minutes=2)))
    assert list(store(db)) == ["old"]
    clock.now += timedelta(minutes=5)
    runner.sync(make(db, src, clock, lag=timedelta(minutes=2)))
    assert sorted(store(db)) == ["new", "old"]


def test_bad_record_is_logged_retried_with_backoff_and_resolved(db, clock):
    src = FakeSource()
    src.put("1", T0, email="good@x.com")
    src.put("2", T0, email="not-an-email")
    src.put("3", T0, email="")
    report = runner.sync(make(db, src, clock))
    assert report.ok and report.counts["created"] == 1 and report.counts["failed"] == 2
    fails = failures(db)
    assert fails["2"].code == "transform" and "email" in fails["2"].message
    assert fails["3"].code == "required" and fails["3"].raw["id"] == "3"
    assert fails["2"].status == "pending" and fails["2"].next_retry_at > clock.now
    # not due yet: the next run does not retry
    clock.now += timedelta(seconds=10)
    assert runner.sync(make(db, src, clock)).counts["retried"] == 0
    # fixed at the source (without a newer timestamp); due: fetched again and resolved
    src.records["2"][1]["email"] = "fixed@x.com"
    clock.now += timedelta(hours=1)
    report = runner.sync(make(db, src, clock))
    assert report.counts["retried"] == 2 and report.counts["resolved"] == 1
    assert src.fetched[-1] == ["2", "3"] or sorted(src.fetched[-1]) == ["2", "3"]
    fails = failures(db)
    assert fails["2"].status == "resolved" and fails["3"].attempts == 2
    assert store(db)["2"]["email"] == "fixed@x.com"


def test_failure_goes_dead_after_max_attempts(db, clock):
    src = FakeSource()
    src.put("1", T0, email="bad")
    for _ in range(3):
        runner.sync(make(db, src, clock, retry={"max_attempts": 3}))
        clock.now += timedelta(days=1)
    assert (failures(db)["1"].status, failures(db)["1"].attempts) == ("dead", 3)


def test_snapshot_tombstones_missing_and_guards_mass_delete(db, clock):
    src = FakeSource(snapshot=True)
    for i in range(10):
        src.put(str(i), T0, email=f"u{i}@x.com")
    runner.sync(make(db, src, clock))
    del src.records["0"]
    report = runner.sync(make(db, src, clock))
    assert report.counts["deleted"] == 1
    assert store(db, include_deleted=True)["0"]["deleted_at"] == clock.now
    for i in range(1, 8):
        del src.records[str(i)]
    report = runner.sync(make(db, src, clock))
    assert report.outcome == "failed" and "refusing to delete 7 of 9" in report.error
    assert len(store(db)) == 9
    report = runner.sync(make(db, src, clock), allow_mass_delete=True)
    assert report.ok and report.counts["deleted"] == 7
    assert sorted(store(db)) == ["8", "9"]


def test_source_deletions_are_tombstoned(db, clock):
    src = FakeSource()
    src.put("1", T0, email="a@x.com")
    src.put("2", T0, email="b@x.com")
    runner.sync(make(db, src, clock))
    src.deleted = ["2", "unknown"]
    assert runner.sync(make(db, src, clock)).counts["deleted"] == 1
    assert list(store(db)) == ["1"]


def test_remap_applies_a_new_mapping_without_fetching(db, clock):
    src = FakeSource()
    src.put("1", T0, email="a@x.com", company="acme inc")
    runner.sync(make(db, src, clock))
    spec = {
        **SPEC,
        "fields": {
            **SPEC["fields"],
            "company": {"from": "company", "transform": ["title"]},
        },
    }
    served = src.pages_served
    report = runner.remap(make(db, src, clock, spec=spec))
    assert report.counts["updated"] == 1 and src.pages_served == served
    assert store(db)["1"]["company"] == "Acme Inc"
    # the next sync sees the new mapping's payload hash: nothing to redo
    assert (
        runner.sync(make(db, src, clock, spec=spec, lookback=timedelta(days=9))).counts[
            "unchanged"
        ]
        == 1
    )


def test_run_rows_record_counts(db, clock):
    src = FakeSource()
    src.put("1", T0, email="a@x.com")
    runner.sync(make(db, src, clock))
    with session_scope(db) as s:
        run = s.query(Run).one()
    assert (run.outcome, run.read, run.created, run.finished_at) == (
        "succeeded",
        1,
        1,
        clock.now,
    )


def test_the_id_sweep_runs_on_its_schedule_and_tombstones_what_the_source_lost(
    db, clock
):
    """A record gone from the source without a deletion event (past the archive
    window) is tombstoned by the next due sweep, not by the incremental runs."""
    src = FakeSource(page_size=4)
    for i in range(10):
        src.put(f"L{i}", T0 + timedelta(minutes=i), email=f"u{i}@example.com")

    def live():
        return {lead["lead_id"] for lead in iter_leads(db) if lead["origin"] == "fake"}

    def run(**kwargs):
        report = runner.sync(make(db, src, clock, sweep={"every": "1d"}), **kwargs)
        assert report.ok
        return report

    assert run().counts["created"] == 10  # never swept: the first run is a full pass
    del src.records["L3"]  # lost silently: no deletion event
    clock.now += timedelta(hours=1)
    assert run().counts["deleted"] == 0  # an incremental run cannot see it
    assert "L3" in live()
    clock.now += timedelta(days=1)
    swept = run()  # the sweep is due: a full list pass
    assert swept.counts["deleted"] == 1 and swept.counts["read"] == 9
    assert live() == {f"L{i}" for i in range(10)} - {"L3"}
    del src.records["L5"]
    clock.now += timedelta(hours=1)
    assert run(sweep=True).counts["deleted"] == 1  # asked for (sync --sweep)
    assert "L5" not in live()
