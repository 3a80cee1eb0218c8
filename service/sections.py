"""The sections of ``leadsync.yaml``, and the union of the connector config models.

Every model forbids unknown keys, so a typo fails at startup instead of being ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self, Union

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    SecretStr,
    Tag,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from connectors import CONFIG_MODELS
from connectors.base import ConnectorConfig, parse_duration
from service.configerrors import KeyedValueError
from service.configfile import KeyPath, format_key

__all__ = [
    "AnyConnectorConfig",
    "ApiSettings",
    "DaemonSettings",
    "DestinationSettings",
    "HttpDestinationSettings",
    "LoggingSettings",
    "RateLimitSettings",
    "StoreSettings",
    "TlsSettings",
    "check_secrets",
    "iter_secrets",
]

_PLACEHOLDERS = frozenset(
    {"changeme", "change-me", "...", "xxx", "<token>", "secret", "password", "todo"}
)
_PLACEHOLDER_SHAPE = re.compile(r"x{3,}|\.{3,}|<[^>]*>")

_HTTP_URL: TypeAdapter[AnyHttpUrl] = TypeAdapter(AnyHttpUrl)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _http_url(value: str) -> str:
    try:
        _HTTP_URL.validate_python(value)
    except ValidationError as exc:
        raise ValueError(f"not an http(s) URL: {exc.errors()[0]['msg']}") from None
    return value


def _database_url(value: str) -> str:
    try:
        make_url(value)
    except ArgumentError:
        raise ValueError("not a database URL (e.g. sqlite:///./leadsync.db)") from None
    return value


class StoreSettings(_Section):
    """The lead store.

    A relative SQLite path (``sqlite:///./var/leadsync.db``) is relative to the folder
    of the config file, not to the working directory; ``Settings.store_url()`` resolves
    it (a relative path set through ``LEADSYNC_STORE__URL`` too).
    """

    url: Annotated[str, AfterValidator(_database_url)] = "sqlite:///./var/leadsync.db"

    def resolved_url(self, base: Path) -> str:
        """The URL with a relative SQLite path made absolute against ``base``."""
        url = make_url(self.url)
        database = url.database
        if url.get_backend_name() != "sqlite" or not database:
            return self.url
        if database == ":memory:" or database.startswith("file:"):
            return self.url
        path = Path(database).expanduser()
        if not path.is_absolute():
            path = base / path
        return url.set(database=str(path)).render_as_string(hide_password=False)


class RateLimitSettings(_Section):
    """Per-key limits of the lead API."""

    sync_requests_per_minute: int = Field(default=50, ge=1)
    sync_leads_per_minute: int = Field(default=5000, ge=1)
    requests_per_minute: int = Field(default=1200, ge=1)


class ApiSettings(_Section):
    """The lead API server."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8787, ge=1, le=65535)
    rate_limits: RateLimitSettings = Field(default_factory=RateLimitSettings)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)


class TlsSettings(_Section):
    """TLS for HTTPS connectors: an extra CA bundle file."""

    ca_bundle: str | None = None


class HttpDestinationSettings(_Section):
    """A remote lead API that receives the synced leads (``POST /v1/leads/sync``)."""

    url: Annotated[str, AfterValidator(_http_url)]
    api_key: SecretStr
    batch_size: int = Field(default=100, ge=1, le=100)
    requests_per_minute: int = Field(default=50, ge=1)
    leads_per_minute: int = Field(default=5000, ge=1)
    timeout: float = Field(default=30, gt=0)


class DestinationSettings(_Section):
    """Where synced leads go: the embedded store or a remote lead API."""

    type: Literal["store", "http"] = "store"
    http: HttpDestinationSettings | None = None

    @model_validator(mode="after")
    def _http_needs_block(self) -> Self:
        if self.type == "http" and self.http is None:
            raise ValueError("type 'http' needs an 'http' block with url and api_key")
        return self


class DaemonSettings(_Section):
    """``leadsync run``: shutdown grace, connector leases and failure backoff."""

    shutdown_grace: timedelta = timedelta(seconds=30)
    lease_ttl: timedelta = timedelta(seconds=30)
    misfire_grace: timedelta = timedelta(seconds=60)
    failure_backoff: timedelta = timedelta(seconds=30)
    max_failure_backoff: timedelta = timedelta(hours=1)
    owner: str | None = Field(default=None, max_length=150)

    @field_validator(
        "shutdown_grace",
        "lease_ttl",
        "misfire_grace",
        "failure_backoff",
        "max_failure_backoff",
        mode="before",
    )
    @classmethod
    def _duration(cls, value: object) -> object:
        return parse_duration(value)

    @model_validator(mode="after")
    def _positive(self) -> Self:
        if self.lease_ttl < timedelta(seconds=2):
            raise ValueError("lease_ttl must be at least 2s")
        if self.shutdown_grace < timedelta(0):
            raise ValueError("shutdown_grace must not be negative")
        return self


class LoggingSettings(_Section):
    """Log level and format (``auto``: JSON unless stderr is a terminal)."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


def _connector_kind(value: Any) -> Any:
    if isinstance(value, dict):
        return value.get("type")
    return getattr(value, "type", None)


def _connector_union() -> Any:
    # Built from the registry, so a new connector needs no change here. With one model
    # Union[...] collapses to it, and pydantic still tags it through the discriminator.
    tagged = tuple(Annotated[model, Tag(kind)] for kind, model in CONFIG_MODELS.items())
    return Annotated[Union[tagged], Discriminator(_connector_kind)]  # noqa: UP007


if TYPE_CHECKING:
    AnyConnectorConfig = ConnectorConfig
else:
    AnyConnectorConfig = _connector_union()


def iter_secrets(value: Any, path: KeyPath = ()) -> Iterator[tuple[KeyPath, SecretStr]]:
    """Every ``SecretStr`` inside a model (or dict or list), with its key path."""
    if isinstance(value, SecretStr):
        yield path, value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from iter_secrets(getattr(value, name), (*path, name))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from iter_secrets(item, (*path, key))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from iter_secrets(item, (*path, i))


def check_secrets(model: BaseModel) -> None:
    """Refuse empty and placeholder secrets (``changeme``, ``<token>``...) by key."""
    for path, secret in iter_secrets(model):
        text = secret.get_secret_value().strip()
        if not text:
            raise KeyedValueError(f"{format_key(path)} is empty", path)
        if text.lower() in _PLACEHOLDERS or _PLACEHOLDER_SHAPE.fullmatch(text.lower()):
            raise KeyedValueError(
                f"{format_key(path)} is a placeholder, not a secret: set it, e.g. "
                "from an environment variable with ${VAR}",
                path,
            )
