"""Incremental reads through the search endpoint (cassettes)."""

from __future__ import annotations

from datetime import timedelta

from connectors.base import Cursor, MappingHints
from connectors.hubspot.records import cursor_for, from_ms, to_ms
from tests.connectors.hubspot.support import NOW, T0, bodies, contacts
from tests.fakes_hubspot import Scripted

SINCE = Cursor(T0, "")
BOUND = NOW - timedelta(minutes=2)  # the default lag
DAY = 86_400_000


def read(source, since=SINCE):
    pages = list(source.read_changes(since))
    return pages, [r for p in pages for r in p.records]


def test_pages_by_after_with_documented_request_bodies(hubspot):
    made = contacts(hubspot.fake, 450, spread_ms=DAY)
    source = hubspot.source()
    pages, records = read(source)
    assert [r.id for r in records] == [
        str(i) for i in sorted(made, key=lambda i: (made[i], i))
    ]
    assert source.client.requests == {"search": 3}
    sent = bodies(hubspot)
    assert [b.get("after") for b in sent] == [None, "200", "400"]
    assert sent[0] == {
        "filterGroups": [
            {
                "filters": [
                    {
                        "propertyName": "lastmodifieddate",
                        "operator": "GTE",
                        "value": str(to_ms(T0)),
                    },
                    {
                        "propertyName": "lastmodifieddate",
                        "operator": "LT",
                        "value": str(to_ms(BOUND)),
                    },
                ]
            }
        ],
        "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
        "properties": [
            "email",
            "firstname",
            "hs_merged_object_ids",
            "hs_object_id",
            "lastmodifieddate",
        ],
        "limit": 200,
    }
    # Each page's cursor is its last record's; the last page's is the run's bound.
    for page in pages[:-1]:
        last = page.records[-1]
        assert page.next_cursor == cursor_for(last.updated_at, int(last.id))
    assert pages[-1].next_cursor == Cursor(from_ms(to_ms(BOUND)), "")
    assert records[0].fields["properties"]["email"] == f"c{records[0].id}@example.com"
    assert records[0].position == f"contacts/{records[0].id}"


def test_records_at_or_before_the_cursor_are_not_returned(hubspot):
    base = to_ms(T0)
    for oid in (1001, 1002, 1003, 1004):
        hubspot.fake.put("contacts", oid, base + 5, email=f"c{oid}@example.com")
    hubspot.fake.put("contacts", 1005, base + 4, email="c1005@example.com")
    source = hubspot.source()
    _, records = read(source, cursor_for(from_ms(base + 5), 1002))
    assert [r.id for r in records] == ["1003", "1004"]


def test_no_change_is_one_search_and_commits_the_bound(hubspot):
    contacts(hubspot.fake, 5, spread_ms=DAY)  # all before the cursor
    source = hubspot.source()
    pages, records = read(source, Cursor(T0 + timedelta(days=1, hours=1), ""))
    assert records == []
    assert source.client.requests == {"search": 1}
    assert [p.next_cursor for p in pages] == [Cursor(from_ms(to_ms(BOUND)), "")]


def test_window_split_at_the_cap_and_12000_on_one_millisecond(hubspot):
    hubspot.fake.nulls = False  # keeps the cassette small
    spread = contacts(hubspot.fake, 13_000, spread_ms=DAY)
    hot = to_ms(T0) + DAY // 2 + 17
    for oid in range(20_001, 32_001):
        hubspot.fake.put("contacts", oid, hot)
    hints = MappingHints("id", "properties.lastmodifieddate", frozenset())
    source = hubspot.source(hints=hints)
    pages, records = read(source)
    ids = [int(r.id) for r in records]
    assert len(ids) == 25_000
    assert set(ids) == set(spread) | set(range(20_001, 32_001))
    keys = [(r.updated_at, int(r.id)) for r in records]
    assert keys == sorted(keys)
    cursors = [p.next_cursor for p in pages if p.next_cursor is not None]
    assert cursors == sorted(cursors)
    sent = bodies(hubspot)
    # Never an offset at or past 10,000; 25,000 records need at least 125 pages.
    assert all(int(b.get("after", 0)) + b["limit"] <= 10_000 for b in sent)
    assert 125 <= len(sent) <= 135
    # The hot millisecond is keyset-paged by hs_object_id.
    keyset = [b for b in sent if b["sorts"][0]["propertyName"] == "hs_object_id"]
    assert len(keyset) == 60
    assert all(
        b["filterGroups"][0]["filters"][:2]
        == [
            {"propertyName": "lastmodifieddate", "operator": "GTE", "value": str(hot)},
            {
                "propertyName": "lastmodifieddate",
                "operator": "LT",
                "value": str(hot + 1),
            },
        ]
        for b in keyset
    )
    assert keyset[1]["filterGroups"][0]["filters"][2] == {
        "propertyName": "hs_object_id",
        "operator": "GT",
        "value": "20200",
    }
    # Cursors carry ids zero-padded, so text order is HubSpot's numeric order.
    hot_cursors = [c for c in cursors if c.ts == from_ms(hot)]
    assert hot_cursors
    assert all(len(c.id) == 20 and 20_001 <= int(c.id) <= 32_000 for c in hot_cursors)


def test_record_modified_during_the_run_is_read_next_run_and_none_is_lost(hubspot):
    made = contacts(hubspot.fake, 600, spread_ms=DAY)
    order = sorted(made, key=lambda i: (made[i], i))
    early, late = order[10], order[450]
    during = to_ms(NOW - timedelta(minutes=1))  # after this run's bound

    def modify(fake, method, path):
        if path.endswith("/search") and fake.requests.count(("POST", path)) == 2:
            fake.put("contacts", early, during, firstname="TestChanged")
            fake.put("contacts", late, during, firstname="TestChanged")

    hubspot.fake.hooks.append(modify)
    source = hubspot.source()
    pages, first = read(source)
    # `early` was read before it moved; `late` moved out of the window: next run.
    assert {int(r.id) for r in first} == set(made) - {late}
    sent = bodies(hubspot)
    # Offsets shifted when `early` left: the window restarted instead of skipping.
    assert [b.get("after") for b in sent] == [None, "200", None, "200"]
    restart = sent[2]["filterGroups"][0]["filters"][0]["value"]
    assert int(restart) == made[order[199]]
    hubspot.now = NOW + timedelta(minutes=10)
    _, second = read(source, pages[-1].next_cursor)
    assert [(r.id, r.fields["properties"]["firstname"]) for r in second] == [
        (str(oid), "TestChanged") for oid in sorted((early, late))
    ]


def test_malformed_records_go_to_the_failure_log(hubspot):
    good = {
        "id": "1001",
        "properties": {
            "email": "c1001@example.com",
            "firstname": "Test",
            "hs_merged_object_ids": None,
            "hs_object_id": "1001",
            "lastmodifieddate": "2024-03-01T10:00:00.000Z",
        },
        "createdAt": "2024-03-01T09:00:00.000Z",
        "updatedAt": "2024-03-01T10:00:00.000Z",
        "archived": False,
    }
    bad_date = {
        **good,
        "id": "1002",
        "properties": {**good["properties"], "lastmodifieddate": "yesterday"},
        "updatedAt": "soon",
    }
    no_id = {"properties": {"email": "x@example.com"}, "archived": False}
    hubspot.fake.scripted.append(
        Scripted(
            "POST", "/search", 200, {"total": 3, "results": [good, bad_date, no_id]}
        )
    )
    source = hubspot.source()
    pages, records = read(source)
    assert [r.id for r in records] == ["1001"]
    failures = [f for p in pages for f in p.failures]
    key = failures[1][0]
    assert key.startswith("contacts:malformed:")
    assert [(f[0], f[1], f[2]) for f in failures] == [
        (
            "1002",
            "contacts/1002",
            "contacts/1002: malformed record: lastmodifieddate is missing or not "
            "a timestamp",
        ),
        (
            key,
            f"contacts/{key}",
            f"contacts/{key}: malformed record: no id or no properties",
        ),
    ]
    assert failures[0][3] == bad_date
