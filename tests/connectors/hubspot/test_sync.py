"""HubSpot through the engine: first sync, incremental, deletes, merges (cassettes)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from connectors.hubspot.records import to_ms
from engine import runner
from engine.destinations import StoreDestination
from engine.mapping import compile_mapping
from engine.sync import Syncer
from service.settings import load_settings
from state.db import make_engine, session_scope
from state.migrate import upgrade
from state.reads import iter_leads
from state.syncstate import get_cursor
from tests.connectors.hubspot.support import NOW, T0, TOKEN

MAPPINGS = Path(__file__).parents[3] / "engine" / "mappings"


def default_mapping(kind):
    return compile_mapping(
        yaml.safe_load((MAPPINGS / f"hubspot-{kind}.yaml").read_text())
    )


@pytest.fixture(name="db")
def db_fixture(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


class Clock:
    def __init__(self, env):
        self.env = env

    def __call__(self):
        return self.env.now


def leads(db, include_deleted=False):
    return {x["lead_id"]: x for x in iter_leads(db, include_deleted=include_deleted)}


@pytest.mark.parametrize("kind", ["contacts", "companies", "deals"])
def test_default_mappings_compile(kind):
    mapping = default_mapping(kind)
    assert mapping.lead_id_path == "id"
    modified = "lastmodifieddate" if kind == "contacts" else "hs_lastmodifieddate"
    assert mapping.updated_at_path == f"properties.{modified}"


def test_settings_pick_the_object_mapping(tmp_path):
    path = tmp_path / "leadsync.yaml"
    path.write_text(
        "connectors:\n"
        "  - {name: hs, type: hubspot, object: deals, auth: {access_token: pat-na1-1}}\n"
    )
    settings = load_settings(path)
    spec, label, _ = settings.mapping_source(settings.connectors[0])
    assert label == "engine/mappings/hubspot-deals.yaml"
    assert spec["updated_at"] == "properties.hs_lastmodifieddate"


def test_first_sync_then_incremental_with_deletes_and_merges(hubspot, db):
    fake = hubspot.fake
    base = to_ms(T0)
    for oid in range(1001, 1011):
        fake.put(
            "contacts",
            oid,
            base + oid,
            email=f" C{oid}@Example.com",
            firstname="Test",
            lastname=f"Testperson{oid}",
            phone="(617) 555-0101",
            hs_lead_status="OPEN",
            hubspotscore="12",
            jobtitle="Buyer",
        )
    mapping = default_mapping("contacts")
    source = hubspot.source(hints=mapping.hints(), batch_size=4)
    cfg = source.config
    syncer = Syncer(
        db=db,
        cfg=cfg,
        source=source,
        mapping=mapping,
        destination=StoreDestination(),
        clock=Clock(hubspot),
    )
    report = runner.sync(syncer)
    assert report.ok, report.error
    assert report.counts["created"] == 10
    # First sync: 1 list page, then the archive check; no search at all.
    assert source.client.requests == {"list": 1, "archived": 1}
    stored = leads(db)
    assert stored["1001"]["email"] == "c1001@example.com"
    assert stored["1001"]["phone"] == "+16175550101"
    assert (stored["1001"]["status"], stored["1001"]["score"]) == ("contacted", 12)
    assert stored["1001"]["name"] == "Test Testperson1001"
    with session_scope(db) as session:
        row = get_cursor(session, "hs")
        assert (row.ts.replace(tzinfo=None), row.record_id) == (
            (NOW - timedelta(minutes=2)).replace(tzinfo=None),
            "",
        )
    # Then: one contact edited, one archived, one merged into another.
    later = to_ms(NOW + timedelta(minutes=5))
    fake.put("contacts", 1002, later, jobtitle="Chief Buyer")
    fake.archive("contacts", 1003, later)
    fake.merge("contacts", 1005, 1006, later)
    hubspot.now = NOW + timedelta(minutes=30)
    report = runner.sync(syncer)
    assert report.ok, report.error
    assert source.client.requests == {"list": 1, "archived": 2, "search": 1}
    # 1005 changed only in hs_merged_object_ids, which the lead does not show.
    assert (report.counts["updated"], report.counts["unchanged"]) == (1, 1)
    assert report.counts["deleted"] == 2
    stored = leads(db)
    assert stored["1002"]["title"] == "Chief Buyer"
    assert set(stored) == {str(i) for i in range(1001, 1011)} - {"1003", "1006"}
    gone = leads(db, include_deleted=True)
    assert gone["1003"]["deleted_at"] is not None
    assert gone["1006"]["deleted_at"] is not None
    # A run with no change: exactly one search plus the archive check.
    hubspot.now = NOW + timedelta(hours=1)
    report = runner.sync(syncer)
    assert report.ok, report.error
    assert source.client.requests == {"list": 1, "archived": 3, "search": 2}
    assert (report.counts["updated"], report.counts["deleted"]) == (0, 0)
    assert TOKEN not in str(leads(db))
