"""Spill files: where rows go while the database cannot take them, one JSON row a line, replayed once it can.

``SpillWriter`` appends to this process's active file (``spill-<time>-<pid>-<random>.jsonl``, flock'd while open);
``claim`` takes a file for replay (this process's sealed file, or one a previous process left behind) and counts
its rows. Replaying is ``service.requestlog.replay``.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from service.requestlog.rows import Row, prediction_id, row_line

try:  # advisory file locks keep two processes from replaying the same spill file; POSIX only
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

SPILL_PREFIX = "spill-"
SPILL_GLOB = f"{SPILL_PREFIX}*.jsonl"


def try_lock(fh: IO[bytes]) -> bool:
    """Take the flock of an open spill file without waiting; False when another live process holds it."""
    if fcntl is None:  # pragma: no cover - Windows: one process per spill dir assumed
        return True
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def fsync_dir(directory: Path) -> None:
    """Make a file created or deleted in ``directory`` durable (where the filesystem allows)."""
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be opened and synced
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@dataclass(frozen=True)
class SpillUsage:
    """The spill files in a directory: how many, and their bytes (what ``spill_max_bytes`` caps)."""

    files: int
    bytes: int


def spill_usage(directory: Path) -> SpillUsage:
    """Count the spill files in ``directory`` (one directory scan: at start, on a rescan, and for ``tagwatch prune``;
    never per request: the gauge reads ``SpillWriter.disk_bytes``)."""
    files = total = 0
    if directory.is_dir():
        for path in directory.glob(SPILL_GLOB):
            with contextlib.suppress(FileNotFoundError):  # replayed and deleted meanwhile
                total += path.stat().st_size
                files += 1
    return SpillUsage(files=files, bytes=total)


class SpillWriter:
    """Appends rows to this process's active spill file. Thread-safe: request threads and the writer use it.

    Every append is flushed to the kernel before it returns (it survives a kill of the process); fsync happens
    when asked (``sync=True``) or through ``sync_if_dirty``, which the writer calls every flush interval from a
    thread of its own, so that a request handler never waits for a disk sync. The file stays locked (flock)
    while this process owns it, so another process never replays it meanwhile.

    ``max_bytes`` caps the spill files in the directory (``spill-*.jsonl``: this process's and leftovers, counted
    from the directory at start and on ``recount``, plus what was appended since): rows that would go beyond
    are not written but handed back to the caller.
    """

    def __init__(self, directory: Path, *, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._fh: IO[bytes] | None = None
        self._path: Path | None = None
        self._rows = 0
        self._dirty = False
        self._disk_bytes: int | None = None  # None: not counted yet
        self._counted_at = -math.inf

    @property
    def rows(self) -> int:
        return self._rows

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def disk_bytes(self) -> int:
        """Bytes of spill files in the directory, as last counted plus appended since."""
        return self._disk_bytes or 0

    def recount(self) -> int:
        with self._lock:
            return self._recount_locked()

    def _recount_locked(self) -> int:
        total = spill_usage(self.directory).bytes
        self._disk_bytes = total
        self._counted_at = time.monotonic()
        return total

    def forget(self, size: int) -> None:
        """A spill file of ``size`` bytes was deleted."""
        with self._lock:
            if self._disk_bytes is not None:
                self._disk_bytes = max(0, self._disk_bytes - size)

    def _open(self) -> IO[bytes]:
        self.directory.mkdir(parents=True, exist_ok=True)
        # Names sort by creation time, so files are replayed oldest first.
        name = f"{SPILL_PREFIX}{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        path = self.directory / name
        fh = open(path, "xb")  # noqa: SIM115 - kept open across calls, closed in seal()/close()
        try_lock(fh)
        fsync_dir(self.directory)
        self._fh, self._path, self._rows, self._dirty = fh, path, 0, False
        return fh

    def append(self, rows: Sequence[Row], *, sync: bool, close: bool = False) -> list[int]:
        """Write rows, flushed to the kernel; fsync too when ``sync``. Returns the positions (in ``rows``) of the
        rows not written because the directory reached ``max_bytes``. Raises OSError when the directory fails.

        ``close``: also close the file, releasing its lock, so that the next writer can replay it.
        """
        lines = [row_line(r) for r in rows]
        with self._lock:
            if self._disk_bytes is None:
                self._recount_locked()
            room = self.max_bytes - self.disk_bytes
            if sum(map(len, lines)) > room and time.monotonic() - self._counted_at >= 1.0:
                # Files may have been replayed and deleted by another process since the last count.
                room = self.max_bytes - self._recount_locked()
            kept: list[bytes] = []
            dropped: list[int] = []
            for i, line in enumerate(lines):
                if len(line) <= room:
                    kept.append(line)
                    room -= len(line)
                else:
                    dropped.append(i)
            if kept:
                data = b"".join(kept)
                fh = self._fh or self._open()
                fh.write(data)
                # In the kernel now: survives a crash of this process; the fsync covers the machine.
                fh.flush()
                self._disk_bytes = self.disk_bytes + len(data)
                self._rows += len(kept)
                self._dirty = True
            if sync:
                self._sync_locked()
            if close:
                self._close_locked()
        return dropped

    def _sync_locked(self) -> None:
        if self._fh is not None and self._dirty:
            os.fsync(self._fh.fileno())
            self._dirty = False

    def sync_if_dirty(self) -> None:
        """fsync the active file if rows were appended since the last fsync; appends are not held up meanwhile."""
        with self._lock:
            if self._fh is None or not self._dirty:
                return
            fd = os.dup(self._fh.fileno())  # valid even if the file is sealed or closed during the fsync
            self._dirty = False
        try:
            os.fsync(fd)
        except OSError:
            with self._lock:
                self._dirty = True
            raise
        finally:
            os.close(fd)

    def seal(self) -> tuple[Path, IO[bytes], int] | None:
        """Hand the active file over for replay, still locked; the next append starts a new file."""
        with self._lock:
            if self._fh is None or self._path is None or self._rows == 0:
                return None
            self._sync_locked()
            out = (self._path, self._fh, self._rows)
            self._fh, self._path, self._rows = None, None, 0
            return out

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        if self._fh is None:
            return
        self._sync_locked()
        self._fh.close()
        if self._rows == 0 and self._path is not None:
            self._path.unlink(missing_ok=True)
        self._fh, self._path, self._rows = None, None, 0


@dataclass(eq=False)
class SpillFile:
    """A spill file claimed for replay (locked meanwhile). Deleted once every row read from it was written (or
    rejected)."""

    path: Path
    lock: IO[bytes]  # holds the flock until the file is deleted or the writer stops
    rows: int  # valid rows in the file, for the spill-pending gauge
    reader: IO[bytes] | None = None
    eof: bool = False
    outstanding: int = 0  # rows read and not yet resolved

    def done(self) -> bool:
        return self.eof and self.outstanding == 0


def claim(path: Path) -> tuple[SpillFile, list[str]] | None:
    """Take the spill file ``path`` for replay: lock it (None when another live process holds it, or it is gone) and
    count its rows. Returns it with the request ids of its predictions (pending until they are written)."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - holds the lock until the file is replayed
    except FileNotFoundError:
        return None
    if not try_lock(fh):
        fh.close()  # another live process owns it
        return None
    try:
        if os.fstat(fh.fileno()).st_ino != path.stat().st_ino:
            raise FileNotFoundError(path)
    except FileNotFoundError:  # replayed and deleted by another process between open and lock
        fh.close()
        return None
    rows = 0
    ids: list[str] = []
    for line in fh:
        if not line.strip():
            continue
        rows += 1
        request_id = prediction_id(line)
        if request_id is not None:
            ids.append(request_id)
    return SpillFile(path=path, lock=fh, rows=rows), ids
