"""Bounds every request before any parsing: body size, time to send the body, requests in flight.

A pure ASGI middleware, so nothing of the framework runs on a request it refuses:

- **body size**: a ``Content-Length`` over the limit is answered 413 before one byte of the body is read; a body
  streamed without a length is counted as it arrives and refused at the first byte over the limit. What passes is
  buffered (at most the limit) and handed to the app, which then never waits on the network for it;
- **body time**: a client that sends its body too slowly (slowloris) gets 408 instead of holding a slot forever;
- **in flight**: past ``max_in_flight`` requests being served, new ones get 503 with ``Retry-After`` (probes and
  ``/metrics`` are never refused: an overloaded replica must still say so).

Worst-case memory of a replica is therefore about ``max_in_flight`` × (the limit × the parser's expansion);
``bench/memory.py`` measures it.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio

from service.problems import MEDIA_TYPE, problem_bytes

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Never refused for load: liveness, readiness and the metrics that show the load.
UNLIMITED_PATHS = frozenset({"/health", "/ready", "/metrics"})


class _TooLarge(Exception):
    pass


class RequestGuard:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        body_timeout: float,
        max_in_flight: int,
    ) -> None:
        if max_body_bytes < 0 or max_in_flight < 1 or not body_timeout > 0:
            raise ValueError("max_body_bytes >= 0, max_in_flight >= 1 and body_timeout > 0 are required")
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout
        self.max_in_flight = max_in_flight
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limited = scope.get("path", "") not in UNLIMITED_PATHS
        if limited and self.in_flight >= self.max_in_flight:
            await _refuse(
                send,
                503,
                f"This replica is serving {self.in_flight} requests, its limit; retry shortly.",
                retry_after=1,
            )
            return
        declared = _content_length(scope)
        if declared == -1:
            await _refuse(send, 400, "The Content-Length header is not a non-negative integer.")
            return
        if declared is not None and declared > self.max_body_bytes:
            await _refuse(send, 413, self._too_large())
            return
        if limited:
            self.in_flight += 1
        try:
            try:
                with anyio.fail_after(self.body_timeout):
                    body, disconnected = await self._read_body(receive)
            except TimeoutError:
                await _refuse(send, 408, f"The request body did not arrive within {self.body_timeout:g} s.")
                return
            except _TooLarge:
                await _refuse(send, 413, self._too_large())
                return
            if disconnected:
                return
            await self.app(scope, _replay(body, receive), send)
        finally:
            if limited:
                self.in_flight -= 1

    def _too_large(self) -> str:
        return f"The request body is larger than {self.max_body_bytes:,} bytes (TAGWATCH_MAX_REQUEST_BYTES)."

    async def _read_body(self, receive: Receive) -> tuple[bytes, bool]:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"", True
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _TooLarge
            if chunk:
                chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), False


def _content_length(scope: Scope) -> int | None:
    """The declared body length; None when absent, -1 when malformed."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() and len(text) <= 18 else -1
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: wait for the disconnect, as the server's receive does

    return replayed


async def _refuse(send: Send, status: int, detail: str, *, retry_after: float | None = None) -> None:
    body = problem_bytes(status, detail)
    headers = [
        (b"content-type", MEDIA_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
        # The unread body is not drained: tell the client this connection is done.
        (b"connection", b"close"),
    ]
    if retry_after is not None:
        headers.append((b"retry-after", str(math.ceil(retry_after)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
