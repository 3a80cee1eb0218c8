"""The contract every connector keeps, run over each one through a ``case`` fixture.

Checks what the engine relies on: ids and aware timestamps on every record, cursors
that never go back and cover their pages, resuming from any committed cursor loses
nothing, re-reading from the last cursor finds nothing new, failures surface as
``SourceError`` subclasses, and the class is registered with its config model.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest

from connectors import CONFIG_MODELS, source_class
from connectors.base import Cursor, MappingHints, Source
from connectors.csvfile import CsvConfig, CsvSource
from connectors.errors import SourceError
from tests.connectors.hubspot.support import T0, cassette_name, contacts, hubspot_env
from tests.fakes_hubspot import Scripted, error


@dataclass
class Case:
    make: Callable[[], Source]  # a fresh source over the test data
    since: Cursor  # before every record of the data
    ids: set[str]  # every id read_changes(since) must return
    broken: Callable[[], Source]  # a source whose reads fail


@pytest.fixture(name="csv_case")
def csv_case_fixture(tmp_path) -> Case:
    path = tmp_path / "leads.csv"
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "email", "updated_at"])
        for i in range(30):
            # Out of order, and several rows per timestamp.
            ts = T0 + timedelta(minutes=(i * 7) % 10)
            writer.writerow([f"L{i:03d}", f"l{i}@example.com", ts.isoformat()])
    hints = MappingHints("id", "updated_at", frozenset({"email"}))

    def make(file=path):
        cfg = CsvConfig(
            name="csv", path=str(file), updated_at_column="updated_at", batch_size=7
        )
        return CsvSource.from_config(cfg, hints)

    return Case(
        make=make,
        since=Cursor(T0 - timedelta(days=1), ""),
        ids={f"L{i:03d}" for i in range(30)},
        broken=lambda: make(tmp_path / "missing.csv"),
    )


@pytest.fixture(name="hubspot_case")
def hubspot_case_fixture(request) -> Iterator[Case]:
    with hubspot_env(cassette_name(request, "contract")) as env:
        made = contacts(env.fake, 450, spread_ms=86_400_000)

        def broken():
            env.fake.scripted.append(
                Scripted("POST", "/search", 401, error("INVALID_AUTHENTICATION", "no"))
            )
            return env.source(name="broken")

        yield Case(
            make=lambda: env.source(batch_size=100),
            since=Cursor(T0, ""),
            ids={str(i) for i in made},
            broken=broken,
        )


@pytest.fixture(name="case", params=["csv", "hubspot"])
def case_fixture(request) -> Case:
    return request.getfixturevalue(f"{request.param}_case")


def ids_of(pages):
    return [r.id for p in pages for r in p.records]


def test_records_have_ids_and_aware_utc_timestamps(case):
    with case.make() as source:
        pages = list(source.read_changes(case.since))
    records = [r for p in pages for r in p.records]
    assert {r.id for r in records} == case.ids
    assert len(records) == len(case.ids)  # each once
    for record in records:
        assert isinstance(record.id, str) and record.id
        assert isinstance(record.updated_at, datetime)
        assert record.updated_at.utcoffset() == timedelta(0)
        assert isinstance(record.fields, dict)


def test_cursors_never_go_back_and_cover_their_pages(case):
    with case.make() as source:
        pages = list(source.read_changes(case.since))
    assert pages[-1].next_cursor is not None
    latest = None
    seen: list[datetime] = []
    for page in pages:
        seen.extend(r.updated_at for r in page.records)
        if page.next_cursor is None:
            continue
        if latest is not None:
            assert page.next_cursor >= latest
        latest = page.next_cursor
        assert max(seen, default=latest.ts) <= latest.ts


def test_resuming_from_any_committed_cursor_loses_nothing(case):
    with case.make() as source:
        pages = list(source.read_changes(case.since))
    points = [i for i, p in enumerate(pages) if p.next_cursor is not None]
    # The first committed cursor before the end (or the end, when only it commits).
    at = points[0]
    before = set(ids_of(pages[: at + 1]))
    with case.make() as source:
        after = ids_of(source.read_changes(pages[at].next_cursor))
    assert before | set(after) == case.ids


def test_rereading_from_the_last_cursor_finds_nothing_new(case):
    with case.make() as source:
        pages = list(source.read_changes(case.since))
        again = list(source.read_changes(pages[-1].next_cursor))
    assert ids_of(again) == []


def test_read_failures_are_source_errors(case):
    with case.broken() as source, pytest.raises(SourceError):
        list(source.read_changes(case.since))


def test_registered_with_its_config_model(case):
    with case.make() as source:
        assert isinstance(source, Source)
        assert source_class(source.kind) is type(source)
        assert CONFIG_MODELS[source.kind] is source.config_model
        assert source.name
