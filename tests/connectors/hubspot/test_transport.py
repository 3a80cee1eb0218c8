"""The fast paths: body decoding, record conversion and the prefetching list pass."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from connectors.hubspot.records import Converter
from connectors.hubspot.transport import decode_json
from tests.connectors.hubspot.support import contacts

DAY = 86_400_000


def test_decode_json_reads_what_orjson_refuses():
    assert decode_json(b'{"results": [{"id": "1"}]}') == {"results": [{"id": "1"}]}
    # A lone surrogate in one property must not make the whole page unreadable.
    assert decode_json(b'{"a": "x\\ud800"}') == {"a": "x\ud800"}
    assert decode_json('\ufeff{"a": 1}'.encode()) == {"a": 1}
    with pytest.raises(ValueError, match="Expecting value"):
        decode_json(b"<html>502 Bad Gateway</html>")


def raw(rid, modified=None, **extra):
    props = {"hs_object_id": rid}
    if modified is not None:
        props["lastmodifieddate"] = modified
    return {"id": rid, "properties": props, **extra}


def test_records_keep_the_objects_and_read_every_timestamp_form():
    objects = [
        raw("12", "2024-03-01T10:00:00.500Z"),
        raw("3", "2024-03-01T12:00:00.500+02:00"),  # converted to UTC
        raw("7", "2024-03-01T10:00:00.500"),  # naive: UTC
        raw("9", None, updatedAt="2024-03-01T09:00:00Z"),  # falls back on updatedAt
    ]
    converter = Converter("contacts", "lastmodifieddate")
    records, failures = converter.records(objects)
    assert failures == []
    assert [r.id for r in records] == ["12", "3", "7", "9"]  # the order given
    assert all(r.fields is o for r, o in zip(records, objects, strict=True))
    assert all(r.updated_at.tzinfo is UTC for r in records)
    half = datetime(2024, 3, 1, 10, 0, 0, 500_000, tzinfo=UTC)
    assert [r.updated_at for r in records] == [
        half,
        half,
        half,
        datetime(2024, 3, 1, 9, tzinfo=UTC),
    ]
    assert records[1].updated_at == datetime(
        2024, 3, 1, 12, 0, 0, 500_000, tzinfo=timezone(timedelta(hours=2))
    )
    assert records[0].position == "contacts/12"
    # convert() keys them by (modified, numeric id) and sorts: 3 < 7 < 12 numerically.
    keyed, _ = converter.convert(objects)
    assert [r.id for _, r in keyed] == ["9", "3", "7", "12"]


def test_records_send_malformed_objects_to_failures():
    converter = Converter("contacts", "lastmodifieddate")
    records, failures = converter.records(
        [
            raw("1", "2024-03-01T10:00:00Z", properties=None),
            raw("abc", "2024-03-01T10:00:00Z"),
            raw("2", "yesterday"),
            raw("4", None),
            "not an object",
            raw("5", "2024-03-01T10:00:00Z", archived=False),
        ]
    )
    assert [r.id for r in records] == ["5"]
    reasons = [message.split("malformed record: ")[1] for _, _, message, _ in failures]
    assert reasons == [
        "no id or no properties",
        "the id is not a HubSpot record id",
        "lastmodifieddate is missing or not a timestamp",
        "lastmodifieddate is missing or not a timestamp",
        "no id or no properties",
    ]


def test_list_pass_reads_at_most_one_page_ahead(hubspot):
    contacts(hubspot.fake, 400, spread_ms=DAY)
    source = hubspot.source(batch_size=100)
    pages = source.read_changes(None)
    first = next(pages)
    # The worker fetches the next page, hands it over, builds one more and waits:
    # never more than one page besides the one the consumer holds and the one queued.
    seen, settled = -1, time.monotonic() + 5
    while time.monotonic() < settled and seen != source.client.requests["list"]:
        seen = source.client.requests["list"]
        time.sleep(0.2)
    assert source.client.requests["list"] <= 3
    rest = list(pages)
    assert [len(p.records) for p in [first, *rest]] == [100] * 4 + [0]
    assert [r.id for p in [first, *rest] for r in p.records] == [
        str(i) for i in range(1001, 1401)
    ]
    assert source.client.requests == {"list": 4}
