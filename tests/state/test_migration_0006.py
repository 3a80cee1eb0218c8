"""Migration 0006: the created_at index holds deleted_at, and lists walk it alone."""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import command

from state import migrate
from state.db import make_engine, session_scope
from state.leadquery import LeadFilter, _list_sql, _shape_and_params, list_leads
from state.migrate import upgrade
from state.store import upsert_leads

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _columns(engine) -> list[str]:
    indexes = sa.inspect(engine).get_indexes("lead")
    (index,) = [i for i in indexes if i["name"] == "ix_lead_created_at_id"]
    return list(index["column_names"])


def test_upgrade_rebuilds_the_index_and_keeps_every_lead(db_url):
    engine = make_engine(db_url)
    try:
        upgrade(engine, "0005")
        assert _columns(engine) == ["created_at", "id"]
        leads = [{"lead_id": str(n), "email": f"p{n}@example.com"} for n in range(9)]
        with session_scope(engine) as s:
            upsert_leads(s, origin="crm", leads=leads, now=T0)
            s.execute(
                sa.text("UPDATE lead SET deleted_at = updated_at WHERE lead_id = '4'")
            )
        upgrade(engine)
        assert _columns(engine) == ["created_at", "id", "deleted_at"]
        page = list_leads(engine, filters=LeadFilter(), limit=5, page=2)
        assert page.total == 8
        assert page.data.count(b'"lead_id":') == 3
        cfg = migrate._config()
        with engine.begin() as conn:  # and back
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0005")
        assert _columns(engine) == ["created_at", "id"]
    finally:
        engine.dispose()


def test_a_live_list_skips_its_offset_in_the_index(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    upgrade(engine)
    shape, params = _shape_and_params(LeadFilter(), "sqlite", "created_at", "desc")
    _, page = _list_sql(shape)
    skip = page.replace(page[len("SELECT ") : page.index(" FROM lead")], "lead.id")
    with engine.connect() as conn:
        plan = conn.exec_driver_sql(
            f"EXPLAIN QUERY PLAN {skip}", {**params, "limit": 5, "offset": 5}
        ).all()
    engine.dispose()
    assert [row[-1] for row in plan] == [
        "SCAN lead USING COVERING INDEX ix_lead_created_at_id"
    ]
