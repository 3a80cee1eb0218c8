"""The list pass (first sync, backfill, sweep), deletions, merges and fetch (cassettes)."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

from connectors.base import Cursor
from connectors.hubspot.records import from_ms, to_ms
from tests.connectors.hubspot.support import NOW, T0, contacts, sent

BOUND = Cursor(from_ms(to_ms(NOW - timedelta(minutes=2))), "")
DAY = 86_400_000


def test_first_sync_lists_every_record_and_commits_only_at_the_end(hubspot):
    made = contacts(hubspot.fake, 250, spread_ms=DAY)
    source = hubspot.source(batch_size=100)
    pages = list(source.read_changes(None))
    assert [len(p.records) for p in pages] == [100, 100, 50]
    # The list is in id order, not by time: only the finished pass carries a cursor.
    assert [p.next_cursor for p in pages] == [None, None, BOUND]
    assert [r.id for p in pages for r in p.records] == [str(i) for i in sorted(made)]
    assert source.client.requests == {"list": 3}
    queries = [parse_qs(urlsplit(r.uri).query) for r in sent(hubspot)]
    assert queries[0] == {
        "limit": ["100"],
        "properties": [
            "email",
            "firstname",
            "hs_merged_object_ids",
            "hs_object_id",
            "lastmodifieddate",
        ],
        "archived": ["False"],
    }
    assert [q.get("after") for q in queries] == [None, ["1101"], ["1201"]]
    assert all(
        r.uri.startswith("https://api.hubapi.com/crm/v3/objects/contacts?")
        for r in sent(hubspot)
    )


def test_archived_since_the_last_check_and_merged_ids_are_deletions(hubspot):
    fake = hubspot.fake
    contacts(hubspot.fake, 6, spread_ms=DAY)
    base = to_ms(T0)
    fake.archive("contacts", 1001, base + DAY // 2)  # long before the last check
    fake.archive("contacts", 1002, base + DAY + 1000)  # after it
    fake.merge("contacts", 1003, 1004, base + DAY + 2000)  # 1004 folded into 1003
    source = hubspot.source()
    records = [
        r
        for p in source.read_changes(Cursor(T0 + timedelta(days=1), ""))
        for r in p.records
    ]
    assert [r.id for r in records] == ["1003"]
    assert records[0].fields["properties"]["hs_merged_object_ids"] == "1004"
    deleted = list(source.read_deletions(T0 + timedelta(days=1)))
    assert deleted == [["1004"], ["1002", "1004"]]
    assert source.client.requests == {"search": 1, "archived": 1}
    archived_query = parse_qs(urlsplit(sent(hubspot)[-1].uri).query)
    assert archived_query == {
        "limit": ["100"],
        "properties": ["hs_object_id"],
        "archived": ["True"],
    }
    # Merged ids are reported once; the next check finds nothing new.
    assert list(source.read_deletions(NOW)) == []


def test_first_deletion_check_reports_every_archived_id(hubspot):
    contacts(hubspot.fake, 3, spread_ms=DAY)
    hubspot.fake.archive("contacts", 1002, to_ms(T0))
    source = hubspot.source()
    assert list(source.read_deletions(None)) == [["1002"]]


def test_archive_check_on_its_own_schedule(hubspot):
    contacts(hubspot.fake, 3, spread_ms=DAY)
    hubspot.fake.archive("contacts", 1002, to_ms(NOW - timedelta(minutes=50)))
    hubspot.fake.archive("contacts", 1003, to_ms(NOW - timedelta(hours=2)))
    source = hubspot.source(deletions_every="1h")
    # NOW is 00:00; a check at 23:30 was in the previous hour: due, and it reports
    # what was archived since that hour began (minus lag, lookback and skew).
    assert list(source.read_deletions(NOW - timedelta(minutes=30))) == [["1002"]]
    hubspot.now = NOW + timedelta(minutes=20)
    assert list(source.read_deletions(NOW + timedelta(minutes=5))) == []  # not due
    assert source.client.requests == {"archived": 1}


def test_fetch_reads_a_batch_and_skips_unknown_ids(hubspot):
    contacts(hubspot.fake, 3, spread_ms=DAY)
    source = hubspot.source()
    records = list(source.fetch(["1001", "1003", "999999", "not-an-id"]))
    assert [r.id for r in records] == ["1001", "1003"]
    assert records[0].fields["properties"]["email"] == "c1001@example.com"
    body = sent(hubspot)[0]
    assert (
        body.uri
        == "https://api.hubapi.com/crm/v3/objects/contacts/batch/read?archived=False"
    )
    assert source.client.requests == {"batch_read": 1}


def test_check_is_one_small_list_request(hubspot):
    contacts(hubspot.fake, 3, spread_ms=DAY)
    source = hubspot.source()
    source.check()
    assert parse_qs(urlsplit(sent(hubspot)[0].uri).query) == {
        "limit": ["1"],
        "properties": ["hs_object_id"],
        "archived": ["False"],
    }


def test_companies_and_deals_use_hs_lastmodifieddate(hubspot):
    base = to_ms(T0)
    hubspot.fake.put("deals", 7, base + 10, dealname="Test deal", amount="1500")
    source = hubspot.source(object="deals")
    records = [r for p in source.read_changes(Cursor(T0, "")) for r in p.records]
    assert [(r.id, r.updated_at) for r in records] == [("7", from_ms(base + 10))]
    body = sent(hubspot)[0]
    assert body.path == "/crm/v3/objects/deals/search"
    assert '"propertyName": "hs_lastmodifieddate"' in body.body.decode()
