"""A tombstoned lead's record never looks unchanged: its payload hash is cleared."""

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from engine.rawhash import raw_hash, raw_hashes, row_hashes
from state.db import make_engine, session_scope
from state.leadwrite import delete_lead
from state.migrate import upgrade
from state.store import (
    changed_raw_ids,
    mark_seen,
    tombstone_leads,
    tombstone_unseen,
    upsert_leads,
    upsert_payloads,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def seed(session, origin="csv", ids=("1", "2", "3")):
    leads = [
        {"lead_id": i, "email": f"{i}@example.com", "tags": [], "custom_fields": {}}
        for i in ids
    ]
    result = upsert_leads(session, origin=origin, leads=leads, now=T0)
    upsert_payloads(
        session,
        origin=origin,
        payloads=[(i, {"id": i}, f"h{i}") for i in ids],
        now=T0,
    )
    return {i: result.actions[i][1] for i in ids}


def changed(db, hashes=None, origin="csv"):
    hashes = {"1": "h1", "2": "h2", "3": "h3"} if hashes is None else hashes
    with session_scope(db) as s:
        return changed_raw_ids(s, origin=origin, hashes=hashes)


def test_changed_ids_are_those_whose_stored_payload_hash_differs(db):
    with session_scope(db) as s:
        seed(s)
    assert changed(db) == set()
    assert changed(db, {"1": "h1", "2": "other", "9": "h9"}) == {"2", "9"}
    assert changed(db, {}) == set()
    assert changed(db, {"1": "h1"}, origin="elsewhere") == {"1"}


def test_tombstone_by_lead_id_forgets_the_hash(db):
    with session_scope(db) as s:
        seed(s)
        seed(s, origin="other")
        tombstone_leads(s, origin="csv", lead_ids=["2"], now=T0 + timedelta(hours=1))
    assert changed(db) == {"2"}
    # the same lead_id of another origin is untouched
    assert changed(db, {"2": "h2"}, origin="other") == set()


def test_tombstone_of_unseen_leads_forgets_their_hashes(db):
    with session_scope(db) as s:
        seed(s)
        mark_seen(s, run_id="run_1", lead_ids=["1"])
        assert tombstone_unseen(s, origin="csv", run_id="run_1", now=T0) == 2
    assert changed(db) == {"2", "3"}


def test_api_delete_forgets_the_hash(db):
    with session_scope(db) as s:
        store_ids = seed(s)
        delete_lead(s, store_ids["3"], now=T0 + timedelta(hours=1))
    assert changed(db) == {"3"}


def test_migration_0004_forgets_the_hashes_of_existing_tombstones(db_url):
    engine = make_engine(db_url)
    try:
        upgrade(engine, "0003")
        with session_scope(engine) as s:
            seed(s)
            s.execute(
                sa.text("UPDATE lead SET deleted_at = updated_at WHERE lead_id = '2'")
            )
        upgrade(engine)
        assert changed(engine) == {"2"}
    finally:
        engine.dispose()


ROW = {"id": "L1", "email": "a@example.com", "company": "Acme"}


def test_raw_hash_of_a_flat_record_depends_on_keys_values_and_mapping():
    base = raw_hash("fp", ROW)
    assert base == raw_hash("fp", dict(ROW))
    assert base != raw_hash("other", ROW)
    assert base != raw_hash("fp", {**ROW, "company": "Globex"})
    assert base != raw_hash(
        "fp", {"id": "L1", "mail": "a@example.com", "company": "Acme"}
    )


@pytest.mark.parametrize(
    ("one", "two"),
    [
        # a value holding the separator must not make two records look the same
        ({"a": "x\x1f", "b": "y"}, {"a": "x", "b": "\x1fy"}),
        # a nested record is hashed too, and its values count
        ({"a": {"b": 1}}, {"a": {"b": 2}}),
        ({"a": None}, {"a": ""}),
        # what JSON cannot hold falls back to repr, and still counts
        ({"a": 2**70}, {"a": 2**70 + 1}),
    ],
)
def test_raw_hash_tells_apart_records_a_join_would_confuse(one, two):
    assert raw_hash("fp", one) != raw_hash("fp", two)


def test_rows_hash_as_their_dicts_do_separator_included():
    keys = ("id", "email", "company")
    rows = [["L1", "a@example.com", "Acme"], ["L2", "x\x1f", ""], ["", "", ""]]
    dicts = [dict(zip(keys, row, strict=True)) for row in rows]
    assert row_hashes("fp", keys, rows) == raw_hashes("fp", dicts)
    assert row_hashes("fp", keys, rows) != row_hashes("other", keys, rows)
