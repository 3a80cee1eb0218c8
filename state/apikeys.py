"""API keys: created once, stored as a SHA-256 hash, verified in constant time.

A key reads ``lsk_<prefix>_<secret>``. ``prefix`` (8 hex characters, stored in clear)
finds the row; the SHA-256 of the whole key is compared with ``hmac.compare_digest``.
A revoked key fails verification from the moment the revocation commits.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlmodel import SQLModel
from ulid import ULID

from state.errors import StateError
from state.models import ApiKey

__all__ = [
    "KEY_PREFIX",
    "SCOPES",
    "TOUCH_EVERY",
    "ApiKeyExists",
    "ApiKeyInfo",
    "ApiKeyNotFound",
    "UnknownScopeError",
    "create_api_key",
    "hash_key",
    "list_api_keys",
    "parse_scopes",
    "revoke_api_key",
    "touch_api_key",
    "verify_api_key",
]

KEY_PREFIX = "lsk"
#: Every scope of contract §5; ``admin`` grants all the others.
SCOPES = ("leads:read", "leads:write", "leads:sync_create", "leads:delete", "admin")
_TABLE: sa.Table = SQLModel.metadata.tables[ApiKey.__tablename__]
#: ``last_used_at`` is written at most this often per key.
#: ``last_used_at`` is written at most this often per key.
TOUCH_EVERY = timedelta(minutes=1)


class UnknownScopeError(StateError, ValueError):
    """Raised when a key is created with a scope that does not exist."""


class ApiKeyExists(StateError):
    """Raised when a key is created with a name already taken."""


class ApiKeyNotFound(StateError, LookupError):
    """Raised when no key has the given name."""


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    """What the store knows of a key (never the key itself)."""

    id: str
    name: str
    prefix: str
    scopes: tuple[str, ...]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    def allows(self, scope: str) -> bool:
        """Whether the key holds ``scope`` (``admin`` holds every scope)."""
        return scope in self.scopes or "admin" in self.scopes


def hash_key(key: str) -> str:
    """The SHA-256 hex digest stored for a key."""
    return hashlib.sha256(key.encode()).hexdigest()


def parse_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """Validate and de-duplicate scopes (comma-separated items are split)."""
    found: list[str] = []
    for item in scopes:
        for scope in (s.strip() for s in item.split(",")):
            if not scope:
                continue
            if scope not in SCOPES:
                raise UnknownScopeError(
                    f"unknown scope '{scope}' (valid: {', '.join(SCOPES)})"
                )
            if scope not in found:
                found.append(scope)
    if not found:
        raise UnknownScopeError(f"give at least one scope (valid: {', '.join(SCOPES)})")
    return tuple(found)


def _info(row: sa.RowMapping) -> ApiKeyInfo:
    return ApiKeyInfo(
        id=row["id"],
        name=row["name"],
        prefix=row["prefix"],
        scopes=tuple(row["scopes"] or ()),
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
    )


def create_api_key(
    session: Session, *, name: str, scopes: Iterable[str], now: datetime
) -> tuple[ApiKeyInfo, str]:
    """Create a key; returns its record and the key, which is never shown again."""
    valid = parse_scopes(scopes)
    name = name.strip()
    if not name:
        raise StateError("a key needs a name")
    exists = session.execute(
        sa.select(_TABLE.c.id).where(_TABLE.c.name == name)
    ).first()
    if exists is not None:
        raise ApiKeyExists(f"an API key named '{name}' already exists")
    prefix = secrets.token_hex(4)
    key = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    row = {
        "id": f"key_{ULID()}",
        "name": name,
        "prefix": prefix,
        "key_hash": hash_key(key),
        "scopes": list(valid),
        "created_at": now,
        "last_used_at": None,
        "revoked_at": None,
    }
    try:
        with session.begin_nested():
            session.execute(_TABLE.insert().values(**row))
    except IntegrityError:
        raise ApiKeyExists(f"an API key named '{name}' already exists") from None
    info = ApiKeyInfo(
        id=str(row["id"]),
        name=name,
        prefix=prefix,
        scopes=valid,
        created_at=now,
        last_used_at=None,
        revoked_at=None,
    )
    return info, key


def list_api_keys(session: Session) -> list[ApiKeyInfo]:
    """Every key, oldest first, revoked ones included."""
    rows = session.execute(sa.select(_TABLE).order_by(_TABLE.c.created_at, _TABLE.c.id))
    return [_info(r) for r in rows.mappings()]


def revoke_api_key(session: Session, *, name: str, now: datetime) -> ApiKeyInfo:
    """Revoke a key by name (revoking twice keeps the first time)."""
    row = (
        session.execute(sa.select(_TABLE).where(_TABLE.c.name == name))
        .mappings()
        .first()
    )
    if row is None:
        raise ApiKeyNotFound(f"no API key named '{name}'")
    if row["revoked_at"] is None:
        session.execute(
            _TABLE.update().where(_TABLE.c.id == row["id"]).values(revoked_at=now)
        )
    info = _info(row)
    return replace(info, revoked_at=info.revoked_at or now)


def verify_api_key(session: Session, key: str) -> ApiKeyInfo | None:
    """The live key matching ``key``, or None (malformed, unknown or revoked)."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    digest = hash_key(key)
    rows = session.execute(
        sa.select(_TABLE).where(_TABLE.c.prefix == parts[1])
    ).mappings()
    match = None
    for row in rows:
        # Compare every candidate so timing does not depend on which one matched.
        if hmac.compare_digest(row["key_hash"], digest) and row["revoked_at"] is None:
            match = row
    return _info(match) if match is not None else None


def touch_api_key(session: Session, *, key: ApiKeyInfo, now: datetime) -> bool:
    """Record use of a key, at most once a minute; returns whether it wrote."""
    if key.last_used_at is not None and now - key.last_used_at < TOUCH_EVERY:
        return False
    session.execute(
        _TABLE.update().where(_TABLE.c.id == key.id).values(last_used_at=now)
    )
    return True
