"""One pure ASGI middleware for every request: id, size limit, aliases, headers, 500s.

Pure ASGI (not ``BaseHTTPMiddleware``) because it runs on every request: it stamps an
``X-Request-ID``, answers 413 for a body over ``max_body_bytes``, turns camelCase query
keys into snake_case (``sortBy`` -> ``sort_by``, ``assignedTo`` -> ``owner``), adds the
``X-RateLimit-*`` headers the auth dependency left in the request state, records
metrics by route template, and turns an unexpected exception into a generic 500 that
carries the request id and leaks nothing. A GET of a read route goes from here to the
route's handler directly (``service.api.fastlane``); every other request to the app.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlencode

import structlog
from pydantic.alias_generators import to_snake
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.errors import dumps, error_body
from service.api.fastlane import ReadLane
from service.api.metrics import ApiMetrics
from service.api.ratelimit import rate_limit_headers

__all__ = ["ApiMiddleware"]

_log = structlog.get_logger("leadsync.api")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_QUERY_ALIASES = {"assignedTo": "owner", "assigned_to": "owner"}
_UPPER = re.compile(rb"[A-Z]")


def _rewrite_query(scope: Scope) -> None:
    raw: bytes = scope.get("query_string", b"")
    if not raw or (not _UPPER.search(raw) and b"assigned_to" not in raw):
        return
    pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
    renamed = [(_QUERY_ALIASES.get(k) or to_snake(k), v) for k, v in pairs]
    scope["query_string"] = urlencode(renamed).encode("latin-1")


def _json_content_type(scope: Scope) -> None:
    # Every body here is JSON: `curl -d` (form-urlencoded) or a missing header must not
    # turn a good body into a type error. Safe from CSRF: every write needs a key
    # header, which a cross-site form cannot send.
    headers = [(k, v) for k, v in scope.get("headers", ()) if k != b"content-type"]
    current = _header(scope, b"content-type") or b""
    if b"json" not in current.lower():
        headers.append((b"content-type", b"application/json"))
        scope["headers"] = headers


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value)
    return None


async def _send_error(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class ApiMiddleware:
    """See the module docstring."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: ApiMetrics,
        max_body_bytes: int,
        lane: ReadLane | None = None,
    ):
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.lane = lane

    async def _read_body(self, scope: Scope, receive: Receive) -> Receive | None:
        """The body read up front (bounded), replayed to the app; None if too large."""
        length = _header(scope, b"content-length")
        if (
            length is not None
            and length.isdigit()
            and int(length) > self.max_body_bytes
        ):
            return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks)}
            return await receive()

        return replay

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one request (other scope types pass through)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started_at = time.perf_counter()
        state = scope.setdefault("state", {})
        incoming = _header(scope, b"x-request-id")
        text = incoming.decode("latin-1") if incoming else ""
        request_id = text if _REQUEST_ID.match(text) else uuid.uuid4().hex
        state["request_id"] = request_id
        _rewrite_query(scope)
        status = 500
        response_started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                if (limit := state.get("rate_limit")) is not None:
                    headers += rate_limit_headers(limit)
                if (leads := state.get("rate_limit_leads")) is not None:
                    headers += rate_limit_headers(leads, prefix="X-RateLimit-Leads")
                message = {**message, "headers": headers}
            await send(message)

        try:
            with structlog.contextvars.bound_contextvars(request_id=request_id):
                body_receive = receive
                if scope["method"] in _BODY_METHODS:
                    replay = await self._read_body(scope, receive)
                    if replay is None:
                        message = f"request body over {self.max_body_bytes} bytes"
                        await _send_error(
                            send_with_headers,
                            413,
                            error_body("invalid_request", message),
                        )
                        return
                    body_receive = replay
                    _json_content_type(scope)
                # A GET of a read route: see service.api.fastlane.
                if self.lane is None or not await self.lane.handle(
                    scope, receive, send_with_headers
                ):
                    await self.app(scope, body_receive, send_with_headers)
        except Exception:  # noqa: BLE001 # the one boundary: no exception may leak as a traceback
            _log.exception(
                "request_failed",
                request_id=request_id,
                method=scope["method"],
                path=scope["path"],
            )
            if not response_started:
                body = error_body(
                    "internal_error",
                    "internal error; quote the request id when reporting it",
                    request_id=request_id,
                )
                await _send_error(send_with_headers, 500, body)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.observe(
                scope["method"], template, status, time.perf_counter() - started_at
            )
