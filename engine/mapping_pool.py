"""Mapping pages of records, in this thread or in a worker process.

A first load spends most of its CPU in pure Python: mapping each record, hashing the
lead, turning values into JSON. With the GIL, a second thread cannot help, so a large
pass hands that work to worker processes (``map_workers``) while this process reads
the source, recognises unchanged records and writes. Both sides run the same
function, ``map_records``, on the same compiled mapping (a worker compiles it again
from the mapping's recipe), so the result does not depend on where it ran.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from engine import gcpolicy
from engine.errors import MappingError
from engine.mapping import CompiledMapping, compile_mapping
from engine.parentwatch import watch_parent
from engine.rawhash import raw_hashes
from state.store import PreparedLeads, payload_text, prepare_leads

__all__ = ["MappedPage", "MappingPool", "auto_workers", "map_records"]


@dataclass(slots=True)
class MappedPage:
    """What mapping a page gave.

    ``leads`` are the mapped leads, or None when ``prepared`` holds them already in the
    store's form; ``payloads`` is ``(lead_id, raw JSON text, raw hash)`` per mapped
    record; ``mapped`` the index (into the records given) of each mapped record, and
    ``failures`` ``(index, code, message)`` of each record that did not map.
    """

    leads: list[dict[str, Any]] | None = None
    prepared: PreparedLeads | None = None
    payloads: list[tuple[str, str, str]] = field(default_factory=list)
    mapped: list[int] = field(default_factory=list)
    failures: list[tuple[int, str, str]] = field(default_factory=list)


def map_records(
    mapping: CompiledMapping,
    records: Sequence[tuple[dict[str, Any], str | None]],
    *,
    prepare: Callable[[list[dict[str, Any]]], PreparedLeads] | None,
) -> MappedPage:
    """Map ``(raw fields, raw hash)`` pairs; ``prepare`` converts the leads.

    A page whose records come without their raw hash (None) is hashed here.
    """
    page = MappedPage()
    leads: list[dict[str, Any]] = []
    apply = mapping.apply
    digests = [digest for _, digest in records]
    if records and digests[0] is None:
        digests = list(raw_hashes(mapping.fingerprint, [f for f, _ in records]))
    for index, ((fields, _), digest) in enumerate(zip(records, digests, strict=True)):
        try:
            lead = apply(fields)
        except MappingError as exc:
            page.failures.append((index, exc.code, str(exc)))
            continue
        leads.append(lead)
        page.payloads.append((lead["lead_id"], payload_text(fields), digest or ""))
        page.mapped.append(index)
    if prepare is not None and leads:
        page.prepared = prepare(leads)
    else:
        page.leads = leads
    return page


# -- the worker side ---------------------------------------------------------------

_WORKER_MAPPING: CompiledMapping | None = None


def _start_worker(recipe: tuple[Any, tuple[Any, ...]]) -> None:
    global _WORKER_MAPPING  # one mapping per worker process
    # Ctrl-C reaches the whole process group: the run stops its workers itself
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watch_parent()  # a run killed outright takes its workers with it
    spec, lead_fields = recipe
    _WORKER_MAPPING = compile_mapping(spec, lead_fields=lead_fields)
    gcpolicy.tune()


def _ready() -> bool:
    return _WORKER_MAPPING is not None


def _map_in_worker(
    records: Sequence[tuple[dict[str, Any], str | None]],
) -> MappedPage:
    if _WORKER_MAPPING is None:  # pragma: no cover # the initializer always ran
        raise RuntimeError("mapping worker started without its mapping")
    return map_records(_WORKER_MAPPING, records, prepare=prepare_leads)


# -- the run side ------------------------------------------------------------------


def auto_workers() -> int:
    """Worker processes for ``map_workers: auto``: one per core beyond the first."""
    return max(0, min(4, (os.cpu_count() or 1) - 1))


@contextmanager
def _main_hidden() -> Iterator[None]:
    """Start processes that do not import the program's ``__main__`` again.

    ``spawn`` re-imports the parent's main module in each child (for the CLI, the
    whole command line, the API and the daemon); a mapping worker needs none of it:
    hidden, each worker starts faster and holds less memory.
    """
    main = sys.modules.get("__main__")
    if main is None:  # pragma: no cover # an interpreter always has one
        yield
        return
    names: tuple[str, ...] = ("__spec__", "__file__")
    saved: dict[str, Any] = {k: main.__dict__[k] for k in names if k in main.__dict__}
    main.__dict__["__spec__"] = None
    main.__dict__.pop("__file__", None)
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


class MappingPool:
    """Worker processes that map pages into the store's prepared form.

    The workers start in the background (a fresh interpreter each: ``spawn``, safe
    beside the run's threads); until they are ready, ``ready`` is False and the run
    maps in its own thread.
    """

    def __init__(self, mapping: CompiledMapping, workers: int) -> None:
        if mapping.recipe is None:
            raise ValueError("this mapping cannot be compiled in another process")
        self._executor = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(mapping.recipe,),
        )
        with _main_hidden():  # the workers start on these first submits
            self._warm = [self._executor.submit(_ready) for _ in range(workers)]

    @property
    def ready(self) -> bool:
        """Whether the workers have started and compiled the mapping."""
        return all(f.done() for f in self._warm)

    def submit(
        self, records: Sequence[tuple[dict[str, Any], str | None]]
    ) -> Future[MappedPage]:
        """Map these records in a worker."""
        return self._executor.submit(_map_in_worker, records)

    def close(self) -> None:
        """Stop the workers (pages still queued are cancelled)."""
        self._executor.shutdown(wait=True, cancel_futures=True)
