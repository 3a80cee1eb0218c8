"""Preview: read a few records, map them, write nothing; also backs ``--dry-run``."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connectors.base import Cursor, Source
from engine.errors import MappingError
from engine.mapping import CompiledMapping
from engine.sync import Progress

__all__ = ["PreviewSummary", "preview_records"]


@dataclass
class PreviewSummary:
    """Records read, mapped pairs kept for display, failures and unmapped values."""

    read: int = 0
    mapped: int = 0
    failed: int = 0
    pairs: list[tuple[dict[str, Any], dict[str, Any] | str]] = field(
        default_factory=list
    )
    unmapped: Counter[tuple[str, str]] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready data."""
        return {
            "read": self.read,
            "mapped": self.mapped,
            "failed": self.failed,
            "records": [
                {
                    "source": src,
                    "lead": lead if isinstance(lead, dict) else None,
                    "error": lead if isinstance(lead, str) else None,
                }
                for src, lead in self.pairs
            ],
            "unmapped_values": [
                {"field": f, "value": v, "count": n}
                for (f, v), n in self.unmapped.most_common()
            ],
            "errors": dict(self.errors.most_common()),
        }

    def render_text(self) -> str:
        """A short plain-text report (used by ``backfill --dry-run``)."""
        lines = [f"read {self.read}, mapped {self.mapped}, failed {self.failed}"]
        for message, count in self.errors.most_common(10):
            lines.append(f"  {count} x {message}")
        if self.unmapped:
            lines.append("values no map covered:")
            for (name, value), count in self.unmapped.most_common(20):
                lines.append(f"  {name}: {value!r} x {count}")
        return "\n".join(lines)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def preview_records(
    source: Source,
    mapping: CompiledMapping,
    *,
    limit: int | None = None,
    keep: int = 0,
    since: datetime | None = None,
    until: datetime | None = None,
    progress: Progress | None = None,
) -> PreviewSummary:
    """Map up to ``limit`` records (all when None), keeping ``keep`` pairs to show."""
    summary = PreviewSummary()
    start = Cursor(since.astimezone(UTC), "") if since else None
    for page in source.read_changes(start, until=until):
        for key, position, message, raw in page.failures:
            summary.read += 1
            summary.failed += 1
            summary.errors[message.split(": ", 1)[-1]] += 1
            if len(summary.pairs) < keep:
                summary.pairs.append(
                    ({"_key": key, "_position": position, **raw}, message)
                )
        for record in page.records:
            if limit is not None and summary.read >= limit:
                return summary
            summary.read += 1
            unmapped: list[tuple[str, Any]] = []
            try:
                lead: dict[str, Any] | str = mapping.apply(record.fields, unmapped)
                summary.mapped += 1
            except MappingError as exc:
                lead = str(exc)
                summary.failed += 1
                summary.errors[f"{exc.code}: {exc}"] += 1
            for name, value in unmapped:
                summary.unmapped[(name, str(value))] += 1
            if len(summary.pairs) < keep:
                summary.pairs.append(
                    (
                        _jsonable(record.fields),
                        _jsonable(lead) if isinstance(lead, dict) else lead,
                    )
                )
        if progress is not None:
            progress(len(page.records) + len(page.failures))
        if limit is not None and summary.read >= limit:
            break
    return summary
