"""The ``api`` fixture: the lead API on the migrated store of the ``db`` fixture."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy.engine import Engine
from starlette.exceptions import StarletteDeprecationWarning

from engine.fields import LeadFieldSpec
from service.api import create_app
from service.api.deps import get_clock
from service.settings import Settings
from state.apikeys import SCOPES, create_api_key
from state.db import session_scope

with warnings.catch_warnings():
    # starlette asks for httpx2 (not a dependency of ours); httpx works the same here.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

T0 = datetime(2024, 1, 1, tzinfo=UTC)

LEAD_FIELDS = [
    LeadFieldSpec(name="industry", type="string"),
    LeadFieldSpec(name="team_size", type="integer"),
    LeadFieldSpec(name="budget", type="number"),
    LeadFieldSpec(name="newsletter", type="boolean"),
    LeadFieldSpec(name="signed_up", type="datetime"),
    LeadFieldSpec(name="interests", type="list"),
]


class Clock:
    """A settable clock for the app's writes."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@dataclass
class Api:
    """The app, a client, the store and helpers to make keys and leads."""

    app: FastAPI
    client: TestClient
    db: Engine
    clock: Clock
    keys: dict[tuple[str, ...], str] = field(default_factory=dict)
    seq: Iterator[int] = field(default_factory=itertools.count)

    def key(self, *scopes: str) -> str:
        """A key holding exactly ``scopes`` (made once per scope set)."""
        scopes = scopes or SCOPES
        if scopes not in self.keys:
            with session_scope(self.db) as s:
                _, key = create_api_key(
                    s, name=f"k{len(self.keys)}", scopes=scopes, now=T0
                )
            self.keys[scopes] = key
        return self.keys[scopes]

    def headers(self, *scopes: str) -> dict[str, str]:
        return {"X-API-Key": self.key(*scopes)}

    def request(self, method: str, url: str, *, scopes=("admin",), **kw: Any):
        headers = {**self.headers(*scopes), **kw.pop("headers", {})}
        return self.client.request(method, url, headers=headers, **kw)

    def create(self, **fields: Any) -> dict[str, Any]:
        body = {"email": f"lead{next(self.seq)}@example.com", **fields}
        response = self.request("POST", "/v1/leads", json=body)
        assert response.status_code == 201, response.text
        return response.json()


def make_settings(**api: Any) -> Settings:
    return Settings(lead_fields=LEAD_FIELDS, api=api)


@pytest.fixture(name="clock")
def clock_fixture() -> Clock:
    return Clock(T0)


@pytest.fixture(name="api")
def api_fixture(db: Engine, clock: Clock) -> Iterator[Api]:
    """The lead API over the ``db`` store (SQLite and PostgreSQL)."""
    app = create_app(make_settings(), db=db)
    app.dependency_overrides[get_clock] = lambda: clock
    with TestClient(app) as client:
        yield Api(app=app, client=client, db=db, clock=clock)
