"""The writer's watchdog: a thread of its own that, every flush interval, fsyncs the spill file if rows were appended
(so a request never waits for a disk sync) and notices a batch write that hangs (a database that vanished without
closing its connections), so that the writer switches to write-ahead meanwhile."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator

from service.requestlog.intake import Intake
from service.requestlog.spill import SpillWriter

log = logging.getLogger(__name__)


class Watchdog:
    """Calls ``on_stall(seconds)`` once a write (see ``writing``) has taken longer than ``stall_timeout`` while the
    writer looked healthy."""

    def __init__(
        self,
        spill: SpillWriter,
        intake: Intake,
        *,
        interval: float,
        stall_timeout: float,
        on_stall: Callable[[float], None],
    ) -> None:
        self._spill = spill
        self._intake = intake
        self._interval = interval
        self._stall_timeout = stall_timeout
        self._on_stall = on_stall
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.write_started: float | None = None  # when the write in progress began (monotonic)

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Around a database call of the writer thread: the time it may take before it counts as a stall."""
        self.write_started = time.monotonic()
        try:
            yield
        finally:
            self.write_started = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tagwatch-requestlog-sync", daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._spill.sync_if_dirty()
                started = self.write_started
                if started is not None and self._intake.healthy and time.monotonic() - started > self._stall_timeout:
                    self._on_stall(time.monotonic() - started)
            except Exception:
                log.exception("request log: the spill watchdog failed; retrying")
