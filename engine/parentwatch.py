"""Worker processes that stop when the process that started them is gone.

A parent killed outright (``kill -9``, the OOM killer) cannot stop its workers, and a
worker blocked on a queue whose other end its siblings still hold never notices: it
would live on, an orphan. ``watch_parent`` checks the parent's pid in a daemon thread.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable

__all__ = ["watch_parent"]


def _exit_now() -> None:
    os._exit(1)  # nothing of a worker's state outlives the run that needed it


def watch_parent(
    when_gone: Callable[[], None] = _exit_now, *, every: float = 1.0
) -> threading.Thread:
    """Call ``when_gone`` (default: exit at once) once this process's parent is gone."""
    # The parent as it was when it spawned us: it may be gone already.
    spawner = multiprocessing.parent_process()
    parent = spawner.pid if spawner is not None else os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        when_gone()

    thread = threading.Thread(target=watch, name="parent-watch", daemon=True)
    thread.start()
    return thread
