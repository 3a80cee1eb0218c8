"""``ReadLane``: the GET routes of ``FastRoute`` answered straight from the middleware.

A request through the whole FastAPI app passes its error, exception, exit-stack,
body-limit and telemetry middlewares, then a router that matches included routers
route by route: ~90 us for ``GET /v1/leads/{id}``, whose own handler (key check,
SQL, response) takes ~50. ``service.api.middleware.ApiMiddleware`` hands a GET whose
path is one of a ``FastRoute`` router's paths to the lane instead, which

1. matches the path against those routes' own patterns and converts its parameters,
2. calls the route's compiled handler (``FastRoute.get_route_handler``: the key
   check, ``dependency_overrides``, query validation and the endpoint, as declared),
3. answers an exception with the handler the app registered for it (by its class),
   as Starlette's ``ExceptionMiddleware`` would; any other exception goes on up to
   ``ApiMiddleware``, which answers the generic 500.

Anything else (another method, a path of no lane route, an app mounted under a root
path) goes through the app as usual. The routes stay declared on the app, so
``/openapi.json`` documents them unchanged.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from fastapi import FastAPI, Request, Response
from starlette.types import Receive, Scope, Send

from service.api.fastroute import FastRoute

__all__ = ["ReadLane"]

_Handler = Callable[[Request], Awaitable[Response]]


class ReadLane:
    """GET requests of ``FastRoute`` routes, served without the app's own stack."""

    def __init__(self, app: FastAPI, routes: Iterable[Any]) -> None:
        self._app = app
        self._routes: list[tuple[FastRoute, _Handler]] = [
            (route, route.get_route_handler())
            for route in routes
            if isinstance(route, FastRoute) and route.methods == {"GET"}
        ]

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """Answer the request if it is a lane route's; False (nothing sent) if not."""
        if scope["method"] != "GET" or scope.get("root_path"):
            return False
        matched = next(
            (
                (route, handler, found)
                for route, handler in self._routes
                if (found := route.path_regex.match(scope["path"])) is not None
            ),
            None,
        )
        if matched is None:
            return False
        route, handler, found = matched
        scope["app"] = self._app
        scope["path_params"] = {
            name: route.param_convertors[name].convert(value)
            for name, value in found.groupdict().items()
        }
        scope["route"] = route
        scope["endpoint"] = route.endpoint
        request = Request(scope, receive)
        try:
            response = await handler(request)
        except Exception as exc:  # noqa: BLE001 # _handled re-raises what no handler takes
            response = await self._handled(request, exc)
        await response(scope, receive, send)
        return True

    async def _handled(self, request: Request, exc: Exception) -> Response:
        handlers: dict[Any, Callable[..., Any]] = self._app.exception_handlers
        for cls in type(exc).__mro__:
            handler = handlers.get(cls)
            if handler is not None:
                response = handler(request, exc)
                if inspect.isawaitable(response):
                    response = await response
                if not isinstance(response, Response):
                    raise TypeError(f"exception handler {handler!r} gave no Response")
                return response
        raise exc
