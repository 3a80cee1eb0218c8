"""Bulk endpoints for integrations: sync, sync/delete, and the external create."""

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError

from service.api.auth import ExternalKey, SyncKey, charge_sync_leads
from service.api.deps import (
    ClockDep,
    EngineDep,
    LimiterDep,
    ModelsDep,
    SettingsDep,
    WriteLockDep,
)
from service.api.errors import json_response, validation_details
from service.api.openapi_models import DeleteResult, SyncResult
from service.api.routing import error_docs, with_body, write_session
from service.api.schemas import LeadModels
from state.leadwrite import create_lead
from state.store import tombstone_leads, upsert_leads

__all__ = ["build_sync_router"]


def _item_error(index: int, raw: Any, exc: ValidationError) -> dict[str, Any]:
    lead_id = None
    if isinstance(raw, dict):
        value = raw.get("lead_id", raw.get("leadId"))
        lead_id = None if value is None or isinstance(value, dict | list) else value
    details = validation_details(exc.errors(), strip=0, prefix=f"leads[{index}]")
    return {
        "index": index,
        "lead_id": None if lead_id is None else str(lead_id),
        "code": "unprocessable",
        "message": "; ".join(f"{d['field']}: {d['message']}" for d in details),
        "details": details,
    }


def _lead_fields(item: Any) -> dict[str, Any]:
    fields: dict[str, Any] = item.model_dump(mode="json", exclude={"source_updated_at"})
    fields["source_updated_at"] = item.source_updated_at
    fields["tags"] = list(dict.fromkeys(fields["tags"] or []))
    custom = fields["custom_fields"] or {}
    fields["custom_fields"] = {k: v for k, v in custom.items() if v is not None}
    return fields


def build_sync_router(models: LeadModels) -> APIRouter:
    """The bulk routes, with this app's request models."""
    router = APIRouter(tags=["sync"])

    def sync_route(
        request: Request,
        body: Any,
        key: SyncKey,
        engine: EngineDep,
        settings: SettingsDep,
        limiter: LimiterDep,
        current: ModelsDep,
        lock: WriteLockDep,
        clock: ClockDep,
    ) -> Response:
        """Upsert up to 100 leads by (origin, lead_id); bad items do not stop the rest.

        A lead is stored whole: fields left out become empty. Sending the same
        content again is ``unchanged`` and keeps ``updated_at``.
        """
        charge_sync_leads(
            request, limiter=limiter, settings=settings, key=key, count=len(body.leads)
        )
        valid: list[tuple[int, dict[str, Any]]] = []
        errors: list[dict[str, Any]] = []
        for index, raw in enumerate(body.leads):
            try:
                item = current.sync_lead.model_validate(raw)
            except ValidationError as exc:
                errors.append(_item_error(index, raw, exc))
                continue
            valid.append((index, _lead_fields(item)))
        with write_session(engine, lock) as session:
            result = upsert_leads(
                session,
                origin=body.origin,
                leads=[fields for _, fields in valid],
                now=clock(),
            )
        results = []
        for index, fields in valid:
            action, store_id = result.actions[fields["lead_id"]]
            results.append(
                {
                    "index": index,
                    "lead_id": fields["lead_id"],
                    "id": store_id,
                    "action": action,
                }
            )
        return json_response(
            {
                "created": result.created,
                "updated": result.updated,
                "unchanged": result.unchanged,
                "failed": len(errors),
                "results": results,
                "errors": errors,
            }
        )

    router.add_api_route(
        "/v1/leads/sync",
        with_body(sync_route, models.sync_request),
        methods=["POST"],
        response_model=SyncResult,
        responses=error_docs(400, 401, 403, 413, 422, 429),
        summary="Bulk upsert by (origin, lead_id)",
    )

    def sync_delete_route(
        request: Request,
        body: Any,
        key: SyncKey,
        engine: EngineDep,
        settings: SettingsDep,
        limiter: LimiterDep,
        lock: WriteLockDep,
        clock: ClockDep,
    ) -> Response:
        """Tombstone up to 100 leads by (origin, lead_id)."""
        charge_sync_leads(
            request,
            limiter=limiter,
            settings=settings,
            key=key,
            count=len(body.lead_ids),
        )
        with write_session(engine, lock) as session:
            result = tombstone_leads(
                session, origin=body.origin, lead_ids=body.lead_ids, now=clock()
            )
        status = dict.fromkeys(result.deleted, "deleted")
        status.update(dict.fromkeys(result.already_deleted, "already_deleted"))
        status.update(dict.fromkeys(result.not_found, "not_found"))
        return json_response(
            {
                "deleted": len(result.deleted),
                "already_deleted": len(result.already_deleted),
                "not_found": len(result.not_found),
                "results": [
                    {"lead_id": i, "status": status[i]}
                    for i in dict.fromkeys(body.lead_ids)
                ],
            }
        )

    router.add_api_route(
        "/v1/leads/sync/delete",
        with_body(sync_delete_route, models.sync_delete),
        methods=["POST"],
        response_model=DeleteResult,
        responses=error_docs(400, 401, 403, 413, 422, 429),
        summary="Bulk delete by (origin, lead_id)",
    )

    def external_route(
        body: Any,
        _key: ExternalKey,
        engine: EngineDep,
        lock: WriteLockDep,
        current: ModelsDep,
        clock: ClockDep,
    ) -> Response:
        """Create one lead shaped by the field model (custom fields at top level)."""
        fields = body.model_dump(mode="json", exclude_unset=True)
        fields["custom_fields"] = {
            name: fields.pop(name) for name in current.custom_names if name in fields
        }
        with write_session(engine, lock) as session:
            lead = create_lead(session, fields=fields, now=clock())
        return json_response(lead, 201, {"Location": f"/v1/leads/{lead['id']}"})

    router.add_api_route(
        "/api/leads/external",
        with_body(external_route, models.external),
        methods=["POST"],
        status_code=201,
        response_model=models.public,
        responses=error_docs(400, 401, 403, 409, 413, 422, 429),
        summary="Create a lead from an external form or tool",
    )
    return router
