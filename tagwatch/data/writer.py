"""Writing questions as a bundled-format CSV, which `load_questions` reads back unchanged."""

from __future__ import annotations

import csv
import gzip
import io
import os
from collections.abc import Iterable
from pathlib import Path
from typing import IO, cast

from tagwatch.data.parse import format_date
from tagwatch.data.records import Question

BUNDLED_COLUMNS = ("id", "created_at", "title", "body", "tags", "score", "source", "body_format")


def write_questions_csv(questions: Iterable[Question], path: Path | str, *, source: str = "") -> int:
    """Write questions in the bundled format (gzip if the name ends in .gz), in the given order.

    Returns the number written. Written to a temporary file and renamed, so a reader never sees half a file.
    The gzip header carries no timestamp, so the same questions always give the same bytes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    count = 0
    try:
        with open(tmp, "wb") as raw:
            binary: IO[bytes] = raw
            gz = None
            if path.name.endswith(".gz"):
                gz = gzip.GzipFile(filename="", fileobj=raw, mode="wb", compresslevel=6, mtime=0)
                binary = cast(IO[bytes], gz)
            with io.TextIOWrapper(binary, encoding="utf-8", newline="") as text:
                writer = csv.writer(text)
                writer.writerow(BUNDLED_COLUMNS)
                for q in questions:
                    writer.writerow(
                        [
                            q.id,
                            format_date(q.created_at),
                            q.title,
                            q.body,
                            " ".join(q.tags),
                            "" if q.score is None else q.score,
                            source,
                            q.body_format,
                        ]
                    )
                    count += 1
                if gz is not None:
                    text.flush()
                    gz.close()
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return count
