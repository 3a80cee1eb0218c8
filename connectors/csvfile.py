"""CSV files: a file or a glob, read as a stream.

API docs: RFC 4180 (https://www.rfc-editor.org/rfc/rfc4180) and Python's ``csv``
module. Auth: none. Cursor: ``updated_at_column`` when set (incremental), else a
snapshot diff done by the engine. Deletions: in snapshot mode, rows missing from a
complete pass are tombstoned by the engine; the connector itself reports none.

A CSV file is not sorted by its updated-at column, so rows come in file order and only
the *last* page of a pass carries a ``next_cursor``: the max ``(updated_at, id)`` of the
rows returned. Committing only at the end is what keeps same-timestamp rows safe: a
cursor committed mid-file could pass a row with an equal timestamp and a lower id that
is still further down the file.
"""

from __future__ import annotations

import codecs
import csv
import glob
import weakref
from _csv import Reader as _CsvReader
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, ClassVar, Literal, Self, TextIO

from pydantic import Field, model_validator

from connectors.base import (
    ConnectorConfig,
    Cursor,
    FlatRecords,
    MappingHints,
    Page,
    SourceRecord,
)
from connectors.errors import ConfigError, FatalSourceError

__all__ = ["CsvConfig", "CsvSource", "parse_timestamp"]

_SNIFF_CHARS = 64 * 1024
_DELIMITERS = ",;\t|"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLIS_FROM = 10**11  # epoch seconds reach 10**11 only in the year 5138

_Failure = tuple[str, str | None, str, dict[str, Any]]
_Ids = frozenset[str] | None
#: a good row as ``_scan`` yields it: id, updated-at, values, first line
_Row = tuple[str, datetime | None, list[str], int]


class _Bad:
    """A malformed row, as ``_scan`` yields it."""

    __slots__ = ("failure",)

    def __init__(self, failure: _Failure) -> None:
        self.failure = failure


class CsvConfig(ConnectorConfig):
    """Config of a ``type: csv`` connector."""

    type: Literal["csv"] = "csv"
    path: str = Field(min_length=1)
    encoding: str = "utf-8-sig"
    delimiter: str | None = Field(default=None, min_length=1, max_length=1)
    id_column: str | None = None
    updated_at_column: str | None = None
    deletes: Literal["snapshot", "none"] | None = None

    @model_validator(mode="after")
    def _default_deletes(self) -> CsvConfig:
        if self.deletes is None:
            self.deletes = "none" if self.updated_at_column else "snapshot"
        return self


def parse_timestamp(text: str) -> datetime:
    """Parse ISO 8601 (no offset = UTC), a date, epoch seconds or millis to UTC."""
    value = text.strip()
    if value.isascii() and value.replace(".", "", 1).isdigit():
        number = float(value) if "." in value else int(value)
        try:
            if number >= _MILLIS_FROM:
                return _EPOCH + timedelta(milliseconds=number)
            return _EPOCH + timedelta(seconds=number)
        except OverflowError as exc:
            raise ValueError(f"epoch value out of range: {value}") from exc
    parsed = datetime.fromisoformat(value)  # 3.11: Z, +0000, T or space, date-only
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


# Exports repeat timestamps a lot; an LRU in C is cheaper than parsing them again.
_parse_cached = lru_cache(maxsize=1 << 16)(parse_timestamp)


class CsvSource:
    """Reads leads from CSV files, streaming, one row per record."""

    kind: ClassVar[str] = "csv"
    config_model: ClassVar[type[ConnectorConfig]] = CsvConfig
    supports_deletions: ClassVar[bool] = False
    supports_fetch: ClassVar[bool] = True

    def __init__(self, cfg: CsvConfig, *, id_column: str, needed: set[str]) -> None:
        self.name = cfg.name
        self.snapshot = cfg.deletes == "snapshot"
        self._cfg = cfg
        self._id_column = id_column
        self._needed = frozenset(needed)
        self._files_open: weakref.WeakSet[TextIO] = weakref.WeakSet()

    @classmethod
    def from_config(cls, cfg: CsvConfig, hints: MappingHints) -> Self:
        """Build it; the id column defaults to ``lead_id``; ``a.b`` reads column a."""
        id_column = cfg.id_column or (hints.id_path or "").split(".", 1)[0]
        if not id_column:
            msg = "a csv connector needs `id_column` or a mapping with `lead_id`"
            raise ConfigError(msg, key="id_column")
        try:
            codecs.lookup(cfg.encoding)
        except LookupError as exc:
            msg = f"unknown encoding {cfg.encoding}"
            raise ConfigError(msg, key="encoding") from exc
        paths = (*hints.paths, hints.id_path, hints.updated_at_path)
        needed = {p.split(".", 1)[0] for p in paths if p} | {id_column}
        needed |= {cfg.updated_at_column} if cfg.updated_at_column else set()
        return cls(cfg, id_column=id_column, needed=needed)

    def check(self) -> None:
        """Check that the files exist, decode and have every needed column."""
        for path in self._files():
            with self._open(path) as file:
                self._header(path, file)

    def read_changes(
        self, since: Cursor | None, *, until: datetime | None = None
    ) -> Iterator[Page]:
        """Yield pages in file order; only the last page carries the cursor.

        A page holds the rows of one file (``FlatRecords``): the last page of a file
        may be short.
        """
        incremental = not self.snapshot and self._cfg.updated_at_column is not None
        if not incremental:
            since = until = None
        size = self._cfg.batch_size
        best: tuple[datetime, str] | None = None
        pending: Page | None = None
        page: Page | None = None
        for path in self._files():
            items = self._scan(path, since, until, None)
            header = next(items)
            if page is not None and (page.records or page.failures):
                # Hold one full page back: the last one must carry the cursor.
                if pending is not None:
                    yield pending
                pending = page
            records = FlatRecords(header, path.name)
            page = Page(records)
            failures, add = page.failures, records.append
            for item in items:
                if isinstance(item, _Bad):
                    failures.append(item.failure)
                    if len(failures) < size:
                        continue
                else:
                    add(*item)
                    if incremental:
                        rid, ts = item[0], item[1]
                        if ts is not None and (best is None or (ts, rid) > best):
                            best = (ts, rid)
                    if len(records) < size:
                        continue
                if pending is not None:
                    yield pending
                records = FlatRecords(header, path.name)
                pending, page = page, Page(records)
                failures, add = page.failures, records.append
        if page is None:  # pragma: no cover # _files() raises when nothing matches
            return
        if pending is not None:
            if page.records or page.failures:
                yield pending
            else:
                page = pending
        page.next_cursor = Cursor(*best) if best and incremental else None
        yield page

    def read_deletions(self, since: datetime | None) -> Iterator[list[str]]:  # noqa: ARG002
        """Yield nothing: deletions come from the engine's snapshot diff."""
        return iter(())

    def fetch(self, ids: Sequence[str]) -> Iterator[SourceRecord]:
        """Yield the current rows whose id is in ``ids``, in one pass; skip bad rows."""
        wanted = frozenset(ids)
        for path in self._files() if wanted else []:
            items = self._scan(path, None, None, wanted)
            header = next(items)
            for item in items:
                if not isinstance(item, _Bad):
                    rid, ts, row, start = item
                    fields = dict(zip(header, row, strict=True))
                    yield SourceRecord(rid, ts, fields, f"{path.name}:{start}")

    def close(self) -> None:
        """Close the files of passes that were abandoned half-read."""
        for file in list(self._files_open):
            file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _files(self) -> list[Path]:
        pattern = self._cfg.path
        magic = any(char in pattern for char in "*?[")
        names = sorted(glob.glob(pattern, recursive=True)) if magic else [pattern]
        files = [Path(name) for name in names if Path(name).is_file()]
        if not files:
            raise FatalSourceError(f"no file matches {pattern}")
        return files

    def _open(self, path: Path) -> TextIO:
        try:
            # newline="" lets the csv module handle quoted line breaks itself.
            file = path.open(encoding=self._cfg.encoding, newline="")
        except OSError as exc:
            raise FatalSourceError(f"cannot read {path}: {exc.strerror}") from exc
        self._files_open.add(file)
        return file

    def _header(self, path: Path, file: TextIO) -> tuple[_CsvReader, list[str]]:
        with self._translate_errors(path):
            delimiter = self._cfg.delimiter or _sniff(file)
        reader = csv.reader(file, delimiter=delimiter)
        with self._translate_errors(path, reader):
            header = next((row for row in reader if row), None)
        if header is None:
            raise FatalSourceError(f"{path}: the file is empty (no header row)")
        header = [name.strip() for name in header]
        dupes = sorted({name for name in header if name and header.count(name) > 1})
        if dupes:
            raise FatalSourceError(f"{path}: duplicate columns in header: {dupes}")
        missing = sorted(self._needed.difference(header))
        if missing:
            raise FatalSourceError(f"{path}: header lacks columns {missing}")
        return reader, header

    @contextmanager
    def _translate_errors(
        self, path: Path, reader: _CsvReader | None = None
    ) -> Iterator[None]:
        """Turn decode and csv errors into a ``FatalSourceError`` naming the file."""
        try:
            yield
        except UnicodeDecodeError as exc:
            raise FatalSourceError(
                f"{path}: cannot decode the file as {self._cfg.encoding}; set"
                " `encoding:` on the connector (e.g. `encoding: latin-1`)"
            ) from exc
        except csv.Error as exc:
            where = f"line {reader.line_num}: " if reader is not None else ""
            raise FatalSourceError(f"{path}: {where}{exc}") from exc

    def _scan(
        self, path: Path, since: Cursor | None, until: datetime | None, ids: _Ids
    ) -> Iterator[Any]:
        """Yield the file's header (a tuple of names), then its rows.

        Good rows come as ``_Row`` tuples, malformed ones as ``_Bad``.
        """
        # One flat loop with everything in locals: that keeps the per-row cost low.
        name, id_col, ts_col = path.name, self._id_column, self._cfg.updated_at_column
        after = (since.ts, since.id) if since else None
        parse = _parse_cached
        with self._open(path) as file:
            reader, header = self._header(path, file)
            ncols, id_at = len(header), header.index(id_col)
            ts_at = header.index(ts_col) if ts_col is not None else -1
            fail = partial(_failure, name, header, id_at)
            yield tuple(header)
            end = reader.line_num
            with self._translate_errors(path, reader):
                for row in reader:
                    start, end = end + 1, reader.line_num
                    if (n := len(row)) != ncols:
                        if not n or (n == 1 and not row[0].strip()):
                            continue  # a blank line
                        yield _Bad(
                            fail(start, row, f"expected {ncols} fields, found {n}")
                        )
                        continue
                    rid = row[id_at]
                    if not rid:
                        yield _Bad(fail(start, row, f"empty id column {id_col!r}"))
                        continue
                    if ids is not None and rid not in ids:
                        continue
                    ts = None
                    if ts_at >= 0:
                        text = row[ts_at]
                        try:
                            ts = parse(text)
                        except ValueError:
                            yield _Bad(
                                fail(start, row, f"cannot parse {ts_col} {text!r}")
                            )
                            continue
                        if after is not None and (ts, rid) <= after:
                            continue
                        if until is not None and ts >= until:
                            continue
                    yield rid, ts, row, start


def _sniff(file: TextIO) -> str:
    """Guess the delimiter from the first 64 KiB, then rewind; ``,`` when unsure."""
    sample = file.read(_SNIFF_CHARS)
    file.seek(0)
    if len(sample) == _SNIFF_CHARS and "\n" in sample:
        # A cut-off last line would mislead the sniffer.
        sample = sample[: sample.rindex("\n")]
    try:
        return csv.Sniffer().sniff(sample, delimiters=_DELIMITERS).delimiter
    except csv.Error:
        return ","


def _failure(
    name: str, header: list[str], id_at: int, line: int, row: list[str], message: str
) -> _Failure:
    raw: dict[str, Any] = dict(zip(header, row, strict=False))
    if len(row) > len(header):
        raw["_extra"] = row[len(header) :]
    rid = row[id_at] if id_at < len(row) else ""
    key = rid or f"{name}:line:{line}"
    return (key, f"{name}:{line}", f"line {line}: {message}", raw)
