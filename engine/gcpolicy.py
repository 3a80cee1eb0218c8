"""Garbage collection tuned for streaming many short-lived records.

A sync allocates a few dicts per record and frees nearly all of them by reference
counting; the cyclic collector still runs every 700 allocations and, every few
collections, walks every object alive, including the ~100,000 that importing the
libraries created. ``tune`` moves those into the permanent generation (``gc.freeze``)
and lets the young generation grow larger before it is collected.
"""

from __future__ import annotations

import gc

__all__ = ["tune"]

_YOUNG = 50_000


def tune() -> None:
    """Freeze what exists now (imports, config) and collect the young less often."""
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(_YOUNG, max(middle, 20), max(old, 20))
