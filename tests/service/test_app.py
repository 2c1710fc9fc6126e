"""The HTTP API end to end: real model, real request log (SQLite and PostgreSQL), real metrics."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from service.app import create_app
from tagwatch.model import TagModel
from tagwatch.settings import Settings
from tests.support import InMemorySource

PANDAS_QUESTION = {
    "title": "How to group a pandas DataFrame by one column and sum another",
    "body": "<p>I have a DataFrame with columns <code>city</code> and <code>sales</code>.</p>"
    "<pre><code>import pandas as pd\ndf = pd.read_csv('sales.csv')\ndf.groupby('city')['sales'].sum()\n"
    "</code></pre><p>How do I keep the result as a DataFrame instead of a Series?</p>",
}


def _client(settings: Settings, source: InMemorySource) -> TestClient:
    return TestClient(create_app(settings, source=source))


@pytest.fixture
def source(small_model: TagModel) -> InMemorySource:
    src = InMemorySource()
    src.add("1", small_model)
    return src


@pytest.fixture
def client(settings: Settings, source: InMemorySource) -> Iterator[TestClient]:
    with _client(settings, source) as c:
        yield c


def _metric(client: TestClient, name: str, **labels: str) -> float:
    text = client.get("/metrics").text
    total = 0.0
    found = False
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
                found = True
    if not found:
        raise AssertionError(f"{name}{labels} not exported")
    return total


def _rows(client: TestClient) -> dict[str, int]:
    from tagwatch.db import count_rows

    state: Any = client.app.state.tagwatch  # type: ignore[attr-defined]
    state.writer.flush()
    counts = count_rows(state.engine)
    return {table: counts[table] for table in ("prediction_requests", "feedback")}


def test_health_ready_and_model(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["model_version"] == "1"
    info = client.get("/model").json()
    assert info["version"] == "1"
    assert info["n_tags"] == 40
    assert info["params"] == {"top_n": 40}


def test_not_ready_without_a_model(settings: Settings) -> None:
    with _client(settings, InMemorySource()) as c:
        assert c.get("/health").status_code == 200
        ready = c.get("/ready")
        assert ready.status_code == 503
        assert "no model" in ready.json()["detail"]
        predicted = c.post("/predict", json={"title": "x"})
        assert predicted.status_code == 503
        assert "tagwatch train" in predicted.json()["detail"]


def test_predict_pandas_question(client: TestClient) -> None:
    response = client.post("/predict", json=PANDAS_QUESTION)
    assert response.status_code == 200
    body = response.json()
    assert len(body["request_id"]) == 32
    assert body["model_version"] == "1"
    tags = [t["tag"] for t in body["tags"]]
    assert {"python", "pandas"} <= set(tags)
    scores = [t["score"] for t in body["tags"]]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert 1 <= len(tags) <= 5


def test_predict_batch(client: TestClient) -> None:
    questions = [
        PANDAS_QUESTION,
        {"title": "Center a div horizontally with CSS"},
        {"title": "NullPointerException"},
    ]
    response = client.post("/predict/batch", json={"questions": questions})
    assert response.status_code == 200
    body = response.json()
    assert body["model_version"] == "1"
    assert len(body["predictions"]) == 3
    assert len({p["request_id"] for p in body["predictions"]}) == 3
    single = client.post("/predict", json=PANDAS_QUESTION).json()
    assert body["predictions"][0]["tags"] == single["tags"]
    assert _rows(client)["prediction_requests"] == 4


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "x" * 301}, "title"),
        ({"title": "ok", "body": "y" * 60_001}, "body"),
        ({"title": 5}, "title"),
        ({"title": ["a"]}, "title"),
        ({"body": "no title"}, "title"),
        ({"title": "ok", "extra": 1}, "extra"),
        ({"title": "ok", "body": None}, "body"),
        ({"title": "nul \u0000 inside"}, "NUL"),
        ({"title": "ok", "body": "nul \u0000"}, "NUL"),
        ([], "dict"),
    ],
)
def test_predict_rejects_bad_input(client: TestClient, payload: Any, fragment: str) -> None:
    response = client.post("/predict", json=payload)
    assert response.status_code == 422
    assert fragment in response.json()["detail"]


def test_non_json_and_empty_bodies_are_4xx(client: TestClient) -> None:
    for content, headers in [
        (b"title=hello", {"content-type": "application/x-www-form-urlencoded"}),
        (b"{not json", {"content-type": "application/json"}),
        (b"", {"content-type": "application/json"}),
        (b"\xff\xfe\x00garbage", {"content-type": "application/json"}),
    ]:
        response = client.post("/predict", content=content, headers=headers)
        assert 400 <= response.status_code < 500, (content, response.status_code)
        assert response.json()["detail"]
    assert client.get("/predict").status_code == 405
    assert client.post("/predict/batch", json={"questions": []}).status_code == 422
    too_many = {"questions": [{"title": "q"}] * 257}
    assert client.post("/predict/batch", json=too_many).status_code == 422
    # None of the rejected requests reached the request log.
    assert _rows(client)["prediction_requests"] == 0


def test_feedback_flow(client: TestClient) -> None:
    request_id = client.post("/predict", json=PANDAS_QUESTION).json()["request_id"]
    # Accepted even before the request row is flushed to the database.
    first = client.post("/feedback", json={"request_id": request_id, "tags": ["Python", "pandas", "pandas", ".NET"]})
    assert first.status_code == 200
    assert first.json() == {"request_id": request_id, "tags": ["python", "pandas", ".net"], "status": "recorded"}
    again = client.post("/feedback", json={"request_id": request_id, "tags": ["python", "pandas"]})
    assert again.status_code == 200
    # Append-only: every submission is a record of its own; the latest counts.
    assert _rows(client) == {"prediction_requests": 1, "feedback": 2}
    # After the flush, the id is found in the database.
    third = client.post("/feedback", json={"request_id": request_id, "tags": ["python", "numpy"]})
    assert third.status_code == 200
    assert _rows(client) == {"prediction_requests": 1, "feedback": 3}
    from tagwatch.db import fetch_requests

    (logged,) = fetch_requests(client.app.state.tagwatch.engine, with_feedback=True)  # type: ignore[attr-defined]
    assert logged.feedback_tags == ("python", "numpy")
    assert logged.feedback_key is None  # feedback is open: no key to name


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        ({"request_id": "0" * 32, "tags": ["python"]}, 404),
        ({"request_id": "not-an-id", "tags": ["python"]}, 422),
        ({"request_id": "0" * 32, "tags": []}, 422),
        ({"request_id": "0" * 32, "tags": ["has space"]}, 422),
        ({"request_id": "0" * 32, "tags": ["x" * 36]}, 422),
        ({"request_id": "0" * 32, "tags": "python"}, 422),
        ({"request_id": "0" * 32}, 422),
    ],
)
def test_feedback_rejects(client: TestClient, payload: dict[str, Any], status: int) -> None:
    response = client.post("/feedback", json=payload)
    assert response.status_code == status
    assert response.json()["detail"]
    assert _rows(client)["feedback"] == 0


@pytest.mark.postgres
def test_request_log_on_postgres(postgres_url: str, tmp_path: Any, source: InMemorySource) -> None:
    settings = Settings(home=tmp_path / "home", database_url=postgres_url)
    with _client(settings, source) as c:
        ids = [c.post("/predict", json={"title": f"question {i} about java"}).json()["request_id"] for i in range(25)]
        for request_id in ids[:10]:
            assert c.post("/feedback", json={"request_id": request_id, "tags": ["java"]}).status_code == 200
        assert _rows(c) == {"prediction_requests": 25, "feedback": 10}
        # Feedback for a request that was flushed before: looked up in PostgreSQL.
        assert c.post("/feedback", json={"request_id": ids[20], "tags": ["java"]}).status_code == 200
        assert c.post("/feedback", json={"request_id": "f" * 32, "tags": ["java"]}).status_code == 404
        assert _rows(c) == {"prediction_requests": 25, "feedback": 11}


def test_metrics(client: TestClient) -> None:
    for _ in range(3):
        client.post("/predict", json=PANDAS_QUESTION)
    client.post("/predict", json={"title": ""})
    client.get("/no/such/page")
    assert _metric(client, "tagwatch_predictions_total") == 3
    assert _metric(client, "tagwatch_http_requests_total", route="/predict", status_class="2xx") == 3
    assert _metric(client, "tagwatch_http_requests_total", route="/predict", status_class="4xx") == 1
    assert _metric(client, "tagwatch_http_requests_total", route="unmatched", status_class="4xx") == 1
    assert _metric(client, "tagwatch_http_request_duration_seconds_count", route="/predict") == 4
    assert _metric(client, "tagwatch_predicted_tags_total", tag="pandas") == 3
    assert _metric(client, "tagwatch_model_info", version="1") == 1
    assert _metric(client, "tagwatch_prediction_score_count") >= 3
    assert _metric(client, "tagwatch_request_log_queue_capacity") == 10_000
    _rows(client)
    assert _metric(client, "tagwatch_request_log_rows_written_total", table="prediction_requests") == 3
    # Tags outside the labelled top-N are counted as "other", so the label set stays bounded.
    text = client.get("/metrics").text
    labelled = {
        s.labels["tag"]
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "tagwatch_predicted_tags_total"
    }
    assert len(labelled) <= 21


def test_hot_reload_under_concurrent_requests(
    settings: Settings, small_model: TagModel, small_training_set: list[Any]
) -> None:
    from retrain.train import train_model

    other = train_model(small_training_set[:2_000], top_n=20, max_tags=3, seed=3)
    source = InMemorySource()
    source.add("1", small_model)
    source.add("2", other, champion=False)
    fast = settings.model_copy(update={"reload_interval_seconds": 0.05})
    seen: list[str] = []
    failures: list[str] = []
    stop = threading.Event()

    with _client(fast, source) as c:

        def hammer() -> None:
            while not stop.is_set():
                r = c.post("/predict", json=PANDAS_QUESTION)
                if r.status_code != 200:
                    failures.append(f"{r.status_code} {r.text}")
                else:
                    body = r.json()
                    seen.append(body["model_version"])
                    if body["model_version"] == "2" and len(body["tags"]) > 3:
                        failures.append("version 2 answered with more than its 3 tags")

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        source.champion = "2"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (not seen or seen[-1] != "2"):
            time.sleep(0.05)
        time.sleep(0.3)
        stop.set()
        for t in threads:
            t.join()
        assert c.get("/model").json()["version"] == "2"
        assert _metric(c, "tagwatch_model_info", version="2") == 1
        text = c.get("/metrics").text
        assert 'tagwatch_model_info{name="tagwatch",version="1"}' not in text

    assert failures == []
    assert "1" in seen
    assert seen[-1] == "2"
    # Once a request saw version 2, none after it saw version 1 again.
    first_two = seen.index("2")
    assert "1" not in seen[first_two + 8 :]


def test_failed_reload_keeps_serving(settings: Settings, source: InMemorySource, small_model: TagModel) -> None:
    source.add("2", small_model, champion=False)
    source.fail_loading.add("2")
    with _client(settings, source) as c:
        source.champion = "2"
        holder = c.app.state.tagwatch.holder  # type: ignore[attr-defined]
        assert holder.check_and_reload() is False
        assert c.post("/predict", json=PANDAS_QUESTION).json()["model_version"] == "1"
        assert _metric(c, "tagwatch_model_reloads_total", result="failure") == 1


def test_latest_report_redirects_to_the_newest(client: TestClient, settings: Settings) -> None:
    missing = client.get("/reports/latest", follow_redirects=False)
    assert missing.status_code == 404
    assert "no drift report yet" in missing.json()["detail"]
    for name in ("drift-20240101T000000.000000Z.html", "drift-20240102T000000.000000Z.html"):
        (settings.reports_dir / name).write_text(f"<html>{name}</html>")
    latest = client.get("/reports/latest", follow_redirects=False)
    assert latest.status_code == 307
    assert latest.headers["location"] == "/reports/drift-20240102T000000.000000Z.html"
    served = client.get("/reports/latest")
    assert "drift-20240102" in served.text
    # Served so that a script that got into a report could do nothing on this origin.
    assert served.headers["content-security-policy"].startswith("sandbox allow-scripts;")
    assert "connect-src 'none'" in served.headers["content-security-policy"]
    assert served.headers["x-content-type-options"] == "nosniff"
    (settings.reports_dir / "index.html").write_text("<html>runs</html>")
    index = client.get("/reports/")
    assert "sandbox" in index.headers["content-security-policy"]


def test_errors_are_problem_details(client: TestClient) -> None:
    for response, status in [
        (client.post("/predict", json={"title": ""}), 422),
        (client.post("/predict", content=b"{x", headers={"content-type": "application/json"}), 422),
        (client.get("/nowhere"), 404),
        (client.delete("/predict"), 405),
        (client.post("/feedback", json={"request_id": "f" * 32, "tags": ["java"]}), 404),
    ]:
        assert response.status_code == status
        assert response.headers["content-type"] == "application/problem+json"
        body = response.json()
        assert body["status"] == status
        assert body["type"].startswith("/problems/")
        assert body["title"]
        assert body["detail"]
    invalid = client.post("/predict", json={"title": "", "body": 5}).json()
    assert [e["loc"] for e in invalid["errors"]] == [["body", "title"], ["body", "body"]]
    # The input is not echoed back (it may be 60,000 characters).
    assert "input" not in invalid["errors"][0]


def test_a_bug_is_a_500_problem_without_internals(settings: Settings, small_model: TagModel) -> None:
    class Broken:
        tags = small_model.tags

        def predict_scores(self, items: Any) -> Any:
            return small_model.predict_scores(items)

        def predict(self, items: Any) -> Any:
            raise RuntimeError("secret internal state")

    source = InMemorySource()
    source.add("1", Broken())  # type: ignore[arg-type]
    with TestClient(create_app(settings, source=source), raise_server_exceptions=False) as c:
        response = c.post("/predict", json=PANDAS_QUESTION)
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 500
    assert "secret internal state" not in response.text


def test_batch_total_characters_are_bounded(settings: Settings, source: InMemorySource) -> None:
    limited = settings.model_copy(update={"max_batch_chars": 10_000})
    with _client(limited, source) as c:
        fits = {"questions": [{"title": "How to sort a list", "body": "x" * 4_000}] * 2}
        assert c.post("/predict/batch", json=fits).status_code == 200
        over = {"questions": [{"title": "How to sort a list", "body": "x" * 4_000}] * 3}
        response = c.post("/predict/batch", json=over)
        assert response.status_code == 422
        assert "TAGWATCH_MAX_BATCH_CHARS" in response.json()["detail"]
        assert _rows(c)["prediction_requests"] == 2


def test_limits_come_from_the_settings(settings: Settings, source: InMemorySource) -> None:
    limited = settings.model_copy(update={"max_body_chars": 1_000, "max_title_chars": 50, "max_batch_size": 3})
    with _client(limited, source) as c:
        assert c.post("/predict", json={"title": "t", "body": "x" * 1_000}).status_code == 200
        assert c.post("/predict", json={"title": "t", "body": "x" * 1_001}).status_code == 422
        assert c.post("/predict", json={"title": "t" * 51}).status_code == 422
        assert c.post("/predict/batch", json={"questions": [{"title": "t"}] * 4}).status_code == 422
        schemas = c.get("/openapi.json").json()["components"]["schemas"]
    # The document shows the limits this app enforces.
    assert schemas["Question"]["properties"]["body"]["maxLength"] == 1_000
    assert schemas["Question"]["properties"]["title"]["maxLength"] == 50
    assert schemas["BatchRequest"]["properties"]["questions"]["maxItems"] == 3


def test_ready_reports_the_database_without_leaving_rotation(
    tmp_path: Path, source: InMemorySource, caplog: pytest.LogCaptureFixture
) -> None:
    # Port 1 on loopback: nothing listens. The password must not leak anywhere.
    url = "postgresql+psycopg://tagwatch:SENTINEL-secret-41@127.0.0.1:1/tagwatch?connect_timeout=1"
    down = Settings(home=tmp_path / "home", database_url=url, auto_migrate=False)
    with _client(down, source) as c:
        ready = c.get("/ready")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready", "model_version": "1", "database": "unreachable"}
        predicted = c.post("/predict", json=PANDAS_QUESTION)
        assert predicted.status_code == 200
        texts = [ready.text, predicted.text, c.get("/model").text, c.get("/metrics").text]
        c.app.state.tagwatch.writer.flush(timeout=10)  # type: ignore[attr-defined]
    assert not any("SENTINEL" in t for t in texts)
    # The failed writes were logged, without the password.
    assert "request log" in caplog.text
    assert "SENTINEL" not in caplog.text


def test_hostile_json_shapes_are_cheap_4xx(client: TestClient) -> None:
    headers = {"content-type": "application/json"}
    # Nesting deeper than the parser goes (RecursionError inside): a 400, never a 500.
    nested = client.post("/predict", content=b"[" * 200_000 + b"]" * 200_000, headers=headers)
    assert nested.status_code == 400
    assert nested.headers["content-type"] == "application/problem+json"
    # 50,000 unknown fields: one error, not 50,000, and an answer far smaller than the question.
    fields = b",".join(b'"k%d":0' % i for i in range(50_000))
    unknown = client.post("/predict", content=b'{"title":"t",' + fields + b"}", headers=headers)
    assert unknown.status_code == 422
    assert "50,000 in all" in unknown.json()["detail"]
    assert len(unknown.content) < 2_000
    # A list far over its limit is refused on its length, before its items are validated.
    objects = client.post(
        "/predict/batch", content=b'{"questions":[' + b",".join([b"{}"] * 100_000) + b"]}", headers=headers
    )
    assert objects.status_code == 422
    assert len(objects.json()["errors"]) == 1
    assert _rows(client)["prediction_requests"] == 0


def test_the_reload_interval_is_jittered_around_its_setting() -> None:
    import random

    from service.app import jittered

    rng = random.Random(7)
    waits = [jittered(10.0, rng) for _ in range(2_000)]
    assert all(5.0 <= w <= 15.0 for w in waits)
    # Spread, not a constant: replicas started together drift apart.
    assert max(waits) - min(waits) > 8.0
    assert 9.5 < sum(waits) / len(waits) < 10.5  # the mean poll rate stays the setting's
