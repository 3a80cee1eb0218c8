"""Tests of the CSV connector: decoding, dialects, headers, bad rows, cursors, fetch."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.base import (
    Cursor,
    FlatRecords,
    MappingHints,
    Page,
    Source,
    SourceRecord,
)
from connectors.csvfile import CsvConfig, CsvSource, parse_timestamp
from connectors.errors import ConfigError, FatalSourceError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "csv"
HINTS = MappingHints(id_path="id", paths=frozenset({"id", "email"}))
LEADS_FIELDS = [
    {
        "id": "1",
        "email": "ana@example.com",
        "first_name": "Ana",
        "last_name": "Muñoz",
        "updated_at": "2024-01-01T10:00:00Z",
    },
    {
        "id": "2",
        "email": "bo@example.com",
        "first_name": "Bø",
        "last_name": "Ek",
        "updated_at": "2024-01-02T10:00:00Z",
    },
]


def make(path: Path | str, hints: MappingHints = HINTS, **cfg: Any) -> CsvSource:
    config = CsvConfig(name="csv-test", path=str(path), **cfg)
    return CsvSource.from_config(config, hints)


def pages(source: CsvSource, since: Cursor | None = None, **kw: Any) -> list[Page]:
    return list(source.read_changes(since, **kw))


def records(
    source: CsvSource, since: Cursor | None = None, **kw: Any
) -> list[SourceRecord]:
    return [r for page in pages(source, since, **kw) for r in page.records]


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, *rest: int
) -> datetime:
    second, micro = (*rest, 0, 0)[:2]
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- the class -----------------------------------------------------------------------


def test_satisfies_source_protocol() -> None:
    source = make(FIXTURES / "leads_utf8.csv")
    assert isinstance(source, Source)
    assert CsvSource.kind == "csv"
    assert CsvSource.config_model is CsvConfig
    assert CsvSource.supports_deletions is False
    assert CsvSource.supports_fetch is True
    assert source.name == "csv-test"
    assert source.snapshot is True
    assert list(source.read_deletions(None)) == []


def test_snapshot_flag_follows_deletes() -> None:
    incremental = make(FIXTURES / "incremental.csv", updated_at_column="updated_at")
    assert incremental.snapshot is False
    forced = make(FIXTURES / "leads_utf8.csv", deletes="none")
    assert forced.snapshot is False


def test_id_column_from_config_overrides_mapping() -> None:
    source = make(FIXTURES / "parts" / "part-1.csv", MappingHints(), id_column="email")
    assert [r.id for r in records(source)] == ["ten@example.com", "eleven@example.com"]


def test_id_column_from_dotted_mapping_path() -> None:
    source = make(FIXTURES / "parts" / "part-1.csv", MappingHints(id_path="id.value"))
    assert [r.id for r in records(source)] == ["10", "11"]


def test_no_id_column_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        make(FIXTURES / "leads_utf8.csv", MappingHints())
    assert info.value.key == "id_column"
    assert str(info.value) == (
        "id_column: a csv connector needs `id_column` or a mapping with `lead_id`"
    )


def test_unknown_encoding_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        make(FIXTURES / "leads_utf8.csv", encoding="klingon-8")
    assert str(info.value) == "encoding: unknown encoding klingon-8"


# --- encodings -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "encoding"),
    [
        ("leads_utf8.csv", "utf-8-sig"),
        ("leads_bom.csv", "utf-8-sig"),
        ("leads_latin1.csv", "latin-1"),
    ],
    ids=["utf-8", "utf-8-bom", "latin-1"],
)
def test_encodings(name: str, encoding: str) -> None:
    source = make(FIXTURES / name, encoding=encoding)
    got = records(source)
    assert [r.fields for r in got] == LEADS_FIELDS
    assert [r.position for r in got] == [f"{name}:2", f"{name}:3"]
    assert [r.id for r in got] == ["1", "2"]
    assert [r.updated_at for r in got] == [None, None]


def test_decode_error_names_file_and_suggests_encoding() -> None:
    path = FIXTURES / "leads_latin1.csv"
    with pytest.raises(FatalSourceError) as info:
        pages(make(path))
    assert str(info.value) == (
        f"{path}: cannot decode the file as utf-8-sig; set `encoding:` on the "
        "connector (e.g. `encoding: latin-1`)"
    )
    assert isinstance(info.value.__cause__, UnicodeDecodeError)


def test_decode_error_after_the_sniffed_sample(tmp_path: Path) -> None:
    path = tmp_path / "late.csv"
    rows = "".join(f"{i},user{i}@example.com\n" for i in range(5000))
    path.write_bytes(b"id,email\n" + rows.encode() + b"9999,caf\xe9@example.com\n")
    assert path.stat().st_size > 64 * 1024
    with pytest.raises(FatalSourceError, match=r"cannot decode the file as utf-8-sig"):
        pages(make(path))


# --- dialects ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "name_value"),
    [("leads_semicolon.csv", "Ana, Maria"), ("leads_tab.tsv", "Ana; Maria")],
    ids=["semicolon", "tab"],
)
def test_delimiter_is_sniffed(name: str, name_value: str) -> None:
    got = records(make(FIXTURES / name))
    assert [r.fields for r in got] == [
        {"id": "1", "email": "ana@example.com", "name": name_value},
        {"id": "2", "email": "bo@example.com", "name": "Bo"},
    ]


def test_comma_is_sniffed() -> None:
    got = records(make(FIXTURES / "parts" / "part-1.csv"))
    assert [r.fields for r in got] == [
        {"id": "10", "email": "ten@example.com"},
        {"id": "11", "email": "eleven@example.com"},
    ]


def test_pipe_is_sniffed_and_explicit_delimiter_wins(tmp_path: Path) -> None:
    path = write(tmp_path / "pipe.csv", "id|email\n1|a@example.com\n2|b@example.com\n")
    assert [r.fields["email"] for r in records(make(path))] == [
        "a@example.com",
        "b@example.com",
    ]
    semicolon = write(tmp_path / "semi.csv", "id;email\n1;a,b@example.com\n")
    with pytest.raises(FatalSourceError) as info:
        pages(make(semicolon, delimiter=","))
    assert str(info.value) == f"{semicolon}: header lacks columns ['email', 'id']"


def test_single_column_file_falls_back_to_comma(tmp_path: Path) -> None:
    path = write(tmp_path / "ids.csv", "id\n1\n2\n")
    got = records(make(path, hints=MappingHints(id_path="id")))
    assert [r.fields for r in got] == [{"id": "1"}, {"id": "2"}]


def test_quoted_multiline_fields_keep_physical_line_numbers() -> None:
    got = records(make(FIXTURES / "multiline.csv"))
    assert [(r.id, r.position) for r in got] == [
        ("1", "multiline.csv:2"),
        ("2", "multiline.csv:4"),
        ("3", "multiline.csv:6"),
        ("4", "multiline.csv:11"),
    ]
    assert got[0].fields["notes"] == "first line\nsecond line"
    assert got[2].fields["notes"] == 'x\n\ny, "quoted"\nz'


def test_values_are_raw_strings(tmp_path: Path) -> None:
    path = write(tmp_path / "raw.csv", "id , email,score\n7,  padded@example.com ,\n")
    (record,) = records(make(path))
    assert record.fields == {"id": "7", "email": "  padded@example.com ", "score": ""}


# --- files and headers ---------------------------------------------------------------


def test_glob_reads_matching_files_sorted_by_name() -> None:
    source = make(FIXTURES / "parts" / "part-*.csv")
    got = records(source)
    assert [(r.id, r.position) for r in got] == [
        ("10", "part-1.csv:2"),
        ("11", "part-1.csv:3"),
        ("20", "part-2.csv:2"),
    ]
    assert got[2].fields == {"email": "twenty@example.com", "id": "20"}


def test_a_page_holds_the_rows_of_one_file() -> None:
    got = pages(make(FIXTURES / "parts" / "*.csv", batch_size=3))
    assert [[r.id for r in p.records] for p in got] == [["10", "11"], ["20"]]
    # each file has its own header
    assert [p.records.keys for p in got] == [("id", "email"), ("email", "id")]


def test_a_page_builds_a_record_only_when_asked() -> None:
    (page,) = pages(make(FIXTURES / "parts" / "part-1.csv"))
    records = page.records
    assert isinstance(records, FlatRecords)
    assert records.ids == ["10", "11"] and len(records) == 2
    assert records.rows == [["10", "ten@example.com"], ["11", "eleven@example.com"]]
    first = SourceRecord(
        "10", None, {"id": "10", "email": "ten@example.com"}, "part-1.csv:2"
    )
    assert records[0] == first
    assert records[-1].position == "part-1.csv:3"
    assert records[:1] == [first] and records == list(records)
    assert records != [first]


@pytest.mark.parametrize("pattern", ["missing.csv", "nothing-*.csv", "parts"])
def test_no_matching_file(pattern: str) -> None:
    path = FIXTURES / pattern
    source = make(path)
    for action in (
        lambda: pages(source),
        source.check,
        lambda: list(source.fetch("1")),
    ):
        with pytest.raises(FatalSourceError) as info:
            action()
        assert str(info.value) == f"no file matches {path}"


def test_relative_path_is_relative_to_cwd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES)
    assert [r.id for r in records(make("parts/part-1.csv"))] == ["10", "11"]


def test_missing_columns_are_listed_sorted() -> None:
    path = FIXTURES / "leads_utf8.csv"
    hints = MappingHints(
        id_path="id", paths=frozenset({"email", "phone.number", "company", "id"})
    )
    source = make(path, hints)
    expected = f"{path}: header lacks columns ['company', 'phone']"
    for action in (lambda: pages(source), source.check):
        with pytest.raises(FatalSourceError) as info:
            action()
        assert str(info.value) == expected


def test_missing_id_and_updated_at_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "x.csv", "email\na@example.com\n")
    source = make(path, hints=MappingHints(id_path="lead_no"), updated_at_column="mod")
    with pytest.raises(FatalSourceError) as info:
        source.check()
    assert str(info.value) == f"{path}: header lacks columns ['lead_no', 'mod']"


def test_unnamed_trailing_columns_are_not_duplicates(tmp_path: Path) -> None:
    path = write(tmp_path / "export.csv", "id,email,,\n1,a@example.com,,\n")
    (record,) = records(make(path))
    assert record.fields == {"id": "1", "email": "a@example.com", "": ""}


def test_duplicate_header() -> None:
    path = FIXTURES / "duplicate_header.csv"
    with pytest.raises(FatalSourceError) as info:
        pages(make(path))
    assert str(info.value) == f"{path}: duplicate columns in header: ['email']"


@pytest.mark.parametrize("text", ["", "\n\n"], ids=["empty", "blank-lines"])
def test_file_without_header(tmp_path: Path, text: str) -> None:
    path = write(tmp_path / "empty.csv", text)
    with pytest.raises(FatalSourceError) as info:
        make(path).check()
    assert str(info.value) == f"{path}: the file is empty (no header row)"


def test_empty_fixture_file() -> None:
    path = FIXTURES / "empty.csv"
    with pytest.raises(FatalSourceError, match="the file is empty"):
        pages(make(path))


def test_check_passes_on_good_files() -> None:
    make(FIXTURES / "parts" / "part-*.csv").check()
    make(FIXTURES / "leads_latin1.csv", encoding="latin-1").check()


def test_oversized_field_is_fatal_with_line(tmp_path: Path) -> None:
    path = write(tmp_path / "big.csv", "id,notes\n1,ok\n2," + "x" * 200_000 + "\n")
    with pytest.raises(FatalSourceError) as info:
        pages(make(path, MappingHints(id_path="id"), delimiter=","))
    assert str(info.value) == f"{path}: line 3: field larger than field limit (131072)"


# --- malformed rows ------------------------------------------------------------------


def test_malformed_rows_go_to_failures() -> None:
    source = make(FIXTURES / "malformed.csv", updated_at_column="updated_at")
    (page,) = pages(source)
    assert [(r.id, r.position, r.updated_at) for r in page.records] == [
        ("1", "malformed.csv:2", utc(2024, 1, 1)),
        ("6", "malformed.csv:7", utc(2024, 1, 6, 6, 30)),
    ]
    assert page.failures == [
        (
            "2",
            "malformed.csv:3",
            "line 3: expected 4 fields, found 6",
            {
                "id": "2",
                "email": "b@example.com",
                "name": "Bo",
                "updated_at": "2024-01-02T00:00:00Z",
                "_extra": ["extra1", "extra2"],
            },
        ),
        (
            "3",
            "malformed.csv:4",
            "line 4: expected 4 fields, found 2",
            {"id": "3", "email": "c@example.com"},
        ),
        (
            "malformed.csv:line:5",
            "malformed.csv:5",
            "line 5: empty id column 'id'",
            {
                "id": "",
                "email": "d@example.com",
                "name": "Dee",
                "updated_at": "2024-01-03T00:00:00Z",
            },
        ),
        (
            "5",
            "malformed.csv:6",
            "line 6: cannot parse updated_at '31/02/2024'",
            {
                "id": "5",
                "email": "e@example.com",
                "name": "Eve",
                "updated_at": "31/02/2024",
            },
        ),
    ]
    assert page.next_cursor == Cursor(utc(2024, 1, 6, 6, 30), "6")


def test_snapshot_mode_does_not_parse_dates() -> None:
    (page,) = pages(make(FIXTURES / "malformed.csv"))
    assert [r.id for r in page.records] == ["1", "5", "6"]
    assert [f[0] for f in page.failures] == ["2", "3", "malformed.csv:line:5"]
    assert page.next_cursor is None


def test_failures_alone_fill_pages(tmp_path: Path) -> None:
    rows = "".join(f",{i}@example.com\n" for i in range(5)) + "9,ok@example.com\n"
    path = write(tmp_path / "bad.csv", "id,email\n" + rows)
    got = pages(make(path, batch_size=2))
    assert [(len(p.records), len(p.failures)) for p in got] == [(0, 2), (0, 2), (1, 1)]
    assert [f[0] for p in got for f in p.failures] == [
        f"bad.csv:line:{n}" for n in range(2, 7)
    ]


# --- incremental reads ---------------------------------------------------------------


@pytest.fixture(name="incremental")
def incremental_fixture() -> CsvSource:
    return make(FIXTURES / "incremental.csv", updated_at_column="updated_at")


def test_incremental_without_cursor_reads_all(incremental: CsvSource) -> None:
    (page,) = pages(incremental)
    assert [r.id for r in page.records] == ["b", "a", "d", "c", "e", "f"]
    assert [r.updated_at for r in page.records] == [
        utc(2024, 3, 1, 12),
        utc(2024, 3, 1, 12),
        utc(2024, 2, 1),
        utc(2024, 3, 1, 12),
        utc(2024, 3, 2),
        utc(2024, 3, 3),
    ]
    assert page.next_cursor == Cursor(utc(2024, 3, 3), "f")


def test_incremental_cursor_with_same_timestamp(incremental: CsvSource) -> None:
    (page,) = pages(incremental, Cursor(utc(2024, 3, 1, 12), "b"))
    assert [r.id for r in page.records] == ["c", "e", "f"]
    assert page.next_cursor == Cursor(utc(2024, 3, 3), "f")


def test_incremental_until_is_exclusive(incremental: CsvSource) -> None:
    since = Cursor(utc(2024, 3, 1, 12), "b")
    (page,) = pages(incremental, since, until=utc(2024, 3, 2))
    assert [r.id for r in page.records] == ["c"]
    assert page.next_cursor == Cursor(utc(2024, 3, 1, 12), "c")


def test_incremental_nothing_new_yields_one_empty_page(incremental: CsvSource) -> None:
    got = pages(incremental, Cursor(utc(2024, 3, 3), "f"))
    assert got == [Page(records=[], next_cursor=None, failures=[])]


def test_cursor_only_on_last_page(incremental: CsvSource) -> None:
    source = make(
        FIXTURES / "incremental.csv", updated_at_column="updated_at", batch_size=2
    )
    got = pages(source)
    assert [[r.id for r in p.records] for p in got] == [
        ["b", "a"],
        ["d", "c"],
        ["e", "f"],
    ]
    assert [p.next_cursor for p in got] == [None, None, Cursor(utc(2024, 3, 3), "f")]


@pytest.mark.parametrize(
    ("batch_size", "sizes"), [(1, [1] * 6), (3, [3, 3]), (4, [4, 2]), (10, [6])]
)
def test_page_sizes(batch_size: int, sizes: list[int]) -> None:
    source = make(
        FIXTURES / "incremental.csv",
        updated_at_column="updated_at",
        batch_size=batch_size,
    )
    got = pages(source)
    assert [len(p.records) for p in got] == sizes
    assert [p.next_cursor for p in got[:-1]] == [None] * (len(sizes) - 1)
    assert got[-1].next_cursor == Cursor(utc(2024, 3, 3), "f")


def test_snapshot_pages_never_carry_a_cursor() -> None:
    got = pages(make(FIXTURES / "incremental.csv", batch_size=4))
    assert [len(p.records) for p in got] == [4, 2]
    assert [p.next_cursor for p in got] == [None, None]


def test_snapshot_mode_ignores_since_and_until() -> None:
    source = make(FIXTURES / "incremental.csv")
    got = records(source, Cursor(utc(2030, 1, 1), "z"), until=utc(2000, 1, 1))
    assert [r.id for r in got] == ["b", "a", "d", "c", "e", "f"]
    assert [r.updated_at for r in got] == [None] * 6


def test_snapshot_deletes_with_updated_at_column_lists_everything() -> None:
    source = make(
        FIXTURES / "incremental.csv", updated_at_column="updated_at", deletes="snapshot"
    )
    (page,) = pages(source, Cursor(utc(2030, 1, 1), "z"))
    assert [r.id for r in page.records] == ["b", "a", "d", "c", "e", "f"]
    assert page.records[5].updated_at == utc(2024, 3, 3)
    assert page.next_cursor is None


def test_empty_data_file_yields_one_empty_page(tmp_path: Path) -> None:
    path = write(tmp_path / "header_only.csv", "id,email,updated_at\n")
    assert pages(make(path, updated_at_column="updated_at")) == [Page([])]
    assert pages(make(path)) == [Page([])]


def test_thousand_rows_sharing_a_timestamp(tmp_path: Path) -> None:
    rows = "".join(
        f"{i:04d},u{i}@example.com,2024-05-01T00:00:00Z\n" for i in range(1000)
    )
    path = write(tmp_path / "same.csv", "id,email,updated_at\n" + rows)
    got = pages(make(path, updated_at_column="updated_at", batch_size=100))
    assert [len(p.records) for p in got] == [100] * 10
    assert [p.next_cursor for p in got[:9]] == [None] * 9
    assert got[9].next_cursor == Cursor(utc(2024, 5, 1), "0999")
    assert [r.id for p in got for r in p.records] == [f"{i:04d}" for i in range(1000)]
    resumed = pages(
        make(path, updated_at_column="updated_at", batch_size=100),
        Cursor(utc(2024, 5, 1), "0949"),
    )
    assert [r.id for p in resumed for r in p.records] == [
        f"{i:04d}" for i in range(950, 1000)
    ]


# --- fetch ---------------------------------------------------------------------------


def test_fetch_returns_current_rows_in_file_order() -> None:
    source = make(FIXTURES / "leads_utf8.csv")
    got = list(source.fetch(["2", "1", "404"]))
    assert [(r.id, r.position) for r in got] == [
        ("1", "leads_utf8.csv:2"),
        ("2", "leads_utf8.csv:3"),
    ]
    assert got[0].fields == LEADS_FIELDS[0]
    assert list(source.fetch([])) == []


def test_fetch_skips_malformed_rows() -> None:
    source = make(FIXTURES / "malformed.csv", updated_at_column="updated_at")
    got = list(source.fetch(["2", "3", "5", "6"]))
    assert [(r.id, r.updated_at) for r in got] == [("6", utc(2024, 1, 6, 6, 30))]


def test_fetch_ignores_the_cursor_window() -> None:
    source = make(FIXTURES / "incremental.csv", updated_at_column="updated_at")
    got = list(source.fetch(["d", "a"]))
    assert [(r.id, r.updated_at) for r in got] == [
        ("a", utc(2024, 3, 1, 12)),
        ("d", utc(2024, 2, 1)),
    ]


def test_fetch_over_a_glob() -> None:
    got = list(make(FIXTURES / "parts" / "part-*.csv").fetch(["20", "10"]))
    assert [r.position for r in got] == ["part-1.csv:2", "part-2.csv:2"]


# --- lifecycle -----------------------------------------------------------------------


def test_context_manager_closes_half_read_files() -> None:
    with make(FIXTURES / "incremental.csv", batch_size=1) as source:
        stream = source.read_changes(None)
        first = next(stream)
        assert [r.id for r in first.records] == ["b"]
    with pytest.raises(ValueError, match="closed file"):
        next(stream)
    source.close()  # closing twice is harmless


def test_source_record_shape() -> None:
    (record, _) = records(make(FIXTURES / "leads_utf8.csv"))
    assert record == SourceRecord(
        id="1", updated_at=None, fields=LEADS_FIELDS[0], position="leads_utf8.csv:2"
    )


# --- timestamps ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-31T12:00:00Z", utc(2024, 1, 31, 12)),
        ("2024-01-31T12:00:00+00:00", utc(2024, 1, 31, 12)),
        ("2024-01-31 12:00:00+0000", utc(2024, 1, 31, 12)),
        ("2024-01-31T14:30:00+02:30", utc(2024, 1, 31, 12)),
        ("2024-01-31T07:00:00-05:00", utc(2024, 1, 31, 12)),
        ("2024-01-31T12:00:00", utc(2024, 1, 31, 12)),
        ("2024-01-31 12:00", utc(2024, 1, 31, 12)),
        ("2024-01-31T12:00:00.250Z", utc(2024, 1, 31, 12, 0, 0, 250000)),
        ("2024-01-31", utc(2024, 1, 31)),
        (" 2024-01-31 ", utc(2024, 1, 31)),
        ("1706702400", utc(2024, 1, 31, 12)),
        ("1706702400000", utc(2024, 1, 31, 12)),
        ("1706702400123", utc(2024, 1, 31, 12, 0, 0, 123000)),
        ("1706702400.5", utc(2024, 1, 31, 12, 0, 0, 500000)),
        ("0", utc(1970, 1, 1)),
    ],
)
def test_parse_timestamp(text: str, expected: datetime) -> None:
    parsed = parse_timestamp(text)
    assert parsed == expected
    assert parsed.tzinfo is not None
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "text",
    ["", "   ", "31/02/2024", "2024-02-30", "yesterday", "1.2.3", "9" * 30, "١٢٣"],
)
def test_parse_timestamp_rejects(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message is not the contract
        parse_timestamp(text)
