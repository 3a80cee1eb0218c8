from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from engine.transforms import (
    TRANSFORM_NAMES,
    TransformError,
    TransformSpecError,
    build_transform,
    format_datetime,
    normalize_email,
    normalize_phone,
    parse_bool,
    parse_datetime,
    parse_float,
    parse_int,
    to_text,
)


def run(spec: object, value: object) -> object:
    return build_transform(spec)[1](value)


# --- email -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (" John.Doe@Example.COM ", "john.doe@example.com"),
        ("a+tag@sub.example.co.uk", "a+tag@sub.example.co.uk"),
        ("Ünïcode@Exämple.com", "ünïcode@exämple.com"),
    ],
)
def test_normalize_email(raw, expected):
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    "raw", ["nope", "a@b", "x@@example.com", "a b@example.com", ""]
)
def test_normalize_email_rejects(raw):
    with pytest.raises(TransformError, match=r"^invalid email '.*': \S"):
        normalize_email(raw)


def test_error_shows_at_most_60_chars_of_the_value():
    raw = "x" * 200 + "@@example.com"
    with pytest.raises(TransformError) as caught:
        normalize_email(raw)
    shown = str(caught.value).split("'")[1]
    assert shown == "x" * 57 + "..."


# --- phone -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("(415) 555-2671", "US", "+14155552671"),
        ("415.555.2671", "US", "+14155552671"),
        ("+44 20 7946 0958", None, "+442079460958"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("+1 415 555 2671", "GB", "+14155552671"),
    ],
)
def test_normalize_phone(raw, region, expected):
    assert normalize_phone(raw, region) == expected


def test_normalize_phone_without_region_asks_for_one():
    with pytest.raises(TransformError) as caught:
        normalize_phone("(415) 555-2671")
    message = str(caught.value)
    assert message.startswith("invalid phone '(415) 555-2671': no country code")
    assert "`e164: {region: US}`" in message
    assert "phone_region" in message


@pytest.mark.parametrize(
    ("raw", "reason"),
    [("12", "too short"), ("555-1", "too short"), ("abc", "not a phone number")],
)
def test_normalize_phone_rejects(raw, reason):
    with pytest.raises(TransformError, match=f"invalid phone '{raw}': {reason}"):
        normalize_phone(raw, "US")


def test_normalize_phone_rejects_impossible_number():
    with pytest.raises(TransformError, match="too long"):
        normalize_phone("+1 415 555 2671 999 999", None)


# --- datetime --------------------------------------------------------------------

JAN31 = datetime(2024, 1, 31, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2024-09-11T13:27:39.356Z", datetime(2024, 9, 11, 13, 27, 39, 356000, UTC)),
        ("2023-05-28T21:10:08.000+0000", datetime(2023, 5, 28, 21, 10, 8, tzinfo=UTC)),
        ("2021-12-10 18:09:45", datetime(2021, 12, 10, 18, 9, 45, tzinfo=UTC)),
        ("2024-01-31", JAN31),
        ("2024-01-31T12:00:00+00:00", JAN31 + timedelta(hours=12)),
        ("2024-01-31T12:00:00+05:30", JAN31 + timedelta(hours=6, minutes=30)),
        (
            "2024-01-31T12:00:00.1234567Z",
            JAN31 + timedelta(hours=12, microseconds=123456),
        ),
        (" 2024-01-31T12:00:00Z ", JAN31 + timedelta(hours=12)),
        ("2024/01/31 12:00:00", JAN31 + timedelta(hours=12)),
        ("2024-01-31 12:00:00 UTC", JAN31 + timedelta(hours=12)),
        ("Wed, 31 Jan 2024 12:00:00 GMT", JAN31 + timedelta(hours=12)),
        (1704067200000, datetime(2024, 1, 1, tzinfo=UTC)),
        (1704067200000.0, datetime(2024, 1, 1, tzinfo=UTC)),
        ("1704067200000", datetime(2024, 1, 1, tzinfo=UTC)),
        ("1704067200500", datetime(2024, 1, 1, 0, 0, 0, 500000, tzinfo=UTC)),
        (1704067200, datetime(2024, 1, 1, tzinfo=UTC)),
        ("1704067200", datetime(2024, 1, 1, tzinfo=UTC)),
        ("1704067200.5", datetime(2024, 1, 1, 0, 0, 0, 500000, tzinfo=UTC)),
        (datetime(2024, 1, 31), JAN31),  # noqa: DTZ001 naive input means UTC
        (datetime(2024, 1, 31, 2, tzinfo=timezone(timedelta(hours=2))), JAN31),
        (date(2024, 1, 31), JAN31),
    ],
)
def test_parse_datetime(raw, expected):
    parsed = parse_datetime(raw)
    assert parsed == expected
    assert parsed.tzinfo is UTC


def test_parse_datetime_with_format():
    parsed = parse_datetime("31/01/2024 14:05", "%d/%m/%Y %H:%M")
    assert parsed == datetime(2024, 1, 31, 14, 5, tzinfo=UTC)
    assert parsed.tzinfo is UTC
    with pytest.raises(TransformError, match="does not match the format '%d/%m/%Y'"):
        parse_datetime("2024-01-31", "%d/%m/%Y")


@pytest.mark.parametrize(
    "raw", ["01/31/2024", "yesterday", "", True, {}, float("nan"), 10**30, None]
)
def test_parse_datetime_rejects(raw):
    with pytest.raises(TransformError):
        parse_datetime(raw)


def test_parse_datetime_ambiguous_date_asks_for_a_format():
    with pytest.raises(TransformError, match="give a format"):
        parse_datetime("01/02/2024")


def test_format_datetime():
    assert format_datetime(JAN31) == "2024-01-31T00:00:00Z"
    other = datetime(2024, 1, 31, 2, 0, 0, 5, tzinfo=timezone(timedelta(hours=2)))
    assert format_datetime(other) == "2024-01-31T00:00:00.000005Z"


# --- bool, int, float, text ------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        *((word, True) for word in ["true", "TRUE", " yes ", "y", "on", "1", "t"]),
        *((word, False) for word in ["false", "No", "n", "off", "0", "F"]),
        (True, True),
        (False, False),
        (1, True),
        (0, False),
        (1.0, True),
    ],
)
def test_parse_bool(raw, expected):
    assert parse_bool(raw) is expected


@pytest.mark.parametrize("raw", ["maybe", "", 2, None, [], "1.5"])
def test_parse_bool_rejects(raw):
    with pytest.raises(TransformError, match="is not a boolean"):
        parse_bool(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("42", 42), (" 42 ", 42), ("42.0", 42), (42.0, 42), (42, 42), ("-7", -7)],
)
def test_parse_int(raw, expected):
    assert parse_int(raw) == expected
    assert type(parse_int(raw)) is int


@pytest.mark.parametrize("raw", ["4.5", 4.5, "abc", "", True, None, float("inf")])
def test_parse_int_rejects(raw):
    with pytest.raises(TransformError, match="is not an integer"):
        parse_int(raw)


@pytest.mark.parametrize(
    ("raw", "expected"), [("4.5", 4.5), (4, 4.0), ("1e3", 1000.0), (" -2.25 ", -2.25)]
)
def test_parse_float(raw, expected):
    assert parse_float(raw) == expected
    assert type(parse_float(raw)) is float


@pytest.mark.parametrize("raw", ["abc", "", "nan", "inf", True, None, [1]])
def test_parse_float_rejects(raw):
    with pytest.raises(TransformError, match="is not a number"):
        parse_float(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("a", "a"), (123, "123"), (123.0, "123"), (1.5, "1.5"), (True, "true"),
     (["a", None, 2], "a, 2"), (JAN31, "2024-01-31T00:00:00Z")],
)  # fmt: skip
def test_to_text(raw, expected):
    assert to_text(raw) == expected


# --- the transform registry ------------------------------------------------------


def test_registry_names():
    assert set(TRANSFORM_NAMES) == {
        "strip", "lower", "upper", "title", "e164", "email", "int", "float", "bool",
        "datetime", "split", "join", "truncate",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "value", "expected"),
    [
        ("strip", "  a b  ", "a b"),
        ("lower", "MiXeD", "mixed"),
        ("upper", "MiXeD", "MIXED"),
        ("title", "o'neil mcdonald-smith", "O'Neil Mcdonald-Smith"),
        ("title", "joe's bar", "Joe's Bar"),
        ("strip", [" a ", None, " b"], ["a", "b"]),
        ("lower", 42, "42"),
        ("e164", "+1 415 555 2671", "+14155552671"),
        ({"e164": {"region": "US"}}, "(415) 555-2671", "+14155552671"),
        ({"e164": "gb"}, "020 7946 0958", "+442079460958"),
        ({"e164": {"region": "US"}}, 4155552671, "+14155552671"),
        ("email", " A@B.COM", "a@b.com"),
        ("int", "42.0", 42),
        ("float", "4.5", 4.5),
        ("bool", "yes", True),
        ("int", ["1", "2"], [1, 2]),
        ("datetime", "2024-01-31", JAN31),
        ({"datetime": {"format": "%d/%m/%Y"}}, "31/01/2024", JAN31),
        ({"datetime": "%d/%m/%Y"}, "31/01/2024", JAN31),
        ("split", "a, b,,c ,", ["a", "b", "c"]),
        ({"split": ";"}, " a ; b;;", ["a", "b"]),
        ({"split": {"sep": "|"}}, "a|b", ["a", "b"]),
        ({"split": ";"}, ["a;b", "c"], ["a", "b", "c"]),
        ("join", ["a", "b"], "a, b"),
        ({"join": " | "}, ["a", None, 3], "a | 3"),
        ({"join": {"sep": "-"}}, ["a", "b"], "a-b"),
        ("join", "already text", "already text"),
        ({"truncate": 3}, "abcdef", "abc"),
        ({"truncate": {"length": 2}}, ["abc", "de"], ["ab", "de"]),
        ({"truncate": 10}, "short", "short"),
    ],
)
def test_transform(spec, value, expected):
    assert run(spec, value) == expected


@pytest.mark.parametrize(
    "spec",
    [
        *TRANSFORM_NAMES[:-1],  # every name but truncate takes no or optional args
        {"truncate": 5},
        {"e164": {"region": "US"}},
    ],
)
def test_none_passes_through_every_transform(spec):
    assert run(spec, None) is None


def test_build_transform_returns_its_name():
    name, _ = build_transform({"truncate": 5})
    assert name == "truncate"


@pytest.mark.parametrize(
    ("spec", "value", "match"),
    [
        ("email", "not-an-email", "invalid email 'not-an-email'"),
        ({"e164": {"region": "US"}}, "12", "invalid phone '12'"),
        ("e164", "415 555 2671", "add a region"),
        ("int", "4.5", "'4.5' is not an integer"),
        ("float", "x", "'x' is not a number"),
        ("bool", "perhaps", "'perhaps' is not a boolean"),
        ("datetime", "someday", "cannot read 'someday'"),
        ("strip", {"a": 1}, "expected text, got an object"),
    ],
)
def test_transform_failures(spec, value, match):
    with pytest.raises(TransformError, match=match):
        run(spec, value)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("shout", "unknown transform 'shout'; known: strip, lower"),
        ({"shout": None}, "unknown transform 'shout'"),
        ({"strip": None, "lower": None}, "a transform is a name"),
        (42, "a transform is a name"),
        (["strip"], "a transform is a name"),
        ({"strip": {"chars": "x"}}, "'strip' takes no arguments"),
        ({"email": True}, "'email' takes no arguments"),
        ({"e164": {"region": "XX"}}, "unknown region 'XX'"),
        ({"e164": {"country": "US"}}, "'e164' takes only 'region'"),
        ({"e164": 5}, "'region' must be a string"),
        ({"split": ""}, "separator must not be empty"),
        ({"split": {"separator": ";"}}, "'split' takes only 'sep'"),
        ({"split": 3}, "'sep' must be a string"),
        ({"join": {"sep": 1}}, "'sep' must be a string"),
        ("truncate", "needs a length >= 1"),
        ({"truncate": 0}, "needs a length >= 1"),
        ({"truncate": "5"}, "needs a length >= 1"),
        ({"truncate": True}, "needs a length >= 1"),
        ({"truncate": {"len": 3}}, "'truncate' takes only 'length'"),
        ({"datetime": {"format": "dd/mm/yyyy"}}, "strptime pattern"),
        ({"datetime": {"fmt": "%Y"}}, "'datetime' takes only 'format'"),
    ],
)
def test_bad_transform_specs(spec, match):
    with pytest.raises(TransformSpecError, match=match):
        build_transform(spec)


@pytest.mark.parametrize(
    "address",
    [
        "Ada.Lovelace@Example.COM",
        "a+b@example.co.uk",
        "x@localhost",
        "x@example.test",
        "a..b@example.com",
        ".a@example.com",
        "a@-bad-.com",
        "a@example",
        "a@[1.2.3.4]",
        "é@example.com",
        "a@bücher.de",
        f"{'a' * 65}@example.com",
        "a@b@example.com",
        "o'neil@example.com",
        "a@example..com",
    ],
)
def test_email_fast_path_agrees_with_full_validation(address: str) -> None:
    from email_validator import EmailNotValidError, validate_email

    try:
        expected: str | None = validate_email(
            address, check_deliverability=False
        ).normalized.lower()
    except EmailNotValidError:
        expected = None
    try:
        got: str | None = normalize_email(address)
    except TransformError:
        got = None
    assert got == expected


def test_phone_fast_path_agrees_with_phonenumbers() -> None:
    from engine.mapping_values import _parse_phone

    samples = []
    for body in ("4155550100", "2125551234", "9895550000", "2015550199"):
        a, b, c = body[:3], body[3:6], body[6:]
        samples += [
            f"({a}) {b}-{c}",
            f"{a}.{b}.{c}",
            f"{a}-{b}-{c}",
            f"{a} {b} {c}",
            f"+1 {a} {b} {c}",
            f"+1-{a}-{b}-{c}",
            f"1 {a} {b} {c}",
            f"1-{a}-{b}-{c}",
            f"{a}{b}{c}",
            f"+1{a}{b}{c}",
            f"1({a}){b}-{c}",
        ]
    for region in ("US", "CA", "GB", None):
        for text in samples:
            try:
                expected: str | None = _parse_phone(text, region)
            except TransformError:
                expected = None
            try:
                got: str | None = normalize_phone(text, region)
            except TransformError:
                got = None
            assert got == expected, (text, region)
