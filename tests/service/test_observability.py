"""Observing the API: process and GC series on /metrics, gzip, the request id in headers and log lines, the access
log, JSON log lines."""

from __future__ import annotations

import gzip
import io
import json
import logging
from collections.abc import Iterator

import anyio
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from commands.cli.console import log_handler
from service.app import create_app
from tagwatch.model import TagModel
from tagwatch.settings import Settings
from tests.support import InMemorySource

QUESTION = {"title": "How to group a pandas DataFrame by one column", "body": "<p>df.groupby('city').sum()</p>"}
HEX_ID = r"[0-9a-f]{32}"


def _app(settings: Settings, small_model: TagModel, **overrides: object) -> FastAPI:
    source = InMemorySource()
    source.add("1", small_model)
    app = create_app(settings.model_copy(update={"log_enabled": False, **overrides}), source=source)
    inner = logging.getLogger("tests.inside")

    @app.get("/log-inside")
    async def log_inside() -> dict[str, str]:
        """Logs on the event loop and from a worker thread, as the routes do."""
        inner.warning("on the loop")
        await anyio.to_thread.run_sync(inner.warning, "in a thread")
        return {"ok": "yes"}

    return app


@pytest.fixture
def client(settings: Settings, small_model: TagModel) -> Iterator[TestClient]:
    with TestClient(_app(settings, small_model)) as c:
        yield c


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """What the root logger writes, as the JSON lines `TAGWATCH_LOG_FORMAT=json` gives."""
    stream = io.StringIO()
    handler = log_handler("json")
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def _families(text: str) -> dict[str, str]:
    return {family.name: family.type for family in text_string_to_metric_families(text)}


def test_metrics_carry_the_process_and_gc_series(client: TestClient) -> None:
    families = _families(client.get("/metrics").text)
    for name in ("process_resident_memory_bytes", "process_cpu_seconds", "process_open_fds", "python_info"):
        assert name in families, name
    assert families["python_gc_objects_collected"] == "counter"
    text = client.get("/metrics").text
    assert "\nprocess_resident_memory_bytes " in text
    assert 'python_gc_objects_collected_total{generation="0"}' in text


def test_metrics_are_gzipped_when_the_scraper_accepts_it(client: TestClient) -> None:
    client.post("/predict", json=QUESTION)
    plain = client.get("/metrics", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    # httpx would decode the body itself: read the bytes as they came over the wire.
    with client.stream("GET", "/metrics", headers={"Accept-Encoding": "gzip"}) as zipped:
        assert zipped.status_code == 200
        assert zipped.headers["content-encoding"] == "gzip"
        raw = b"".join(zipped.iter_raw())
    assert raw[:2] == b"\x1f\x8b"
    text = gzip.decompress(raw).decode()
    assert _families(text) == _families(plain.text)
    assert len(raw) < len(plain.content) / 3
    assert "tagwatch_predictions_total 1.0" in text


def test_metrics_route_is_counted_under_its_template_and_refuses_other_methods(client: TestClient) -> None:
    client.get("/metrics")
    assert client.post("/metrics").status_code == 405
    text = client.get("/metrics").text
    assert 'tagwatch_http_requests_total{method="GET",route="/metrics",status_class="2xx"}' in text


def test_every_response_carries_a_request_id(client: TestClient) -> None:
    a, b = client.get("/health"), client.post("/predict", json=QUESTION)
    assert a.headers["x-request-id"] != b.headers["x-request-id"]
    for response in (a, b, client.get("/no/such/page"), client.post("/predict", json={"title": ""})):
        assert pytest.approx(32) == len(response.headers["x-request-id"]), response.status_code
        assert response.headers.get_list("x-request-id") == [response.headers["x-request-id"]]


def test_a_bounded_printable_incoming_request_id_is_kept(client: TestClient) -> None:
    for incoming in ("abc", "0f8fad5b-d9cb-469f-a165-70867728950e", "x" * 128, "trace=1;span=2"):
        assert client.get("/health", headers={"X-Request-ID": incoming}).headers["x-request-id"] == incoming


@pytest.mark.parametrize("incoming", ["", "x" * 129, "two words", "tab\there", "caf\u00e9"])
def test_an_unbounded_or_unprintable_request_id_is_replaced(client: TestClient, incoming: str) -> None:
    headers = [(b"x-request-id", incoming.encode("utf-8"))]
    answered = client.get("/health", headers=headers).headers.get_list("x-request-id")
    assert len(answered) == 1
    assert answered[0] != incoming
    assert len(answered[0]) == 32


def test_the_guard_refusals_carry_the_request_id(settings: Settings, small_model: TagModel) -> None:
    with TestClient(_app(settings, small_model, max_request_bytes=1024)) as client:
        refused = client.post("/predict", content=b"x" * 2048, headers={"X-Request-ID": "too-big-1"})
    assert refused.status_code == 413
    assert refused.headers["x-request-id"] == "too-big-1"


def test_every_log_line_of_a_request_carries_its_id(client: TestClient, json_log: io.StringIO) -> None:
    client.get("/log-inside", headers={"X-Request-ID": "req-42"})
    client.get("/log-inside")
    lines = [line for line in _lines(json_log) if line["logger"] == "tests.inside"]
    assert [line["message"] for line in lines] == ["on the loop", "in a thread"] * 2
    assert [line["request_id"] for line in lines[:2]] == ["req-42", "req-42"]
    assert lines[2]["request_id"] == lines[3]["request_id"] != "req-42"
    for line in lines:
        assert set(line) >= {"timestamp", "level", "logger", "message", "request_id"}
    logging.getLogger("tests.inside").warning("outside a request")
    assert "request_id" not in _lines(json_log)[-1]


def test_every_text_log_line_of_a_request_ends_with_its_id(client: TestClient) -> None:
    stream = io.StringIO()
    handler = log_handler("text")
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    inner = logging.getLogger("tests.inside")
    inner.addHandler(handler)
    try:
        client.get("/log-inside", headers={"X-Request-ID": "req-43"})
        inner.warning("outside a request")
        try:
            raise ValueError("boom")
        except ValueError:
            inner.exception("failed")
    finally:
        inner.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert lines[0].endswith(" WARNING tests.inside: on the loop [request_id=req-43]")
    assert lines[1].endswith(" WARNING tests.inside: in a thread [request_id=req-43]")
    # Outside a request: the plain format, no marker at all.
    assert lines[2].endswith(" WARNING tests.inside: outside a request")
    assert lines[3].endswith(" ERROR tests.inside: failed")
    assert lines[4] == "Traceback (most recent call last):"
    assert "request_id" not in "\n".join(lines[2:])


def test_the_access_log_is_off_by_default(client: TestClient, json_log: io.StringIO) -> None:
    client.post("/predict", json=QUESTION)
    assert [line for line in _lines(json_log) if line["logger"] == "tagwatch.access"] == []


def test_the_access_log_has_one_line_per_request_and_no_body(
    settings: Settings, small_model: TagModel, json_log: io.StringIO
) -> None:
    with TestClient(_app(settings, small_model, access_log=True)) as client:
        client.post("/predict?secret=1", json=QUESTION, headers={"X-Request-ID": "acc-1"})
        client.post("/predict", json={"title": ""})
        client.get("/metrics")
    access = [line for line in _lines(json_log) if line["logger"] == "tagwatch.access"]
    assert [(line["method"], line["path"], line["status"]) for line in access] == [
        ("POST", "/predict", 200),
        ("POST", "/predict", 422),
        ("GET", "/metrics", 200),
    ]
    assert access[0]["request_id"] == "acc-1"
    assert access[0]["message"].startswith("POST /predict 200 ")
    for line in access:
        assert isinstance(line["duration_seconds"], float)
        assert 0 < line["duration_seconds"] < 10
    written = json.dumps(access)
    assert "pandas" not in written
    assert "secret" not in written
