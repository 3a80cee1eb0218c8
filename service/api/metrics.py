"""Prometheus metrics of one app, in a registry of its own (so tests can build many).

Per request: ``leadsync_api_requests_total{method,route,status}`` and the latency
histogram ``leadsync_api_request_duration_seconds{method,route}``, by route template
(``/v1/leads/{id}``), never by raw path. At scrape time, from the store: leads by origin
and state, failures by connector and status, the last successful sync per connector.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import sqlalchemy as sa
import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from sqlmodel import SQLModel

from state.models import Run
from state.reads import lead_counts
from state.syncstate import failure_counts

__all__ = ["CONTENT_TYPE", "ApiMetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_RUN: sa.Table = SQLModel.metadata.tables[Run.__tablename__]
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
        yield GaugeMetricFamily(
            "leadsync_store_up", "Whether the store answered the last scrape.", up
        )


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
        self.registry.register(_StoreCollector(engine))

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one request and its latency."""
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def render(self) -> bytes:
        """The Prometheus text exposition (queries the store)."""
        return generate_latest(self.registry)
