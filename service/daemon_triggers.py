"""APScheduler triggers from a connector's ``schedule`` (``every`` or ``cron``)."""

from __future__ import annotations

from datetime import UTC, timedelta

from apscheduler.triggers.base import BaseTrigger  # type: ignore[import-untyped] # no stubs
from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped]
from apscheduler.triggers.interval import (  # type: ignore[import-untyped]
    IntervalTrigger,
)

from connectors.base import ConnectorConfig, Schedule
from connectors.errors import ConfigError

__all__ = ["describe", "make_trigger"]


def make_trigger(schedule: Schedule) -> BaseTrigger:
    """The APScheduler trigger of a connector's ``schedule``."""
    jitter = int(schedule.jitter.total_seconds()) if schedule.jitter else None
    if schedule.cron is not None:
        try:
            trigger = CronTrigger.from_crontab(schedule.cron, timezone=UTC)
        except ValueError as exc:
            raise ConfigError(f"invalid cron {schedule.cron!r}: {exc}") from None
        trigger.jitter = jitter
        return trigger
    every = schedule.every or timedelta(minutes=5)
    return IntervalTrigger(seconds=every.total_seconds(), timezone=UTC, jitter=jitter)


def describe(cfg: ConnectorConfig) -> str:
    """The schedule in words, for logs."""
    schedule = cfg.schedule
    if schedule.cron is not None:
        return f"cron {schedule.cron}"
    every = schedule.every.total_seconds() if schedule.every else 300
    return f"every {every:g}s"
