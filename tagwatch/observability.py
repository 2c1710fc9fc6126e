"""What every process shares to be observed: a metrics registry with the standard process series, and the request id
its log lines carry."""

from __future__ import annotations

import logging
import re
import uuid
from contextvars import ContextVar

from prometheus_client import GC_COLLECTOR, PLATFORM_COLLECTOR, PROCESS_COLLECTOR, CollectorRegistry

# An incoming X-Request-ID is kept when it is 1-128 visible ASCII characters (no spaces, no control characters: it
# goes into log lines and a response header); anything else is replaced by an id of our own.
REQUEST_ID_PATTERN = re.compile(r"[\x21-\x7e]{1,128}")

# The id of the HTTP request being answered (None outside a request): set by the service's middleware, read by
# RequestIdFilter for every log line written while the request runs.
request_id: ContextVar[str | None] = ContextVar("tagwatch_request_id", default=None)


def process_registry() -> CollectorRegistry:
    """A registry of its own with the standard ``process_*`` (memory, CPU, open files), ``python_gc_*`` and
    ``python_info`` series of this process, as the default registry has them."""
    registry = CollectorRegistry()
    for collector in (PROCESS_COLLECTOR, GC_COLLECTOR, PLATFORM_COLLECTOR):
        registry.register(collector)
    return registry


def accepted_request_id(incoming: str | None) -> str:
    """``incoming`` (a client's X-Request-ID) when it is a bounded printable token, else a new random id."""
    if incoming is not None and REQUEST_ID_PATTERN.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    """Gives each record written during a request its ``request_id``: a field of the JSON log lines, the end of the
    text ones (``commands.cli.console.TextFormatter``). Records written outside a request get none."""

    def filter(self, record: logging.LogRecord) -> bool:
        rid = request_id.get()
        if rid is not None and not hasattr(record, "request_id"):
            record.request_id = rid
        return True
