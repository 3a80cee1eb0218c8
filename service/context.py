"""Wiring: from loaded settings to a store engine, compiled mappings and syncers."""

from __future__ import annotations

from functools import cached_property

from sqlalchemy.engine import Engine

from connectors import source_class
from connectors.base import ConnectorConfig, Source
from connectors.errors import ConfigError
from engine.destinations import Destination, StoreDestination
from engine.httpdest import HttpDestination
from engine.mapping import CompiledMapping, compile_mapping
from engine.sync import Syncer
from service.settings import Settings
from state.db import make_engine
from state.migrate import current_revision, head_revision, upgrade

__all__ = ["AppContext"]


class AppContext:
    """Everything a command needs, built lazily from one ``Settings``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._mappings: dict[str, CompiledMapping] = {}

    @cached_property
    def db(self) -> Engine:
        """The store engine; the schema is brought up to date on first use."""
        engine = make_engine(self.settings.store_url())
        if current_revision(engine) != head_revision():
            upgrade(engine)
        return engine

    def close(self) -> None:
        """Close the store's connections."""
        if "db" in self.__dict__:
            self.db.dispose()

    def connector(self, name: str) -> ConnectorConfig:
        """The config of the connector called ``name``."""
        for cfg in self.settings.connectors:
            if cfg.name == name:
                return cfg
        known = ", ".join(c.name for c in self.settings.connectors) or "none"
        raise ConfigError(f"no connector named '{name}' (configured: {known})")

    def connectors(self, names: list[str] | None = None) -> list[ConnectorConfig]:
        """The named connectors, or every enabled one."""
        if names:
            return [self.connector(n) for n in names]
        return [c for c in self.settings.connectors if c.enabled]

    def mapping(self, cfg: ConnectorConfig) -> CompiledMapping:
        """The connector's mapping, compiled once."""
        if cfg.name not in self._mappings:
            spec, file, locate = self.settings.mapping_source(cfg)
            self._mappings[cfg.name] = compile_mapping(
                spec, lead_fields=self.settings.lead_fields, file=file, locate=locate
            )
        return self._mappings[cfg.name]

    def source(self, cfg: ConnectorConfig) -> Source:
        """A new connector instance for ``cfg``."""
        return source_class(cfg.type).from_config(cfg, self.mapping(cfg).hints())

    def destination(self) -> Destination:
        """Where leads are written: the store, or one shared remote lead API client."""
        remote = self.settings.destination.http
        if self.settings.destination.type != "http" or remote is None:
            return StoreDestination()
        # one client (and one client-side rate budget) for every syncer of the process
        shared: Destination | None = self.__dict__.get("_http_destination")
        if shared is None:
            shared = HttpDestination(
                url=remote.url,
                api_key=remote.api_key.get_secret_value(),
                batch_size=remote.batch_size,
                requests_per_minute=remote.requests_per_minute,
                leads_per_minute=remote.leads_per_minute,
                timeout=remote.timeout,
            )
            self.__dict__["_http_destination"] = shared
        return shared

    def syncer(self, cfg: ConnectorConfig) -> Syncer:
        """A syncer for one connector (the caller closes ``syncer.source``)."""
        return Syncer(
            db=self.db,
            cfg=cfg,
            source=self.source(cfg),
            mapping=self.mapping(cfg),
            destination=self.destination(),
        )
