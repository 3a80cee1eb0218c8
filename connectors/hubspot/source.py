"""``HubSpotSource``: contacts, companies or deals, read incrementally with deletes.

- First sync, backfill and ID sweep (``since`` is None): the list endpoint, 100 per
  page, which has no result cap. It is ordered by id, not by modification time, so its
  pages carry no cursor; the last one carries ``now - lag`` as of the pass's start:
  anything modified after that is re-read by the next search.
- Incremental: the search endpoint over ``[since, now - lag)`` (``search.py``); the
  upper bound is fixed once per run (crm-notes P3).
- Deletions: the ``archived=true`` list, which cannot be filtered by time, is paged
  whole and the ids archived since the last check (``archivedAt``) are reported, plus
  the ids that merges folded into the records read in this run
  (``hs_merged_object_ids``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Self

from connectors.base import ConnectorConfig, Cursor, MappingHints, Page, SourceRecord
from connectors.base import utcnow as _utcnow
from connectors.errors import FatalSourceError
from connectors.http import Clock, Sleep, prefetch
from connectors.hubspot.client import BATCH_READ_LIMIT, HubSpotClient
from connectors.hubspot.config import HubSpotConfig
from connectors.hubspot.records import (
    Converter,
    Failure,
    Key,
    from_ms,
    key_of,
    parse_ts,
)
from connectors.hubspot.records import to_ms as _to_ms
from connectors.hubspot.search import SearchReader

__all__ = ["HubSpotSource", "properties_for"]

# Properties the connector itself reads, whatever the mapping says.
_ALWAYS = ("hs_object_id", "hs_merged_object_ids")
# Clock skew between HubSpot and us that the archive check tolerates.
_SKEW = timedelta(minutes=1)


def properties_for(cfg: HubSpotConfig, hints: MappingHints) -> list[str]:
    """The properties to request: the mapping's, the configured extras, our own."""
    wanted = {cfg.spec.modified, *_ALWAYS, *cfg.properties}
    paths = (*hints.paths, hints.id_path, hints.updated_at_path)
    for path in paths:
        if path and path.startswith("properties."):
            wanted.add(path.split(".", 2)[1])
    return sorted(wanted)  # a stable order keeps request bodies (and cassettes) stable


class HubSpotSource:
    """Reads one HubSpot CRM object type (contacts by default)."""

    kind: ClassVar[str] = "hubspot"
    config_model: ClassVar[type[ConnectorConfig]] = HubSpotConfig
    supports_deletions: ClassVar[bool] = True
    supports_fetch: ClassVar[bool] = True

    def __init__(
        self,
        cfg: HubSpotConfig,
        *,
        properties: Sequence[str],
        now: Callable[[], datetime] = _utcnow,
        sleep: Sleep = time.sleep,
        clock: Clock = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.name = cfg.name
        self.snapshot = False
        self.config = cfg
        self._cfg = cfg
        self._now = now
        self._properties = list(properties)
        self.client = HubSpotClient(cfg, sleep=sleep, clock=clock, rng=rng)
        self._converter = Converter(cfg.object, cfg.spec.modified)

    @classmethod
    def from_config(
        cls, cfg: HubSpotConfig, hints: MappingHints, **kwargs: Any
    ) -> Self:
        """Build it; the keyword arguments (clocks, sleep, rng) are for tests."""
        return cls(cfg, properties=properties_for(cfg, hints), **kwargs)

    @property
    def quota_remaining(self) -> float | None:
        """Daily API calls left (X-HubSpot-RateLimit-Daily-Remaining), for metrics."""
        return self.client.daily_remaining

    def check(self) -> None:
        """One small list request: proves the token, the scope and the base URL."""
        self.client.list_page(
            after=None, archived=False, properties=["hs_object_id"], limit=1
        )

    def read_changes(
        self, since: Cursor | None, *, until: datetime | None = None
    ) -> Iterator[Page]:
        """Pages oldest first; ``since=None`` lists every record (backfill, sweep)."""
        bound = self._now() - self._cfg.lag
        if until is not None:
            bound = min(bound, until)
        bound_ms = _to_ms(bound)
        if since is None:
            return self._list_all(bound_ms)
        return self._search_all(since, bound_ms)

    def read_deletions(self, since: datetime | None) -> Iterator[list[str]]:
        """Ids merged away in this run's reads, then ids archived since ``since``."""
        merged = sorted(self._converter.merged)
        self._converter.merged.clear()
        size = self._cfg.batch_size
        for start in range(0, len(merged), size):
            yield merged[start : start + size]
        due, cutoff = self._archive_cutoff(since)
        if due:
            yield from self._archived(cutoff)

    def fetch(self, ids: Sequence[str]) -> Iterator[SourceRecord]:
        """Current records by id (batch read, 100 per request); unknown ids skipped."""
        wanted = list(dict.fromkeys(i for i in ids if i.isdigit()))
        for start in range(0, len(wanted), BATCH_READ_LIMIT):
            page = self.client.batch_read(
                wanted[start : start + BATCH_READ_LIMIT], self._properties
            )
            records, _ = self._converter.records(page.get("results") or ())
            yield from records

    def close(self) -> None:
        """Close the HTTP connection pools."""
        self.client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- passes ----------------------------------------------------------------------

    def _list_all(self, bound_ms: int) -> Iterator[Page]:
        # The worker thread requests, parses and batches the next page while the
        # engine works on this one: at most one finished page waits for the engine.
        return prefetch(self._list_pages(bound_ms))

    def _list_pages(self, bound_ms: int) -> Iterator[Page]:
        size = self._cfg.batch_size
        records: list[SourceRecord] = []
        failures: list[Failure] = []
        convert = self._converter.records
        for results in self._list(archived=False, properties=self._properties):
            chunk, bad = convert(results)
            records += chunk
            if bad:
                failures += bad
            if len(records) >= size:
                yield Page(records, None, failures)
                records, failures = [], []
        # The list is in id order: only a finished pass covers everything up to bound.
        yield Page(records, Cursor(from_ms(bound_ms), ""), failures)

    def _search_all(self, since: Cursor, bound_ms: int) -> Iterator[Page]:
        since_key = key_of(since)
        assert since_key is not None  # noqa: S101 (since is a cursor here)
        lo = _to_ms(since.ts)
        if lo >= bound_ms:
            return
        yield from prefetch(self._search_pages(since_key, lo, bound_ms))

    def _search_pages(self, since_key: Key, lo: int, bound_ms: int) -> Iterator[Page]:
        reader = SearchReader(
            self.client,
            self._converter,
            modified=self._cfg.spec.modified,
            properties=self._properties,
        )
        size = self._cfg.batch_size
        records: list[SourceRecord] = []
        failures: list[Failure] = []
        cursor: Cursor | None = None
        for chunk, bad, chunk_cursor in reader.read(since_key, lo, bound_ms):
            records += chunk
            failures += bad
            cursor = chunk_cursor or cursor
            if len(records) >= size:
                yield Page(records, cursor, failures)
                records, failures, cursor = [], [], None
        # The whole window is read: everything stamped before the bound is covered.
        yield Page(records, Cursor(from_ms(bound_ms), ""), failures)

    def _list(self, *, archived: bool, properties: Sequence[str]) -> Iterator[Any]:
        """The ``results`` of every page of the list endpoint, following ``after``."""
        after: str | None = None
        while True:
            page = self.client.list_page(
                after=after, archived=archived, properties=properties
            )
            yield page.get("results") or ()
            paging = page.get("paging") or {}
            nxt = (paging.get("next") or {}).get("after")
            if nxt in (None, ""):
                return
            if str(nxt) == after:
                raise FatalSourceError(
                    "HubSpot list returned the same page token twice"
                )
            after = str(nxt)

    def _archive_cutoff(self, since: datetime | None) -> tuple[bool, datetime | None]:
        """Whether the archive check is due, and what it reports archived after."""
        if since is None:
            return True, None
        every = self._cfg.deletions_every.total_seconds()
        start = since
        if every > 0:
            # Checks happen in the first run of each period; `since` is the previous
            # run's start, so a check is due when a new period began since then, and
            # the last real check was at or after the start of since's period.
            period = int(since.timestamp() // every)
            if int(self._now().timestamp() // every) == period:
                return False, None
            start = datetime.fromtimestamp(period * every, UTC)
        return True, start - self._cfg.lag - self._cfg.lookback - _SKEW

    def _archived(self, cutoff: datetime | None) -> Iterator[list[str]]:
        return prefetch(self._archived_ids(cutoff))

    def _archived_ids(self, cutoff: datetime | None) -> Iterator[list[str]]:
        size = self._cfg.batch_size
        ids: list[str] = []
        for results in self._list(archived=True, properties=["hs_object_id"]):
            for raw in results:
                rid = raw.get("id") if isinstance(raw, dict) else None
                if not isinstance(rid, str) or not rid.isdigit():
                    continue
                if cutoff is not None and not _archived_after(raw, cutoff):
                    continue
                ids.append(rid)
            if len(ids) >= size:
                yield ids
                ids = []
        if ids:
            yield ids


def _archived_after(raw: dict[str, Any], cutoff: datetime) -> bool:
    """Whether a record was archived after ``cutoff`` (when unsure: yes)."""
    text = raw.get("archivedAt")
    try:
        return parse_ts(text) > cutoff if isinstance(text, str) else True
    except ValueError:
        return True
