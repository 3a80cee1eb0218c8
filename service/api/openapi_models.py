"""Response schemas that do not depend on the custom fields, and schema helpers.

Handlers answer with plain JSON for speed; these models document the answers in
/openapi.json (and the property test checks answers against them).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "DeleteResult",
    "ErrorDetail",
    "ErrorObject",
    "ErrorResponse",
    "FieldInfo",
    "FieldsPublic",
    "Pagination",
    "SyncError",
    "SyncItemResult",
    "SyncResult",
    "lead_public_fields",
    "lead_schema",
]


class Pagination(BaseModel):
    """Where a page sits in the whole result."""

    page: int
    limit: int
    total: int
    total_pages: int
    has_more: bool


class ErrorDetail(BaseModel):
    """One problem, naming the field (``leads[3].email``)."""

    field: str
    message: str


class ErrorObject(BaseModel):
    """The error of contract §5; a 409 adds ``existing_lead_id``."""

    model_config = ConfigDict(extra="allow")

    code: str = Field(examples=["unprocessable"])
    message: str
    details: list[ErrorDetail]


class ErrorResponse(BaseModel):
    """Every error answer: ``{"error": {...}}``."""

    error: ErrorObject


class SyncError(BaseModel):
    """A lead of a bulk sync that was not stored, and why."""

    index: int
    lead_id: str | None
    code: str
    message: str
    details: list[ErrorDetail]


class SyncItemResult(BaseModel):
    """What a bulk sync did with one stored lead."""

    index: int
    lead_id: str
    id: str
    action: Literal["created", "updated", "unchanged"]


class SyncResult(BaseModel):
    """Counts of a bulk sync, per-lead results and the per-index errors."""

    created: int
    updated: int
    unchanged: int
    failed: int
    results: list[SyncItemResult]
    errors: list[SyncError]


class DeleteItemResult(BaseModel):
    """What a bulk delete did with one lead_id."""

    lead_id: str
    status: Literal["deleted", "already_deleted", "not_found"]


class DeleteResult(BaseModel):
    """Counts of a bulk delete and the outcome of each lead_id."""

    deleted: int
    already_deleted: int
    not_found: int
    results: list[DeleteItemResult]


class FieldInfo(BaseModel):
    """One field of the lead field model."""

    name: str
    type: str
    builtin: bool
    description: str | None = None


class FieldsPublic(BaseModel):
    """The lead field model: built-in fields, then the configured custom ones."""

    data: list[FieldInfo]


def lead_public_fields(custom: type[BaseModel]) -> dict[str, Any]:
    """The fields of ``LeadPublic`` (contract §4), with typed custom fields."""
    text = (str | None, None)
    return {
        "id": (str, ...),
        "origin": (str, ...),
        "lead_id": (str, ...),
        **dict.fromkeys(
            (
                "email",
                "first_name",
                "last_name",
                "name",
                "company",
                "title",
                "phone",
                "owner",
                "status",
            ),
            text,
        ),
        "score": (int | None, None),
        "source": text,
        "tags": (list[str], ...),
        "custom_fields": (custom, ...),
        "created_at": (datetime, ...),
        "updated_at": (datetime, ...),
        "source_updated_at": (datetime | None, None),
        "deleted_at": (datetime | None, None),
    }


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


def lead_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A model's validation JSON schema with every ``$ref`` inlined."""
    schema = model.model_json_schema(mode="validation")
    return dict(_inline(schema, schema.get("$defs", {})))
