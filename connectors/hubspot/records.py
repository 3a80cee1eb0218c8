"""Raw HubSpot objects to records, and the time and id arithmetic of cursors.

HubSpot ids are decimal numbers compared as numbers (``999 < 1000``), while a
``Cursor`` compares ids as text. Cursor ids are therefore written zero-padded to 20
digits, so that the cursor's order is the numeric order HubSpot pages in.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from connectors.base import Cursor, SourceRecord

__all__ = [
    "Converter",
    "Failure",
    "Key",
    "cursor_for",
    "from_ms",
    "key_of",
    "parse_ts",
    "to_ms",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_ID_WIDTH = 20

Failure = tuple[str, str | None, str, dict[str, Any]]
Key = tuple[datetime, int]  # (modified at, numeric id): the order records come in


def parse_ts(text: str) -> datetime:
    """Parse HubSpot's ISO 8601 timestamps (``2024-09-11T13:27:39.356Z``) to UTC."""
    value = datetime.fromisoformat(text)
    return value if value.tzinfo is UTC else _as_utc(value)


def _as_utc(value: datetime) -> datetime:
    """A naive time is UTC; an aware one is converted."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def to_ms(value: datetime) -> int:
    """Epoch milliseconds, rounded down (search filters take these)."""
    return (value - _EPOCH) // _MS


def from_ms(ms: int) -> datetime:
    """The UTC datetime of an epoch-milliseconds value."""
    return _EPOCH + ms * _MS


def cursor_for(ts: datetime, record_id: int) -> Cursor:
    """The cursor just after the record ``(ts, record_id)``."""
    return Cursor(ts, f"{record_id:0{_ID_WIDTH}d}")


def key_of(cursor: Cursor | None) -> Key | None:
    """The record key a cursor stands at; ids that are not numbers sort first."""
    if cursor is None:
        return None
    ident = int(cursor.id) if cursor.id.isdigit() else -1
    return (cursor.ts, ident)


class Converter:
    """Turns raw objects into records (or failures) and collects merged-away ids."""

    def __init__(self, object_name: str, modified: str) -> None:
        self._object = object_name
        self._modified = modified
        self.merged: set[str] = set()

    def records(
        self, results: Iterable[Any]
    ) -> tuple[list[SourceRecord], list[Failure]]:
        """The records of a page in the order given, and the malformed objects.

        This runs once per record of every sync, so it is written for speed: the
        record keeps HubSpot's object as is (no copy), and the common timestamp form
        (``...Z``, which ``fromisoformat`` reads as UTC) skips ``parse_ts``'s checks.
        """
        out: list[SourceRecord] = []
        failures: list[Failure] = []
        modified, name, merged_ids = self._modified, self._object, self.merged
        fromiso = datetime.fromisoformat
        for raw in results:
            if isinstance(raw, dict):
                props, rid = raw.get("properties"), raw.get("id")
            else:
                props = rid = None
            if not isinstance(props, dict) or rid.__class__ is not str or not rid:
                failures.append(self._failure(raw, "no id or no properties"))
                continue
            if not rid.isdigit():
                failures.append(self._failure(raw, "the id is not a HubSpot record id"))
                continue
            text = props.get(modified) or raw.get("updatedAt")
            try:
                ts = fromiso(text)
                if ts.tzinfo is not UTC:
                    ts = _as_utc(ts)
            except (TypeError, ValueError):
                failures.append(
                    self._failure(raw, f"{modified} is missing or not a timestamp")
                )
                continue
            merged = props.get("hs_merged_object_ids")
            if merged and merged.__class__ is str:
                # "326071100639;326297284815": ids merged into this one (§1.5).
                merged_ids.update(m for m in map(str.strip, merged.split(";")) if m)
            out.append(SourceRecord(rid, ts, raw, f"{name}/{rid}"))
        return out, failures

    def convert(
        self, results: Iterable[Any]
    ) -> tuple[list[tuple[Key, SourceRecord]], list[Failure]]:
        """Records keyed by ``(modified, numeric id)`` and sorted, and the failures."""
        records, failures = self.records(results)
        # records() sets every updated_at; the cast only tells mypy so.
        keyed = [((cast(datetime, r.updated_at), int(r.id)), r) for r in records]
        keyed.sort(key=_first)
        return keyed, failures

    def _failure(self, raw: Any, reason: str) -> Failure:
        data = raw if isinstance(raw, dict) else {"value": raw}
        rid = data.get("id")
        if isinstance(rid, str) and rid:
            key = rid
        else:
            # No id to key the failure by: a digest of the object keeps them apart.
            blob = json.dumps(data, sort_keys=True, default=str).encode()
            key = f"{self._object}:malformed:{hashlib.sha256(blob).hexdigest()[:16]}"
        where = f"{self._object}/{key}"
        return (key, where, f"{where}: malformed record: {reason}", data)


def _first(item: tuple[Key, SourceRecord]) -> Key:
    return item[0]
