"""The connector interface: what the sync engine needs from a source.

A connector is a ``typing.Protocol`` (see ``Source``). It knows its vendor's API and
nothing of leads or storage: it yields raw records, page by page, oldest first, and says
which cursor is safe to commit once a page is stored.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import (
    Annotated,
    Any,
    ClassVar,
    Literal,
    Protocol,
    Self,
    overload,
    runtime_checkable,
)

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "ConnectorConfig",
    "Cursor",
    "FlatRecords",
    "MappingHints",
    "Page",
    "RetryPolicy",
    "Schedule",
    "Source",
    "SourceRecord",
    "parse_duration",
    "utcnow",
]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: object) -> timedelta:
    """Parse ``90s``, ``5m``, ``2h``, ``1d``, ``1w`` or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise TypeError("expected a duration such as 30s, 5m, 2h or 1d")
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return timedelta(seconds=float(match[1]) * _UNIT_SECONDS[match[2] or "s"])
    raise ValueError(f"invalid duration {value!r}: use e.g. 30s, 5m, 2h or 1d")


@dataclass(frozen=True, order=True, slots=True)
class Cursor:
    """Position in a source: everything up to ``(ts, id)`` inclusive has been stored.

    Ordered as a tuple, so records sharing a timestamp are told apart by id.
    """

    ts: datetime
    id: str = ""

    def minus(self, lookback: timedelta) -> Cursor:
        """The cursor moved back by ``lookback`` (with the lowest id), or itself."""
        if not lookback:
            return self
        return Cursor(self.ts - lookback, "")


@dataclass(slots=True)
class SourceRecord:
    """One raw record from a source.

    ``fields`` is the record as the vendor sent it (nested dicts); ``position`` says
    where it stands in the source for error messages (``leads.csv:42``).
    """

    id: str
    updated_at: datetime | None
    fields: dict[str, Any]
    position: str | None = None


class FlatRecords(Sequence[SourceRecord]):
    """Flat records (CSV rows) kept as the rows they were read as.

    Every row has the same ``keys``; a ``SourceRecord`` (with its ``fields`` dict) is
    built only when it is asked for. A re-sync whose rows are mostly unchanged then
    builds almost none: the engine hashes the rows as they are (the same hash as
    their dicts) and asks only for the records it has to map.
    """

    __slots__ = ("ids", "keys", "origin", "rows", "starts", "times")

    def __init__(self, keys: Sequence[str], origin: str) -> None:
        self.keys = tuple(keys)
        #: where the rows come from: a record's position is ``origin:start``
        self.origin = origin
        self.ids: list[str] = []
        self.times: list[datetime | None] = []
        self.rows: list[list[str]] = []
        self.starts: list[int] = []

    def append(
        self, id_: str, updated_at: datetime | None, row: list[str], start: int
    ) -> None:
        """Add a row (as many values as ``keys``) read at line ``start``."""
        self.ids.append(id_)
        self.times.append(updated_at)
        self.rows.append(row)
        self.starts.append(start)

    def __len__(self) -> int:
        return len(self.ids)

    @overload
    def __getitem__(self, index: int) -> SourceRecord: ...

    @overload
    def __getitem__(self, index: slice) -> list[SourceRecord]: ...

    def __getitem__(self, index: int | slice) -> SourceRecord | list[SourceRecord]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return SourceRecord(
            self.ids[index],
            self.times[index],
            dict(zip(self.keys, self.rows[index], strict=True)),
            f"{self.origin}:{self.starts[index]}",
        )

    def __iter__(self) -> Iterator[SourceRecord]:
        for i in range(len(self.ids)):
            yield self[i]

    def __eq__(self, other: object) -> bool:
        """Equal to any sequence of the same records (a list of them, say)."""
        if not isinstance(other, Sequence) or isinstance(other, str):
            return NotImplemented
        return len(self) == len(other) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment] # mutable, like a list


@dataclass(slots=True)
class Page:
    """A page of records and the cursor that is safe to commit once they are stored.

    ``failures`` holds records the connector could not even parse, as
    ``(item_key, position, message, raw)``; they go to the failure log.
    """

    records: Sequence[SourceRecord]
    next_cursor: Cursor | None = None
    failures: list[tuple[str, str | None, str, dict[str, Any]]] = field(
        default_factory=list
    )


@dataclass(frozen=True, slots=True)
class MappingHints:
    """What the engine's mapping reads, so a connector requests no more and no less.

    ``id_path`` and ``updated_at_path`` are the mapping's ``lead_id`` and ``updated_at``
    paths; ``paths`` every source path it reads (dotted).
    """

    id_path: str | None = None
    updated_at_path: str | None = None
    paths: frozenset[str] = frozenset()


class Schedule(BaseModel):
    """When the daemon runs a connector: ``{every: 5m}`` or ``{cron: "*/10 * * *"}``."""

    model_config = ConfigDict(extra="forbid")

    every: timedelta | None = None
    cron: str | None = None
    jitter: timedelta | None = None

    @field_validator("every", "jitter", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        return None if value is None else parse_duration(value)

    @model_validator(mode="after")
    def _one_of(self) -> Self:
        if (self.every is None) == (self.cron is None):
            raise ValueError("give exactly one of 'every' or 'cron'")
        if self.every is not None and self.every <= timedelta(0):
            raise ValueError("'every' must be positive")
        return self


class RetryPolicy(BaseModel):
    """How failed records are retried: exponential backoff with jitter, then dead."""

    model_config = ConfigDict(extra="forbid")

    max_attempts: int = Field(default=8, ge=1)
    backoff: timedelta = timedelta(minutes=1)
    max_backoff: timedelta = timedelta(hours=6)

    @field_validator("backoff", "max_backoff", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        return parse_duration(value)


class ConnectorConfig(BaseModel):
    """Keys every connector accepts; each connector's model extends it with its own."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
    type: str
    enabled: bool = True
    schedule: Schedule = Field(
        default_factory=lambda: Schedule(every=timedelta(minutes=5))
    )
    lookback: timedelta = timedelta(0)
    lag: timedelta = timedelta(0)
    sweep: Schedule | None = None
    batch_size: int = Field(default=1000, ge=1, le=50_000)
    #: worker processes that map the records of a large pass ("auto": a core each,
    #: but the first; 0: map in the run's own process)
    map_workers: Annotated[int, Field(ge=0, le=32)] | Literal["auto"] = "auto"
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    mass_delete_threshold: float = Field(default=0.5, ge=0, le=1)
    mapping: str | dict[str, Any] | None = None

    @field_validator("lookback", "lag", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        return parse_duration(value)


@runtime_checkable
class Source(Protocol):
    """What the engine needs from a connector.

    ``snapshot`` is true when ``read_changes`` always lists the whole source (CSV
    without an updated-at column): the engine then tombstones what a complete pass did
    not list.
    """

    kind: ClassVar[str]
    config_model: ClassVar[type[ConnectorConfig]]
    supports_deletions: ClassVar[bool]
    supports_fetch: ClassVar[bool]
    snapshot: bool
    name: str

    @classmethod
    def from_config(cls, cfg: Any, hints: MappingHints) -> Self:
        """Build the connector from its own validated config model."""
        ...

    def check(self) -> None:
        """Probe credentials and reachability; raise a ``SourceError`` if they fail."""
        ...

    def read_changes(
        self, since: Cursor | None, *, until: datetime | None = None
    ) -> Iterator[Page]:
        """Yield pages of records with ``(updated_at, id) > since``, oldest first."""
        ...

    def read_deletions(self, since: datetime | None) -> Iterator[list[str]]:
        """Yield ids deleted in the source since ``since`` (``supports_deletions``)."""
        ...

    def fetch(self, ids: Sequence[str]) -> Iterator[SourceRecord]:
        """Yield the current records for ``ids`` (if ``supports_fetch``)."""
        ...

    def close(self) -> None:
        """Release connections and files."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def utcnow() -> datetime:
    """The current time, tz-aware UTC."""
    return datetime.now(UTC)
