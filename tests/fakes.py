"""A first-class in-memory source for engine tests (like httpx's MockTransport)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, ClassVar, Self

from connectors.base import ConnectorConfig, Cursor, MappingHints, Page, SourceRecord


class FakeConfig(ConnectorConfig):
    type: str = "fake"


class FakeSource:
    """Serves records from a dict, oldest first, in pages; can fail on demand.

    ``records`` maps id -> (updated_at, fields). ``fail_after_pages`` raises the given
    exception after that many pages, to simulate a crash between batches.
    """

    kind: ClassVar[str] = "fake"
    config_model: ClassVar[type[ConnectorConfig]] = FakeConfig
    supports_deletions: ClassVar[bool] = True
    supports_fetch: ClassVar[bool] = True

    def __init__(
        self, name: str = "fake", *, page_size: int = 3, snapshot: bool = False
    ):
        self.name = name
        self.snapshot = snapshot
        self.page_size = page_size
        self.records: dict[str, tuple[datetime, dict[str, Any]]] = {}
        self.deleted: list[str] = []
        self.fail_after_pages: tuple[int, BaseException] | None = None
        self.pages_served = 0
        self.fetched: list[list[str]] = []

    @classmethod
    def from_config(cls, cfg: Any, hints: MappingHints) -> Self:
        return cls(cfg.name)

    def put(self, id_: str, ts: datetime, **fields: Any) -> None:
        self.records[id_] = (ts, {"id": id_, "updated": ts.isoformat(), **fields})

    def check(self) -> None:
        return None

    def read_changes(
        self, since: Cursor | None, *, until: datetime | None = None
    ) -> Iterator[Page]:
        rows = sorted((ts, id_) for id_, (ts, _) in self.records.items())
        if since is not None and not self.snapshot:
            rows = [r for r in rows if r > (since.ts, since.id)]
        if until is not None:
            rows = [r for r in rows if r[0] < until]
        for start in range(0, len(rows), self.page_size):
            if self.fail_after_pages and self.pages_served >= self.fail_after_pages[0]:
                raise self.fail_after_pages[1]
            chunk = rows[start : start + self.page_size]
            self.pages_served += 1
            yield Page(
                records=[
                    SourceRecord(
                        id=id_, updated_at=ts, fields=dict(self.records[id_][1])
                    )
                    for ts, id_ in chunk
                ],
                next_cursor=None if self.snapshot else Cursor(*chunk[-1]),
            )

    def read_deletions(self, since: datetime | None) -> Iterator[list[str]]:
        if self.deleted:
            yield list(self.deleted)

    def fetch(self, ids: Sequence[str]) -> Iterator[SourceRecord]:
        self.fetched.append(list(ids))
        for id_ in ids:
            if id_ in self.records:
                ts, fields = self.records[id_]
                yield SourceRecord(id=id_, updated_at=ts, fields=dict(fields))

    def close(self) -> None:
        return None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
