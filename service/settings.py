"""The settings: pydantic-settings models of ``leadsync.yaml`` (contract §2).

Precedence: keyword arguments, then ``LEADSYNC_*`` environment variables (``__`` between
nested keys: ``LEADSYNC_STORE__URL``), then the YAML file. Build them with
``load_settings``, which reports every problem with its file, key path and line.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextvars import ContextVar
from importlib import resources
from pathlib import Path
from typing import Any, Self

from pydantic import (
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from connectors import CONFIG_MODELS
from connectors.base import ConnectorConfig
from connectors.errors import ConfigError
from engine.fields import LeadFieldSpec
from service.configerrors import KeyedValueError, validation_error
from service.configfile import (
    KeyPath,
    LineIndex,
    format_key,
    interpolate,
    load_yaml,
    load_yaml_text,
)
from service.logconfig import register_secret
from service.sections import (
    AnyConnectorConfig,
    ApiSettings,
    DaemonSettings,
    DestinationSettings,
    HttpDestinationSettings,
    LoggingSettings,
    RateLimitSettings,
    StoreSettings,
    TlsSettings,
    check_secrets,
    iter_secrets,
)

__all__ = [
    "ApiSettings",
    "DaemonSettings",
    "DestinationSettings",
    "HttpDestinationSettings",
    "LoggingSettings",
    "RateLimitSettings",
    "Settings",
    "StoreSettings",
    "TlsSettings",
    "load_settings",
]


_yaml_data: ContextVar[dict[str, Any] | None] = ContextVar(
    "leadsync_yaml", default=None
)


class _YamlDataSource(PydanticBaseSettingsSource):
    """The already loaded and interpolated YAML document, lowest precedence."""

    def __init__(self, settings_cls: type[BaseSettings], data: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._data = data

    def get_field_value(
        self,
        field: Any,  # noqa: ARG002 (the signature pydantic-settings calls)
        field_name: str,
    ) -> tuple[Any, str, bool]:
        """Unused: ``__call__`` returns the whole document at once."""
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


class Settings(BaseSettings):
    """The whole configuration file."""

    model_config = SettingsConfigDict(
        env_prefix="LEADSYNC_", env_nested_delimiter="__", extra="forbid"
    )

    store: StoreSettings = Field(default_factory=StoreSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    lead_fields: list[LeadFieldSpec] = Field(default_factory=list)
    connectors: list[AnyConnectorConfig] = Field(default_factory=list)
    tls: TlsSettings = Field(default_factory=TlsSettings)
    destination: DestinationSettings = Field(default_factory=DestinationSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    daemon: DaemonSettings = Field(default_factory=DaemonSettings)

    _config_file: Path | None = PrivateAttr(default=None)
    _line_index: LineIndex = PrivateAttr(default_factory=LineIndex)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003 (no .env files)
        file_secret_settings: PydanticBaseSettingsSource,  # noqa: ARG003 (nor secret dirs)
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keyword arguments, then the environment, then the YAML file."""
        data = _yaml_data.get() or {}
        return init_settings, env_settings, _YamlDataSource(settings_cls, data)

    @field_validator("lead_fields")
    @classmethod
    def _unique_fields(cls, value: list[LeadFieldSpec]) -> list[LeadFieldSpec]:
        _unique([f.name for f in value], "lead_fields", "lead field")
        return value

    @field_validator("connectors")
    @classmethod
    def _unique_connectors(cls, value: list[ConnectorConfig]) -> list[ConnectorConfig]:
        _unique([c.name for c in value], "connectors", "connector name")
        return value

    @model_validator(mode="after")
    def _no_placeholder_secrets(self) -> Self:
        check_secrets(self)
        return self

    @property
    def config_file(self) -> Path | None:
        """The absolute path of the file these settings were loaded from, if any."""
        return self._config_file

    @property
    def line_index(self) -> LineIndex:
        """Lines of the config file's keys, for error messages."""
        return self._line_index

    @property
    def base_dir(self) -> Path:
        """The folder relative paths are resolved against: the config file's folder."""
        return self._config_file.parent if self._config_file else Path.cwd()

    def store_url(self) -> str:
        """The store URL, with a relative SQLite path resolved against ``base_dir``."""
        return self.store.resolved_url(self.base_dir)

    def mapping_source(
        self, connector: ConnectorConfig
    ) -> tuple[dict[str, Any], str, Callable[[KeyPath], int | None]]:
        """A connector's mapping spec, its file label and a key path -> line lookup.

        Inline mappings come from the config file; a string names a YAML file relative
        to the config's folder; without ``mapping`` the type's shipped default is used.
        """
        index = next(
            (i for i, c in enumerate(self.connectors) if c.name == connector.name), None
        )
        if index is None:
            raise ValueError(f"connector {connector.name!r} is not in these settings")
        key = ("connectors", index, "mapping")
        label = str(self._config_file) if self._config_file else "<settings>"
        spec = connector.mapping
        if isinstance(spec, dict):
            return spec, label, self._line_index.sub(key).line_of
        if isinstance(spec, str):
            path = Path(spec).expanduser()
            path = path if path.is_absolute() else self.base_dir / path
            if not path.is_file():
                raise ConfigError(
                    f"mapping file not found: {path}",
                    file=label,
                    key=format_key(key),
                    line=self._line_index.line_of(key),
                )
            data, lines = load_yaml(path)
            return _mapping_dict(interpolate(data, lines, str(path)), str(path), lines)
        # `<type>-<object>.yaml` first (hubspot-deals.yaml), then `<type>.yaml`.
        names = [f"{connector.type}.yaml"]
        kind = getattr(connector, "object", None)
        if isinstance(kind, str) and kind:
            names.insert(0, f"{connector.type}-{kind}.yaml")
        folder = resources.files("engine").joinpath("mappings")
        name = next((n for n in names if folder.joinpath(n).is_file()), names[-1])
        resource = folder.joinpath(name)
        if not resource.is_file():
            where = ("connectors", index)
            raise ConfigError(
                f"connector {connector.name} has no mapping and type {connector.type} "
                "ships no default: add `mapping:`",
                file=label,
                key=format_key(where),
                line=self._line_index.line_of(where),
            )
        text_label = f"engine/mappings/{name}"
        data, lines = load_yaml_text(resource.read_text(encoding="utf-8"), text_label)
        return _mapping_dict(interpolate(data, lines, text_label), text_label, lines)


def load_settings(path: str | Path | None = None) -> Settings:
    """Load, interpolate and validate the config file.

    ``path`` defaults to ``$LEADSYNC_CONFIG``, else ``./leadsync.yaml``. Relative
    connector ``path`` values are resolved against the config file's folder, and every
    secret is registered for redaction from the logs.

    Raises:
        ConfigError: the file is missing or invalid. Validation problems are listed in
            ``problems``, each with its file, key path and line.
    """
    if path is None:
        path = os.environ.get("LEADSYNC_CONFIG") or "leadsync.yaml"
    label = str(path)
    data, index = load_yaml(Path(path))
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("the config file must be a YAML mapping", file=label, line=1)
    data = interpolate(data, index, label)
    token = _yaml_data.set(data)
    try:
        settings = Settings()
    except ValidationError as exc:
        raise validation_error(
            exc,
            model=Settings,
            data=data,
            index=index,
            file=label,
            union_lists={"connectors": dict(CONFIG_MODELS)},
        ) from None
    finally:
        _yaml_data.reset(token)
    settings._config_file = Path(path).resolve()
    settings._line_index = index
    settings.connectors = [
        _resolve_path(c, settings.base_dir) for c in settings.connectors
    ]
    for _, secret in iter_secrets(settings):
        register_secret(secret.get_secret_value())
    return settings


def _unique(names: list[str], key: str, what: str) -> None:
    first: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in first:
            raise KeyedValueError(
                f"duplicate {what} '{name}' (already at {key}[{first[name]}])",
                (key, i, "name"),
            )
        first[name] = i


def _resolve_path(cfg: ConnectorConfig, base: Path) -> ConnectorConfig:
    raw = getattr(cfg, "path", None)
    if not isinstance(raw, str):
        return cfg
    path = Path(raw).expanduser()
    return cfg.model_copy(
        update={"path": str(path if path.is_absolute() else base / path)}
    )


def _mapping_dict(
    data: Any, label: str, lines: LineIndex
) -> tuple[dict[str, Any], str, Callable[[KeyPath], int | None]]:
    if not isinstance(data, dict):
        raise ConfigError(
            "a mapping must be a YAML mapping (lead_id, fields, ...)",
            file=label,
            line=1,
        )
    return data, label, lines.line_of
