"""Bounds before parsing, on the real service (uvicorn on loopback): body size, body time, requests in flight."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from commands.polling import ServiceThread
from tagwatch.model import TagModel
from tagwatch.settings import Settings
from tests.support import InMemorySource

LIMIT = 4_096


@pytest.fixture(scope="module")
def service(small_model: TagModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceThread]:
    source = InMemorySource()
    source.add("1", small_model)
    home: Path = tmp_path_factory.mktemp("guard")
    live = Settings(
        home=home,
        max_request_bytes=LIMIT,
        request_body_timeout_seconds=1.0,
        max_concurrent_requests=2,
        log_enabled=False,
    )
    with ServiceThread(live, source=source) as svc:
        yield svc


def _assert_problem(response: httpx.Response, status: int, fragment: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body["type"].startswith("/problems/")
    assert fragment in body["detail"], body


def test_a_declared_length_over_the_limit_is_refused_unread(service: ServiceThread) -> None:
    body = json.dumps({"title": "t", "body": "x" * LIMIT}).encode()
    response = httpx.post(f"{service.url}/predict", content=body, headers={"content-type": "application/json"})
    _assert_problem(response, 413, "TAGWATCH_MAX_REQUEST_BYTES")
    # At the limit it passes.
    ok = json.dumps({"title": "How to sort a list in python", "body": "y" * (LIMIT - 100)})
    assert httpx.post(f"{service.url}/predict", content=ok, headers={"content-type": "application/json"}).is_success


def test_a_streamed_body_is_refused_at_the_first_byte_over(service: ServiceThread) -> None:
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        yield b'{"title": "t", "body": "'
        for _ in range(10_000):  # 10 MB if nobody stops it
            sent += 1_000
            yield b"x" * 1_000
        yield b'"}'

    try:
        response = httpx.post(
            f"{service.url}/predict", content=chunks(), headers={"content-type": "application/json"}, timeout=10
        )
    except httpx.HTTPError:
        # The server may close the connection while the client still writes; then it must have stopped early.
        assert sent < 1_000_000
        return
    _assert_problem(response, 413, f"{LIMIT:,} bytes")


def test_a_malformed_content_length_is_a_400(service: ServiceThread) -> None:
    raw = _raw_request(service, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 12abc\r\n\r\n")
    # uvicorn's HTTP parser may refuse it first (400 plain), or it reaches the guard (400 problem): never a 5xx.
    assert raw.startswith(b"HTTP/1.1 400"), raw[:200]


def test_a_slow_body_gets_408_and_frees_its_slot(service: ServiceThread) -> None:
    start = time.monotonic()
    raw = _raw_request(
        service,
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
    )
    assert raw.startswith(b"HTTP/1.1 408"), raw[:200]
    assert b"application/problem+json" in raw
    assert time.monotonic() - start < 10
    assert httpx.post(f"{service.url}/predict", json={"title": "How to parse json in java"}).is_success


def test_requests_past_the_in_flight_limit_get_503_but_probes_answer(service: ServiceThread) -> None:
    # Two requests whose bodies never come hold both slots (for the 1 s body timeout).
    held = [_open_request(service) for _ in range(2)]
    try:
        time.sleep(0.2)
        response = httpx.post(f"{service.url}/predict", json={"title": "How to parse json in java"})
        _assert_problem(response, 503, "limit")
        assert response.headers["retry-after"] == "1"
        assert httpx.get(f"{service.url}/health").status_code == 200
        assert httpx.get(f"{service.url}/ready").status_code == 200
        assert httpx.get(f"{service.url}/metrics").status_code == 200
    finally:
        for sock in held:
            sock.close()
    # Slots are given back: after the timeout the service takes requests again.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if httpx.post(f"{service.url}/predict", json={"title": "How to parse json in java"}).is_success:
            break
        time.sleep(0.2)
    else:
        pytest.fail("the in-flight slots were never given back")


def _open_request(service: ServiceThread) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", service.port), timeout=5)
    sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n")
    return sock


def _raw_request(service: ServiceThread, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", service.port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65_536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks) and b"}" in chunk:
                break
        return b"".join(chunks)
