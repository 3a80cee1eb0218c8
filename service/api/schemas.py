"""Request and response schemas, built per app from the organization's ``lead_fields``.

Input models accept snake_case and camelCase keys (``customFields``; ``assignedTo`` for
``owner``) and reject unknown keys; their OpenAPI schemas and examples name the
configured custom fields, so /docs shows each organization its own payload.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    create_model,
    model_validator,
)

from engine.fields import LeadFieldSpec
from service.api.fieldtypes import (
    INPUT_CONFIG,
    Email,
    LeadIdText,
    MatchBy,
    Origin,
    Phone,
    Status,
    Tag,
    Text,
    UtcDatetime,
)
from service.api.openapi_models import (
    DeleteResult,
    ErrorResponse,
    FieldsPublic,
    Pagination,
    SyncResult,
    lead_public_fields,
    lead_schema,
)

__all__ = [
    "INPUT_CONFIG",
    "DeleteResult",
    "ErrorResponse",
    "FieldsPublic",
    "LeadModels",
    "Pagination",
    "Status",
    "SyncResult",
    "build_models",
]

_CUSTOM_TYPES: dict[str, Any] = {
    "string": str,
    "number": float,
    "integer": int,
    "boolean": bool,
    "datetime": datetime,
    "list": list[str],
}
_EXAMPLES: dict[str, Any] = {
    "string": "Software",
    "number": 25000.0,
    "integer": 42,
    "boolean": True,
    "datetime": "2024-01-31T12:00:00Z",
    "list": ["a", "b"],
}


def _builtin_fields(*, email_required: bool) -> dict[str, Any]:
    email: Any = (Email, ...) if email_required else (Email | None, None)
    owner_alias = AliasChoices("owner", "assigned_to", "assignedTo")
    return {
        "email": email,
        "first_name": (Text | None, None),
        "last_name": (Text | None, None),
        "name": (Text | None, None),
        "company": (Text | None, None),
        "title": (Text | None, None),
        "phone": (Phone | None, None),
        "owner": (Text | None, Field(None, validation_alias=owner_alias)),
        "status": (Status | None, None),
        "score": (int | None, Field(None, ge=-(2**31), le=2**31 - 1)),
        "source": (Text | None, None),
        "tags": (list[Tag] | None, Field(None, max_length=100)),
    }


def _example(specs: Sequence[LeadFieldSpec]) -> dict[str, Any]:
    return {
        "email": "ada@example.com",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "name": "Ada Lovelace",
        "company": "Analytical Engines",
        "phone": "+14155550123",
        "status": "new",
        "score": 80,
        "source": "web",
        "tags": ["newsletter"],
        "custom_fields": {s.name: _EXAMPLES[s.type] for s in specs},
    }


def _has_match_key(self: Any) -> Any:
    needs = {"email": ("email",), "phone": ("phone",)}.get(
        self.match_by, ("email", "phone")
    )
    if not any(getattr(self, n) for n in needs):
        raise ValueError(f"match_by={self.match_by} needs {' or '.join(needs)}")
    return self


_MATCH_CHECK: Any = model_validator(mode="after")(_has_match_key)


@dataclass(frozen=True, slots=True)
class LeadModels:
    """The schemas of one app, shaped by its ``lead_fields``."""

    specs: tuple[LeadFieldSpec, ...]
    custom: type[BaseModel]
    create: type[BaseModel]
    update: type[BaseModel]
    upsert: type[BaseModel]
    sync_lead: type[BaseModel]
    sync_request: type[BaseModel]
    sync_delete: type[BaseModel]
    tags: type[BaseModel]
    external: type[BaseModel]
    public: type[BaseModel]
    page: type[BaseModel]
    search_page: type[BaseModel]
    upsert_result: type[BaseModel]

    @property
    def custom_names(self) -> tuple[str, ...]:
        """The custom field names."""
        return tuple(s.name for s in self.specs)


def build_models(specs: Sequence[LeadFieldSpec]) -> LeadModels:
    """Build the request and response models for these custom fields."""
    example = _example(specs)
    custom_defs: dict[str, Any] = {
        s.name: (
            _CUSTOM_TYPES[s.type] | None,
            Field(None, description=s.description),
        )
        for s in specs
    }
    custom = create_model("CustomFields", __config__=INPUT_CONFIG, **custom_defs)
    extra: dict[str, Any] = {"custom_fields": (custom | None, None)}
    builtin = _builtin_fields(email_required=False)

    def model(name: str, fields: dict[str, Any], ex: dict[str, Any]) -> Any:
        config = ConfigDict(**INPUT_CONFIG, json_schema_extra={"examples": [ex]})
        return create_model(name, __config__=config, **fields)

    create = model(
        "LeadCreate", {**_builtin_fields(email_required=True), **extra}, example
    )
    update = model("LeadUpdate", {**builtin, **extra}, {"status": "contacted"})
    upsert = create_model(
        "LeadUpsert",
        __config__=ConfigDict(
            **INPUT_CONFIG,
            json_schema_extra={"examples": [{**example, "match_by": "email"}]},
        ),
        __validators__={"_match": _MATCH_CHECK},
        **builtin,
        **extra,
        match_by=(MatchBy, "email_or_phone"),
    )
    sync_fields = {
        "lead_id": (LeadIdText, ...),
        **builtin,
        **extra,
        "source_updated_at": (UtcDatetime | None, None),
    }
    sync_lead = model("SyncLead", sync_fields, {"lead_id": "crm-123", **example})
    sync_request, sync_delete = _sync_models(sync_lead, example)
    tags = model(
        "TagsAdd",
        {"tags": (list[Tag], Field(min_length=1, max_length=100))},
        {"tags": ["vip"]},
    )
    flat = {k: v for k, v in example.items() if k != "custom_fields"}
    external = model(
        "ExternalLead",
        {**_builtin_fields(email_required=True), **custom_defs},
        {**flat, **example["custom_fields"]},
    )
    public, page, search_page, upsert_result = _public_models(custom, example)
    return LeadModels(
        specs=tuple(specs),
        custom=custom,
        create=create,
        update=update,
        upsert=upsert,
        sync_lead=sync_lead,
        sync_request=sync_request,
        sync_delete=sync_delete,
        tags=tags,
        external=external,
        public=public,
        page=page,
        search_page=search_page,
        upsert_result=upsert_result,
    )


def _sync_models(sync_lead: Any, example: dict[str, Any]) -> tuple[Any, Any]:
    item_schema = lead_schema(sync_lead)
    request = create_model(
        "SyncRequest",
        __config__=ConfigDict(
            **INPUT_CONFIG,
            json_schema_extra={
                "examples": [
                    {"origin": "my-crm", "leads": [{"lead_id": "crm-123", **example}]}
                ]
            },
        ),
        origin=(Origin, ...),
        # Items are validated one by one in the handler (a bad item must not fail
        # the batch); the schema still shows what an item looks like.
        leads=(
            list[Any],
            Field(
                min_length=1, max_length=100, json_schema_extra={"items": item_schema}
            ),
        ),
    )
    delete = create_model(
        "SyncDeleteRequest",
        __config__=ConfigDict(
            **INPUT_CONFIG,
            json_schema_extra={
                "examples": [{"origin": "my-crm", "lead_ids": ["crm-123"]}]
            },
        ),
        origin=(Origin, ...),
        lead_ids=(list[LeadIdText], Field(min_length=1, max_length=100)),
    )
    return request, delete


def _public_models(custom: Any, example: dict[str, Any]) -> tuple[Any, ...]:
    public_fields: dict[str, Any] = {
        name: (f.annotation, None) for name, f in custom.model_fields.items()
    }
    public_custom = create_model("CustomFieldsPublic", **public_fields)
    public = create_model(
        "LeadPublic",
        __config__=ConfigDict(json_schema_extra={"examples": [example]}),
        **lead_public_fields(public_custom),
    )
    hit = create_model(
        "LeadSearchHit",
        __base__=public,
        match_field=(str, Field(examples=["email", "custom_fields.industry"])),
    )
    page = create_model(
        "LeadsPublic", data=(list[public], ...), pagination=(Pagination, ...)
    )
    search_page = create_model(
        "LeadSearchResults", data=(list[hit], ...), pagination=(Pagination, ...)
    )
    upsert_result = create_model(
        "UpsertResult", created=(bool, ...), lead=(public, ...)
    )
    return public, page, search_page, upsert_result
