"""Progress for long runs: a rich bar on a terminal, periodic log lines otherwise."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import structlog
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from engine.sync import Progress as ProgressFn

__all__ = ["progress_reporter"]

log = structlog.get_logger("leadsync.progress")


@contextmanager
def progress_reporter(label: str, *, every: float = 10.0) -> Iterator[ProgressFn]:
    """Yield a callback that takes the number of records just processed."""
    if sys.stderr.isatty():
        columns = (
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:,} records"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, transient=False) as bar:
            task = bar.add_task(label, total=None)
            yield lambda n: bar.advance(task, n)
        return
    done = 0
    started = last = time.monotonic()

    def _tick(n: int) -> None:
        nonlocal done, last
        done += n
        now = time.monotonic()
        if now - last >= every:
            last = now
            rate = done / (now - started) if now > started else 0.0
            log.info("progress", task=label, records=done, per_second=round(rate))

    yield _tick
    log.info("progress", task=label, records=done, done=True)
