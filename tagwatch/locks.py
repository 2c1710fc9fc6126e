"""Named locks across processes: one drift run and one retrain or promotion at a time per model, one schema upgrade
at a time per database.

A lock lives where the processes that need it meet, the request-log database:

- PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) taken on a connection of its own, held (in
  autocommit, so no transaction stays open) for as long as the lock is, released with ``pg_advisory_unlock`` and by
  closing that connection. A process that dies loses its connection, and the server drops its locks with it.
- SQLite file: ``flock`` on a lock file next to the database (``<database>.<name>.<model>.lock``); the kernel
  releases it when the process dies, however it dies.
- SQLite in memory (or no ``fcntl``): a lock of this process only, the only processes such a database has.

Taking a lock never blocks by default: ``hold`` yields False (``promotion_lock`` raises ``LockBusy``) when another
holder has it; ``wait`` polls up to that many seconds first.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import re
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from sqlalchemy import Engine, text
from sqlalchemy.engine import Connection

log = logging.getLogger(__name__)

# Around each monitor run (detection, decision, the retrain it starts).
DRIFT_RUN = "drift-run"
# Around each change of the champion: a retrain with its promotion, a manual promotion, a rollback.
PROMOTION = "promotion"
# Around a schema upgrade (``tagwatch.db.upgrade_database``): one per database, not per model.
MIGRATION = "migration"
# The migration lock's advisory-lock key, as earlier versions took it: a process of an older version starting at the
# same time still waits for this one.
MIGRATION_LOCK_KEY = zlib.crc32(b"tagwatch-alembic-upgrade")

_POLL_SECONDS = 0.1
_LOCAL: dict[tuple[object, int], threading.Lock] = {}
_LOCAL_GUARD = threading.Lock()


class LockBusy(RuntimeError):
    """The lock is held elsewhere (another process, or another holder in this one)."""

    def __init__(self, name: str, model_name: str, waited: float) -> None:
        self.name = name
        self.model_name = model_name
        self.waited = waited
        super().__init__(
            f"the {name} lock of model {model_name!r} is held elsewhere"
            + (f" (waited {waited:.1f} s)" if waited > 0 else "")
        )


def lock_key(name: str, model_name: str) -> int:
    """The advisory-lock key of ``name`` for ``model_name``: a signed 64-bit hash of ``tagwatch:<name>:<model>``."""
    digest = hashlib.blake2b(f"tagwatch:{name}:{model_name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def lock_path(database: str, name: str, model_name: str) -> Path:
    """The lock file of ``name`` for ``model_name`` next to the SQLite database file ``database``."""
    db = Path(database).expanduser()
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", model_name)[:64]
    return db.with_name(f"{db.name}.{name}.{safe}.lock")


class NamedLock:
    """One named lock of one model on the database of ``engine``. Not reentrant; one holder object per attempt.

    ``acquire`` returns whether the lock was taken; ``release`` gives it back (and is safe to call twice).
    """

    def __init__(self, engine: Engine, name: str, *, model_name: str) -> None:
        self.engine = engine
        self.name = name
        self.model_name = model_name
        self.key = lock_key(name, model_name)
        self._conn: Connection | None = None  # PostgreSQL: the connection that holds the advisory lock
        self._file: IO[bytes] | None = None  # SQLite file: the open lock file
        self._local: threading.Lock | None = None  # in-memory SQLite (or no fcntl): the process-local lock
        self.held = False
        # PostgreSQL: the server process of the holding connection (pg_stat_activity.pid), for diagnosis.
        self.backend_pid: int | None = None

    # --- taking and giving back ---------------------------------------------------------------------------------
    def acquire(self, wait: float = 0.0) -> bool:
        """Take the lock: at once, or polling for up to ``wait`` seconds. False when it stayed held elsewhere."""
        if self.held:
            raise RuntimeError(f"the {self.name} lock is already held by this holder")
        deadline = time.monotonic() + max(0.0, wait)
        while True:
            if self._try():
                self.held = True
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(_POLL_SECONDS, remaining))

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                released = conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key}).scalar()
                if not released:
                    log.warning("the %s lock was no longer held by its connection (lost with it?)", self.name)
            except Exception:
                # The connection is gone: so is the lock (the server dropped it with the session).
                log.warning("could not unlock the %s lock; closing its connection releases it", self.name)
            finally:
                with contextlib.suppress(Exception):
                    conn.close()
        if self._file is not None:
            fh, self._file = self._file, None
            import fcntl

            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            finally:
                fh.close()
        if self._local is not None:
            lock, self._local = self._local, None
            lock.release()

    def __enter__(self) -> NamedLock:
        if not self.acquire():
            raise LockBusy(self.name, self.model_name, 0.0)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    # --- one attempt per backend --------------------------------------------------------------------------------
    def _try(self) -> bool:
        url = self.engine.url
        if url.get_backend_name() == "postgresql":
            return self._try_postgres()
        if url.get_backend_name() != "sqlite":
            raise ValueError(f"no cross-process lock for {url.get_backend_name()} databases")
        if url.database in (None, "", ":memory:"):
            return self._try_local(id(self.engine))
        try:
            import fcntl  # noqa: F401
        except ImportError:  # Windows: no flock; processes sharing a file database are then the operator's care
            return self._try_local(str(Path(url.database).expanduser().resolve()))
        return self._try_file(url.database)

    def _try_postgres(self) -> bool:
        # A connection of its own, out of the pool: the session lock must never go back to the pool with it, and
        # autocommit, so holding it for minutes keeps no transaction open.
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            conn.detach()
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar())
            if got:
                self.backend_pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        except BaseException:
            conn.close()
            raise
        if not got:
            conn.close()
            return False
        self._conn = conn
        return True

    def _try_file(self, database: str) -> bool:
        import fcntl

        path = self._file_path(database)
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(path, "a+b")  # noqa: SIM115 - kept open while the lock is held, closed in release()
        try:
            # flock locks belong to the open file: two opens conflict even in one process (threads included).
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            return False
        except BaseException:
            fh.close()
            raise
        self._file = fh
        return True

    def _file_path(self, database: str) -> Path:
        return lock_path(database, self.name, self.model_name)

    def _try_local(self, where: object) -> bool:
        with _LOCAL_GUARD:
            lock = _LOCAL.setdefault((where, self.key), threading.Lock())
        if not lock.acquire(blocking=False):
            return False
        self._local = lock
        return True


class MigrationLock(NamedLock):
    """The lock around a schema upgrade of the database of ``engine``: one process migrates, the others wait and then
    find the schema at head. Its key and its lock file (``<database>.migrate.lock``) are those of earlier versions."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine, MIGRATION, model_name="")
        self.key = MIGRATION_LOCK_KEY

    def _file_path(self, database: str) -> Path:
        db = Path(database).expanduser()
        return db.with_name(db.name + ".migrate.lock")


@contextlib.contextmanager
def migration_lock(engine: Engine) -> Iterator[None]:
    """Hold the migration lock of the database of ``engine`` for the block, waiting for it as long as it takes."""
    lock = MigrationLock(engine)
    lock.acquire(wait=math.inf)
    try:
        yield
    finally:
        lock.release()


@contextlib.contextmanager
def hold(engine: Engine, name: str, *, model_name: str, wait: float = 0.0) -> Iterator[bool]:
    """Hold the lock ``name`` of ``model_name`` for the block: yields True when taken (released on exit), False when
    it stayed held elsewhere for ``wait`` seconds (default: one attempt, no waiting)."""
    lock = NamedLock(engine, name, model_name=model_name)
    got = lock.acquire(wait)
    try:
        yield got
    finally:
        if got:
            lock.release()


@contextlib.contextmanager
def promotion_lock(engine: Engine, model_name: str, *, wait: float = 0.0) -> Iterator[NamedLock]:
    """Hold the promotion lock of ``model_name`` for the block (a retrain and its promotion, a manual promotion, a
    rollback): one change of the champion at a time, across processes. Raises ``LockBusy`` when another holder
    keeps it for ``wait`` seconds; the monitor skips its retrain while someone else holds it."""
    lock = NamedLock(engine, PROMOTION, model_name=model_name)
    if not lock.acquire(wait):
        raise LockBusy(PROMOTION, model_name, wait)
    try:
        yield lock
    finally:
        lock.release()
