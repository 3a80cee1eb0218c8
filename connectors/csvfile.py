"""CSV files: a file or a glob, read as a stream.

API docs: RFC 4180 and Python's ``csv`` module. Auth: none. Cursor: ``updated_at_column``
when set (incremental), else a snapshot diff done by the engine. Deletions: in snapshot
mode, rows missing from a complete pass are tombstoned by the engine.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from connectors.base import ConnectorConfig

__all__ = ["CsvConfig"]


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
