"""Waiting helpers for the embedded loop, the tests and the benchmarks: free ports, polling, the service in a thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from tagwatch.settings import Settings

T = TypeVar("T")


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(condition: Callable[[], T], *, timeout: float, what: str, interval: float = 0.2) -> T:
    """Call ``condition`` until it returns something truthy, and return that; RuntimeError after ``timeout`` s.

    ``condition`` may raise to stop waiting early (a process that died, say)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def http_ok(url: str) -> bool:
    """Whether GET ``url`` answers 200 (False when nothing answers)."""
    import httpx

    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


class ServiceThread:
    """The real service (uvicorn) in a thread on a free loopback port."""

    def __init__(self, settings: Settings, *, source: Any = None) -> None:
        import uvicorn

        from service.app import create_app

        self.port = free_port()
        config = uvicorn.Config(
            create_app(settings, source=source), host="127.0.0.1", port=self.port, log_level="warning", access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="tagwatch-service", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServiceThread:
        self.thread.start()
        wait_for(lambda: http_ok(f"{self.url}/ready"), timeout=120, what="the service to be ready")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)
