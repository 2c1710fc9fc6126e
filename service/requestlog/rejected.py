"""Rejected rows: what the database refused as data, and spill lines that cannot be read, kept with their error in
``rejected-<pid>.jsonl`` in the spill dir for an operator. They are never retried."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from service.requestlog.rows import Row, encode_row

log = logging.getLogger(__name__)

REJECTED_PREFIX = "rejected-"


class RejectedRows:
    """This process's file of rejected rows in ``directory`` (each record fsync'd before the row is let go)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        return self.directory / f"{REJECTED_PREFIX}{os.getpid()}.jsonl"

    def add_row(self, row: Row, exc: BaseException) -> None:
        """A row the database refused."""
        record: dict[str, object] = {"error": f"{type(exc).__name__}: {exc}", "row": encode_row(row)}
        log.error("request log: the database refused a row; kept in %s: %s", self.path(), record["error"])
        self._append(record)

    def add_line(self, spill_file: Path, line: bytes, exc: BaseException) -> None:
        """A line of ``spill_file`` that is not a valid row."""
        log.error("request log: unreadable line in spill file %s (%s); kept in %s", spill_file.name, exc, self.path())
        self._append(
            {
                "error": f"{type(exc).__name__}: {exc}",
                "file": spill_file.name,
                "line": line.decode("utf-8", errors="replace"),
            }
        )

    def _append(self, record: dict[str, object]) -> None:
        with open(self.path(), "ab") as fh:
            fh.write(json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n")
            os.fsync(fh.fileno())
