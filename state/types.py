"""Column types shared by the tables: tz-aware UTC datetimes and portable JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect

__all__ = ["JSONType", "UTCDateTime", "json_text"]

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A datetime stored as UTC and always read back tz-aware.

    SQLite has no time zones: values are stored naive in UTC, so that text comparison
    orders them correctly; PostgreSQL stores ``timestamptz``.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        """Convert to UTC (naive for SQLite) on the way in."""
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None:
            raise ValueError(
                "naive datetimes are not stored: give a tz-aware UTC value"
            )
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:  # noqa: ARG002 # signature fixed by SQLAlchemy
        """Return tz-aware UTC on the way out."""
        if value is None:
            return None
        if isinstance(value, str):  # raw SQLite text, e.g. from a textual query
            value = datetime.fromisoformat(value)
        if not isinstance(value, datetime):
            raise TypeError(f"unexpected stored datetime {value!r}")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def json_text(value: Any) -> str:
    """The JSON text the store keeps for a JSON column, whoever writes it.

    orjson (compact, UTF-8 as is) is several times faster than ``json``; what it
    refuses (integers over 64 bits, non-string keys) goes through ``json`` instead.
    Sync and API writes thus store the same text for the same value.
    """
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, default=str, separators=(",", ":"), ensure_ascii=False)
