"""Write endpoints for single leads: create, patch, delete, upsert, tags."""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response

from service.api.auth import DeleteKey, WriteKey
from service.api.deps import ClockDep, EngineDep, WriteLockDep
from service.api.errors import json_response
from service.api.routing import error_docs, with_body, write_session
from service.api.schemas import LeadModels
from state.leadwrite import (
    add_tags,
    create_lead,
    delete_lead,
    patch_lead,
    remove_tag,
    upsert_lead,
)

__all__ = ["build_write_router"]

TagPath = Annotated[str, Path(min_length=1, max_length=100)]


def _fields(body: Any) -> dict[str, Any]:
    # exclude_unset: only what the client sent; mode=json: custom datetimes as text.
    fields: dict[str, Any] = body.model_dump(mode="json", exclude_unset=True)
    return fields


def build_write_router(models: LeadModels) -> APIRouter:
    """The single-lead write routes, with this app's request models."""
    router = APIRouter(prefix="/v1", tags=["leads"])

    def create_route(
        body: Any,
        _key: WriteKey,
        engine: EngineDep,
        lock: WriteLockDep,
        clock: ClockDep,
    ) -> Response:
        """Create a lead (origin ``api``); the email must not belong to a live lead."""
        with write_session(engine, lock) as session:
            lead = create_lead(session, fields=_fields(body), now=clock())
        return json_response(lead, 201, {"Location": f"/v1/leads/{lead['id']}"})

    router.add_api_route(
        "/leads",
        with_body(create_route, models.create),
        methods=["POST"],
        status_code=201,
        response_model=models.public,
        responses=error_docs(400, 401, 403, 409, 413, 422, 429),
        summary="Create a lead",
    )

    def patch_route(
        id: str,  # the contract's name
        body: Any,
        _key: WriteKey,
        engine: EngineDep,
        lock: WriteLockDep,
        clock: ClockDep,
    ) -> Response:
        """Change only the fields sent; custom fields merge key by key."""
        with write_session(engine, lock) as session:
            lead = patch_lead(session, id, changes=_fields(body), now=clock())
        return json_response(lead)

    router.add_api_route(
        "/leads/{id}",
        with_body(patch_route, models.update),
        methods=["PATCH"],
        response_model=models.public,
        responses=error_docs(400, 401, 403, 404, 409, 413, 422, 429),
        summary="Update a lead",
    )

    @router.delete(
        "/leads/{id}",
        status_code=204,
        response_class=Response,
        responses=error_docs(401, 403, 404, 429),
        summary="Delete a lead",
    )
    def delete_route(
        id: str,  # the contract's name
        _key: DeleteKey,
        engine: EngineDep,
        lock: WriteLockDep,
        clock: ClockDep,
    ) -> Response:
        """Tombstone a lead: hidden from now on, seen by ``updated_since`` readers."""
        with write_session(engine, lock) as session:
            delete_lead(session, id, now=clock())
        return Response(status_code=204)

    def upsert_route(
        body: Any,
        _key: WriteKey,
        engine: EngineDep,
        lock: WriteLockDep,
        clock: ClockDep,
    ) -> Response:
        """Update the live lead matching by email and/or phone, or create one."""
        fields = _fields(body)
        match_by = fields.pop("match_by", "email_or_phone")
        with write_session(engine, lock) as session:
            created, lead = upsert_lead(
                session, fields=fields, match_by=match_by, now=clock()
            )
        return json_response(
            {"created": created, "lead": lead}, 201 if created else 200
        )

    router.add_api_route(
        "/leads/upsert",
        with_body(upsert_route, models.upsert),
        methods=["POST"],
        response_model=models.upsert_result,
        responses={
            201: {"model": models.upsert_result, "description": "Created."},
            **error_docs(400, 401, 403, 409, 413, 422, 429),
        },
        summary="Upsert a lead by email or phone",
    )

    def add_tags_route(
        id: str,  # the contract's name
        body: Any,
        _key: WriteKey,
        engine: EngineDep,
        lock: WriteLockDep,
        clock: ClockDep,
    ) -> Response:
        """Add tags, keeping the lead's existing ones."""
        with write_session(engine, lock) as session:
            lead = add_tags(session, id, tags=body.tags, now=clock())
        return json_response(lead)

    router.add_api_route(
        "/leads/{id}/tags",
        with_body(add_tags_route, models.tags),
        methods=["POST"],
        response_model=models.public,
        responses=error_docs(400, 401, 403, 404, 413, 422, 429),
        summary="Add tags",
    )

    @router.delete(
        "/leads/{id}/tags/{tag}",
        response_model=models.public,
        responses=error_docs(400, 401, 403, 404, 429),
        summary="Remove a tag",
    )
    def remove_tag_route(
        id: str,  # the contract's name
        tag: TagPath,
        _key: WriteKey,
        engine: EngineDep,
        lock: WriteLockDep,
        clock: ClockDep,
    ) -> Response:
        """Remove one tag (removing a tag the lead lacks changes nothing)."""
        with write_session(engine, lock) as session:
            lead = remove_tag(session, id, tag=tag, now=clock())
        return json_response(lead)

    return router
