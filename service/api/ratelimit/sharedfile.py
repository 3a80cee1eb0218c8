"""Rate limit windows in a memory-mapped file, shared by the API processes of one host.

``leadsync serve --workers N`` runs N processes; each key's limits must hold across
all of them. The windows live in a small file that every process maps into memory: a
hash table of fixed slots, each ``(bucket digest, start, until, used)``. A hit takes
an exclusive ``flock`` on the file, finds or claims its bucket's slot (linear
probing), updates it and lets go: two system calls and a few microseconds. (A SQLite
file did the same with one upsert, but its locking and WAL cost 13 us a hit alone,
and a process that waited for the GIL while holding SQLite's write lock sent the
other processes to sleep in SQLite's busy handler, for 1 ms at least.) A waiting
process blocks in the kernel until the lock is free, and no one holds it for more
than the few bytecodes of one update.

Windows use the wall clock, which the processes share; one that starts more than a
window in the future (the clock was set back) starts over. A slot whose window has
ended is reused by the next bucket that lands on it. The table holds
``SLOTS`` windows (65,536, a 2.5 MiB file): three per key and minute, far more than
any deployment has live at once. Were it ever full along a bucket's probe run, the
window nearest its end is taken over.
"""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import struct
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.engine import make_url

from service.api.ratelimit.base import WINDOW_SECONDS, RateLimitResult

__all__ = ["SLOTS", "SharedFileRateLimiter", "shared_limits_path"]

SLOTS = 65_536
_MAGIC = b"leadsync-ratelimit-v1\0\0\0"  # 24 bytes
_HEADER = struct.Struct("<24sQ")  # magic, slot count
_SLOT = struct.Struct("<16sddq")  # bucket digest, start, until, used
_EMPTY = bytes(16)
_PROBES = 256  # slots looked at for one bucket, at most


def shared_limits_path(store_url: str) -> Path:
    """Where the processes serving one store keep their shared rate limit windows.

    Next to a SQLite store (``<store>-ratelimits``, like SQLite's own ``-wal``);
    otherwise a file in the temporary folder named after the store's URL.
    """
    url = make_url(store_url)
    database = url.database or ""
    memory = database in ("", ":memory:") or database.startswith("file::memory:")
    if url.get_backend_name() == "sqlite" and not memory:
        path = Path(database).expanduser()
        return path.with_name(f"{path.name}-ratelimits")
    name = url.render_as_string(hide_password=True)
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"leadsync-ratelimits-{digest}"


def _offset(slot: int) -> int:
    return _HEADER.size + slot * _SLOT.size


def _digest(bucket: str) -> bytes:
    digest = hashlib.blake2b(bucket.encode(), digest_size=16).digest()
    return digest if digest != _EMPTY else b"\x01" + digest[1:]


class SharedFileRateLimiter:
    """Fixed windows in a memory-mapped file: limits that hold across processes."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()  # flock excludes processes; this, threads
        self._size = _offset(SLOTS)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                self._prepare()
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            self._map = mmap.mmap(self._fd, self._size)
        except BaseException:
            os.close(self._fd)
            raise

    def _prepare(self) -> None:
        """Lay out an empty table unless the file already holds one (lock held)."""
        header = os.pread(self._fd, _HEADER.size, 0)
        ours = len(header) == _HEADER.size and _HEADER.unpack(header) == (_MAGIC, SLOTS)
        if ours and os.fstat(self._fd).st_size >= self._size:
            return
        # New, or not ours (another version, a torn file): windows are throw-away.
        os.ftruncate(self._fd, 0)
        os.ftruncate(self._fd, self._size)
        os.pwrite(self._fd, _HEADER.pack(_MAGIC, SLOTS), 0)

    def hit(
        self, bucket: str, *, limit: int, cost: int = 1, window: float = WINDOW_SECONDS
    ) -> RateLimitResult:
        """Spend ``cost`` units of ``bucket``; a refused hit spends nothing."""
        digest = _digest(bucket)
        now = self._clock()
        with self._lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                until, used, allowed = self._spend(digest, now, limit, cost, window)
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        return RateLimitResult(
            allowed=allowed,
            limit=limit,
            remaining=max(0, limit - used),
            reset_after=min(window, max(0.0, until - now)),
        )

    def _spend(
        self, digest: bytes, now: float, limit: int, cost: int, window: float
    ) -> tuple[float, int, bool]:
        """Update the bucket's slot (file lock held): its end, use, and the verdict."""
        table = self._map
        first = int.from_bytes(digest[:8], "little") % SLOTS
        offset, stored = self._find(digest, first, now)
        # A window is over when its end has passed, or when it starts more than a
        # window ahead (the clock was set back). Processes read the clock before they
        # queue for the lock, so a hit may carry a time a little before the start a
        # faster process wrote: that hit still belongs to the window.
        if stored is None or now >= stored[1] or now + window < stored[0]:
            allowed = cost <= limit
            start, until, used = now, now + window, cost if allowed else 0
        else:
            start, until, used = stored
            allowed = used + cost <= limit
            used += cost if allowed else 0
        _SLOT.pack_into(table, offset, digest, start, until, used)
        return until, used, allowed

    def _find(
        self, digest: bytes, first: int, now: float
    ) -> tuple[int, tuple[float, float, int] | None]:
        """The bucket's slot and its (start, until, used); or a slot to claim, None."""
        table = self._map
        claim = -1
        oldest = (float("inf"), -1)
        for probe in range(min(_PROBES, SLOTS)):
            offset = _offset((first + probe) % SLOTS)
            key, start, until, used = _SLOT.unpack_from(table, offset)
            if key == digest:
                return offset, (start, until, used)
            if key == _EMPTY:  # the end of this bucket's run: it is not in the table
                return (offset if claim < 0 else claim), None
            if claim < 0 and until <= now:
                claim = offset  # an ended window: reusable, but look further first
            oldest = min(oldest, (until, offset))
        return (claim if claim >= 0 else oldest[1]), None

    def live_windows(self) -> int:
        """How many slots hold a window that has not ended (for tests and checks)."""
        now = self._clock()
        with self._lock:
            count = 0
            for slot in range(SLOTS):
                key, _, until, _ = _SLOT.unpack_from(self._map, _offset(slot))
                count += key != _EMPTY and until > now
            return count

    def close(self) -> None:
        """Unmap and close the file."""
        with self._lock:
            self._map.close()
            os.close(self._fd)
