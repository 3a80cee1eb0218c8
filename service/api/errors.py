"""The error shape of contract §5 and the handlers that produce it.

Every error is ``{"error": {"code", "message", "details": [{"field", "message"}]}}``.
Validation rule: a JSON body that parses but does not validate is 422 ``unprocessable``;
malformed JSON and bad query or path parameters are 400 ``invalid_request``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from state.errors import LeadNotFound
from state.leadread import to_json as dumps
from state.leadwrite import EmailConflict

__all__ = [
    "STATUS_CODES",
    "ApiError",
    "dumps",
    "error_body",
    "install_error_handlers",
    "json_response",
    "validation_details",
]

#: The error code of each status (contract §5).
STATUS_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "invalid_request",
    409: "conflict",
    413: "invalid_request",
    422: "unprocessable",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(Exception):
    """Raised by handlers and dependencies to answer with an error of contract §5."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        details: Sequence[Mapping[str, Any]] = (),
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = STATUS_CODES.get(status, "invalid_request")
        self.message = message
        self.details = [dict(d) for d in details]
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})


def json_response(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A JSON response built without pydantic, for speed."""
    return Response(
        dumps(data), status_code=status, headers=headers, media_type="application/json"
    )


def error_body(
    code: str,
    message: str,
    details: Iterable[Mapping[str, Any]] = (),
    **extra: Any,
) -> dict[str, Any]:
    """The error object of contract §5."""
    return {
        "error": {
            "code": code,
            "message": message,
            "details": [dict(d) for d in details],
            **extra,
        }
    }


def _field_path(loc: Sequence[int | str]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "body"


def _message(error: Mapping[str, Any], field: str) -> str:
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        name = field.rsplit(".", 1)[-1]
        parent = f".{field}".rsplit(".", 2)[-2] if "." in field else ""
        if parent in ("custom_fields", "customFields"):
            return f"unknown custom field '{name}' (declare it under lead_fields)"
        return f"unknown field '{name}'"
    if kind == "json_invalid":
        reason = (error.get("ctx") or {}).get("error", "")
        return f"malformed JSON: {reason}".rstrip(": ")
    text = str(error.get("msg", "invalid value"))
    for prefix in ("Value error, ", "Assertion failed, "):
        text = text.removeprefix(prefix)
    return text


def validation_details(
    errors: Iterable[Mapping[str, Any]], *, strip: int = 1, prefix: str = ""
) -> list[dict[str, str]]:
    """Pydantic errors as ``details`` items; ``strip`` drops leading loc parts."""
    details = []
    for error in errors:
        loc = tuple(error.get("loc", ()))[strip:]
        field = _field_path(loc)
        if prefix:
            field = prefix if field == "body" else f"{prefix}.{field}"
        details.append({"field": field, "message": _message(error, field)})
    return details


async def _on_api_error(request: Request, exc: Exception) -> Response:  # noqa: ARG001 # Starlette's handler signature
    assert isinstance(exc, ApiError)  # noqa: S101 # registered for ApiError only
    body = error_body(exc.code, exc.message, exc.details, **exc.extra)
    return json_response(body, exc.status, exc.headers)


async def _on_validation(request: Request, exc: Exception) -> Response:  # noqa: ARG001 # Starlette's handler signature
    assert isinstance(exc, RequestValidationError)  # noqa: S101 # registered for it only
    errors = list(exc.errors())
    malformed = any(e.get("type") == "json_invalid" for e in errors)
    in_body = all((e.get("loc") or ("",))[0] == "body" for e in errors)
    if malformed:
        status, message = 400, "the request body is not valid JSON"
        details = [
            {"field": "body", "message": _message(e, "body")}
            for e in errors
            if e.get("type") == "json_invalid"
        ]
    elif in_body:
        status, message = 422, "the request body is invalid"
        details = validation_details(errors)
    else:
        status, message = 400, "invalid request parameters"
        details = validation_details(errors)
    return json_response(error_body(STATUS_CODES[status], message, details), status)


async def _on_http(request: Request, exc: Exception) -> Response:  # noqa: ARG001 # Starlette's handler signature
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101 # registered for it only
    status = exc.status_code
    message = {404: "no such endpoint", 405: "method not allowed"}.get(
        status, str(exc.detail)
    )
    headers = dict(exc.headers or {})
    return json_response(
        error_body(STATUS_CODES.get(status, "invalid_request"), message),
        status,
        headers,
    )


async def _on_not_found(request: Request, exc: Exception) -> Response:  # noqa: ARG001 # Starlette's handler signature
    return json_response(error_body("not_found", str(exc)), 404)


async def _on_conflict(request: Request, exc: Exception) -> Response:  # noqa: ARG001 # Starlette's handler signature
    assert isinstance(exc, EmailConflict)  # noqa: S101 # registered for it only
    body = error_body(
        "conflict",
        "a live lead with this email already exists",
        [{"field": "email", "message": "already used by another live lead"}],
        existing_lead_id=exc.existing_lead_id,
    )
    return json_response(body, 409)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every expected error in the shape of contract §5."""
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(LeadNotFound, _on_not_found)
    app.add_exception_handler(EmailConflict, _on_conflict)
