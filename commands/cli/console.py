"""What the commands log and print: the logging setup, URLs without their passwords, terminal-safe text."""

from __future__ import annotations

import logging
from typing import Literal

from tagwatch.observability import RequestIdFilter

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Text lines written during an API request end with its id (outside a request they are TEXT_FORMAT alone).
TEXT_REQUEST_ID = " [request_id={}]"
# JSON lines: these fields, renamed; then any extra of the record (request_id during an API request, the access log's
# method, path, status, duration_seconds) and exc_info with the traceback.
JSON_FIELDS = "{levelname}{name}{message}"
JSON_RENAMES = {"levelname": "level", "name": "logger"}


def setup_logging(log_format: Literal["text", "json"] | None = None) -> None:
    """Log INFO and above to stderr, as text or JSON lines (default: TAGWATCH_LOG_FORMAT). Every process's one
    logging setup: uvicorn's loggers write through it too (`tagwatch serve` gives uvicorn no config of its own)."""
    if log_format is None:
        log_format = configured_format()
    logging.basicConfig(level=logging.INFO, handlers=[log_handler(log_format)])


def configured_format() -> Literal["text", "json"]:
    from tagwatch.settings import get_settings

    try:
        return get_settings().log_format
    except Exception:  # invalid settings: the command that reads them next says which; log as text until then
        return "text"


def log_handler(log_format: Literal["text", "json"]) -> logging.Handler:
    """A stderr handler writing ``log_format`` lines, each with the request id of the request it was written in."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    if log_format == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(JsonFormatter(JSON_FIELDS, style="{", rename_fields=JSON_RENAMES, timestamp=True))
    else:
        handler.setFormatter(TextFormatter(TEXT_FORMAT))
    return handler


class TextFormatter(logging.Formatter):
    """TEXT_FORMAT lines; a line written during an API request ends with ``[request_id=…]`` (before any traceback),
    the id that the JSON lines carry as a field and the response as its X-Request-ID header."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        rid = getattr(record, "request_id", None)
        return line if rid is None else line + TEXT_REQUEST_ID.format(rid)


def redact(url: str) -> str:
    """``url`` with its password hidden, for messages."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def printable(text: str) -> str:
    """``text`` with control characters escaped: a trigger or actor cannot move the cursor or recolour a terminal."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
