"""The JSON writer of every response: orjson, with the standard library as fallback."""

from datetime import UTC, datetime

from service.api.errors import dumps


def test_datetimes_are_iso_utc_with_z():
    body = {
        "a": datetime(2024, 1, 31, 12, 0, tzinfo=UTC),
        "b": datetime(2024, 1, 31, 12, 0, 0, 120, tzinfo=UTC),
        "c": None,
        "name": "José",
    }
    assert (
        dumps(body)
        == (
            '{"a":"2024-01-31T12:00:00Z","b":"2024-01-31T12:00:00.000120Z",'
            '"c":null,"name":"José"}'
        ).encode()
    )


def test_what_orjson_refuses_falls_back_to_the_standard_library():
    assert dumps({"big": 2**70, "t": datetime(2024, 1, 1, tzinfo=UTC)}) == (
        b'{"big":1180591620717411303424,"t":"2024-01-01T00:00:00Z"}'
    )
