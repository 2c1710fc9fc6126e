"""The alert sink: a real server on an ephemeral port, fed Alertmanager webhook notifications."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from commands.alertsink import AlertSink, NotificationError, format_alert, format_notification, parse_notification

# What Alertmanager 0.27 posts to a webhook receiver (version 4), trimmed to one group of two alerts.
NOTIFICATION: dict[str, Any] = {
    "version": "4",
    "groupKey": '{}:{alertname="TagwatchDataDriftConfirmed"}',
    "truncatedAlerts": 0,
    "status": "firing",
    "receiver": "alert-sink",
    "groupLabels": {"alertname": "TagwatchDataDriftConfirmed"},
    "commonLabels": {"alertname": "TagwatchDataDriftConfirmed", "severity": "ticket", "component": "model"},
    "commonAnnotations": {},
    "externalURL": "http://localhost:9093",
    "alerts": [
        {
            "status": "firing",
            "labels": {
                "alertname": "TagwatchDataDriftConfirmed",
                "severity": "ticket",
                "component": "model",
                "kind": "data",
            },
            "annotations": {
                "summary": "Data drift confirmed",
                "description": "The question text drifted\nfor two windows in a row.",
            },
            "startsAt": "2026-01-01T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://localhost:9090/graph",
            "fingerprint": "a1b2c3",
        },
        {
            "status": "resolved",
            "labels": {"alertname": "TagwatchHighLatency", "severity": "page"},
            "annotations": {"summary": "p95 latency\nback to normal"},
            "startsAt": "2026-01-01T09:00:00Z",
            "endsAt": "2026-01-01T09:30:00Z",
            "fingerprint": "d4e5f6",
        },
    ],
}


def _request(url: str, *, body: bytes | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"} if body else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


@pytest.fixture
def sink() -> Iterator[tuple[AlertSink, list[str]]]:
    lines: list[str] = []
    with AlertSink("127.0.0.1", 0, keep=2, echo=lines.append) as server:
        yield server, lines


def test_format_alert_names_status_alertname_severity_kind_and_summary() -> None:
    line = format_alert(NOTIFICATION["alerts"][0])
    assert line == "[FIRING] TagwatchDataDriftConfirmed severity=ticket kind=data summary=Data drift confirmed"


def test_format_alert_fills_missing_fields_and_keeps_one_line() -> None:
    assert format_alert({"labels": {"alertname": "X"}}, group_status="resolved") == (
        "[RESOLVED] X severity=- kind=- summary=-"
    )
    assert format_notification(NOTIFICATION)[1].endswith("summary=p95 latency back to normal")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"version": "3", "alerts": []}', "unsupported webhook version"),
        (b'{"version": "4"}', "'alerts' must be a list"),
        (b'{"alerts": ["x"]}', "'alerts' must be a list"),
    ],
)
def test_parse_notification_rejects_what_is_not_a_webhook(body: bytes, message: str) -> None:
    with pytest.raises(NotificationError, match=message):
        parse_notification(body)


def test_posted_notification_is_logged_and_read_back(sink: tuple[AlertSink, list[str]]) -> None:
    server, lines = sink
    status, answer = _request(f"{server.url}/alerts", body=json.dumps(NOTIFICATION).encode())
    assert (status, answer) == (200, {"status": "ok", "alerts": 2})
    assert lines == [
        "[FIRING] TagwatchDataDriftConfirmed severity=ticket kind=data summary=Data drift confirmed",
        "[RESOLVED] TagwatchHighLatency severity=page kind=- summary=p95 latency back to normal",
    ]
    status, kept = _request(f"{server.url}/alerts")
    assert status == 200
    assert [k["notification"] for k in kept] == [NOTIFICATION]
    assert kept[0]["received_at"]


def test_keeps_only_the_newest_notifications_newest_last(sink: tuple[AlertSink, list[str]]) -> None:
    server, _ = sink
    for n in range(3):
        body = {**NOTIFICATION, "groupKey": f"group-{n}"}
        assert _request(f"{server.url}/alerts", body=json.dumps(body).encode())[0] == 200
    _, kept = _request(f"{server.url}/alerts")
    assert [k["notification"]["groupKey"] for k in kept] == ["group-1", "group-2"]


def test_bad_json_is_a_400_with_a_message(sink: tuple[AlertSink, list[str]]) -> None:
    server, lines = sink
    status, answer = _request(f"{server.url}/alerts", body=b"{not json")
    assert status == 400
    assert "not valid JSON" in answer["error"]
    assert lines == []
    assert _request(f"{server.url}/alerts") == (200, [])


def test_health_and_unknown_routes(sink: tuple[AlertSink, list[str]]) -> None:
    server, _ = sink
    assert _request(f"{server.url}/health") == (200, {"status": "ok"})
    assert _request(f"{server.url}/nope")[0] == 404
    assert _request(f"{server.url}/health", body=b"{}")[0] == 404


def test_stop_frees_the_port() -> None:
    server = AlertSink("127.0.0.1", 0, echo=lambda _: None).start()
    url = server.url
    server.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{url}/health", timeout=2)
    server.stop()  # idempotent


def test_keep_must_be_positive() -> None:
    with pytest.raises(ValueError, match="keep"):
        AlertSink(keep=0)


def test_cli_serves_logs_to_stdout_and_stops_on_sigterm() -> None:
    """`tagwatch alert-sink` as the container runs it: lines on stdout, a clean exit on SIGTERM (docker stop)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "commands.cli", "alert-sink", "--port", "0", "--keep", "5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        assert proc.stdout is not None
        banner = proc.stderr.readline()
        match = re.search(r"(http://127\.0\.0\.1:\d+)/alerts", banner)
        assert match, banner
        status, _ = _request(f"{match.group(1)}/alerts", body=json.dumps(NOTIFICATION).encode())
        assert status == 200
        assert proc.stdout.readline().startswith("[FIRING] TagwatchDataDriftConfirmed severity=ticket kind=data")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
