"""Progress of the long commands (train, init, evaluate, backtest, demo) on a terminal: one row per task on stderr
with its description, a bar, done/total, the time elapsed and the time remaining; nothing at all otherwise.

Stage code marks its work with ``with task(description, total) as t: ... t.advance()``; only the CLI edge decides
whether anything is shown (``with show(): ...``). Without an active ``show`` a task is a shared no-op: near-zero cost,
safe in worker threads and processes (a ContextVar holds the display, and a new thread or process starts without one).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

# Nested tasks are indented by this much per level, under the task they run in.
INDENT = "  "


class Task:
    """A piece of work being counted. This base is the no-op task of a run without a display."""

    def advance(self, n: int = 1) -> None:
        """``n`` more units of the work are done."""

    def update(self, *, description: str | None = None, total: int | None = None) -> None:
        """A new description or total (``None``: unchanged)."""


NOOP = Task()


class _Row(Task):
    """A task shown as a row of a rich Progress."""

    def __init__(self, progress: Progress, task_id: TaskID, indent: str) -> None:
        self._progress = progress
        self._id = task_id
        self._indent = indent

    def advance(self, n: int = 1) -> None:
        self._progress.advance(self._id, n)

    def update(self, *, description: str | None = None, total: int | None = None) -> None:
        changes: dict[str, Any] = {}
        if description is not None:
            changes["description"] = self._indent + description
        if total is not None:
            changes["total"] = total
        if changes:
            self._progress.update(self._id, **changes)


@dataclass(frozen=True)
class _Display:
    progress: Progress
    # The process that showed it: a forked child inherits the ContextVar, but not the thread that draws the rows.
    pid: int


_display: ContextVar[_Display | None] = ContextVar("tagwatch_progress_display", default=None)
_depth: ContextVar[int] = ContextVar("tagwatch_progress_depth", default=0)


def _active() -> _Display | None:
    display = _display.get()
    if display is None or display.pid != os.getpid():
        return None
    return display


@contextmanager
def task(description: str, total: int | None = None) -> Iterator[Task]:
    """A task of ``total`` units (``None``: unknown) for the block. Shown only while a ``show`` is active: a row,
    indented under the task it runs in. A nested row disappears when its block ends; a top-level row stays, finished."""
    display = _active()
    if display is None:
        yield NOOP
        return
    depth = _depth.get()
    indent = INDENT * depth
    progress = display.progress
    task_id = progress.add_task(indent + description, total=total)
    token = _depth.set(depth + 1)
    ok = False
    try:
        yield _Row(progress, task_id, indent)
        ok = True
    finally:
        _depth.reset(token)
        if depth:
            progress.remove_task(task_id)
        else:
            shown = next(t for t in progress.tasks if t.id == task_id)
            if ok and shown.total is None:
                # Work of unknown size is complete when its block is: a full bar.
                done = max(int(shown.completed), 1)
                progress.update(task_id, total=done, completed=done)
            progress.stop_task(task_id)


@contextmanager
def show(enabled: bool | None = None, *, console: Console | None = None) -> Iterator[None]:
    """Install a rich progress display (stderr) for the block; enabled=None means sys.stderr.isatty().

    While it is shown the root logger's stream handlers on stderr write through the display's console, and so does
    stdout when it is the terminal too, so that log lines and printed lines appear above the rows instead of tearing
    them. ``console``: where to draw (tests); default a rich Console on stderr. Inside an active ``show``, another one
    does nothing (the outer display keeps the rows)."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled or _active() is not None:
        yield
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = console or Console(stderr=True)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        # stdout on the same terminal: its lines are printed above the rows. stdout redirected (a --json document
        # into a file): left alone, it must receive exactly what it would without the display.
        redirect_stdout=_isatty(sys.stdout),
        redirect_stderr=True,
    )
    token = _display.set(_Display(progress, os.getpid()))
    try:
        with progress, _logging_through(console):
            yield
    finally:
        _display.reset(token)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


@contextmanager
def _logging_through(console: Console) -> Iterator[None]:
    """The root logger's stream handlers on stderr write through ``console`` for the block (a StreamHandler keeps
    the stream it was made with, so rich's redirection of ``sys.stderr`` does not reach it)."""
    stderr = {id(s) for s in (sys.__stderr__, getattr(sys.stderr, "rich_proxied_file", sys.stderr)) if s is not None}
    swapped: list[tuple[logging.StreamHandler[Any], Any]] = []
    for handler in logging.getLogger().handlers:
        if type(handler) is logging.StreamHandler and id(handler.stream) in stderr:
            swapped.append((handler, handler.setStream(_Lines(console))))
    try:
        yield
    finally:
        for handler, stream in swapped:
            proxy = handler.setStream(stream)
            if isinstance(proxy, _Lines):
                proxy.flush(final=True)


class _Lines:
    """A text stream that prints each complete line on a rich console, as it is (no markup, no highlighting, not
    wrapped: a log line stays one line to copy or grep), above the progress rows."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._partial = ""

    def write(self, text: str) -> int:
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            self._console.print(line, markup=False, highlight=False, emoji=False, soft_wrap=True)
        return len(text)

    def flush(self, *, final: bool = False) -> None:
        if final and self._partial:
            self.write("\n")
