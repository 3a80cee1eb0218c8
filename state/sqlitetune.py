"""SQLite's memory statistics turned off for the process, before it opens a database.

SQLite built with its defaults (Debian's, Docker's python images) counts every
allocation in global statistics under one process-wide mutex. With two threads
reading at once, as the API's read pool does, they queue on that mutex for every
allocation: a search spent a tenth or more of its CPU in futex calls and mutexes.
Nothing in leadsync reads those statistics. ``tune`` sets
``SQLITE_CONFIG_MEMSTATUS`` to off through the library the ``sqlite3`` module is
linked to, which ``sqlite3_config`` allows only while SQLite is shut down, so it runs
only when no connection or statement of the process is alive: memory in use is then
zero (it is counted while the statistics are on). It changes nothing where that
cannot be proven, and on a build that already has them off, or that links SQLite
into the ``sqlite3`` module itself (no shared library to call).
"""

from __future__ import annotations

import ctypes
import functools
import sqlite3
import threading
from pathlib import Path

__all__ = ["memory_statistics_off", "tune"]

_SQLITE_OK = 0
_SQLITE_CONFIG_MEMSTATUS = 9
_lock = threading.Lock()
_tuned = False


@functools.cache  # the library a process runs on does not change
def _library() -> ctypes.CDLL | None:
    """The SQLite shared library this process's ``sqlite3`` module runs on, if any."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:  # not Linux
        return None
    paths = {
        line.split(maxsplit=5)[5]
        for line in maps.splitlines()
        if "libsqlite3" in line and len(line.split(maxsplit=5)) == 6
    }
    if len(paths) != 1:
        return None
    lib = ctypes.CDLL(paths.pop())
    lib.sqlite3_libversion.restype = ctypes.c_char_p
    if lib.sqlite3_libversion().decode() != sqlite3.sqlite_version:
        return None  # not the library the module reports
    lib.sqlite3_memory_used.restype = ctypes.c_int64
    lib.sqlite3_compileoption_used.argtypes = [ctypes.c_char_p]
    lib.sqlite3_config.argtypes = [ctypes.c_int, ctypes.c_int]
    return lib


def _built_off(lib: ctypes.CDLL) -> bool:
    return bool(lib.sqlite3_compileoption_used(b"DEFAULT_MEMSTATUS=0"))


def memory_statistics_off() -> bool:
    """Whether SQLite keeps no memory statistics in this process."""
    lib = _library()
    return lib is not None and (_tuned or _built_off(lib))


def tune() -> bool:
    """Turn SQLite's memory statistics off if that is safe now; True if this did it.

    Call it when a process starts, before it opens a store.
    """
    global _tuned  # once per process: afterwards memory in use always reads zero
    with _lock:
        if _tuned:
            return False
        lib = _library()
        if lib is None or _built_off(lib):
            return False
        if lib.sqlite3_memory_used() != 0:
            return False  # a connection or statement is alive: leave SQLite as it is
        lib.sqlite3_shutdown()
        configured = bool(lib.sqlite3_config(_SQLITE_CONFIG_MEMSTATUS, 0) == _SQLITE_OK)
        if lib.sqlite3_initialize() != _SQLITE_OK:
            raise sqlite3.OperationalError("SQLite failed to initialise again")
        _tuned = configured
        return configured
