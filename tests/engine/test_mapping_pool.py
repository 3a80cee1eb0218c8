"""Mapping in worker processes gives exactly what mapping in the run's thread gives."""

from concurrent.futures import Future
from datetime import UTC, datetime, timedelta

import pytest

from engine import runner
from engine.destinations import StoreDestination
from engine.fields import LeadFieldSpec
from engine.mapping import compile_mapping
from engine.mapping_pool import MappingPool, map_records
from engine.sync import Syncer, _Flow
from state.db import session_scope
from state.models import Failure
from state.reads import iter_leads
from state.store import prepare_leads
from tests.fakes import FakeConfig, FakeSource

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
SPEC = {
    "lead_id": "id",
    "updated_at": "updated",
    "fields": {
        "email": {"from": "email", "transform": ["strip", "lower", "email"]},
        "phone": {"from": "phone", "transform": [{"e164": {"region": "US"}}]},
        "company": "company",
        "custom.industry": "industry",
    },
    "require": ["email"],
}
FIELDS = [LeadFieldSpec(name="industry", type="string")]


def records(count, bad=()):
    out = []
    for i in range(count):
        email = "not an email" if i in bad else f" U{i}@Example.com"
        fields = {
            "id": f"L{i:04d}",
            "updated": (T0 + timedelta(seconds=i)).isoformat(),
            "email": email,
            "phone": f"(415) 555-{i % 10000:04d}",
            "company": "Acme",
            "industry": "software",
        }
        out.append((fields, f"hash{i}"))
    return out


def test_map_records_reports_failures_by_index_and_prepares_the_rest():
    mapping = compile_mapping(SPEC, lead_fields=FIELDS)
    page = map_records(mapping, records(5, bad={1, 3}), prepare=prepare_leads)
    assert page.mapped == [0, 2, 4]
    assert [(i, code) for i, code, _ in page.failures] == [
        (1, "transform"),
        (3, "transform"),
    ]
    assert page.leads is None
    assert page.prepared is not None
    assert page.prepared.lead_ids == ["L0000", "L0002", "L0004"]
    assert [p[0] for p in page.payloads] == ["L0000", "L0002", "L0004"]
    assert [p[2] for p in page.payloads] == ["hash0", "hash2", "hash4"]
    unprepared = map_records(mapping, records(2), prepare=None)
    assert unprepared.prepared is None
    assert [lead["email"] for lead in unprepared.leads or []] == [
        "u0@example.com",
        "u1@example.com",
    ]


def test_a_worker_process_maps_exactly_as_this_thread_does():
    mapping = compile_mapping(SPEC, lead_fields=FIELDS)
    batch = records(50, bad={7})
    here = map_records(mapping, batch, prepare=prepare_leads)
    pool = MappingPool(mapping, 1)
    try:
        there = pool.submit(batch).result(timeout=60)
        assert pool.ready
    finally:
        pool.close()
    assert there.mapped == here.mapped
    assert there.failures == here.failures
    assert there.payloads == here.payloads
    assert there.prepared == here.prepared


def make(db, source, workers):
    return Syncer(
        db=db,
        cfg=FakeConfig(name=source.name, map_workers=workers),
        source=source,
        mapping=compile_mapping(SPEC, lead_fields=FIELDS),
        destination=StoreDestination(),
        clock=lambda: T0 + timedelta(days=1),
    )


def fill(src, count, bad=()):
    for fields, _ in records(count, bad=bad):
        src.put(
            fields["id"],
            datetime.fromisoformat(fields["updated"]),
            **{k: v for k, v in fields.items() if k not in ("id", "updated")},
        )


def content(db, origin):
    return {
        lead["lead_id"]: {k: lead[k] for k in ("email", "phone", "custom_fields")}
        for lead in iter_leads(db)
        if lead["origin"] == origin
    }


def test_a_pass_through_worker_processes_stores_what_a_pass_in_thread_stores(
    db, monkeypatch
):
    monkeypatch.setattr(_Flow, "POOL_AFTER", 0)
    src = FakeSource(page_size=40, snapshot=True)
    fill(src, 400, bad={5, 250})
    report = runner.sync(make(db, src, workers=1))
    assert report.ok
    assert report.counts["created"] == 398
    assert report.counts["failed"] == 2
    with session_scope(db) as session:
        assert {f.item_key for f in session.query(Failure).all()} == {"L0005", "L0250"}
    pooled = content(db, "fake")
    assert len(pooled) == 398

    other = FakeSource("other", page_size=40)
    fill(other, 400, bad={5, 250})
    assert runner.sync(make(db, other, workers=0)).ok
    assert content(db, "other") == pooled
    # an unchanged second pass through the workers writes nothing
    again = runner.sync(make(db, src, workers=1))
    assert again.counts["unchanged"] == 398
    assert again.counts["created"] == again.counts["updated"] == 0


class _BrokenPool:
    ready = True

    def __init__(self):
        self.closed = False

    def submit(self, _records):
        future: Future = Future()
        future.set_exception(RuntimeError("worker died"))
        return future

    def close(self):
        self.closed = True


def test_a_dead_worker_costs_nothing_the_page_is_mapped_here(db, monkeypatch):
    monkeypatch.setattr(_Flow, "POOL_AFTER", 0)
    broken = _BrokenPool()
    monkeypatch.setattr("engine.sync.MappingPool", lambda mapping, workers: broken)
    src = FakeSource(page_size=10)
    fill(src, 30)
    syncer = make(db, src, workers=1)
    report = runner.sync(syncer)
    assert report.ok and report.counts["created"] == 30
    assert broken.closed
    assert syncer.map_workers == 0


@pytest.mark.parametrize("value", ["auto", 0, 3])
def test_map_workers_accepts_auto_or_a_count(value):
    assert FakeConfig(name="x", map_workers=value).map_workers == value


@pytest.mark.parametrize("value", [-1, 33, "many"])
def test_map_workers_rejects_anything_else(value):
    with pytest.raises(ValueError, match="map_workers"):
        FakeConfig(name="x", map_workers=value)


def test_a_writer_that_falls_behind_commits_the_pages_that_piled_up_together(
    db, monkeypatch
):
    import threading

    import engine.sync as sync_module

    groups: list[int] = []
    original = Syncer._write_group
    release = threading.Event()

    def slow(self, batches, run_id, cursor, seen_run, **kwargs):
        groups.append(len(batches))
        if len(groups) == 1:
            release.wait(10)  # the first write stalls until pages pile up
        return original(self, batches, run_id, cursor, seen_run, **kwargs)

    monkeypatch.setattr(Syncer, "_write_group", slow)
    real_take = sync_module._Flow._take_next

    def take(self):
        real_take(self)
        if len(self.group) >= 2:
            release.set()

    monkeypatch.setattr(sync_module._Flow, "_take_next", take)
    src = FakeSource(page_size=5)
    fill(src, 40)
    syncer = make(db, src, workers=0)
    report = runner.sync(syncer)
    assert report.ok and report.counts["created"] == 40
    assert max(groups) > 1 and max(groups) <= _Flow.GROUP
    assert sum(groups) == 8  # every page written once
    cursor = syncer.committed_cursor()
    assert cursor is not None and cursor.id == "L0039"


def test_pages_read_before_a_source_error_are_committed(db):
    from connectors.errors import RetriableSourceError

    src = FakeSource(page_size=5)
    fill(src, 40)
    src.fail_after_pages = (3, RetriableSourceError("connection reset"))
    syncer = make(db, src, workers=0)
    report = runner.sync(syncer)
    assert not report.ok
    assert len(content(db, "fake")) == 15
    cursor = syncer.committed_cursor()
    assert cursor is not None and cursor.id == "L0014"


def test_gc_tuning_freezes_what_exists_and_collects_the_young_less_often():
    import gc

    from engine import gcpolicy

    before = gc.get_threshold()
    try:
        gcpolicy.tune()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] >= 50_000
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_a_worker_does_not_import_the_programs_main_module_again(tmp_path):
    """Run from a script, the workers must not import it (a CLI would cost 30 MiB)."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    marker = tmp_path / "imported"
    script = tmp_path / "prog.py"
    script.write_text(
        "import os, sys\n"
        f"sys.path.insert(0, {str(root)!r})\n"
        "if __name__ != '__main__':\n"
        f"    open({str(marker)!r}, 'a').write(str(os.getpid()) + '\\n')\n"
        "from engine.mapping import compile_mapping\n"
        "from engine.mapping_pool import MappingPool\n"
        "if __name__ == '__main__':\n"
        "    pool = MappingPool(compile_mapping({'lead_id': 'id', 'fields': {}}), 1)\n"
        "    page = pool.submit([({'id': 'a'}, 'h')]).result(60)\n"
        "    pool.close()\n"
        "    assert page.prepared.lead_ids == ['a'], page\n"
    )
    subprocess.run([sys.executable, str(script)], check=True, timeout=120)
    assert not marker.exists()


def test_a_first_load_neither_hashes_nor_looks_up_what_cannot_be_stored_yet(db):
    src = FakeSource(page_size=10, snapshot=True)
    fill(src, 30)
    syncer = make(db, src, workers=0)
    calls = []
    real = syncer._changed

    def counting(session, *, origin, hashes):
        calls.append(len(hashes))
        return real(session, origin=origin, hashes=hashes)

    syncer._changed = counting
    assert runner.sync(syncer).counts["created"] == 30
    assert calls == []
    # the payload hashes stored on the way are those the next pass compares with
    again = runner.sync(syncer)
    assert calls == [10, 10, 10]
    assert again.counts["unchanged"] == 30 and again.counts["created"] == 0
