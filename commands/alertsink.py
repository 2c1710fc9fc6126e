"""A tiny receiver for Alertmanager webhooks: one log line per alert, the last notifications kept for ``GET /alerts``.

The compose stack's default receiver, so that an alert is visible somewhere without Slack or e-mail configured.
"""

from __future__ import annotations

import json
import sys
import threading
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# Alertmanager batches alerts by group; even large groups stay far below this.
MAX_BODY_BYTES = 1_000_000
WEBHOOK_VERSION = "4"


class NotificationError(ValueError):
    """A request body that is not an Alertmanager webhook notification; the message is for the sender."""


def parse_notification(body: bytes) -> dict[str, Any]:
    """The decoded notification, checked for the parts this sink reads (``alerts``: a list of objects)."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NotificationError(f"body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise NotificationError("expected a JSON object (an Alertmanager webhook notification)")
    version = payload.get("version")
    if version is not None and str(version) != WEBHOOK_VERSION:
        raise NotificationError(f"unsupported webhook version {version!r}; expected {WEBHOOK_VERSION!r}")
    alerts = payload.get("alerts")
    if not isinstance(alerts, list) or not all(isinstance(a, dict) for a in alerts):
        raise NotificationError("'alerts' must be a list of objects")
    return payload


def _field(mapping: object, key: str) -> str:
    value = mapping.get(key) if isinstance(mapping, Mapping) else None
    # One line per alert: no newlines from a multi-line annotation.
    return " ".join(str(value).split()) if value not in (None, "") else "-"


def format_alert(alert: Mapping[str, Any], *, group_status: str | None = None) -> str:
    """One line: status, alertname, severity, kind and summary."""
    labels, annotations = alert.get("labels"), alert.get("annotations")
    status = _field(alert, "status")
    if status == "-" and group_status:
        status = group_status
    return (
        f"[{status.upper()}] {_field(labels, 'alertname')} severity={_field(labels, 'severity')} "
        f"kind={_field(labels, 'kind')} summary={_field(annotations, 'summary')}"
    )


def format_notification(payload: Mapping[str, Any]) -> list[str]:
    """The log lines for one notification, one per alert."""
    status = payload.get("status")
    return [format_alert(a, group_status=str(status) if status else None) for a in payload.get("alerts", [])]


def _stdout(line: str) -> None:
    print(line, file=sys.stdout, flush=True)


class AlertSink:
    """The HTTP server: ``POST /alerts`` (webhook), ``GET /alerts`` (kept notifications, newest last), ``GET /health``.

    ``start()`` serves from a daemon thread (tests); ``serve_forever()`` serves from the calling thread (the CLI).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 9095,
        *,
        keep: int = 200,
        echo: Callable[[str], None] = _stdout,
    ) -> None:
        if keep < 1:
            raise ValueError(f"keep must be at least 1, not {keep}")
        self.host, self.port = host, port
        self._echo = echo
        self._kept: deque[dict[str, Any]] = deque(maxlen=keep)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL (with the bound port once started: pass port 0 for an ephemeral one)."""
        port = self._server.server_address[1] if self._server is not None else self.port
        return f"http://{self.host}:{port}"

    def record(self, payload: Mapping[str, Any]) -> list[str]:
        """Log one line per alert of a parsed notification and keep it; returns the lines."""
        lines = format_notification(payload)
        with self._lock:
            self._kept.append({"received_at": datetime.now(UTC).isoformat(), "notification": dict(payload)})
            for line in lines:
                self._echo(line)
        return lines

    def notifications(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._kept)

    def bind(self) -> ThreadingHTTPServer:
        if self._server is None:
            self._server = ThreadingHTTPServer((self.host, self.port), _handler_for(self))
            self._server.daemon_threads = True
        return self._server

    def start(self) -> AlertSink:
        if self._thread is None:
            self._thread = threading.Thread(target=self.bind().serve_forever, name="alert-sink", daemon=True)
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        try:
            self.bind().serve_forever()
        finally:
            self.stop()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        if self._thread is not None:
            server.shutdown()  # waits for serve_forever in the thread to return
            self._thread.join(timeout=5)
            self._thread = None
        server.server_close()

    def __enter__(self) -> AlertSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _handler_for(sink: AlertSink) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "tagwatch-alert-sink"

        def _send_json(self, status: HTTPStatus, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _path(self) -> str:
            return self.path.split("?", 1)[0].rstrip("/") or "/"

        def do_GET(self) -> None:
            path = self._path()
            if path == "/health":
                self._send_json(HTTPStatus.OK, {"status": "ok"})
            elif path == "/alerts":
                self._send_json(HTTPStatus.OK, sink.notifications())
            else:
                self._send_json(HTTPStatus.NOT_FOUND, {"error": f"no route {path}: use POST/GET /alerts, GET /health"})

        def do_POST(self) -> None:
            if self._path() != "/alerts":
                self._send_json(HTTPStatus.NOT_FOUND, {"error": "POST notifications to /alerts"})
                return
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                length = -1
            if length < 0:
                self.close_connection = True
                self._send_json(HTTPStatus.LENGTH_REQUIRED, {"error": "a valid Content-Length header is required"})
                return
            if length > MAX_BODY_BYTES:
                self.close_connection = True  # the unread body must not be parsed as the next request
                self._send_json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": f"body over {MAX_BODY_BYTES} bytes"})
                return
            try:
                payload = parse_notification(self.rfile.read(length))
            except NotificationError as exc:
                self._send_json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
                return
            lines = sink.record(payload)
            self._send_json(HTTPStatus.OK, {"status": "ok", "alerts": len(lines)})

        def log_message(self, format: str, *args: Any) -> None:
            # One line per alert is the output; per-request access lines would only repeat it.
            pass

    return Handler
