"""Versioned schema migrations (Alembic), run from code: ``leadsync db upgrade``.

Alembic is imported only when a migration really runs: every command checks the store's
revision first, and a store that is current costs one query, not Alembic's import and
the parsing of every migration script.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["HEAD", "current_revision", "head_revision", "script_head", "upgrade"]

_SCRIPTS = Path(__file__).with_name("migrations")

#: The newest revision in ``migrations/versions`` (a test checks it against Alembic's).
HEAD = "0006"


def _config() -> Config:
    from alembic.config import Config  # only when migrating

    cfg = Config()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    return cfg


def head_revision() -> str:
    """The newest revision this version of leadsync knows."""
    return HEAD


def script_head() -> str | None:
    """The head revision as Alembic reads it from the migration scripts."""
    from alembic.script import ScriptDirectory  # only when asked

    return ScriptDirectory.from_config(_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(
            sa.text("SELECT version_num FROM alembic_version")
        ).scalar_one_or_none()


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str]:
    """Create or migrate the schema to ``revision``; returns (before, after)."""
    from alembic import command  # only when migrating

    before = current_revision(engine)
    cfg = _config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    return before, current_revision(engine) or ""
