"""Shared fixtures: a migrated store on SQLite and, when it answers, on PostgreSQL.

PostgreSQL: each test session creates its own database on the server at
``LEADSYNC_TEST_PG`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``)
and drops it at the end; each test gets its own schema inside it.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Engine, make_url

from state.db import make_engine
from state.migrate import upgrade

PG_URL = os.environ.get(
    "LEADSYNC_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _pg_reachable() -> bool:
    url = make_url(PG_URL)
    try:
        with socket.create_connection((url.host or "127.0.0.1", url.port or 5432), 1):
            return True
    except OSError:
        return False


PG_AVAILABLE = _pg_reachable()
STORE_BACKENDS = [
    "sqlite",
    pytest.param(
        "postgres",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(not PG_AVAILABLE, reason="PostgreSQL test server down"),
        ],
    ),
]


@pytest.fixture(name="pg_database", scope="session")
def pg_database_fixture() -> Iterator[str]:
    """A database of our own on the test server, dropped at the end of the session."""
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    name = f"leadsync_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(name="db_url", params=STORE_BACKENDS)
def db_url_fixture(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """The URL of an empty store: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    base = request.getfixturevalue("pg_database")
    schema = f"t_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(name="db")
def db_fixture(db_url: str) -> Iterator[Engine]:
    """A migrated store engine."""
    engine = make_engine(db_url)
    upgrade(engine)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
