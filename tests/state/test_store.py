from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

from state.db import session_scope
from state.migrate import current_revision, head_revision, upgrade
from state.reads import iter_leads, lead_counts
from state.store import (
    mark_seen,
    tombstone_leads,
    tombstone_unseen,
    unseen_count,
    upsert_leads,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def lead(lead_id, **fields):
    base = {
        "lead_id": lead_id,
        "email": f"{lead_id}@example.com",
        "tags": [],
        "custom_fields": {},
    }
    base.update(fields)
    return base


def test_upsert_counts_and_timestamps(db):
    with session_scope(db) as s:
        r = upsert_leads(s, origin="csv", leads=[lead("1"), lead("2")], now=T0)
    assert (r.created, r.updated, r.unchanged) == (2, 0, 0)
    assert r.actions["1"][1].startswith("lead_")
    t1 = T0 + timedelta(hours=1)
    with session_scope(db) as s:
        r = upsert_leads(
            s, origin="csv", leads=[lead("1"), lead("2", company="Acme")], now=t1
        )
    assert (r.created, r.updated, r.unchanged) == (0, 1, 1)
    rows = {x["lead_id"]: x for x in iter_leads(db)}
    assert rows["1"]["updated_at"] == T0  # unchanged content keeps updated_at
    assert rows["2"]["updated_at"] == t1
    assert rows["2"]["created_at"] == T0
    assert rows["2"]["company"] == "Acme"
    assert rows["1"]["id"] != rows["2"]["id"]


def test_same_lead_twice_in_one_batch_last_wins(db):
    with session_scope(db) as s:
        r = upsert_leads(
            s, origin="csv", leads=[lead("1", name="a"), lead("1", name="b")], now=T0
        )
    assert r.created == 1
    assert [x["name"] for x in iter_leads(db)] == ["b"]


def test_origin_scopes_lead_id(db):
    with session_scope(db) as s:
        upsert_leads(s, origin="a", leads=[lead("1")], now=T0)
        upsert_leads(s, origin="b", leads=[lead("1")], now=T0)
    assert lead_counts_live(db) == {"a": 1, "b": 1}


def lead_counts_live(db):
    with session_scope(db) as s:
        return {k: v[0] for k, v in lead_counts(s).items()}


def test_tombstone_and_resurrect(db):
    with session_scope(db) as s:
        upsert_leads(s, origin="csv", leads=[lead("1"), lead("2")], now=T0)
    t1 = T0 + timedelta(minutes=5)
    with session_scope(db) as s:
        r = tombstone_leads(s, origin="csv", lead_ids=["1", "1", "9"], now=t1)
    assert (r.deleted, r.already_deleted, r.not_found) == (["1"], [], ["9"])
    with session_scope(db) as s:
        r = tombstone_leads(s, origin="csv", lead_ids=["1"], now=t1)
    assert r.already_deleted == ["1"]
    dead = next(x for x in iter_leads(db, include_deleted=True) if x["lead_id"] == "1")
    assert dead["deleted_at"] == t1 and dead["updated_at"] == t1
    assert [x["lead_id"] for x in iter_leads(db)] == ["2"]
    t2 = t1 + timedelta(minutes=5)
    with session_scope(db) as s:
        r = upsert_leads(s, origin="csv", leads=[lead("1")], now=t2)
    assert r.updated == 1  # the same content comes back: undeleted
    back = next(x for x in iter_leads(db) if x["lead_id"] == "1")
    assert back["deleted_at"] is None and back["updated_at"] == t2


def test_snapshot_unseen(db):
    with session_scope(db) as s:
        upsert_leads(s, origin="csv", leads=[lead(str(i)) for i in range(10)], now=T0)
        upsert_leads(s, origin="other", leads=[lead("x")], now=T0)
        mark_seen(s, run_id="r1", lead_ids=[str(i) for i in range(7)])
        assert unseen_count(s, origin="csv", run_id="r1") == (3, 10)
        assert tombstone_unseen(s, origin="csv", run_id="r1", now=T0) == 3
    assert sorted(x["lead_id"] for x in iter_leads(db)) == [
        "0",
        "1",
        "2",
        "3",
        "4",
        "5",
        "6",
        "x",
    ]


def _not_search(obj, name, type_, reflected, compare_to):
    # the full-text search objects of migration 0002 live outside the models on purpose
    return not (name or "").startswith(("lead_search", "ix_lead_search"))


def test_migrations_match_models(db):
    assert current_revision(db) == head_revision()
    with db.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": _not_search})
        diff = compare_metadata(context, SQLModel.metadata)
    assert diff == []


def test_upgrade_is_idempotent_and_keeps_data(db):
    with session_scope(db) as s:
        upsert_leads(s, origin="csv", leads=[lead("1")], now=T0)
    before, after = upgrade(db)
    assert before == after == head_revision()
    with db.connect() as conn:
        assert conn.execute(sa.text("select count(*) from lead")).scalar_one() == 1


def test_new_lead_ids_are_ulids_sorted_by_time():
    import time

    from ulid import ULID

    from state.store import new_lead_ids

    first = new_lead_ids(500)
    time.sleep(0.002)
    later = new_lead_ids(1)[0]
    assert len(set(first)) == 500
    for lead_id in [*first, later]:
        assert lead_id.startswith("lead_") and len(lead_id) == 31
        ULID.from_str(lead_id[5:])  # valid Crockford base32 ULID
    assert max(first)[:15] < later[:15]  # the time prefix orders them


def test_the_head_constant_is_alembics_head():
    from state.migrate import HEAD, script_head

    assert script_head() == HEAD


def test_a_batch_larger_than_one_statement_is_written_whole(db):
    # more rows than one multi-row statement holds, and a remainder
    leads = [lead(str(i)) for i in range(2_345)]
    with session_scope(db) as s:
        r = upsert_leads(s, origin="csv", leads=leads, now=T0)
    assert r.created == 2_345
    assert len(list(iter_leads(db))) == 2_345
