"""Incremental reads through the search endpoint, around its 10,000-result cap.

``POST /crm/v3/objects/{object}/search`` filters on the modification property with
epoch-millisecond values (``GTE lo``, ``LT hi``), sorts ascending on it and pages 200 at
a time by an offset (``after``), which may never reach 10,000 (crm-notes §1.3, P4). So:

- A window ``[lo, hi)`` whose first page reports ``total < 10,000`` is paged by
  ``after``. Records sharing the last timestamp of a page are held back until the next
  page, so every chunk handed on is complete up to its last record and its cursor is
  safe to commit. If ``total`` changes between pages, a record entered or left the
  window (it was modified during the run): offsets shifted, so the window restarts at
  the held-back timestamp instead of risking a skipped record.
- A larger window is not paged: the records of its first page older than that page's
  last timestamp are complete and handed on, and the window restarts there, narrowed
  to the record density seen (a window never needs more than its first page then).
- When a first page holds nothing but its first millisecond, that millisecond is read
  alone, keyset-paged by ``hs_object_id`` (``GT`` the last id, ascending), which has no
  cap: thousands of records stamped by one bulk edit are all read (P5).
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from typing import Any

from connectors.base import Cursor, SourceRecord
from connectors.errors import FatalSourceError
from connectors.hubspot.client import SEARCH_LIMIT, HubSpotClient
from connectors.hubspot.records import (
    Converter,
    Failure,
    Key,
    cursor_for,
    from_ms,
    to_ms,
)

__all__ = ["CAP", "Chunk", "SearchReader"]

CAP = 10_000  # results one search query can page through
_TARGET = 8_000  # aim windows below the cap, with room for records arriving meanwhile
_MAX_STALLS = 20  # restarts without progress: a total that never settles must not loop

Chunk = tuple[list[SourceRecord], list[Failure], Cursor | None]
_Keyed = list[tuple[Key, SourceRecord]]


class SearchReader:
    """Reads ``[since, bound)`` in ascending ``(modified, id)`` order, by chunks."""

    def __init__(
        self,
        client: HubSpotClient,
        converter: Converter,
        *,
        modified: str,
        properties: Sequence[str],
    ) -> None:
        self._client = client
        self._convert = converter.convert
        self._modified = modified
        self._properties = list(properties)
        self._floor: Key = (from_ms(0), -1)
        self._stalls = 0  # window restarts that made no progress

    def read(self, since: Key, lo: int, hi: int) -> Iterator[Chunk]:
        """Yield chunks of records with key > ``since`` and ``lo <= ms < hi``."""
        self._floor = since
        width = hi - lo
        while lo < hi:
            end = min(hi, lo + max(1, width))
            first = self._search(lo, end, None)
            total = int(first.get("total") or 0)
            keyed, failures = self._convert(first.get("results") or ())
            if total < CAP:
                start = lo
                restart = yield from self._page(first, keyed, failures, lo, end, total)
                if restart is not None and restart <= lo:
                    self._stalls += 1
                if restart is None:
                    lo = end
                    # Size the next window for about _TARGET records.
                    width = max(
                        1, min(4 * width, (end - start) * _TARGET // max(total, 1))
                    )
                else:
                    lo = restart
                continue
            last_ms = to_ms(keyed[-1][0][0]) if keyed else None
            if last_ms is None or last_ms == lo:
                # Nothing usable, or a page full of one millisecond: read it alone.
                if failures:
                    yield [], failures, None
                yield from self._millisecond(lo)
                lo += 1
                width = max(1, width // 2)
                continue
            done = [item for item in keyed if to_ms(item[0][0]) < last_ms]
            yield self._emit(done, failures)
            # The first page spanned [lo, last_ms] for len(keyed) records.
            width = max(1, (last_ms - lo) * _TARGET // len(keyed))
            lo = last_ms

    def _page(
        self,
        page: dict[str, Any],
        keyed: _Keyed,
        failures: list[Failure],
        lo: int,
        end: int,
        total: int,
    ) -> Generator[Chunk, None, int | None]:
        """Page one window by ``after``; return where to restart it, or None if done."""
        held: _Keyed = []
        previous: str | None = None
        while True:
            batch = _merge(held, keyed)
            after = _next_after(page)
            if after is None:
                yield self._emit(batch, failures)
                return None
            if after == previous:
                raise FatalSourceError(
                    "HubSpot search returned the same page token twice"
                )
            previous = after
            last_ms = to_ms(batch[-1][0][0]) if batch else lo
            cut = _first_at(batch, last_ms)
            yield self._emit(batch[:cut], failures)
            held = batch[cut:]
            if after.isdigit() and int(after) >= CAP:
                # total under-counted: continue in a new window from the held records.
                return last_ms
            page = self._search(lo, end, after)
            moved = int(page.get("total") or 0) != total
            if moved and (last_ms > lo or self._stalls < _MAX_STALLS):
                # Offsets shifted under us; restart where nothing is handed on yet.
                return max(lo, last_ms)
            keyed, failures = self._convert(page.get("results") or ())

    def _millisecond(self, ms: int) -> Iterator[Chunk]:
        """Keyset-page one millisecond by ``hs_object_id`` (no 10,000 cap)."""
        floor_ts, floor_id = self._floor
        last_id = floor_id if to_ms(floor_ts) == ms else -1
        while True:
            extra = []
            if last_id >= 0:
                extra = [_filter("hs_object_id", "GT", str(last_id))]
            page = self._search(ms, ms + 1, None, extra=extra, sort="hs_object_id")
            results = page.get("results") or ()
            keyed, failures = self._convert(results)
            yield self._emit(keyed, failures)
            if not results or _next_after(page) is None:
                return
            tail = results[-1].get("id") if isinstance(results[-1], dict) else None
            if not isinstance(tail, str) or not tail.isdigit() or int(tail) <= last_id:
                raise FatalSourceError("HubSpot search did not advance by hs_object_id")
            last_id = int(tail)

    def _emit(self, keyed: _Keyed, failures: list[Failure]) -> Chunk:
        floor = self._floor
        records = [record for key, record in keyed if key > floor]
        cursor = None
        if keyed and keyed[-1][0] > floor:
            self._floor = key = keyed[-1][0]
            cursor = cursor_for(key[0], key[1])
        return records, failures, cursor

    def _search(
        self,
        lo: int,
        hi: int,
        after: str | None,
        *,
        extra: Sequence[dict[str, str]] = (),
        sort: str | None = None,
    ) -> dict[str, Any]:
        modified = self._modified
        body: dict[str, Any] = {
            "filterGroups": [
                {
                    "filters": [
                        _filter(modified, "GTE", str(lo)),
                        _filter(modified, "LT", str(hi)),
                        *extra,
                    ]
                }
            ],
            "sorts": [{"propertyName": sort or modified, "direction": "ASCENDING"}],
            "properties": self._properties,
            "limit": SEARCH_LIMIT,
        }
        if after is not None:
            body["after"] = after
        return self._client.search(body)


def _filter(name: str, operator: str, value: str) -> dict[str, str]:
    return {"propertyName": name, "operator": operator, "value": value}


def _merge(held: _Keyed, keyed: _Keyed) -> _Keyed:
    """The held-back records and a new page, in order and without repeats."""
    if not held:
        return keyed
    ids = {record.id for _, record in held}
    merged = held + [item for item in keyed if item[1].id not in ids]
    merged.sort(key=lambda item: item[0])
    return merged


def _first_at(batch: _Keyed, ms: int) -> int:
    """Index of the first record stamped in millisecond ``ms`` (batch is sorted)."""
    index = len(batch)
    while index and to_ms(batch[index - 1][0][0]) >= ms:
        index -= 1
    return index


def _next_after(page: dict[str, Any]) -> str | None:
    paging = page.get("paging")
    nxt = paging.get("next") if isinstance(paging, dict) else None
    after = nxt.get("after") if isinstance(nxt, dict) else None
    return str(after) if after not in (None, "") else None
