"""``FastRoute``: a route declared for FastAPI, served without its per-request solver.

FastAPI resolves the dependency tree and validates each query parameter on its own,
with type introspection, on every request: ~200 us for ``GET /v1/leads`` (14
parameters and the key check), more than its SQL. A ``FastRoute`` keeps the route
exactly as declared, so ``/openapi.json`` documents the same parameters, security
schemes and responses, and compiles the declaration once into a handler that

1. resolves the dependencies other than the key check, honouring
   ``app.dependency_overrides``,
2. checks the key (``KeyRequirement.check``: 401, 429, 403, as ``require`` does),
3. validates every query parameter in one pydantic call, with a model built from the
   endpoint's own annotations (so the same rules, messages and 400 ``details``),
4. calls the endpoint, which must return a ``Response``.

Steps 2 to 4 read the store (the key check does too), so they run in one call to the
thread pool for a plain ``def`` endpoint; an ``async def`` endpoint is then awaited on
the event loop. One call rather than one per step: each hand-over between the loop
and a worker thread costs a wake-up and a wait for the GIL.

It serves what the read routes declare: ``Request``, ``str`` path parameters, query
parameters, ``require(...)`` and dependencies that take nothing or the request. Any
other declaration is refused when the app is built, never silently skipped.
"""

from __future__ import annotations

import asyncio
import inspect
import typing
import weakref
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

import fastapi.routing
from fastapi import Request, Response, params
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from service.api.auth import (
    Credentials,
    KeyRequirement,
    key_requirement,
    read_credentials,
)
from service.api.deps import get_clock

__all__ = ["FastRoute"]

_Handler = Callable[[Request], Coroutine[Any, Any, Response]]
_EMPTY = inspect.Parameter.empty
_CALLS_WITH_REQUEST: weakref.WeakKeyDictionary[Callable[..., Any], bool] = (
    weakref.WeakKeyDictionary()
)


async def _provide(request: Request, call: Callable[..., Any]) -> Any:
    """The value of a dependency that takes nothing or the request (or its override)."""
    overrides: dict[Any, Any] = request.app.dependency_overrides
    call = overrides.get(call, call)
    with_request = _CALLS_WITH_REQUEST.get(call)
    if with_request is None:
        with_request = bool(inspect.signature(call).parameters)
        _CALLS_WITH_REQUEST[call] = with_request
    value = call(request) if with_request else call()
    return await value if inspect.isawaitable(value) else value


@dataclass
class _Plan:
    """How to call one endpoint, worked out once from its declaration."""

    endpoint: Callable[..., Any]
    path_names: frozenset[str] = frozenset()
    keys: list[KeyRequirement] = field(default_factory=list)
    providers: list[tuple[str | None, Callable[..., Any]]] = field(default_factory=list)
    request_name: str | None = None
    path: list[str] = field(default_factory=list)
    query: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    model: type[BaseModel] | None = None

    def add_dependency(self, name: str | None, depends: params.Depends) -> None:
        call = depends.dependency
        if call is None:
            raise TypeError(f"FastRoute: {name}: Depends() needs a callable")
        requirement = key_requirement(call)
        if requirement is not None:
            self.keys.append(requirement)
            return
        wanted = list(inspect.signature(call).parameters.values())
        if len(wanted) > 1 or (
            wanted and wanted[0].annotation not in (Request, "Request")
        ):
            raise TypeError(f"FastRoute: {call!r} may only take the request")
        self.providers.append((name, call))

    def add_parameter(self, parameter: inspect.Parameter, hint: Any) -> None:
        name = parameter.name
        base, extras = hint, tuple[Any, ...]()
        if typing.get_origin(hint) is Annotated:
            base, *rest = typing.get_args(hint)
            extras = tuple(rest)
        depends = [
            m for m in (*extras, parameter.default) if isinstance(m, params.Depends)
        ]
        if depends:
            self.add_dependency(name, depends[0])
        elif base is Request:
            self.request_name = name
        elif name in self.path_names:
            if base is not str or extras:
                raise TypeError(f"FastRoute: path parameter {name} must be a plain str")
            self.path.append(name)
        elif any(
            isinstance(m, params.Param | params.Body)
            and not isinstance(m, params.Query)
            for m in (*extras, parameter.default)
        ):
            raise TypeError(f"FastRoute: {name} is not a query parameter")
        else:
            self.query[name] = (
                hint,
                ... if parameter.default is _EMPTY else parameter.default,
            )


def _compile(route: APIRoute, dependencies: list[params.Depends]) -> _Plan:
    endpoint = route.endpoint
    plan = _Plan(endpoint=endpoint, path_names=frozenset(route.param_convertors))
    for depends in dependencies:
        plan.add_dependency(None, depends)
    hints = typing.get_type_hints(endpoint, include_extras=True)
    for parameter in inspect.signature(endpoint).parameters.values():
        plan.add_parameter(parameter, hints.get(parameter.name, parameter.annotation))
    if plan.query:
        plan.model = create_model(  # type: ignore[call-overload]
            f"{endpoint.__name__}_query",
            __config__=ConfigDict(extra="ignore"),
            **plan.query,
        )
    return plan


def _admit(
    plan: _Plan,
    request: Request,
    clock: Callable[[], datetime] | None,
    credentials: Credentials,
    kwargs: dict[str, Any],
) -> None:
    """Check the key (401, 429, 403), then add the query parameters (400) to kwargs.

    ``clock`` is None when the route asks for no key.
    """
    if clock is not None:
        for requirement in plan.keys:
            requirement.check(request, clock, credentials)
    if plan.model is not None:
        try:
            values = plan.model.model_validate(dict(request.query_params))
        except ValidationError as exc:
            errors = [{**e, "loc": ("query", *e["loc"])} for e in exc.errors()]
            raise RequestValidationError(errors) from None
        kwargs.update((name, getattr(values, name)) for name in plan.query)


def _respond(plan: _Plan, response: Any) -> Response:
    if not isinstance(response, Response):
        raise TypeError(f"FastRoute: {plan.endpoint.__name__} must return a Response")
    return response


def _handler(plan: _Plan) -> _Handler:
    is_async = inspect.iscoroutinefunction(plan.endpoint)

    def admit_and_call(
        request: Request,
        clock: Callable[[], datetime] | None,
        credentials: Credentials,
        kwargs: dict[str, Any],
    ) -> Any:
        _admit(plan, request, clock, credentials, kwargs)
        return plan.endpoint(**kwargs)

    async def handler(request: Request) -> Response:
        kwargs: dict[str, Any] = {}
        for name, call in plan.providers:
            value = await _provide(request, call)
            if name is not None:
                kwargs[name] = value
        path_params = request.path_params
        kwargs.update((name, path_params[name]) for name in plan.path)
        if plan.request_name is not None:
            kwargs[plan.request_name] = request
        clock: Callable[[], datetime] | None = None
        credentials: Credentials = (None, None)
        if plan.keys:
            clock = await _provide(request, get_clock)
            credentials = await read_credentials(request)
        if not is_async:
            return _respond(
                plan,
                await asyncio.to_thread(
                    admit_and_call, request, clock, credentials, kwargs
                ),
            )
        if plan.keys:
            await asyncio.to_thread(_admit, plan, request, clock, credentials, kwargs)
        else:
            _admit(plan, request, clock, credentials, kwargs)  # no I/O: on the loop
        return _respond(plan, await plan.endpoint(**kwargs))

    return handler


class FastRoute(APIRoute):
    """An ``APIRoute`` answered by a handler compiled once (see the module doc)."""

    def get_route_handler(self) -> _Handler:
        """The compiled handler, for this route as declared or as included."""
        dependencies = list(self.dependencies)
        # FastAPI builds a handler per inclusion, with the including routers'
        # dependencies added; its context is not public, so look without relying on it.
        context_var = getattr(fastapi.routing, "_effective_route_context_var", None)
        context = context_var.get() if context_var is not None else None
        if context is not None and getattr(context, "original_route", None) is self:
            dependencies = list(context.dependencies)
        return _handler(_compile(self, dependencies))
