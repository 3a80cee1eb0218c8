"""Operations endpoints, without authentication: liveness, readiness, metrics."""

from typing import Any

import sqlalchemy as sa
import structlog
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError

from service.api.deps import EngineDep
from service.api.errors import error_body, json_response
from service.api.metrics import CONTENT_TYPE, ApiMetrics
from service.api.openapi_models import ErrorResponse

__all__ = ["build_ops_router"]

_log = structlog.get_logger("leadsync.api")


class Health(BaseModel):
    """A health answer."""

    status: str


def build_ops_router() -> APIRouter:
    """The /healthz, /readyz and /metrics routes."""
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", response_model=Health, summary="Liveness")
    async def healthz() -> dict[str, Any]:
        """The process is up and serving."""
        return {"status": "ok"}

    @router.get(
        "/readyz",
        response_model=Health,
        responses={503: {"model": ErrorResponse, "description": "Store unreachable."}},
        summary="Readiness",
    )
    def readyz(engine: EngineDep) -> Response:
        """The store answers a query."""
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except SQLAlchemyError:
            _log.warning("store_unreachable", exc_info=True)
            return json_response(
                error_body("unavailable", "the store is not reachable"), 503
            )
        return json_response({"status": "ready"})

    @router.get("/metrics", include_in_schema=False)
    def metrics(request: Request) -> Response:
        """Prometheus text exposition."""
        registry: ApiMetrics = request.app.state.metrics
        return Response(registry.render(), media_type=CONTENT_TYPE)

    return router
