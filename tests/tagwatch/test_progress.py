"""Progress rows on a terminal, nothing elsewhere: the no-op task, the rich display, nesting, logging through it."""

from __future__ import annotations

import io
import logging
import sys
import threading

import pytest
from rich.console import Console
from rich.progress import Task as RichTask

from tagwatch import progress

BAR = "━"


def _console(*, terminal: bool) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=terminal, width=120, color_system=None), out


def test_without_a_display_a_task_is_the_no_op_and_writes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    with progress.task("fitting tag scorers", total=3) as t:
        assert t is progress.NOOP
        t.advance()
        t.update(description="still nothing", total=4)
    assert capsys.readouterr() == ("", "")


def test_show_is_off_when_stderr_is_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    assert not sys.stderr.isatty()  # pytest's capture
    with progress.show(), progress.task("windows", total=2) as t:
        assert t is progress.NOOP
        t.advance(2)
    with progress.show(enabled=False), progress.task("windows", total=2) as t:
        assert t is progress.NOOP
    assert capsys.readouterr() == ("", "")


def test_a_shown_task_has_its_description_count_and_eta(capsys: pytest.CaptureFixture[str]) -> None:
    console, out = _console(terminal=True)
    with progress.show(enabled=True, console=console), progress.task("fitting tag scorers", total=5) as t:
        assert t is not progress.NOOP
        t.advance(3)
        row = _current(t)
        assert (row.completed, row.total) == (3, 5)
    text = out.getvalue()
    assert "fitting tag scorers" in text
    assert "3/5" in text
    assert "5/5" not in text  # it stopped at 3
    assert "eta" in text
    assert BAR in text
    # Rows go to the display's console, never to stdout or the real stderr.
    assert capsys.readouterr() == ("", "")


def test_nested_rows_go_when_their_block_ends_and_top_rows_stay_finished() -> None:
    # A console that is not a terminal draws the final state once, at the end: what the user is left with.
    console, out = _console(terminal=False)
    with progress.show(enabled=True, console=console):
        with progress.task("demo windows", total=2) as windows:
            for _ in range(2):
                with progress.task("fitting tag scorers", total=4) as fit:
                    fit.advance(4)
                windows.advance()
        with progress.task("registering the model"):
            pass
    final = out.getvalue().splitlines()
    assert [line.split()[:2] for line in final] == [["demo", "windows"], ["registering", "the"]]
    assert "2/2" in final[0]
    # Work of unknown size is a full bar once its block is done.
    assert "1/1" in final[1]
    assert "fitting" not in out.getvalue()


def test_a_nested_row_is_indented_under_its_parent() -> None:
    console, _ = _console(terminal=False)
    with (
        progress.show(enabled=True, console=console),
        progress.task("windows", total=1),
        progress.task("features", total=None) as inner,
    ):
        inner.update(description="features of window 1")
        display = progress._active()
        assert display is not None
        assert [t.description for t in display.progress.tasks] == ["windows", "  features of window 1"]


def test_a_show_inside_a_show_keeps_the_outer_display() -> None:
    console, out = _console(terminal=False)
    with progress.show(enabled=True, console=console):
        outer = progress._active()
        with progress.show(enabled=True, console=Console(file=io.StringIO())):
            assert progress._active() is outer
            with progress.task("inner", total=1) as t:
                t.advance()
    assert "inner" in out.getvalue()


def test_a_new_thread_has_no_display() -> None:
    console, _ = _console(terminal=False)
    seen: list[progress.Task] = []

    def work() -> None:
        with progress.task("in a thread", total=1) as t:
            seen.append(t)

    with progress.show(enabled=True, console=console):
        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
    assert seen == [progress.NOOP]


def test_log_lines_go_through_the_display_while_it_is_shown(capsys: pytest.CaptureFixture[str]) -> None:
    handler = logging.StreamHandler()  # on sys.stderr (capsys's), as setup_logging installs it
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        console, out = _console(terminal=True)
        original = handler.stream
        with progress.show(enabled=True, console=console), progress.task("windows", total=2) as t:
            logging.getLogger("tagwatch.test").info("window %d done", 1)
            logging.getLogger("tagwatch.test").info("[not markup] %s", "x" * 150)
            t.advance()
        assert "INFO tagwatch.test: window 1 done" in out.getvalue()
        # Longer than the console is wide, and still one line, as written.
        assert f"INFO tagwatch.test: [not markup] {'x' * 150}\n" in out.getvalue()
        assert capsys.readouterr().err == ""
        # Afterwards the handler writes where it did before.
        assert handler.stream is original
        logging.getLogger("tagwatch.test").info("after")
        assert capsys.readouterr().err == "INFO tagwatch.test: after\n"
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _current(task: progress.Task) -> RichTask:
    display = progress._active()
    assert display is not None
    assert isinstance(task, progress._Row)
    return next(t for t in display.progress.tasks if t.id == task._id)
