"""Read endpoints: list, search, get, and the lead field model."""

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response

from engine.fields import BUILTIN_FIELDS
from service.api.auth import require
from service.api.deps import EngineDep, ModelsDep, TotalsDep
from service.api.errors import dumps, json_response
from service.api.fastroute import FastRoute
from service.api.openapi_models import FieldsPublic
from service.api.routing import error_docs, pagination, utc
from service.api.schemas import LeadModels, Status
from state.leadquery import LeadFilter, LeadPage, get_lead, list_leads, search_leads

__all__ = ["build_read_router"]

_READ = [Depends(require("leads:read"))]
Page = Annotated[int, Query(ge=1, le=1_000_000, description="Page number, from 1.")]
Limit = Annotated[int, Query(ge=1, le=100, description="Leads per page (1..100).")]
Text = Annotated[str | None, Query(min_length=1, max_length=255)]
When = Annotated[
    datetime | None,
    Query(description="ISO 8601: 2024-01-31 or 2024-01-31T12:00:00Z (UTC if no zone)."),
]


def _page_response(result: LeadPage, page: int, limit: int) -> Response:
    # The store wrote the items' JSON: only the pagination is serialised here.
    meta = dumps(pagination(page, limit, result.total))
    body = b'{"data":' + result.data + b',"pagination":' + meta + b"}"
    return Response(body, media_type="application/json")


def build_read_router(models: LeadModels) -> APIRouter:
    """The read routes, documented with this app's lead models.

    The handlers are plain functions: ``FastRoute`` runs each, with the key check
    before it, in one call to the thread pool, so no SQL runs on the event loop.
    """
    # FastRoute: the same declarations, served without FastAPI's per-request solver.
    router = APIRouter(prefix="/v1", tags=["leads"], route_class=FastRoute)

    @router.get(
        "/leads",
        response_model=models.page,
        dependencies=_READ,
        responses=error_docs(400, 401, 403, 429),
        summary="List leads",
    )
    def list_route(
        engine: EngineDep,
        totals: TotalsDep,
        page: Page = 1,
        limit: Limit = 25,
        status: Annotated[Status | None, Query()] = None,
        source: Text = None,
        origin: Text = None,
        owner: Text = None,
        tag: Text = None,
        q: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
        updated_since: When = None,
        created_after: When = None,
        created_before: When = None,
        include_deleted: bool = False,
        sort_by: Literal["created_at", "updated_at", "score"] | None = None,
        sort_order: Literal["asc", "desc"] | None = None,
    ) -> Response:
        """Leads, newest first; ``updated_since`` also returns tombstones.

        With ``updated_since`` the default order is ``updated_at`` ascending, the order
        a mirror wants.
        """
        filters = LeadFilter(
            status=status,
            source=source,
            origin=origin,
            owner=owner,
            tag=tag,
            q=q,
            updated_since=utc(updated_since),
            created_after=utc(created_after),
            created_before=utc(created_before),
            include_deleted=include_deleted,
        )
        mirror = updated_since is not None
        by = sort_by or ("updated_at" if mirror else "created_at")
        order = sort_order or ("asc" if mirror and sort_by is None else "desc")
        result = list_leads(
            engine,
            filters=filters,
            sort_by=by,
            sort_order=order,
            page=page,
            limit=limit,
            totals=totals,
        )
        return _page_response(result, page, limit)

    @router.get(
        "/leads/search",
        response_model=models.search_page,
        dependencies=_READ,
        responses=error_docs(400, 401, 403, 429),
        summary="Search leads",
    )
    def search_route(
        engine: EngineDep,
        totals: TotalsDep,
        q: Annotated[str, Query(min_length=2, max_length=200)],
        page: Page = 1,
        limit: Limit = 25,
        status: Annotated[Status | None, Query()] = None,
    ) -> Response:
        """Full-text search over name, email, company and custom fields.

        Every word matches as a prefix. Exact, then prefix matches of the whole query
        on email or name rank first; then leads whose email or name holds every word,
        then those whose company completes them, then the rest (custom fields); newest
        first within each. Each hit says which field matched.
        """
        result = search_leads(
            engine,
            q=q,
            status=status,
            page=page,
            limit=limit,
            totals=totals,
        )
        return _page_response(result, page, limit)

    @router.get(
        "/leads/{id}",
        response_model=models.public,
        dependencies=_READ,
        responses=error_docs(401, 403, 404, 429),
        summary="Get a lead",
    )
    def get_route(id: str, engine: EngineDep) -> Response:  # the contract's name
        """One live lead by its store id."""
        return Response(get_lead(engine, id), media_type="application/json")

    @router.get(
        "/fields",
        response_model=FieldsPublic,
        dependencies=_READ,
        responses=error_docs(401, 403, 429),
        tags=["fields"],
        summary="The lead field model",
    )
    def fields_route(current: ModelsDep) -> Response:
        """Built-in fields, then the custom fields declared under ``lead_fields``."""
        data = [
            {"name": name, "type": kind, "builtin": True, "description": None}
            for name, kind in BUILTIN_FIELDS.items()
        ]
        data += [
            {
                "name": spec.name,
                "type": spec.type,
                "builtin": False,
                "description": spec.description,
            }
            for spec in current.specs
        ]
        return json_response({"data": data})

    return router
