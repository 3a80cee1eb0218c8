"""The lead field model: the built-in fields of contract §4 and custom ones."""

from __future__ import annotations

import keyword
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from state.models import STRING_FIELDS

__all__ = ["BUILTIN_FIELDS", "CustomFieldType", "LeadFieldSpec"]

CustomFieldType = Literal["string", "number", "integer", "boolean", "datetime", "list"]

#: Built-in lead fields and their JSON types, as ``GET /v1/fields`` reports them.
BUILTIN_FIELDS: dict[str, str] = {
    "id": "string",
    "origin": "string",
    "lead_id": "string",
    **dict.fromkeys(STRING_FIELDS, "string"),
    "score": "integer",
    "tags": "list",
    "custom_fields": "object",
    "created_at": "datetime",
    "updated_at": "datetime",
    "source_updated_at": "datetime",
    "deleted_at": "datetime",
}


class LeadFieldSpec(BaseModel):
    """A custom lead field under ``lead_fields``: ``{name: industry, type: string}``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    type: CustomFieldType = "string"
    description: str | None = None

    @field_validator("name")
    @classmethod
    def _not_builtin(cls, value: str) -> str:
        if value in BUILTIN_FIELDS or keyword.iskeyword(value):
            raise ValueError(f"'{value}' is a built-in lead field; pick another name")
        return value
