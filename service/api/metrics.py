"""Prometheus metrics of one app, in a registry of its own (so tests can build many).

Per request: ``leadsync_api_requests_total{method,route,status}`` and the latency
histogram ``leadsync_api_request_duration_seconds{method,route}``, by route template
(``/v1/leads/{id}``), never by raw path. At scrape time, from the store: leads by origin
and state, failures by connector and status, the last successful sync per connector,
per connector the cursor lag, records read / written / failed (summed over runs), the
consecutive failures of a backing-off connector and the leases held (by owner). The
daemon adds ``leadsync_run_duration_seconds{connector,outcome}``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime

import sqlalchemy as sa
import structlog
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from sqlmodel import SQLModel

from state.leases import list_leases
from state.models import ConnectorCursor, Run
from state.reads import lead_counts
from state.syncstate import failure_counts

__all__ = ["CONTENT_TYPE", "MULTIPROCESS_ENV", "ApiMetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: prometheus_client's multi-process mode: set (to an empty folder) before it is
#: imported, each process writes its counters to files there (serve --workers).
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
_RUN: sa.Table = SQLModel.metadata.tables[Run.__tablename__]
_CURSOR: sa.Table = SQLModel.metadata.tables[ConnectorCursor.__tablename__]
_RUN_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_log = structlog.get_logger("leadsync.api")


class _StoreCollector(Collector):
    """Reads the store's counts when Prometheus scrapes."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        """Yield the store gauges (and ``leadsync_store_up``)."""
        leads = GaugeMetricFamily(
            "leadsync_leads", "Leads in the store.", labels=["origin", "state"]
        )
        failures = GaugeMetricFamily(
            "leadsync_failures",
            "Per-item sync failures.",
            labels=["connector", "status"],
        )
        last_sync = GaugeMetricFamily(
            "leadsync_last_successful_sync_timestamp_seconds",
            "When the last successful run of each connector finished (Unix time).",
            labels=["connector"],
        )
        up = 1
        try:
            with Session(self.engine) as session:
                for origin, (live, deleted) in sorted(lead_counts(session).items()):
                    leads.add_metric([origin, "live"], live)
                    leads.add_metric([origin, "deleted"], deleted)
                for connector, counts in sorted(failure_counts(session).items()):
                    for status, count in sorted(counts.items()):
                        failures.add_metric([connector, status], count)
                query = (
                    sa.select(_RUN.c.connector, sa.func.max(_RUN.c.finished_at))
                    .where(_RUN.c.outcome == "succeeded")
                    .group_by(_RUN.c.connector)
                )
                for connector, finished in session.execute(query):
                    if finished is not None:
                        last_sync.add_metric([connector], _timestamp(finished))
        except SQLAlchemyError:
            _log.warning("metrics_store_unreachable", exc_info=True)
            up = 0
        yield leads
        yield failures
        yield last_sync
        if up:
            try:
                yield from _sync_metrics(self.engine)
            except SQLAlchemyError:
                _log.warning("metrics_store_unreachable", exc_info=True)
                up = 0
        yield GaugeMetricFamily(
            "leadsync_store_up", "Whether the store answered the last scrape.", up
        )


def _sync_metrics(engine: Engine) -> Iterator[Metric]:
    """Per connector: cursor lag, record totals, backoff, leases."""
    now = datetime.now(UTC)
    lag = GaugeMetricFamily(
        "leadsync_cursor_lag_seconds",
        "Now minus the connector's committed cursor.",
        labels=["connector"],
    )
    records = CounterMetricFamily(
        "leadsync_records",
        "Records read, written (created, updated or deleted) and failed, all runs.",
        labels=["connector", "kind"],
    )
    backoff = GaugeMetricFamily(
        "leadsync_connector_consecutive_failures",
        "Failed runs in a row (the daemon backs off from the second).",
        labels=["connector"],
    )
    leases = GaugeMetricFamily(
        "leadsync_leases_held",
        "Unexpired connector leases, by holder.",
        labels=["connector", "owner"],
    )
    with Session(engine) as session:
        for name, ts, state in session.execute(
            sa.select(_CURSOR.c.connector, _CURSOR.c.ts, _CURSOR.c.state)
        ):
            if ts is not None:
                lag.add_metric([name], max((now - ts).total_seconds(), 0.0))
            daemon = (state or {}).get("daemon") or {}
            backoff.add_metric([name], int(daemon.get("consecutive_failures") or 0))
        sums = sa.select(
            _RUN.c.connector,
            sa.func.sum(_RUN.c.read),
            sa.func.sum(_RUN.c.created + _RUN.c.updated + _RUN.c.deleted),
            sa.func.sum(_RUN.c.failed),
        ).group_by(_RUN.c.connector)
        for name, read, written, failed in session.execute(sums):
            records.add_metric([name, "read"], int(read or 0))
            records.add_metric([name, "written"], int(written or 0))
            records.add_metric([name, "failed"], int(failed or 0))
        for lease in list_leases(session):
            held = 1 if lease.expires_at > now else 0
            leases.add_metric([lease.connector, lease.owner], held)
    yield lag
    yield records
    yield backoff
    yield leases


def _timestamp(value: object) -> float:
    # Defensive: a raw text value if the dialect skipped the column's type.
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise TypeError(f"unexpected finished_at {value!r}")
    moment = value if value.tzinfo else value.replace(tzinfo=UTC)
    return moment.timestamp()


class ApiMetrics:
    """The metrics of one app."""

    def __init__(self, engine: Engine) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "leadsync_api_requests",
            "API requests by route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "leadsync_api_request_duration_seconds",
            "API request latency by route template.",
            ["method", "route"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.run_duration = Histogram(
            "leadsync_run_duration_seconds",
            "Duration of the daemon's sync runs.",
            ["connector", "outcome"],
            buckets=_RUN_BUCKETS,
            registry=self.registry,
        )
        self.quota = Gauge(
            "leadsync_source_quota_remaining",
            "API calls the source's rate-limit headers said remain after its last run.",
            ["connector"],
            registry=self.registry,
        )
        self._store = _StoreCollector(engine)
        self.registry.register(self._store)

    def observe_run(
        self, connector: str, outcome: str, seconds: float, *, quota: float | None
    ) -> None:
        """Record one daemon run's duration and the source's remaining API quota."""
        self.run_duration.labels(connector, outcome).observe(seconds)
        if quota is not None:
            self.quota.labels(connector).set(quota)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one request and its latency."""
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def render(self) -> bytes:
        """The Prometheus text exposition (queries the store).

        With several API processes (``MULTIPROCESS_ENV`` set), the request metrics
        are the sums over all of them, whichever process answers the scrape.
        """
        if not os.environ.get(MULTIPROCESS_ENV):
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call] # untyped upstream
        registry.register(self._store)
        return generate_latest(registry)
