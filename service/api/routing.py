"""Helpers the routers share: error docs, pagination, typed dynamic bodies, sessions."""

import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Body
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from service.api.errors import STATUS_CODES
from service.api.openapi_models import ErrorResponse
from state.db import is_sqlite, session_scope

__all__ = [
    "error_docs",
    "pagination",
    "utc",
    "with_body",
    "write_session",
]

_DESCRIPTIONS = {
    400: "Malformed JSON or invalid query/path parameters (`invalid_request`).",
    401: "Missing, wrong or revoked API key (`unauthorized`).",
    403: "The key lacks the scope (`forbidden`).",
    404: "No such live lead (`not_found`).",
    409: "Email already used by a live lead (`conflict`, with `existing_lead_id`).",
    413: "Request body over the size limit (`invalid_request`).",
    422: "The body does not validate (`unprocessable`); `details` name the fields.",
    429: "Rate limit exceeded (`rate_limited`); see `Retry-After`.",
}


def error_docs(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for these error statuses, and for any 4XX.

    The ``4XX`` entry also keeps FastAPI from documenting its own 422 shape.
    """
    docs: dict[int | str, dict[str, Any]] = {
        status: {
            "model": ErrorResponse,
            "description": _DESCRIPTIONS.get(status, STATUS_CODES[status]),
        }
        for status in statuses
    }
    docs["4XX"] = {"model": ErrorResponse, "description": "Any other client error."}
    return docs


def pagination(page: int, limit: int, total: int) -> dict[str, Any]:
    """The ``pagination`` object of a list answer."""
    pages = math.ceil(total / limit) if total else 0
    return {
        "page": page,
        "limit": limit,
        "total": total,
        "total_pages": pages,
        "has_more": page < pages,
    }


def utc(value: datetime | None) -> datetime | None:
    """A query datetime as UTC (a naive one is taken as UTC)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def with_body(fn: Callable[..., Any], model: type[Any]) -> Callable[..., Any]:
    """Give ``fn``'s ``body`` parameter a model built at run time (from lead_fields)."""
    fn.__annotations__["body"] = Annotated[model, Body()]
    return fn


@contextmanager
def write_session(engine: Engine, lock: threading.Lock) -> Iterator[Session]:
    """A committing session; on SQLite, writes of this process take turns.

    Email uniqueness is a check then a write; SQLite's deferred transactions would let
    two threads both pass the check, so they are serialised here.
    """
    guard = lock if is_sqlite(engine) else nullcontext()
    with guard, session_scope(engine) as session:
        yield session
